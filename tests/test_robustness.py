"""Issue 6: every kind of input the step may meet, and what it does with each.

Each case ends one of three ways (docs/input_matrix.md lists them all):

- a specific error naming the file, the problem and the remedy;
- a logged skip: ``meta.cal_step.asteroid_detect == "SKIPPED"``, the reason in
  ``meta.asteroid_detect.notes``, an empty schema-valid catalog (saved when asked);
- a correct result: the simulated mover is recovered.

Ramps are small simulated SUB128/SUB64 ones, so the whole file runs in seconds.
"""

import errno
import hashlib
import logging
import os
import tempfile
import time
import tracemalloc
from functools import cache

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

from jwst_asteroid_step import AsteroidCatalogModel, AsteroidDetectStep
from jwst_asteroid_step.ramp.systematics import SAMPLE_SEED
from jwst_asteroid_step.simulate import Mover, group_time_for, simulate_ramp
from jwst_asteroid_step.step import InputFileError

SUB128_GT = group_time_for("SUB128")


@cache
def _simulated(subarray="SUB128", ngroups=20, nints=1, mover=True, seed=3):
    """A jump-complete ramp (no JUMP_DET: the search finds the mover) and its truth."""
    gt = group_time_for(subarray)
    movers = [Mover(x0=50.0, y0=40.0, vx=0.3 / gt, vy=0.15 / gt, flux=3000.0 * SUB128_GT / gt)] if mover else []
    ramp, truth = simulate_ramp(subarray=subarray, ngroups=ngroups, nints=nints, movers=movers, seed=seed,
                                cosmic_ray_rate=0, shower_rate=0, filename=f"jw_robust_{subarray}_jump.fits")
    ramp.meta.cal_step.jump = "COMPLETE"
    return ramp, truth


def _ramp(**kwargs):
    ramp, truth = _simulated(**kwargs)
    return ramp.copy(), truth


@pytest.fixture
def ramp():
    return _ramp()


def _call(model, refs, *fitopt, **kwargs):
    return AsteroidDetectStep.call(model, *fitopt, **refs.step_overrides(), **kwargs)


def _recovered(result, truth, integration=1):
    """The mover of ``truth`` is in the catalog once, at the right place and moving the right way."""
    assert result.meta.cal_step.asteroid_detect == "COMPLETE"
    rows = result.catalog[result.catalog["integration"] == integration]
    true = truth[truth["integration"] == min(integration, truth["integration"].max())][0]
    assert len(rows) == 1, result.catalog
    det = rows[0]
    dt = det["t_int"] - true["t_ref"]
    assert np.hypot(det["x"] - true["x"] - true["vx"] * dt, det["y"] - true["y"] - true["vy"] * dt) < 0.5
    cos = (det["vx"] * true["vx"] + det["vy"] * true["vy"]) / np.hypot(det["vx"], det["vy"]) / np.hypot(
        true["vx"], true["vy"])
    assert cos > 0.99
    return det


def _skipped(result, *fragments):
    """A logged skip: SKIPPED, an empty schema-valid catalog, the reason in the notes."""
    assert isinstance(result, AsteroidCatalogModel)
    assert result.meta.cal_step.asteroid_detect == "SKIPPED"
    assert len(result.catalog) == 0
    result.validate()
    for fragment in fragments:
        assert fragment in result.meta.asteroid_detect.notes
    return result.meta.asteroid_detect.notes


def _digest(model, names=("data", "groupdq", "pixeldq")):
    return {n: hashlib.sha256(np.ascontiguousarray(getattr(model, n))).hexdigest() for n in names}


def _file_digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# ---- wrong instrument or mode ----

