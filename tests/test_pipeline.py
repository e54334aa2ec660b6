"""calwebb_detector1_asteroid, and the hook in a plain calwebb_detector1, run offline by strun."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_asteroid_step import AsteroidCatalogModel
from jwst_asteroid_step.offline import write_detector1_pars
from jwst_asteroid_step.simulate import save_simulation, simulate_ramp

STRUN = str(Path(sys.executable).parent / "strun")
ROOT = "jw_pipe_test"


def _strun(*args, cwd):
    run = subprocess.run([STRUN, *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def pipeline_runs(offline_refs, bright_mover, tmp_path_factory):
    """The same uncal ramp through three offline pipelines, each in its own folder."""
    mover, kwargs = bright_mover
    base = tmp_path_factory.mktemp("pipelines")
    ramp, truth = simulate_ramp(movers=[mover], **{**kwargs, "ngroups": 40, "filename": f"{ROOT}_uncal.fits"},
                                flag_edges=False)
    uncal = save_simulation(ramp, truth, base / ROOT)["ramp"]
    runs = {}
    for label, pipeline, hook in (("asteroid", "asteroid", False), ("hook", "plain", True),
                                  ("plain", "plain", False)):
        out = base / label
        out.mkdir()
        pars = write_detector1_pars(base / f"{label}_pars.asdf", offline_refs, pipeline, hook)
        _strun(pars, uncal, f"--output_dir={out}", cwd=base)
        runs[label] = out
    return runs, truth


def test_asteroid_pipeline_writes_rate_rateints_and_catalog(pipeline_runs):
    runs, truth = pipeline_runs
    out = runs["asteroid"]
    for suffix in ("rate.fits", "rateints.fits", "asteroids.asdf"):
        assert (out / f"{ROOT}_{suffix}").exists(), sorted(p.name for p in out.iterdir())
    assert not (out / f"{ROOT}_fitopt.fits").exists()  # segments kept in memory only
    with AsteroidCatalogModel(out / f"{ROOT}_asteroids.asdf") as cat:
        assert cat.meta.cal_step.asteroid_detect == "COMPLETE"
        assert cat.meta.cal_step.jump == "COMPLETE"
        assert len(cat.catalog) == 1
        det = cat.catalog[0]
        dt = det["t_int"] - truth["t_ref"][0]
        assert np.hypot(det["x"] - truth["x"][0] - truth["vx"][0] * dt,
                        det["y"] - truth["y"][0] - truth["vy"][0] * dt) < 0.5
        assert cat.meta.asteroid_detect.fitopt_file != "N/A"


def test_hook_gives_same_catalog(pipeline_runs):
    runs, _ = pipeline_runs
    with AsteroidCatalogModel(runs["asteroid"] / f"{ROOT}_asteroids.asdf") as a, \
            AsteroidCatalogModel(runs["hook"] / f"{ROOT}_asteroids.asdf") as b:
        assert len(a.catalog) == 1
        assert a.catalog.tobytes() == b.catalog.tobytes()


@pytest.mark.parametrize("label", ["hook", "asteroid"])
def test_rates_identical_to_plain_detector1(pipeline_runs, label):
    runs, _ = pipeline_runs
    assert not list(runs["plain"].glob("*asteroids*"))
    for suffix in ("rate", "rateints"):
        with datamodels.open(runs["plain"] / f"{ROOT}_{suffix}.fits") as plain, \
                datamodels.open(runs[label] / f"{ROOT}_{suffix}.fits") as other:
            for ext in ("data", "dq", "err", "var_poisson", "var_rnoise"):
                np.testing.assert_array_equal(getattr(plain, ext), getattr(other, ext))


def test_standard_step_parameters_still_work(offline_refs, bright_mover, tmp_path):
    """--steps.jump.* and skip reach jwst's steps inside the customised pipeline."""
    mover, kwargs = bright_mover
    ramp, truth = simulate_ramp(movers=[mover], **{**kwargs, "ngroups": 20, "subarray": "SUB64"},
                                flag_edges=False)
    uncal = save_simulation(ramp, truth, tmp_path / "jw_pars")["ramp"]
    pars = write_detector1_pars(tmp_path / "pars.asdf", offline_refs)
    run = _strun(pars, uncal, "--steps.jump.rejection_threshold=6.5", "--steps.asteroid_detect.skip=True",
                 f"--output_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert "CR rejection threshold = 6.5 sigma" in run.stdout + run.stderr
    assert "asteroid_detect skipped by request" in run.stdout + run.stderr
    assert (tmp_path / "out" / "jw_pars_rateints.fits").exists()
    assert not (tmp_path / "out" / "jw_pars_asteroids.asdf").exists()
