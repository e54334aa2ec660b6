"""Regenerate ``jw_bright_mover_ades.psv``: the ADES report of a simulated detection.

The bright-mover simulation of ``tests/conftest.py`` (SUB256, 60 groups, F770W), run
through jwst's jump and ramp_fit offline and ``asteroid_detect``, with sky
coordinates from the real flight distortion, and a JWST ephemeris (geocentric
position and velocity, as the level-1b OBSGEO-* keywords carry it) added to the
simulated header.  Run from the repository root::

    python tests/data/make_ades_fixture.py
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
from jwst_asteroid_step.simulate import Mover, simulate_ramp
from jwst_asteroid_step.sky import add_sky_columns, observer_metadata
from jwst_asteroid_step.step import AsteroidDetectStep

HERE = Path(__file__).parent
GROUP_TIME = 0.29952


def add_ephemeris(model):
    """A plausible JWST geocentric state near L2 (m, m/s), at the exposure mid-time."""
    eph = model.meta.ephemeris
    eph.reference_frame, eph.type, eph.time = "EME2000", "DEFINITIVE", model.meta.exposure.mid_time
    eph.spatial_x_geo, eph.spatial_y_geo, eph.spatial_z_geo = -1.21e9, -0.72e9, -0.39e9
    eph.velocity_x_geo, eph.velocity_y_geo, eph.velocity_z_geo = 310.0, -520.0, -180.0
    return model


def main():
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        configure_offline_crds(tmp / "crds")
        refs = build_references(tmp / "refs")
        mover = Mover(x0=110.0, y0=140.0, vx=0.25 / GROUP_TIME, vy=-0.12 / GROUP_TIME, flux=4000.0)
        ramp, truth = simulate_ramp(subarray="SUB256", ngroups=60, filter="F770W", background=5.0,
                                stars=5, seed=7, movers=[mover],
                                filename="jw_bright_mover_uncal.fits")
        add_ephemeris(ramp)
        jump, _, _, fitopt = run_jump_and_ramp_fit(ramp, refs)
        catalog = AsteroidDetectStep.call(jump, fitopt, **refs.step_overrides())
        # Keep the detection of the simulated mover (within 1 px of the truth at t_int).
        cat = catalog.catalog
        true_x = truth["x"][0] + truth["vx"][0] * (cat["t_int"] - truth["t_ref"][0])
        true_y = truth["y"][0] + truth["vy"][0] * (cat["t_int"] - truth["t_ref"][0])
        catalog.catalog = cat[(abs(cat["x"] - true_x) < 1) & (abs(cat["y"] - true_y) < 1)]
        catalog.catalog, sky = add_sky_columns(
            catalog.catalog, jump,
            distortion=REAL_DATA_DIR / "jwst_miri_imager_distortion_flt9.asdf",
            filteroffset=REAL_DATA_DIR / "jwst_miri_filteroffset_full_flt9.asdf",
        )
        catalog.meta.asteroid_detect.wcs_source = sky["wcs_source"]
        catalog.meta.asteroid_detect.observer = observer_metadata(jump)
        catalog.meta.asteroid_detect.software = {"jwst_asteroid_step": "0.1.0", "jwst": "3.0.0"}

        from jwst_asteroid_step.export import write_ades

        path, skipped = write_ades(catalog, HERE / "jw_bright_mover_ades.psv",
                                   submitter="J. Doe", measurers=["J. Doe"],
                                   comments=["Simulated detection: test fixture, not real data"])
        print(f"Wrote {path} ({len(catalog.catalog)} detection(s), skipped {skipped})")


if __name__ == "__main__":
    main()