@pytest.mark.parametrize("exp_type", [
    "MIR_MRS", "MIR_LRS-FIXEDSLIT", "MIR_LRS-SLITLESS", "MIR_4QPM", "MIR_LYOT", "MIR_CORONCAL",
    "MIR_TACQ", "MIR_DARKIMG", "MIR_FLATIMAGE",
])
def test_skip_other_miri_modes(exp_type, offline_refs):
    # NIRCam: tests/test_step.py::test_skip_not_miri_imaging
    ramp, _ = _ramp()
    ramp.meta.exposure.type = exp_type
    _skipped(_call(ramp, offline_refs), "MIRI imaging (MIR_IMAGE) only", exp_type)


def test_tso_imaging_is_searched(offline_refs):
    """A MIRI imaging TSO is an imaging exposure: stars stay put, movers are found."""
    ramp, truth = _ramp()
    ramp.meta.visit.tsovisit = True
    _recovered(_call(ramp, offline_refs), truth)


def test_segment_of_a_segmented_exposure_numbers_its_integrations(offline_refs):
    """A segment holding integrations 3.. reports integration 3 and that integration's time."""
    ramp, truth = _ramp()
    ramp.meta.visit.tsovisit = True
    ramp.meta.exposure.integration_start = 3
    ramp.meta.exposure.integration_end = 3
    int_times = ramp.int_times.copy()
    int_times["integration_number"] = 3
    int_times["int_start_MJD_UTC"] = 60123.25
    ramp.int_times = int_times
    result = _call(ramp, offline_refs)
    det = _recovered(result, truth, integration=3)
    assert det["mjd"] == pytest.approx(60123.25 + det["t_int"] / 86400.0, abs=1e-9)


def test_moving_target_skipped_unless_allowed(offline_refs):
    """JWST tracks a moving target, so the stars move: by default that is a skip."""
    ramp, truth = _ramp()
    ramp.meta.target.type = "MOVING"
    _skipped(_call(ramp, offline_refs), "moving target", "allow_moving_target=True")
    _recovered(_call(ramp, offline_refs, allow_moving_target=True), truth)


# ---- wrong stage ----

def test_skip_jump_skipped(ramp, offline_refs):
    # meta.cal_step.jump missing: tests/test_step.py::test_skip_jump_not_run
    model, _ = ramp
    model.meta.cal_step.jump = "SKIPPED"
    _skipped(_call(model, offline_refs), "jump step has not been run", "'SKIPPED'")


def test_no_jump_flags_still_searched(ramp, offline_refs):
    """No JUMP_DET anywhere: the matched filter needs no flags and finds the mover."""
    model, truth = ramp
    assert not np.any(model.groupdq & dqflags.group["JUMP_DET"])
    result = _call(model, offline_refs)
    det = _recovered(result, truth)
    assert det["method"] == b"search" and det["n_jumps"] == 0
    assert result.meta.asteroid_detect.counts.n_jump_cells == 0


@pytest.mark.parametrize("kind", ["rateints", "cal", "rate_file"])
def test_skip_images(kind, offline_refs, tmp_path):
    # An in-memory rate image: tests/test_step.py::test_skip_rate_image
    ramp, _ = _simulated()
    if kind == "rateints":
        image = datamodels.CubeModel(data=np.zeros((1, 128, 136), np.float32))
    else:
        image = datamodels.ImageModel(data=np.zeros((128, 136), np.float32))
    image.update(ramp)
    image.meta.filename = f"jw_robust_{kind}.fits"
    if kind == "cal":
        image.meta.cal_step.photom = "COMPLETE"
    if kind == "rate_file":
        image.save(tmp_path / image.meta.filename)
        image = str(tmp_path / image.meta.filename)
    _skipped(_call(image, offline_refs), "not a ramp", "RampModel")


@pytest.mark.parametrize("ngroups", [1, 2, 3])
def test_skip_too_few_groups(ngroups, offline_refs):
    # ngroups 4: tests/test_step.py::test_skip_too_few_groups
    full, _ = _simulated()
    ramp = datamodels.RampModel(data=full.data[:, :ngroups].copy(), groupdq=full.groupdq[:, :ngroups].copy(),
                                pixeldq=full.pixeldq.copy())
    ramp.update(full)
    _skipped(_call(ramp, offline_refs), f"only {ngroups} groups")


