"""Seeded fuzzing of the step's readers: corrupt bytes of real and simulated input files.

A corrupted input must end *cleanly*, which here means one of:

- a result: an :class:`AsteroidCatalogModel` that validates, COMPLETE or
  SKIPPED (a skip says why in ``meta.asteroid_detect.notes``);
- :class:`~jwst_asteroid_step.step.InputFileError` (an ``OSError``) whose
  message names the corrupted file;
- a ``ValueError`` whose message names the file (the file reads, but
  contradicts itself or the ramp, e.g. subarray keywords vs. SCI shape).

Anything else (a numba ``SystemError``, a ``KeyError`` from deep inside
astropy, a crash) fails the test with its traceback.  The inputs are a cut of
the real MIRI ground-test ramp written as a jump-stage RampModel, and a
simulated ramp's real jwst ``_jump`` and ``_fitopt`` files.
"""

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_asteroid_step import AsteroidCatalogModel, AsteroidDetectStep
from jwst_asteroid_step.offline import run_jump_and_ramp_fit
from jwst_asteroid_step.simulate import simulate_ramp
from jwst_asteroid_step.step import InputFileError

from .conftest import open_real_ramp

#: FITS headers come in 2880-byte blocks; the primary header of these files
#: spans the first few.
HEADER_BYTES = 4 * 2880

#: Readers, not throughput, are under test: a garbage block of data can look like
#: hundreds of candidate tracks, so fewer are fitted (time per file stays ~1 s).
FAST = {"max_candidates": 10, "search_max_candidates": 10}


@pytest.fixture(scope="module")
def real_cut(tmp_path_factory):
    """Integration 1, groups 1-12 of the real ground-test ramp, as a jump-stage RampModel file.

    Marked jump-complete so the step reads every array and searches it (the
    real ramp has real noise and cosmic rays, and no JUMP_DET flags).
    """
    raw = open_real_ramp()
    cut = datamodels.RampModel(data=np.ascontiguousarray(raw.data[:1, :12]))
    cut.update(raw)
    cut.meta.cal_step.jump = "COMPLETE"
    cut.meta.exposure.nints, cut.meta.exposure.ngroups = 1, 12
    cut.meta.exposure.integration_end = 1
    path = tmp_path_factory.mktemp("real_cut") / "jw_real_cut_jump.fits"
    cut.save(path)
    return path


@pytest.fixture(scope="module")
def simulated_files(offline_refs, tmp_path_factory):
    """A SUB64 simulation through the real jump and ramp_fit: (``_jump`` path, ``_fitopt`` path)."""
    ramp, _ = simulate_ramp(subarray="SUB64", ngroups=10, seed=21, filename="jw_fuzz_uncal.fits")
    out = tmp_path_factory.mktemp("fuzz_sim")
    run_jump_and_ramp_fit(ramp, offline_refs, output_dir=out, save=True)
    return out / "jw_fuzz_jump.fits", out / "jw_fuzz_fitopt.fits"


def _corrupt(data, seed):
    """Damage ``data`` the way seed picks: flipped bytes in the header or anywhere, a
    zeroed block, or a truncation."""
    rng = np.random.default_rng(seed)
    data = bytearray(data)
    mode = seed % 4
    if mode == 0:  # a few bytes of the header
        for pos in rng.integers(0, HEADER_BYTES, size=rng.integers(1, 8)):
            data[pos] = rng.integers(0, 256)
    elif mode == 1:  # bytes anywhere: header, data, the embedded ASDF tree
        for pos in rng.integers(0, len(data), size=rng.integers(1, 40)):
            data[pos] = rng.integers(0, 256)
    elif mode == 2:  # a block overwritten, as by a bad sector
        start = int(rng.integers(0, len(data) - 512))
        data[start:start + int(rng.integers(16, 512))] = bytes(int(rng.integers(0, 256)) for _ in range(16)) * 32
    else:  # cut short
        data = data[: int(rng.integers(0, len(data)))]
    return bytes(data)


def _assert_clean(call, path):
    """Run ``call``; it must give a valid catalog or a clean error naming ``path``."""
    try:
        result = call()
    except InputFileError as err:
        assert str(path) in str(err), err
        return "unreadable"
    except ValueError as err:
        assert path.name in str(err), err
        return "inconsistent"
    assert isinstance(result, AsteroidCatalogModel)
    result.validate()
    status = result.meta.cal_step.asteroid_detect
    assert status in ("COMPLETE", "SKIPPED")
    if status == "SKIPPED":
        assert result.meta.asteroid_detect.notes
    return status


@pytest.mark.parametrize("seed", range(12))
def test_corrupt_real_ramp(seed, real_cut, offline_refs, tmp_path):
    path = tmp_path / real_cut.name
    path.write_bytes(_corrupt(real_cut.read_bytes(), seed))
    _assert_clean(lambda: AsteroidDetectStep.call(str(path), **offline_refs.step_overrides(), **FAST), path)


@pytest.mark.parametrize("seed", range(100, 108))
def test_corrupt_simulated_jump_file(seed, simulated_files, offline_refs, tmp_path):
    jump, _ = simulated_files
    path = tmp_path / jump.name
    path.write_bytes(_corrupt(jump.read_bytes(), seed))
    _assert_clean(lambda: AsteroidDetectStep.call(str(path), **offline_refs.step_overrides(), **FAST), path)


@pytest.mark.parametrize("seed", range(200, 208))
def test_corrupt_fitopt_file(seed, simulated_files, offline_refs, tmp_path):
    jump, fitopt = simulated_files
    path = tmp_path / fitopt.name
    path.write_bytes(_corrupt(fitopt.read_bytes(), seed))
    _assert_clean(lambda: AsteroidDetectStep.call(str(jump), str(path), **offline_refs.step_overrides(), **FAST), path)


def test_uncorrupted_files_give_results(real_cut, simulated_files, offline_refs):
    """The fuzzed files themselves are good: every damage above is the fuzzer's."""
    jump, fitopt = simulated_files
    for args in ((str(real_cut),), (str(jump), str(fitopt))):
        result = AsteroidDetectStep.call(*args, **offline_refs.step_overrides(), **FAST)
        assert result.meta.cal_step.asteroid_detect == "COMPLETE"
