"""Shared fixtures: an offline CRDS set-up, reference files, and jump-flagged ramps.

Every test runs the real jwst steps offline through :mod:`jwst_asteroid_step.offline`.
"""

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_asteroid_step.offline import (
    REAL_DATA_DIR,
    build_references,
    configure_offline_crds,
    run_jump_and_ramp_fit,
)
from jwst_asteroid_step.simulate import Mover, simulate_ramp

REAL_RAMP = REAL_DATA_DIR / "MIRI_5582_89_S_20180308-010230_SCE1_pipe.fits"


@pytest.fixture(scope="session")
def offline_refs(tmp_path_factory):
    """Offline CRDS for the whole session, and flat reference files."""
    configure_offline_crds(tmp_path_factory.mktemp("crds_cache"))
    return build_references(tmp_path_factory.mktemp("references"))


@pytest.fixture(scope="session")
def bright_mover():
    """One bright main-belt mover on a SUB256 ramp: (Mover, simulate_ramp kwargs)."""
    group_time = 0.29952
    mover = Mover(x0=110.0, y0=140.0, vx=0.25 / group_time, vy=-0.12 / group_time, flux=4000.0)
    kwargs = dict(subarray="SUB256", ngroups=60, filter="F770W", background=5.0,
                  stars=5, seed=7, filename="jw_bright_mover_uncal.fits")
    return mover, kwargs


@pytest.fixture(scope="session")
def bright_mover_products(offline_refs, bright_mover, tmp_path_factory):
    """Real jwst jump + ramp_fit products of the bright-mover ramp, saved to disk.

    Returns a dict with the models (jump, rate, rateints, fitopt), the truth
    table, and the paths of the ``_jump`` and ``_fitopt`` files.
    """
    mover, kwargs = bright_mover
    out = tmp_path_factory.mktemp("bright_mover")
    ramp, truth = simulate_ramp(movers=[mover], **kwargs)
    jump, rate, rateints, fitopt = run_jump_and_ramp_fit(ramp, offline_refs, output_dir=out, save=True)
    return {
        "jump": jump, "rate": rate, "rateints": rateints, "fitopt": fitopt, "truth": truth,
        "jump_path": out / "jw_bright_mover_jump.fits",
        "fitopt_path": out / "jw_bright_mover_fitopt.fits",
        "dir": out,
    }


def open_real_ramp():
    """The real ground-test ramp as a RampModel with the metadata jwst steps need.

    The file is raw (no dq_init): it lacks EXP_TYPE and FILTER, so those are set
    here; the first and last groups are left for firstframe/lastframe to flag.
    """
    if not REAL_RAMP.exists():
        pytest.skip(f"real MIRI data not found at {REAL_DATA_DIR}")
    raw = datamodels.open(REAL_RAMP)
    model = datamodels.RampModel(data=np.asarray(raw.data, dtype=np.float32))
    model.update(raw)
    model.meta.filename = REAL_RAMP.name
    model.meta.exposure.type = "MIR_IMAGE"
    model.meta.instrument.filter = "F770W"
    raw.close()
    return model


def pytest_collection_modifyitems(config, items):
    """Deselect ``nightly`` tests unless a ``-m`` expression names them.

    ``pytest -m nightly tests/test_properties.py`` runs the long property-based
    runs; a plain ``pytest`` leaves them out.
    """
    if "nightly" in (config.getoption("markexpr") or ""):
        return
    nightly = [item for item in items if item.get_closest_marker("nightly")]
    if nightly:
        config.hook.pytest_deselected(items=nightly)
        items[:] = [item for item in items if not item.get_closest_marker("nightly")]
