"""Tests of the shift-and-stack search, :mod:`jwst_asteroid_step.search.matched_filter`, and its backends.

Built from numpy arrays: a mover's expected charge plus the package's noise model.
"""

import tracemalloc

import numpy as np
import pytest

from jwst_asteroid_step.config import DetectionConfig
from jwst_asteroid_step.detect import find_movers
from jwst_asteroid_step.mover_model import mover_differences
from jwst_asteroid_step.psf import psf_for_filter
from jwst_asteroid_step.search import backends
from jwst_asteroid_step.search import matched_filter as mf
from jwst_asteroid_step.timebase import difference_intervals

GT, RN, GAIN = 2.77504, 7.0, 4.0
PSF = psf_for_filter("F770W")


def mover_cube(x, y, vx, vy, flux, n_groups, box, seed, sky=5.0):
    """Differences (DN, float32) of sky plus one mover (velocity in px/group), with read and shot noise."""
    t0, t1 = difference_intervals(n_groups, GT)
    grid = np.arange(box, dtype=float)
    charge = sky * GT + mover_differences(x, y, vx / GT, vy / GT, flux, 0.5 * t1[-1], t0, t1, PSF, grid, grid)
    rng = np.random.default_rng(seed)
    reads = rng.normal(0.0, RN / np.sqrt(2.0), (n_groups,) + charge.shape[1:])
    return (rng.poisson(charge * GAIN) / GAIN + np.diff(reads, axis=0)).astype(np.float32)


def search(diff, **kw):
    box = diff.shape[1]
    return mf.matched_filter_search(diff, np.zeros(diff.shape, bool), np.full((box, box), 5.0 * GT),
                                    RN, GAIN, PSF, **kw)


def test_speed_classes_cover_zero_to_top_with_doubling_bins():
    classes = mf.speed_classes(1.0, max_smear_px=1.0, max_bin=16)
    assert classes[0][0] == 0.0 and classes[-1][1] == 1.0
    for (lo, hi, b), (lo2, hi2, b2) in zip(classes[:-1], classes[1:]):
        assert hi == lo2 and b == 2 * b2
    assert all(hi * b <= 1.0 + 1e-12 for _, hi, b in classes[1:])  # smear within a bin <= 1 px


def test_fold_pairs_sums_successive_bins_in_place():
    planes = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)
    expected = np.stack([planes[0] + planes[1], planes[2] + planes[3], planes[4]])
    folded = mf._fold_pairs(planes)
    assert np.shares_memory(folded, planes)
    np.testing.assert_array_equal(folded, expected)