# ---- shapes ----

def test_several_integrations(offline_refs):
    ramp, truth = _ramp(subarray="SUB64", ngroups=15, nints=2)
    result = _call(ramp, offline_refs)
    first, second = _recovered(result, truth, 1), _recovered(result, truth, 2)
    assert list(result.catalog["id"]) == [1, 2]
    period = ramp.meta.exposure.integration_time
    assert (second["mjd"] - first["mjd"]) * 86400 == pytest.approx(period + second["t_int"] - first["t_int"],
                                                                    abs=1e-3)


# Subarrays the simulator has no model of: where pysiaf (PRD) places them.
CUT_SUBARRAYS = {  # name: (xstart, ystart, xsize, ysize)
    "MASK1065": (1, 21, 288, 224), "MASK1140": (1, 243, 288, 224), "MASK1550": (1, 463, 288, 224),
    "MASKLYOT": (1, 719, 320, 304), "SLITLESSPRISM": (1, 529, 72, 416),
}


@pytest.mark.parametrize("subarray", ["SUB64", "SUB128", "SUB256", *CUT_SUBARRAYS])
def test_every_subarray_shape(subarray, offline_refs):
    """A MIR_IMAGE ramp of each subarray's shape is searched and the mover found.

    (Real MASK* and SLITLESSPRISM exposures are coronagraphic or LRS exposure
    types, skipped by test_skip_other_miri_modes.)
    """
    if subarray in CUT_SUBARRAYS:
        xstart, ystart, xsize, ysize = CUT_SUBARRAYS[subarray]
        big, truth = _simulated(subarray="BRIGHTSKY", ngroups=10)
        ramp = datamodels.RampModel(data=big.data[..., :ysize, :xsize].copy(),
                                    groupdq=big.groupdq[..., :ysize, :xsize].copy(),
                                    pixeldq=big.pixeldq[:ysize, :xsize].copy())
        ramp.update(big)
        sub = ramp.meta.subarray
        sub.name, sub.xstart, sub.ystart, sub.xsize, sub.ysize = subarray, xstart, ystart, xsize, ysize
    else:
        ramp, truth = _ramp(subarray=subarray, ngroups=10)
    _recovered(_call(ramp, offline_refs), truth)


@pytest.mark.slow
@pytest.mark.parametrize("subarray", ["FULL", "BRIGHTSKY"])
def test_large_subarrays_run(subarray, offline_refs):
    """The full array and BRIGHTSKY at the minimum ramp length: a complete, valid catalog."""
    ramp, _ = _ramp(subarray=subarray, ngroups=5, mover=False)
    result = _call(ramp, offline_refs, search_max_speed=0.25)
    assert result.meta.cal_step.asteroid_detect == "COMPLETE"
    result.validate()


@pytest.mark.parametrize("shape", [(37, 53), (6, 7)])
def test_odd_shapes(shape, offline_refs):
    """Shapes no subarray has (consistent keywords): searched, nothing invented."""
    full, _ = _simulated(mover=False)
    ny, nx = shape
    ramp = datamodels.RampModel(data=full.data[..., :ny, 8:8 + nx].copy(),
                                groupdq=full.groupdq[..., :ny, 8:8 + nx].copy(),
                                pixeldq=full.pixeldq[:ny, 8:8 + nx].copy())
    ramp.update(full)
    ramp.meta.subarray.xstart += 8
    ramp.meta.subarray.xsize, ramp.meta.subarray.ysize = nx, ny
    result = _call(ramp, offline_refs)
    assert result.meta.cal_step.asteroid_detect == "COMPLETE" and len(result.catalog) == 0
    result.validate()


def test_subarray_keywords_contradict_sci(ramp, offline_refs):
    model, _ = ramp
    model.meta.subarray.xsize, model.meta.subarray.ysize = 72, 64
    with pytest.raises(ValueError, match=r"jw_robust_SUB128_jump.fits: the subarray keywords and the SCI "
                                         r"array disagree.*set meta.subarray to match"):
        _call(model, offline_refs)


