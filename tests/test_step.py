"""AsteroidDetectStep on products of the real jwst jump and ramp_fit steps."""

import hashlib
import subprocess
import sys
from pathlib import Path

import asdf
import numpy as np
import pytest
from stdatamodels.jwst import datamodels
from stpipe.entry_points import get_steps

from jwst_asteroid_step import AsteroidCatalogModel, AsteroidDetectStep
from jwst_asteroid_step.config import DetectionConfig
from jwst_asteroid_step.crds_pars import find_shipped_pars
from jwst_asteroid_step.datamodels import CATALOG_COLUMNS
from jwst_asteroid_step.offline import run_jump_and_ramp_fit

from .conftest import open_real_ramp

DESIGN_COLUMNS = (
    "id integration x y x_err y_err t_int mjd vx vy vx_err vy_err flux flux_err snr ra dec "
    "ra_rate dec_rate n_groups n_pixels n_jumps method"
).split()


def _truth_at(truth_row, t):
    dt = t - truth_row["t_ref"]
    return truth_row["x"] + truth_row["vx"] * dt, truth_row["y"] + truth_row["vy"] * dt


def _check_recovered(catalog, truth):
    assert len(catalog) == 1, catalog
    det, true = catalog[0], truth[0]
    x_true, y_true = _truth_at(true, det["t_int"])
    assert np.hypot(det["x"] - x_true, det["y"] - y_true) < 0.5
    speed, speed_true = np.hypot(det["vx"], det["vy"]), np.hypot(true["vx"], true["vy"])
    assert abs(speed / speed_true - 1) < 0.05
    # Sense of motion, not only the axis: the velocity points the right way.
    assert (det["vx"] * true["vx"] + det["vy"] * true["vy"]) / (speed * speed_true) > 0.999


def test_bright_mover_recovered(bright_mover_products, offline_refs):
    p = bright_mover_products
    result = AsteroidDetectStep.call(p["jump"], p["fitopt"], **offline_refs.step_overrides())
    assert isinstance(result, AsteroidCatalogModel)
    assert result.meta.cal_step.asteroid_detect == "COMPLETE"
    _check_recovered(result.catalog, p["truth"])
    det = result.catalog[0]
    assert det["method"] == b"jump"
    assert abs(det["flux"] / p["truth"]["flux"][0] - 1) < 0.05
    assert det["n_jumps"] > 10 and det["n_groups"] >= 10
    assert np.isfinite(det["mjd"]) and det["mjd"] > 60000
    counts = result.meta.asteroid_detect.counts
    assert counts.n_detections == 1 and counts.n_cosmic_rays > 0


def test_same_catalog_without_fitopt(bright_mover_products, offline_refs):
    """The ramp decides the catalog; the segments only have to agree with it."""
    p = bright_mover_products
    refs = offline_refs.step_overrides()
    with_segments = AsteroidDetectStep.call(p["jump"], p["fitopt"], **refs).catalog
    without = AsteroidDetectStep.call(p["jump"], **refs).catalog
    assert with_segments.tobytes() == without.tobytes()  # byte-identical, NaNs included


def test_input_never_modified(bright_mover_products, offline_refs):
    p = bright_mover_products
    digest = {n: hashlib.sha1(np.ascontiguousarray(getattr(p["jump"], n))).hexdigest()
              for n in ("data", "groupdq", "pixeldq")}
    AsteroidDetectStep.call(p["jump"], p["fitopt"], **offline_refs.step_overrides())
    for name, value in digest.items():
        assert hashlib.sha1(np.ascontiguousarray(getattr(p["jump"], name))).hexdigest() == value