def _track_planes(n_bins, box, x, y, vx, vy, amplitude, sigma, seed):
    """Bins (unit noise smoothed like a PSF-correlated plane) plus a Gaussian track; times and planes."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    t_bin = (np.arange(n_bins) + 0.5 - 0.5 * n_bins).astype(np.float32)
    planes = rng.normal(size=(n_bins, box, box))
    yy, xx = np.mgrid[:box, :box]
    for b in range(n_bins):
        planes[b] = ndimage.gaussian_filter(planes[b], sigma) * 2.0 * np.sqrt(np.pi) * sigma
        cx, cy = x + vx * t_bin[b], y + vy * t_bin[b]
        planes[b] += amplitude * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (4.0 * sigma**2))
    return t_bin, planes.astype(np.float32)


def test_scan_by_halves_finds_what_the_direct_scan_finds():
    # Long stacks are scanned as two halves on a grid twice as coarse: the same
    # track at nearly the same SNR and velocity, the same noise elsewhere.
    sigma, n_bins, box = 0.9, 40, 96
    step = mf.velocity_grid_step(sigma, n_bins, 0.1)
    vxs, vys = mf._velocity_annulus(0.25, 0.5, step)
    vnorm = np.full(vxs.size, 1.0 / np.sqrt(n_bins), dtype=np.float32)
    norm = np.zeros((box, box), dtype=np.float32)
    norm[12:-12, 12:-12] = 1.0  # tracks that leave the planes are not compared
    near = (slice(46, 51), slice(45, 50))
    ratios = []
    for seed, (vx, vy) in enumerate([(0.31, -0.12), (-0.2, 0.4), (0.0, -0.45), (0.33, 0.33), (-0.45, -0.1)]):
        t_bin, planes = _track_planes(n_bins, box, 47.3, 48.6, vx, vy, 2.0, sigma, seed)
        found = []
        for half_step in (0.0, 2.0 * step):
            snr, best_iv, _, _ = mf._scan_maxima(planes, t_bin, vxs, vys, vnorm, norm, 5.0, 3, "cpu",
                                                 half_step=half_step)
            i = np.unravel_index(np.argmax(snr[near]), snr[near].shape)
            iv = best_iv[near][i]
            assert np.hypot(vxs[iv] - vx, vys[iv] - vy) < 2.5 * step
            found.append(snr)
        direct, halves = found
        ratios.append(halves[near].max() / direct[near].max())
        far = (slice(14, 36), slice(14, 82))
        assert np.std(halves[far]) == pytest.approx(np.std(direct[far]), rel=0.1)
    assert 0.85 < np.mean(ratios) <= 1.02


def test_search_in_place_equals_search_on_a_copy():
    diff = mover_cube(30.2, 28.7, 0.31, -0.12, 60.0, 40, 64, seed=2)
    kept = diff.copy()
    plain, _ = search(diff, v_max=0.5)
    np.testing.assert_array_equal(diff, kept)  # not overwritten unless asked
    in_place, _ = search(diff, v_max=0.5, overwrite=True)
    assert [vars(c) for c in plain] == [vars(c) for c in in_place]
    best = max(plain, key=lambda c: c.snr)
    assert abs(best.x - 30.2) < 1 and abs(best.vx - 0.31) < 0.15  # a grid point; the fit refines it


def _peak_traced_bytes(diff, **kw):
    """Peak of the memory the search allocates itself (its inputs made beforehand)."""
    box = diff.shape[1]
    exclude, sky = np.zeros(diff.shape, bool), np.full((box, box), 5.0 * GT)
    tracemalloc.start()
    try:
        mf.matched_filter_search(diff, exclude, sky, RN, GAIN, PSF, **kw)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_search_in_place_needs_no_second_cube():
    # In place, what the search allocates beyond what it needs on a tiny frame of
    # the same length (the speed normalisation's templates, ~10 MB) is a few
    # planes; otherwise it is a cube of bins (half the differences' size at the
    # default top speed, whose finest bins are two differences long).  Measured:
    # 0.19 and 0.70 cubes here (numpy 2.4); 0.26 and 0.73-0.89 under pytest with
    # numpy 2.5.2 and numba 0.68.0 on 16 threads.
    diff = mover_cube(190.2, 180.7, 0.3, 0.1, 60.0, 60, 384, seed=3)
    tiny = np.ascontiguousarray(diff[:, :32, :32])
    _peak_traced_bytes(tiny.copy())  # compiles (or loads) the kernels outside the measurement
    for overwrite in (False, True):
        base = _peak_traced_bytes(tiny.copy(), overwrite=overwrite)
        extra = _peak_traced_bytes(diff.copy(), overwrite=overwrite) - base
        assert extra < 0.35 * diff.nbytes if overwrite else extra > 0.5 * diff.nbytes


def test_fast_mover_found_on_the_finest_bins():
    diff = mover_cube(40.4, 44.1, 0.85, -0.4, 150.0, 60, 96, seed=5)
    candidates, _ = search(diff, v_max=1.0)
    best = max(candidates, key=lambda c: c.snr)
    assert abs(best.x - 40.4) < 1.5 and abs(best.y - 44.1) < 1.5
    assert abs(best.vx - 0.85) < 0.1 and abs(best.vy + 0.4) < 0.1  # within a grid step or two


def test_window_starts_cover_the_ramp_with_the_last_window_at_its_end():
    assert mf._window_starts(100, 12) == [0, 12, 24, 36, 48, 60, 72, 84, 88]
    assert mf._window_starts(48, 12) == [0, 12, 24, 36]
    assert mf._window_starts(9, 12) == [0]


def _window_with(source, seed=12):
    """Twelve noisy planes plus ``source(t)`` (an image per plane time), clipped as the fast search clips them."""
    t_bin = mf._window_times(12)
    yy, xx = np.mgrid[:64, :64]
    planes = np.random.default_rng(seed).normal(0.0, 0.1, (12, 64, 64)).astype(np.float32)
    for b, t in enumerate(t_bin):
        planes[b] += source(t, xx, yy).astype(np.float32)
    clipped = mf._clip_planes(planes, 8.0, keep=True)
    return planes, clipped, t_bin


def test_a_flattened_peak_takes_its_velocity_from_the_unclipped_planes():
    # A bright source is a plateau on the clipped planes: a velocity 1.6x too
    # fast keeps its track on it.  The unclipped planes place it.
    vx, vy = 1.3, -0.7
    planes, clipped, t_bin = _window_with(
        lambda t, xx, yy: 20.0 * np.exp(-((xx - 32 - vx * t) ** 2 + (yy - 32 - vy * t) ** 2) / 4.5))
    vxs, vys = mf._velocity_annulus(0.5, 3.0, 0.1)
    too_fast = np.argmin(np.hypot(vxs - 1.6 * vx, vys - 1.6 * vy))
    kept = planes.copy()
    iv = mf._unflattened_velocities(planes, clipped, t_bin, np.array([32]), np.array([32]), vxs, vys,
                                    np.array([too_fast]))
    assert np.hypot(vxs[iv[0]] - vx, vys[iv[0]] - vy) < 0.1
    np.testing.assert_array_equal(planes, kept)  # clipped again


def test_a_cosmic_ray_remnant_keeps_its_peaks_velocity():
    # Clipped in one plane only: the clip did what it is for.
    hit = mf._window_times(12)[5]
    planes, clipped, t_bin = _window_with(
        lambda t, xx, yy: 20.0 * (t == hit) * np.exp(-((xx - 32) ** 2 + (yy - 32) ** 2) / 4.5))
    vxs, vys = mf._velocity_annulus(0.5, 3.0, 0.1)
    iv = mf._unflattened_velocities(planes, clipped, t_bin, np.array([32]), np.array([32]), vxs, vys,
                                    np.array([7]))
    assert iv[0] == 7


@pytest.mark.parametrize("flux", [200.0, 600.0])
def test_a_bright_fast_streak_is_one_detection_at_its_velocity(flux):
    # Before the unclipped choice of velocity, the fast windows nominated such a
    # streak too fast, its fit failed, and the main search's fragments of it
    # were the detections: five false ones at 200 DN/s, none at all at 600.
    vx, vy = 1.3, -0.7
    diff = mover_cube(30.0, 100.0, vx, vy, flux, 60, 128, seed=11)
    ramp = np.cumsum(np.concatenate([np.zeros((1, 128, 128)), diff]), axis=0)[None].astype(np.float32)
    table, _ = find_movers(ramp, np.zeros(ramp.shape, np.uint8), np.zeros((128, 128), np.uint32), GT, PSF, RN,
                           GAIN, DetectionConfig())
    assert len(table) == 1
    assert abs(table["vx"][0] * GT - vx) < 0.02 and abs(table["vy"][0] * GT - vy) < 0.02


def test_fast_windows_find_a_mover_beyond_the_main_search():
    # 1.8 px/group is far beyond the main search's 0.5: only the fast windows see it.
    diff = mover_cube(30.3, 64.6, 1.8, 0.45, 120.0, 40, 128, seed=11)
    plain, _ = search(diff.copy(), v_max=0.5)
    assert not any(np.hypot(c.vx, c.vy) > 1.0 for c in plain)
    found, stats = search(diff.copy(), v_max=0.5, fast_max_speed=3.0)
    assert stats["n_fast_candidates"] >= 1
    best = max(found, key=lambda c: c.snr)
    # The windows locate the streak; its timing along it is the fit's job.
    u = np.array([1.8, 0.45]) / np.hypot(1.8, 0.45)
    across = abs((best.x - 30.3) * u[1] - (best.y - 64.6) * u[0])
    assert across < PSF.fwhm and abs(best.vx * u[1] - best.vy * u[0]) < 0.1 * np.hypot(best.vx, best.vy)
    assert best.v_searched == 3.0


def test_find_movers_measures_a_fast_mover_with_the_fast_search():
    # Bright enough for the clip to flatten it in the windows, which nominated it
    # too fast until they took its velocity from the unclipped planes (this was
    # an expected failure before session 11).
    ramp = np.cumsum(np.concatenate([np.zeros((1, 128, 128)), mover_cube(30.3, 64.6, 1.8, 0.45, 120.0, 40, 128,
                                                                          seed=11)]), axis=0)[None].astype(np.float32)
    args = (ramp, np.zeros(ramp.shape, np.uint8), np.zeros((128, 128), np.uint32), GT, PSF, RN, GAIN)
    table, counts = find_movers(*args, DetectionConfig(fast_search=True))
    assert counts["n_fast_search_candidates"] >= 1
    fast = [r for r in table if np.hypot(r["vx"], r["vy"]) * GT > 1.0]
    assert len(fast) == 1 and fast[0]["method"] == "search"
    row = fast[0]
    assert abs(row["vx"] * GT - 1.8) < 0.03 and abs(row["vy"] * GT - 0.45) < 0.03
    t = row["t_int"] / GT - 0.5 * 39  # the mover's reference time is the middle of the 40 reads
    assert abs(row["x"] - (30.3 + 1.8 * t)) < 0.3 and abs(row["y"] - (64.6 + 0.45 * t)) < 0.3
    # Without the fast windows the main search only fits fragments of the streak,
    # slower than the mover and each at a different place: false detections.
    fragments, _ = find_movers(*args, DetectionConfig(fast_search=False))
    assert not any(abs(np.hypot(r["vx"], r["vy"]) * GT - np.hypot(1.8, 0.45)) < 0.2 for r in fragments)


def test_fast_windows_scan_a_small_fraction_of_the_deep_grid():
    # Each window's velocity grid is as much coarser per axis as the window is
    # shorter than the ramp, so the (velocity, pixel) trials of all windows are
    # window / n_diff (here 0.2) of the deep search's, and the additions, each
    # over a window's differences, that ratio squared.  Counted, not timed.
    diff = mover_cube(30.3, 30.6, 1.0, 0.2, 60.0, 60, 64, seed=12)
    _, fast = search(diff.copy(), v_max=0.5, fast_max_speed=3.0)
    _, deep = search(diff.copy(), v_max=3.0)
    _, main = search(diff.copy(), v_max=0.5)
    assert fast["n_trials"] - main["n_trials"] < 0.25 * deep["n_trials"]


def test_fast_windows_add_no_candidate_in_noise():
    diff = mover_cube(0.0, 0.0, 0.0, 0.0, 0.0, 60, 96, seed=13)
    found, stats = search(diff, v_max=0.5, fast_max_speed=3.0)
    assert stats["n_fast_candidates"] == 0 and found == []
    # Noise as the model describes it: the fast candidates' SNRs keep their scale.
    assert 1.0 <= stats["fast_noise_excess"] < 1.06


def test_main_classes_search_the_same_bins_with_the_fast_windows():
    # The windows clip single differences; the clipping is undone before the
    # main classes build their own bins, so they find what they find without it.
    diff = mover_cube(30.2, 28.7, 0.31, -0.12, 60.0, 40, 64, seed=7)
    diff[17, 40:43, 10:13] += 400.0  # an unflagged cosmic ray: clipped differently per bin length
    plain, _ = search(diff.copy(), v_max=0.5)
    with_fast, _ = search(diff.copy(), v_max=0.5, fast_max_speed=3.0)
    slow = [c for c in with_fast if c.v_searched == 0.5]
    assert len(plain) == len(slow) >= 1
    for a, b in zip(plain, slow):
        assert a.x == b.x and a.y == b.y and a.vx == b.vx and a.vy == b.vy
        assert b.snr == pytest.approx(a.snr, rel=1e-4)  # bins summed before or after the PSF correlation


def test_bands_moving_along_the_columns_raise_the_fast_windows_noise():
    # Pickup noise as in real MIRI subarrays: each row's offset changes from one
    # difference to the next as bands that drift up the array at ~2 px/group.
    # A fast track that follows them gathers far more than per-pixel noise; the
    # windows measure that, in the bands' direction, and scale their SNRs.
    n_diff, box = 48, 96
    diff = mover_cube(0.0, 0.0, 0.0, 0.0, 0.0, n_diff + 1, box, seed=14)
    k, y = np.meshgrid(np.arange(n_diff), np.arange(box), indexing="ij")
    diff += (2.5 * np.sin(2 * np.pi * (y - 2.0 * k) / 9.0))[:, :, None].astype(np.float32)
    _, stats = search(diff.copy(), v_max=0.5, fast_max_speed=3.0)
    assert stats["fast_noise_excess"] > 1.2
    clean = mover_cube(0.0, 0.0, 0.0, 0.0, 0.0, n_diff + 1, box, seed=14)
    _, clean_stats = search(clean, v_max=0.5, fast_max_speed=3.0)
    assert clean_stats["fast_noise_excess"] < 1.06


# --- backends ----------------------------------------------------------------------

def _candidates(backend, diff):
    found, _ = search(diff.copy(), v_max=0.5, backend=backend)
    return np.array([[c.x, c.y, c.vx, c.vy, c.snr] for c in found])


def _needs_a_gpu():
    if backends.gpu_unavailable_reason():
        pytest.skip(backends.gpu_unavailable_reason())


@pytest.mark.parametrize("n_groups", [30, 60])
def test_cupy_search_equals_the_numba_search(n_groups, monkeypatch):
    # At 60 groups the fastest classes are long enough to be scanned as two
    # halves, by both backends; at 30 none is.
    _needs_a_gpu()
    layouts = []
    monkeypatch.setattr(backends, "halves_layout", lambda *a: layouts.append(a) or mf.halves_layout(*a))
    diff = mover_cube(60.2, 58.7, 0.31, -0.12, 60.0, n_groups, 128, seed=8)
    cpu, gpu = _candidates("cpu", diff), _candidates("cupy", diff)
    assert bool(layouts) == (n_groups == 60)
    assert cpu.shape == gpu.shape and len(cpu) > 0
    np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("halves", [False, True])
def test_cuda_scan_equals_the_numba_scan_on_a_whole_map(halves):
    # Every pixel's best SNR and velocity, not only the candidates: the edges,
    # the pad and the order of the velocities resolve alike.  (Where a pixel's
    # normalisation is 0 every velocity scores 0, and which one is kept does
    # not matter.)
    _needs_a_gpu()
    rng = np.random.default_rng(3)
    planes = rng.normal(size=(20, 40, 300)).astype(np.float32)
    t_bin = (np.arange(20) - 9.5).astype(np.float32) * 2
    vxs, vys = mf._velocity_annulus(0.0, 0.5, 0.05)
    vnorm = rng.uniform(0.5, 1.0, vxs.size).astype(np.float32)
    norm = rng.uniform(0.0, 1.0, (40, 300)).astype(np.float32)
    norm[0, :5] = 0.0
    snr = np.full((40, 300), -np.inf, dtype=np.float32)
    best_iv = np.zeros((40, 300), dtype=np.int32)
    if halves:
        mf._scan_by_halves(planes, t_bin, vxs, vys, vnorm, norm, snr, best_iv, 0.1)
    else:
        mf._scan(planes, t_bin, vxs, vys, vnorm, norm, snr, best_iv, np.arange(40))
    gpu_snr, gpu_iv = backends.scan_cuda(planes, t_bin, vxs, vys, vnorm, norm, 0.1 if halves else 0.0)
    np.testing.assert_allclose(gpu_snr, snr, rtol=1e-6)
    np.testing.assert_array_equal(gpu_iv[norm > 0], best_iv[norm > 0])


def test_cupy_backend_without_a_gpu_warns_and_searches_on_the_cpu():
    if not backends.gpu_unavailable_reason():
        pytest.skip("a CUDA device is present")
    ramp = np.cumsum(np.concatenate([np.zeros((1, 48, 48)), mover_cube(24.2, 23.7, 0.31, -0.12, 300.0, 20, 48,
                                                                        seed=9)]), axis=0)[None].astype(np.float32)
    args = (ramp, np.zeros(ramp.shape, np.uint8), np.zeros((48, 48), np.uint32), GT, PSF, RN, GAIN)
    with pytest.warns(RuntimeWarning, match="search_backend='cupy'.*runs on the CPU"):
        table, _ = find_movers(*args, DetectionConfig(search_backend="cupy"))
    expected, _ = find_movers(*args, DetectionConfig())
    assert len(table) == len(expected) == 1
    assert table.as_array().tobytes() == expected.as_array().tobytes()


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="search_backend"):
        DetectionConfig(search_backend="opencl")


@pytest.mark.parametrize("filter_name", ["F770W", "F2100W"])
def test_the_fast_windows_snr_has_unit_spread_in_noise_at_every_speed(filter_name):
    # Model noise through the search's own steps: the fast windows' SNR must be
    # as wide at 3 px/group as at 0.6, or the scan prefers fast velocities and
    # its thresholds mean fewer sigma there (before: 0.99 and 1.30 for F770W).
    from jwst_asteroid_step.ramp.systematics import trend_basis

    psf, n_diff, size, window, sky = psf_for_filter(filter_name), 60, 140, 12, 5.0 * GT
    basis = trend_basis(n_diff, 0)
    prof = mf._core_profiles(psf, int(np.ceil(3.0 * psf.core_sigma)))[0].astype(np.float32)
    planes = mf._model_noise_planes(n_diff, size, RN, sky / GAIN, basis, prof, seed=11)
    speed_norm = mf._speed_normalisation(psf, n_diff, np.ones(n_diff, bool), sky, RN, GAIN, 3.0, basis,
                                         sampled=True)
    spread = {v: np.nanmedian(mf._window_spread(planes, np.ones((size, size), np.float32), speed_norm, window, v,
                                                int(np.ceil(0.5 * v * window)) + prof.size // 2 + 1))
              for v in (0.6, 3.0)}
    assert 0.9 < spread[0.6] < 1.1 and 0.9 < spread[3.0] < 1.1
    assert spread[3.0] / spread[0.6] == pytest.approx(1.0, abs=0.07)


def test_a_candidate_stands_in_only_for_what_its_fit_can_do():
    # The search keeps one candidate per place, unless the stronger one's fit
    # could not do what the weaker one's would: reach its speeds, or take a
    # sub-PSF mover's flux from the mean image (ramp 40 of the bench: a fast
    # window's peak on a 0.1 px/group mover displaced its sub-PSF candidate,
    # and the fit without the mean image's flux could not show it moves).
    main = mf.SearchCandidate(x=0, y=0, vx=0.1, vy=0, snr=9, t_ref=5, v_searched=0.5)
    fast = mf.SearchCandidate(x=0, y=0, vx=0.6, vy=0, snr=9, t_ref=5, v_searched=3.0)
    sub = mf.SearchCandidate(x=0, y=0, vx=0.01, vy=0, snr=9, t_ref=5, v_searched=0.5, sub_psf=True)
    assert fast.stands_in_for(main) and not main.stands_in_for(fast)
    assert not fast.stands_in_for(sub) and sub.stands_in_for(main) and main.stands_in_for(main)