def test_subarray_keywords_missing(ramp, offline_refs):
    model, _ = ramp
    model.meta.subarray.xstart = None
    with pytest.raises(ValueError, match=r"cannot cut the GAIN reference file .*xstart=None.*set meta.subarray"):
        _call(model, offline_refs)


# ---- bad data ----

@pytest.mark.parametrize("damage", ["all_do_not_use", "all_saturated", "all_pixels_do_not_use", "all_nan"])
def test_skip_nothing_usable(damage, ramp, offline_refs):
    model, _ = ramp
    if damage == "all_do_not_use":
        model.groupdq |= dqflags.group["DO_NOT_USE"]
    elif damage == "all_saturated":
        model.groupdq |= dqflags.group["SATURATED"]
    elif damage == "all_pixels_do_not_use":
        model.pixeldq |= dqflags.pixel["DO_NOT_USE"]
    else:
        model.data[...] = np.nan
    _skipped(_call(model, offline_refs), "no usable group difference")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 3e38])
def test_non_finite_reads_are_set_aside(value, ramp, offline_refs, caplog):
    """NaN, ±inf or absurd reads (a patch crossing the track) never reach the algorithm."""
    model, truth = ramp
    model.data[0, 5:8, 10:20, 10:20] = value
    before = _digest(model)
    with caplog.at_level(logging.WARNING, logger="jwst_asteroid_step"):
        result = _call(model, offline_refs)
    _recovered(result, truth)
    assert "300 SCI reads are NaN, infinite or beyond" in result.meta.asteroid_detect.notes
    assert "treated as DO_NOT_USE" in caplog.text
    assert _digest(model) == before  # the flags went into a copy


def test_integer_sci_file(ramp, offline_refs, tmp_path):
    """A file whose SCI is stored as integers (raw DN, like the real ground-test ramp)."""
    model, truth = ramp
    path = tmp_path / "jw_int_jump.fits"
    model.save(path)
    with fits.open(path, mode="update") as hdul:
        hdul["SCI"].data = np.round(hdul["SCI"].data).astype(np.int32)
    assert fits.getdata(path, "SCI").dtype.kind == "i"
    _recovered(_call(str(path), offline_refs), truth)


# ---- fitopt that does not belong to the ramp ----

def test_fitopt_from_another_exposure(ramp, offline_refs):
    # Wrong shape: tests/test_step.py::test_mismatched_fitopt_is_an_error
    model, _ = ramp
    other = datamodels.RampFitOutputModel(slope=np.zeros((1, 2, 128, 136), np.float32))
    other.update(model)
    other.meta.observation.observation_number = "002"
    with pytest.raises(ValueError, match=r"does not match jw_robust_SUB128_jump.fits: fitopt is from a "
                                         r"different exposure: meta.observation.observation_number"):
        _call(model, offline_refs, other)


def test_fitopt_file_missing(ramp, offline_refs, tmp_path):
    model, _ = ramp
    missing = tmp_path / "jw_gone_fitopt.fits"
    with pytest.raises(InputFileError, match=f"input file {missing} does not exist"):
        _call(model, offline_refs, fitopt=str(missing))


# ---- damaged metadata ----

@pytest.mark.parametrize("group_time", [None, float("nan"), 0.0, -0.1])
def test_skip_bad_group_time(group_time, ramp, offline_refs):
    model, _ = ramp
    model.meta.exposure.group_time = group_time
    _skipped(_call(model, offline_refs), "meta.exposure.group_time is", "positive number of seconds")


@pytest.mark.parametrize("filter_name", ["F1065C", "OPAQUE"])
def test_skip_filter_without_psf(filter_name, ramp, offline_refs):
    # Missing filter: tests/test_step.py::test_skip_unknown_filter
    model, _ = ramp
    model.meta.instrument.filter = filter_name
    _skipped(_call(model, offline_refs), f"No PSF is known for filter '{filter_name}'", "psf_fwhm")