def test_strun_on_jwst_products(bright_mover_products, offline_refs, tmp_path):
    """strun asteroid_detect X_jump.fits --fitopt X_fitopt.fits writes a valid catalog."""
    p = bright_mover_products
    cmd = [
        str(Path(sys.executable).parent / "strun"), "asteroid_detect", str(p["jump_path"]),
        f"--fitopt={p['fitopt_path']}", f"--output_dir={tmp_path}",
        f"--override_gain={offline_refs['gain']}", f"--override_readnoise={offline_refs['readnoise']}",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = tmp_path / "jw_bright_mover_asteroids.asdf"
    assert out.exists(), sorted(tmp_path.iterdir())
    with AsteroidCatalogModel(out, strict_validation=True) as cat:
        cat.validate()
        names = cat.catalog.dtype.names
        assert set(DESIGN_COLUMNS) <= set(names)
        assert names == tuple(c[0] for c in CATALOG_COLUMNS)
        _check_recovered(cat.catalog, p["truth"])
        assert cat.meta.asteroid_detect.fitopt_file.endswith("_fitopt.fits")
        assert cat.meta.cal_step.asteroid_detect == "COMPLETE"
    with asdf.open(out) as af:  # plain asdf reads it too
        assert len(af.tree["catalog"]) == 1


@pytest.mark.parametrize("fast_search", [True, False], ids=["default", "no_fast_search"])
def test_real_ground_ramp_has_no_detections(offline_refs, capsys, fast_search):
    """Real noise and real cosmic rays, no mover: nothing is reported, with or without the fast search."""
    from jwst.firstframe import FirstFrameStep
    from jwst.lastframe import LastFrameStep

    from jwst.dq_init import DQInitStep

    # As calwebb_detector1 would: the real CDP7 bad-pixel mask, then edge groups.
    ramp = DQInitStep.call(open_real_ramp(), override_mask=str(offline_refs["mask"]))
    ramp = LastFrameStep.call(FirstFrameStep.call(ramp))
    jump, _, _, fitopt = run_jump_and_ramp_fit(ramp, offline_refs)
    result = AsteroidDetectStep.call(jump, fitopt, fast_search=fast_search, **offline_refs.step_overrides())
    counts = result.meta.asteroid_detect.counts
    with capsys.disabled():
        print(f"\nreal ground-test ramp (fast_search={fast_search}): {len(result.catalog)} detections, "
              f"{counts.n_cosmic_rays} cosmic rays, {counts.n_jump_cells} JUMP_DET cells")
    assert counts.n_jump_cells > 0 and counts.n_cosmic_rays > 0
    assert len(result.catalog) == 0


@pytest.mark.parametrize("fast_search", [True, False], ids=["default", "no_fast_search"])
def test_mover_injected_into_the_real_ramp_is_recovered(offline_refs, fast_search):
    """Real noise, real cosmic rays, one injected mover: found where and how it moves."""
    from jwst.firstframe import FirstFrameStep
    from jwst.lastframe import LastFrameStep

    from jwst.dq_init import DQInitStep

    from jwst_asteroid_step.simulate import Mover, inject_movers

    real = open_real_ramp()
    gt = real.meta.exposure.group_time
    mover = Mover(20.0, 40.0, 0.3 / gt, -0.15 / gt, 1.0, t_ref=2.0, integration=3)
    injected, truth = inject_movers(real, [mover], snr=30.0, seed=2)
    ramp = DQInitStep.call(injected, override_mask=str(offline_refs["mask"]))
    ramp = LastFrameStep.call(FirstFrameStep.call(ramp))
    jump, _, _, fitopt = run_jump_and_ramp_fit(ramp, offline_refs)
    result = AsteroidDetectStep.call(jump, fitopt, fast_search=fast_search, **offline_refs.step_overrides())
    assert len(result.catalog) == 1
    det, t = result.catalog[0], truth[0]
    assert det["integration"] == 3
    dt = det["t_int"] - t["t_ref"]
    assert np.hypot(t["x"] + t["vx"] * dt - det["x"], t["y"] + t["vy"] * dt - det["y"]) < 0.5
    assert det["vx"] == pytest.approx(t["vx"], rel=0.1) and det["vy"] == pytest.approx(t["vy"], rel=0.1)


def test_catalog_file_round_trip(bright_mover_products, offline_refs, tmp_path):
    p = bright_mover_products
    result = AsteroidDetectStep.call(p["jump"], p["fitopt"], output_dir=str(tmp_path), save_results=True,
                                     **offline_refs.step_overrides())
    path = tmp_path / "jw_bright_mover_asteroids.asdf"
    with AsteroidCatalogModel(path) as back:
        assert back.catalog.tobytes() == result.catalog.tobytes()
        assert back.meta.asteroid_detect.parameters == result.meta.asteroid_detect.parameters


def test_stpipe_discovers_both_aliases():
    aliases = {s.class_alias: s for s in get_steps() if s.package_name == "jwst-asteroid-step"}
    assert aliases["asteroid_detect"].class_name == "jwst_asteroid_step.step.AsteroidDetectStep"
    assert not aliases["asteroid_detect"].is_pipeline
    assert aliases["calwebb_detector1_asteroid"].is_pipeline


# ---- skips: a logged reason, cal_step SKIPPED, an empty valid catalog ----

def _skip_reason(result):
    assert isinstance(result, AsteroidCatalogModel)
    assert result.meta.cal_step.asteroid_detect == "SKIPPED"
    assert len(result.catalog) == 0
    result.validate()
    return result.meta.asteroid_detect.notes


@pytest.fixture
def small_jump(bright_mover_products):
    return bright_mover_products["jump"].copy()


def test_skip_not_miri_imaging(small_jump, offline_refs):
    small_jump.meta.instrument.name = "NIRCAM"
    small_jump.meta.exposure.type = "NRC_IMAGE"
    note = _skip_reason(AsteroidDetectStep.call(small_jump, **offline_refs.step_overrides()))
    assert "MIRI imaging" in note and "NIRCAM" in note


def test_skip_jump_not_run(small_jump, offline_refs):
    small_jump.meta.cal_step.jump = None
    note = _skip_reason(AsteroidDetectStep.call(small_jump, **offline_refs.step_overrides()))
    assert "jump step has not been run" in note


def test_skip_too_few_groups(offline_refs):
    from jwst_asteroid_step.simulate import simulate_ramp

    ramp, _ = simulate_ramp(subarray="SUB64", ngroups=4, seed=1)
    ramp.meta.cal_step.jump = "COMPLETE"
    note = _skip_reason(AsteroidDetectStep.call(ramp, **offline_refs.step_overrides()))
    assert "only 4 groups" in note


def test_skip_rate_image(bright_mover_products, offline_refs):
    note = _skip_reason(AsteroidDetectStep.call(bright_mover_products["rate"],
                                                **offline_refs.step_overrides()))
    assert "not a ramp" in note


def test_skip_unknown_filter(small_jump, offline_refs):
    small_jump.meta.instrument.filter = None
    note = _skip_reason(AsteroidDetectStep.call(small_jump, **offline_refs.step_overrides()))
    assert "psf_fwhm" in note


def test_skipped_catalog_is_saved(small_jump, offline_refs, tmp_path):
    small_jump.meta.cal_step.jump = None
    small_jump.meta.filename = "jw_skipped_jump.fits"
    AsteroidDetectStep.call(small_jump, output_dir=str(tmp_path), save_results=True,
                            **offline_refs.step_overrides())
    with AsteroidCatalogModel(tmp_path / "jw_skipped_asteroids.asdf") as back:
        assert back.meta.cal_step.asteroid_detect == "SKIPPED"
        assert len(back.catalog) == 0


def test_mismatched_fitopt_is_an_error(bright_mover_products, offline_refs):
    p = bright_mover_products
    wrong = datamodels.RampFitOutputModel(slope=np.zeros((1, 2, 10, 10), np.float32))
    with pytest.raises(ValueError, match="fitopt slope has shape"):
        AsteroidDetectStep.call(p["jump"], wrong, **offline_refs.step_overrides())


# ---- parameters: CRDS > shipped crds_params > spec defaults ----

def test_shipped_pars_used_when_crds_has_none(bright_mover_products):
    config = AsteroidDetectStep.get_config_from_reference(bright_mover_products["jump"])
    assert config["class"].endswith("AsteroidDetectStep")
    assert config["snr_threshold"] == DetectionConfig().snr_threshold


def test_shipped_pars_selection(tmp_path, monkeypatch):
    from jwst_asteroid_step.crds_params.make_pars import SHIPPED, write_pars

    monkeypatch.setitem(SHIPPED, "jwst_miri_pars-asteroiddetectstep_9999.asdf", {
        "selectors": {"exp_type": "MIR_IMAGE", "filter": "F2550W", "readpatt": "ANY"},
        "description": "test: a filter-specific file", "parameters": {"snr_threshold": 9.0},
    })
    write_pars(tmp_path)
    miri = {"meta.instrument.name": "MIRI", "meta.exposure.type": "MIR_IMAGE"}
    assert find_shipped_pars({**miri, "meta.instrument.filter": "F770W"}, directory=tmp_path).name.endswith("0001.asdf")
    assert find_shipped_pars({**miri, "meta.instrument.filter": "F2550W"}, directory=tmp_path).name.endswith("9999.asdf")
    assert find_shipped_pars({"meta.instrument.name": "MIRI", "meta.exposure.type": "MIR_MRS"}, directory=tmp_path) is None
    assert find_shipped_pars({"meta.instrument.name": "NIRCAM", "meta.exposure.type": "MIR_IMAGE"}, directory=tmp_path) is None


SHIPPED_DIR = Path(__file__).resolve().parents[1] / "crds_params"


def test_shipped_pars_are_what_make_pars_writes(tmp_path):
    """The committed file holds today's spec defaults (regenerate with make_pars otherwise)."""
    from jwst_asteroid_step.crds_params.make_pars import SHIPPED, write_pars

    write_pars(tmp_path)
    for name in SHIPPED:
        with asdf.open(SHIPPED_DIR / name) as shipped, asdf.open(tmp_path / name) as fresh:
            assert shipped.tree["parameters"] == fresh.tree["parameters"], (
                f"{name} is out of date: python -m jwst_asteroid_step.crds_params.make_pars")


def test_command_line_beats_shipped_pars(bright_mover_products, offline_refs, tmp_path):
    step = AsteroidDetectStep.from_cmdline([
        "asteroid_detect", str(bright_mover_products["jump_path"]), "--snr_threshold=11.5",
        f"--output_dir={tmp_path}",
        f"--override_gain={offline_refs['gain']}", f"--override_readnoise={offline_refs['readnoise']}",
    ])
    assert step.snr_threshold == 11.5
    assert step.min_groups == 3  # from the shipped file / defaults


def test_shipped_files_are_installed():
    import importlib.resources

    names = [p.name for p in importlib.resources.files("jwst_asteroid_step.crds_params").iterdir()]
    assert "jwst_miri_pars-asteroiddetectstep_0001.asdf" in names
    assert Path(find_shipped_pars({"meta.instrument.name": "MIRI", "meta.exposure.type": "MIR_IMAGE"}).name)


def test_save_figures_writes_pngs(bright_mover_products, offline_refs, tmp_path):
    p = bright_mover_products
    AsteroidDetectStep.call(p["jump"], p["fitopt"], save_figures=True, output_dir=str(tmp_path),
                            **offline_refs.step_overrides())
    names = sorted(f.name for f in tmp_path.glob("*.png"))
    assert names == ["jw_bright_mover_det1.png", "jw_bright_mover_summary.png"]
