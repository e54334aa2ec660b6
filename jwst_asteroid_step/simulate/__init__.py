"""Simulated MIRI imager ramps with movers, and their truth.

The simulator renders sources with the package's own PSF model
(:mod:`jwst_asteroid_step.psf`), mover model (:mod:`jwst_asteroid_step.mover_model`),
noise model (:mod:`jwst_asteroid_step.ramp.noise`) and time base
(:mod:`jwst_asteroid_step.timebase`), the same ones the detector uses.

- :mod:`.scene`: what is on the sky (:class:`Mover`, :class:`Star`);
- :mod:`.ramps`: :func:`simulate_ramp`, :func:`snr_to_flux`, :func:`save_simulation`, :func:`save_truth`;
- :mod:`.cosmic_rays`: cosmic-ray hits and showers;
- :mod:`.bad_pixels`: bad pixels from the real CDP7 mask;
- :mod:`.group_flags`: first/last-frame and RSCD group flags as jwst sets them;
- :mod:`.metadata`: MIRI imager exposure metadata (subarrays, timing, pointing);
- :mod:`.inject`: synthetic movers added to existing ramps (:func:`inject_movers`,
  :func:`shift_inject`).
"""

from .bad_pixels import cdp7_pixel_dq
from .cosmic_rays import SHOWER_RATE, ShowerModel, draw_cosmic_rays, draw_showers
from .inject import inject_movers, shift_inject
from .metadata import SUBARRAYS, fill_miri_imager_meta, group_time_for
from .ramps import TRUTH_COLUMNS, mover_snr, save_simulation, save_truth, simulate_ramp, snr_to_flux
from .scene import FILTER_BACKGROUND, Mover, Star

__all__ = [
    "Mover",
    "Star",
    "simulate_ramp",
    "snr_to_flux",
    "save_simulation",
    "save_truth",
    "mover_snr",
    "draw_cosmic_rays",
    "draw_showers",
    "ShowerModel",
    "SHOWER_RATE",
    "cdp7_pixel_dq",
    "FILTER_BACKGROUND",
    "inject_movers",
    "shift_inject",
    "fill_miri_imager_meta",
    "group_time_for",
    "SUBARRAYS",
    "TRUTH_COLUMNS",
]
