"""Simulated MIRI imager ramps with movers, and their truth.

The simulator renders sources with the package's own PSF model
(:mod:`jwst_asteroid_step.psf`), mover model (:mod:`jwst_asteroid_step.mover_model`),
noise model (:mod:`jwst_asteroid_step.ramp.noise`) and time base
(:mod:`jwst_asteroid_step.timebase`), the same ones the detector uses.

- :mod:`.scene`: what is on the sky (:class:`Mover`, :class:`Star`);
- :mod:`.ramps`: :func:`simulate_ramp`, :func:`snr_to_flux`, :func:`save_simulation`, :func:`save_truth`;
- :mod:`.cosmic_rays`: cosmic-ray hits;
- :mod:`.metadata`: MIRI imager exposure metadata (subarrays, timing, pointing).
"""

from .cosmic_rays import draw_cosmic_rays
from .metadata import SUBARRAYS, fill_miri_imager_meta, group_time_for
from .ramps import TRUTH_COLUMNS, mover_snr, save_simulation, save_truth, simulate_ramp, snr_to_flux
from .scene import Mover, Star

__all__ = [
    "Mover",
    "Star",
    "simulate_ramp",
    "snr_to_flux",
    "save_simulation",
    "save_truth",
    "mover_snr",
    "draw_cosmic_rays",
    "fill_miri_imager_meta",
    "group_time_for",
    "SUBARRAYS",
    "TRUTH_COLUMNS",
]
