"""Regenerate the example figures in this folder (``jwst-asteroids plot`` output).

A small simulation (MIRI SUB256, 40 groups, F770W, two bright main-belt movers,
stars and cosmic rays), run offline through jwst's jump and ramp_fit
(:mod:`jwst_asteroid_step.offline`) and ``asteroid_detect``, with sky coordinates
from the real flight distortion (``shared/data/real``).  From the repository root::

    python docs/figures/make_figures.py
"""

import logging
import tempfile
from pathlib import Path

from jwst_asteroid_step.offline import (
    REAL_DATA_DIR,
    build_references,
    configure_offline_crds,
    run_jump_and_ramp_fit,
)
from jwst_asteroid_step.plotting import plot_detections
from jwst_asteroid_step.simulate import Mover, group_time_for, simulate_ramp, snr_to_flux
from jwst_asteroid_step.sky import add_sky_columns
from jwst_asteroid_step.step import AsteroidDetectStep

HERE = Path(__file__).parent


def main():
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        configure_offline_crds(tmp / "crds")
        refs = build_references(tmp / "refs")
        pars = dict(subarray="SUB256", ngroups=40, filter="F770W", background=5.0)
        group_time = group_time_for("SUB256", "FAST")
        t_ref = 0.5 * 39 * group_time
        movers = []
        for x, y, dx, dy in [(100.0, 150.0, 0.25, -0.12), (180.0, 70.0, -0.15, 0.20)]:
            vx, vy = dx / group_time, dy / group_time  # px/group -> px/s
            flux = snr_to_flux(150.0, vx, vy, x=x, y=y, t_ref=t_ref, **pars)
            movers.append(Mover(x0=x, y0=y, vx=vx, vy=vy, flux=flux, t_ref=t_ref))
        ramp, _ = simulate_ramp(movers=movers, stars=5, seed=42, ra_ref=151.84, dec_ref=-40.36,
                                roll_ref=111.9, filename="jw_example_uncal.fits", **pars)
        jump, rate, _, fitopt = run_jump_and_ramp_fit(ramp, refs)
        catalog = AsteroidDetectStep.call(jump, fitopt, **refs.step_overrides())
        catalog.catalog, sky = add_sky_columns(
            catalog.catalog, jump,
            distortion=REAL_DATA_DIR / "jwst_miri_imager_distortion_flt9.asdf",
            filteroffset=REAL_DATA_DIR / "jwst_miri_filteroffset_full_flt9.asdf",
        )
        catalog.meta.asteroid_detect.wcs_source = sky["wcs_source"]
        paths = plot_detections(catalog, jump, rate_image=rate, output_dir=HERE, root="example")
        print("Wrote " + ", ".join(p.name for p in paths))


if __name__ == "__main__":
    main()
