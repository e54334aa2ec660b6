"""calwebb_detector1_asteroid, and the hook in a plain calwebb_detector1 as documented, run offline by strun."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels

from jwst_asteroid_step import AsteroidCatalogModel
from jwst_asteroid_step.offline import write_detector1_pars
from jwst_asteroid_step.simulate import save_simulation, simulate_ramp

from .doc_blocks import REPO, ROOT, logical_lines, offline_command, rst_blocks

STRUN = str(Path(sys.executable).parent / "strun")
HOOK_PAGE = REPO / "docs" / "hook" / "description.rst"


def _strun(*args, cwd):
    run = subprocess.run([STRUN, *map(str, args)], check=False, capture_output=True, text=True,
                         timeout=600, cwd=cwd)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def _run_offline(commands, refs, cwd):
    """Run shell commands as written, plus the offline reference overrides."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for line in logical_lines(commands):
        run = subprocess.run(["bash", "-e", "-c", offline_command(line, refs, cwd)], check=False, cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f"{line}\n" + run.stdout[-3000:] + run.stderr[-3000:]


@pytest.fixture(scope="module")
def pipeline_runs(offline_refs, bright_mover, tmp_path_factory):
    """The same uncal ramp through four offline runs, each in its own folder.

    ``plain``: jwst's calwebb_detector1. ``asteroid``: calwebb_detector1_asteroid from an
    offline parameter file. ``hook_cli`` and ``hook_pars``: calwebb_detector1 with the hook,
    through the command line and the parameter file of docs/hook/description.rst, as written.
    """
    mover, kwargs = bright_mover
    base = tmp_path_factory.mktemp("pipelines")
    ramp, truth = simulate_ramp(movers=[mover], **{**kwargs, "ngroups": 40, "filename": f"{ROOT}_uncal.fits"},
                                flag_edges=False)
    uncal = save_simulation(ramp, truth, base / ROOT)["ramp"]
    blocks = rst_blocks(HOOK_PAGE)
    hook_cli = next(b for b in blocks if b.kind == "shell" and "pre_hooks=" in b.text)
    pars_file = next(b for b in blocks if b.file)
    hook_pars = next(b for b in blocks if b.kind == "shell" and f"strun {pars_file.file}" in b.text)
    runs = {label: base / label for label in ("plain", "asteroid", "hook_cli", "hook_pars")}
    for folder in runs.values():
        folder.mkdir()
        shutil.copy(uncal, folder)
    _run_offline(f"strun calwebb_detector1 {uncal.name}", offline_refs, runs["plain"])
    _strun(write_detector1_pars(base / "asteroid_pars.asdf", offline_refs), uncal.name, cwd=runs["asteroid"])
    _run_offline(hook_cli.text, offline_refs, runs["hook_cli"])
    (runs["hook_pars"] / pars_file.file).write_text(pars_file.text)
    _run_offline(hook_pars.text, offline_refs, runs["hook_pars"])
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


@pytest.mark.parametrize("label", ["hook_cli", "hook_pars"])
def test_documented_hook_gives_the_pipelines_catalog(pipeline_runs, label):
    runs, _ = pipeline_runs
    with AsteroidCatalogModel(runs["asteroid"] / f"{ROOT}_asteroids.asdf") as a, \
            AsteroidCatalogModel(runs[label] / f"{ROOT}_asteroids.asdf") as b:
        assert len(a.catalog) == 1
        assert a.catalog.tobytes() == b.catalog.tobytes()


#: What differs between any two runs of calwebb_detector1 on the same input: the file's
#: date, the model's date and the run's log with its timestamps (in which a hook's own
#: lines appear too); _fits_hash is a hash of the file's bytes.
RUN_DEPENDENT = ("DATE", "meta.date", "_fits_hash", "cal_logs.")


def _assert_same_product(expected, actual):
    """Arrays byte for byte, headers and metadata equal but for RUN_DEPENDENT."""
    with fits.open(expected) as a, fits.open(actual) as b:
        assert [h.name for h in a] == [h.name for h in b]
        for ha, hb in zip(a, b, strict=True):
            if ha.name == "ASDF":
                continue  # the metadata tree, compared below
            assert (ha.data is None) == (hb.data is None)
            if ha.data is not None:
                assert ha.data.dtype == hb.data.dtype and ha.data.tobytes() == hb.data.tobytes(), ha.name
            cards = [{k: v for k, v in h.header.items() if k not in RUN_DEPENDENT} for h in (ha, hb)]
            assert cards[0] == cards[1], ha.name
    with datamodels.open(expected) as a, datamodels.open(actual) as b:
        flat = [{k: v for k, v in m.to_flat_dict().items()
                 if not k.startswith(RUN_DEPENDENT)} for m in (a, b)]
    assert flat[0].keys() == flat[1].keys()
    for key, value in flat[0].items():
        if isinstance(value, np.ndarray):
            assert value.tobytes() == flat[1][key].tobytes(), key
        else:
            assert value == flat[1][key], key


@pytest.mark.parametrize("label", ["hook_cli", "hook_pars"])
@pytest.mark.parametrize("suffix", ["rate", "rateints"])
def test_documented_hook_leaves_rate_products_as_a_plain_run(pipeline_runs, label, suffix):
    runs, _ = pipeline_runs
    assert not list(runs["plain"].glob("*asteroids*"))
    _assert_same_product(runs["plain"] / f"{ROOT}_{suffix}.fits", runs[label] / f"{ROOT}_{suffix}.fits")


@pytest.mark.parametrize("suffix", ["rate", "rateints"])
def test_asteroid_pipeline_rates_identical_to_plain_detector1(pipeline_runs, suffix):
    runs, _ = pipeline_runs
    with datamodels.open(runs["plain"] / f"{ROOT}_{suffix}.fits") as plain, \
            datamodels.open(runs["asteroid"] / f"{ROOT}_{suffix}.fits") as other:
        for ext in ("data", "dq", "err", "var_poisson", "var_rnoise"):
            assert getattr(plain, ext).tobytes() == getattr(other, ext).tobytes(), ext


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