def test_garbage_group_time_in_file(ramp, offline_refs, tmp_path):
    """A non-numeric TGROUP keyword: the reader drops it (a logged ValidationWarning), the step skips."""
    model, _ = ramp
    path = tmp_path / "jw_garbage_jump.fits"
    model.save(path)
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["TGROUP"] = "garbage"
        del hdul["ASDF"]  # else the metadata tree stored beside the keywords wins
    _skipped(_call(str(path), offline_refs), "meta.exposure.group_time is None")


def test_missing_start_time(ramp, offline_refs):
    """No start time and no INT_TIMES: positions and motions, mjd NaN, a note saying so."""
    model, truth = ramp
    model.meta.exposure.start_time = None
    with_int_times = _call(model.copy(), offline_refs)
    assert np.isfinite(_recovered(with_int_times, truth)["mjd"])  # INT_TIMES is enough
    model.int_times = None
    result = _call(model, offline_refs)
    assert np.isnan(_recovered(result, truth)["mjd"])
    assert "mjd column is NaN" in result.meta.asteroid_detect.notes


# ---- files that cannot be read ----

def test_missing_input_file(offline_refs, tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        _call(str(tmp_path / "jw_nothing_jump.fits"), offline_refs)


def test_not_a_path_or_model(offline_refs):
    with pytest.raises(TypeError, match="cannot use a int as input: pass a file name or a datamodel"):
        _call(12345, offline_refs)
    # stpipe's call() itself rejects an array before the step sees it; run() reaches the step.
    with pytest.raises(TypeError, match="cannot use a ndarray as input"):
        AsteroidDetectStep(**offline_refs.step_overrides()).run(np.zeros((1, 5, 8, 8)))


@pytest.fixture(scope="module")
def ramp_files(tmp_path_factory):
    """The SUB64 ramp saved as FITS and as ASDF."""
    model, _ = _simulated(subarray="SUB64", ngroups=10, mover=False)
    out = tmp_path_factory.mktemp("ramp_files")
    paths = {ext: out / f"jw_files_jump.{ext}" for ext in ("fits", "asdf")}
    for path in paths.values():
        model.save(path)
    return paths


@pytest.mark.parametrize("ext", ["fits", "asdf"])
@pytest.mark.parametrize("damage", ["truncated_header", "truncated_data", "garbage_start", "text"])
def test_unreadable_files(ext, damage, ramp_files, offline_refs, tmp_path):
    """Truncated, overwritten or foreign files: InputFileError naming the file."""
    good = ramp_files[ext].read_bytes()
    path = tmp_path / f"jw_{damage}_jump.{ext}"
    if damage == "truncated_header":
        path.write_bytes(good[:1000])
    elif damage == "truncated_data":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage_start":
        path.write_bytes(bytes(range(256)) * 4 + good[1024:])
    else:
        path.write_text("this is not a JWST product\n")
    with pytest.raises(InputFileError, match=f"cannot read (the metadata of )?{path}"):
        _call(str(path), offline_refs)


def test_corrupt_fitopt_file(ramp, offline_refs, tmp_path):
    model, _ = ramp
    path = tmp_path / "jw_bad_fitopt.fits"
    path.write_bytes(b"SIMPLE  =                    T" + b"\0" * 3000)
    with pytest.raises(InputFileError, match=f"cannot read {path}"):
        _call(model, offline_refs, fitopt=str(path))


# ---- output that cannot be written ----

def _no_leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_read_only_output_directory(ramp, offline_refs, tmp_path, monkeypatch):
    model, _ = ramp
    out = tmp_path / "out"
    out.mkdir()
    if os.geteuid() != 0:
        out.chmod(0o555)  # root writes anyway: then the refusal is simulated below
    else:
        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    try:
        with pytest.raises(OSError, match=r"could not write the asteroid catalog .*jw_robust_SUB128_asteroids"
                                          r".asdf: Permission denied.*choose a writable output_dir") as info:
            _call(model, offline_refs, save_results=True, output_dir=str(out))
    finally:
        out.chmod(0o755)
    assert info.value.errno == errno.EACCES
    assert _no_leftovers(out) == []


@pytest.mark.parametrize("interruption", ["disk_full", "killed"])
def test_interrupted_save_leaves_nothing(interruption, ramp, offline_refs, tmp_path, monkeypatch):
    """A save that dies half-way (full disk, a kill) leaves no catalog under its name."""
    import asdf

    class Killed(BaseException):
        pass

    real_write_to = asdf.AsdfFile.write_to

    def half_then_fail(self, fd, *args, **kwargs):
        real_write_to(self, fd, *args, **kwargs)
        with open(fd, "r+b") as f:  # half a file on disk, then the failure
            f.truncate(os.path.getsize(fd) // 2)
        if interruption == "disk_full":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise Killed()

    monkeypatch.setattr(asdf.AsdfFile, "write_to", half_then_fail)
    model, _ = ramp
    if interruption == "disk_full":
        with pytest.raises(OSError, match=r"jw_robust_SUB128_asteroids.asdf: No space left on device; nothing "
                                          r"was written under that name; free space") as info:
            _call(model, offline_refs, save_results=True, output_dir=str(tmp_path))
        assert info.value.errno == errno.ENOSPC
    else:
        with pytest.raises(Killed):
            _call(model, offline_refs, save_results=True, output_dir=str(tmp_path))
    assert _no_leftovers(tmp_path) == []


def test_skip_saves_an_empty_catalog(offline_refs, tmp_path):
    # The skip of a missing jump step: tests/test_step.py::test_skipped_catalog_is_saved
    ramp, _ = _ramp()
    ramp.meta.exposure.type = "MIR_MRS"
    _call(ramp, offline_refs, save_results=True, output_dir=str(tmp_path))
    with AsteroidCatalogModel(tmp_path / "jw_robust_SUB128_asteroids.asdf", strict_validation=True) as back:
        _skipped(back, "MIR_MRS")


# ---- too much data: a shower storm ----

def test_shower_storm_is_bounded(ramp, offline_refs, caplog):
    """5 % of all differences JUMP_DET (~20x a real ramp's worst): bounded, warned, still searched.

    Left to event classification, such random flags chain into hundreds of
    chance "tracks", each fitted (a minute for this SUB128 ramp).
    """
    model, truth = ramp
    storm = np.random.default_rng(11).random(model.groupdq.shape) < 0.05
    model.groupdq[storm] |= dqflags.group["JUMP_DET"]
    before = _digest(model)
    tracemalloc.start()
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="jwst_asteroid_step"):
        result = _call(model, offline_refs)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 20.0
    assert peak < 200e6  # bytes traced by numpy and Python, for a 1.4 MB ramp
    assert "a shower storm?" in caplog.text and "max_jump_fraction=0.01" in result.meta.asteroid_detect.notes
    counts = result.meta.asteroid_detect.counts
    assert counts.n_storm_integrations == 1
    assert counts.n_jump_cells > 0.9 * storm[:, 1:].sum() * 0.9
    _recovered(result, truth)
    assert _digest(model) == before


# ---- no side effects ----

@pytest.fixture(scope="module")
def jump_products(offline_refs, tmp_path_factory):
    """A SUB64 ramp through the real jump and ramp_fit, saved: (jump path, fitopt path, jump model)."""
    from jwst_asteroid_step.offline import run_jump_and_ramp_fit

    ramp, _ = _simulated(subarray="SUB64", ngroups=12)
    out = tmp_path_factory.mktemp("jump_products")
    jump, _, _, fitopt = run_jump_and_ramp_fit(ramp.copy(), offline_refs, output_dir=out, save=True)
    return out / "jw_robust_SUB64_jump.fits", out / "jw_robust_SUB64_fitopt.fits", jump, fitopt


def _filled(tree):
    """A metadata tree without its empty sections."""
    if isinstance(tree, dict):
        pruned = {k: _filled(v) for k, v in tree.items()}
        return {k: v for k, v in pruned.items() if v != {}}
    return tree


def test_input_files_unchanged(jump_products, offline_refs, tmp_path):
    jump_path, fitopt_path, _, _ = jump_products
    before = {p: (_file_digest(p), p.stat().st_mtime_ns) for p in (jump_path, fitopt_path)}
    _call(str(jump_path), offline_refs, fitopt=str(fitopt_path), save_results=True, output_dir=str(tmp_path))
    assert {p: (_file_digest(p), p.stat().st_mtime_ns) for p in before} == before
    assert _no_leftovers(tmp_path) == ["jw_robust_SUB64_asteroids.asdf"]


def test_input_models_unchanged(jump_products, offline_refs):
    _, _, jump, fitopt = jump_products
    jump_before, meta_before = _digest(jump), _filled(jump.meta.instance)
    fitopt_before = _digest(fitopt, ("slope", "sigslope", "weights", "pedestal"))
    _call(jump, offline_refs, fitopt)
    assert _digest(jump) == jump_before
    # Reading an absent metadata section (meta.ephemeris, meta.photometry) makes
    # stdatamodels add it empty; no value changes and nothing more is saved.
    assert _filled(jump.meta.instance) == meta_before
    assert _digest(fitopt, ("slope", "sigslope", "weights", "pedestal")) == fitopt_before


def test_pipeline_leaves_its_input_alone(offline_refs, tmp_path):
    """calwebb_detector1_asteroid on an uncal file leaves the file unchanged."""
    from jwst_asteroid_step.offline import detector1_offline_steps
    from jwst_asteroid_step.pipeline import AsteroidDetector1Pipeline
    from jwst_asteroid_step.simulate import save_simulation

    ramp, truth = simulate_ramp(subarray="SUB64", ngroups=10, seed=5, filename="jw_pipe_robust_uncal.fits")
    uncal = save_simulation(ramp, truth, tmp_path / "jw_pipe_robust")["ramp"]
    before_file, before_model = _file_digest(uncal), _digest(ramp)
    steps = detector1_offline_steps(offline_refs)
    steps["asteroid_detect"] = offline_refs.overrides("gain", "readnoise")
    out = tmp_path / "out"
    out.mkdir()
    AsteroidDetector1Pipeline.call(str(uncal), steps=steps, output_dir=str(out), save_results=True)
    assert _file_digest(uncal) == before_file
    assert _digest(ramp) == before_model  # the simulated model the file was written from
    assert "jw_pipe_robust_asteroids.asdf" in _no_leftovers(out)


# ---- determinism ----

def test_two_runs_are_byte_identical(ramp, offline_refs, tmp_path):
    model, _ = ramp
    runs = []
    for run in ("a", "b"):  # same parameters, output_dir included
        result = _call(model, offline_refs, save_results=True, output_dir=str(tmp_path))
        path = tmp_path / f"{run}.asdf"
        os.replace(tmp_path / "jw_robust_SUB128_asteroids.asdf", path)
        runs.append((result, path))
    (first, path_a), (second, path_b) = runs
    assert len(first.catalog) == 1
    assert first.catalog.tobytes() == second.catalog.tobytes()  # NaNs included
    with AsteroidCatalogModel(path_a) as a, AsteroidCatalogModel(path_b) as b:
        assert a.catalog.tobytes() == b.catalog.tobytes() == first.catalog.tobytes()
        assert a.meta.asteroid_detect.instance == b.meta.asteroid_detect.instance
    # The one random draw (noise_scale's pixel sample) is seeded; the seed is recorded.
    assert first.meta.asteroid_detect.random_seed == SAMPLE_SEED == 0

