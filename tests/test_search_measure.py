"""Tests of track fitting, the moving-PSF fit, the detection driver and its configuration.

Modules: jwst_asteroid_step.search.tracks, jwst_asteroid_step.measure.moving_psf,
jwst_asteroid_step.detect, jwst_asteroid_step.config.  Everything is built from
numpy arrays; the jump flags come from a simple per-pixel median/MAD threshold,
so no jwst step runs here.
"""

import numpy as np
import pytest
from astropy.table import Table
from stdatamodels.jwst.datamodels import dqflags

from jwst_asteroid_step.config import DetectionConfig
from jwst_asteroid_step.detect import DETECTION_COLUMNS, detections_to_catalog, find_movers
from jwst_asteroid_step.measure.moving_psf import _Cells, _StaticImage, fit_moving_psf
from jwst_asteroid_step.mover_model import mover_differences
from jwst_asteroid_step.psf import PSFModel, psf_for_filter
from jwst_asteroid_step.ramp.differences import IntegrationDifferences, jump_cells
from jwst_asteroid_step.ramp.events import classify_events, cluster_cells
from jwst_asteroid_step.ramp.noise import matched_filter_snr, matched_filter_snr_correlated, whiten
from jwst_asteroid_step.search.matched_filter import matched_filter_search
from jwst_asteroid_step.search.tracks import Track, fit_track, offsets_from_line
from jwst_asteroid_step.simulate import Mover, simulate_ramp
from jwst_asteroid_step.timebase import difference_intervals

G_DNU = dqflags.group["DO_NOT_USE"]
G_JUMP = dqflags.group["JUMP_DET"]
P_REF = dqflags.pixel["REFERENCE_PIXEL"]

# --- straight tracks through cells -------------------------------------------------

GT = 2.77504  # FULL-frame FAST group time (s)


def diagonal_cells(n=10, x0=5, y0=30, step_x=1, step_y=-1, k0=0):
    k = np.arange(k0, k0 + n)
    return np.column_stack([k, y0 + step_y * (k - k0), x0 + step_x * (k - k0)]).astype(np.int32)


def test_offsets_from_line_either_sense_and_any_timing():
    # A line through (10, 20) along +x; the track's point 3 px above it, 5 px on.
    across, along, cos_angle = offsets_from_line(10.0, 20.0, 2.0, 0.0, 15.0, 23.0, -0.5, 0.0)
    assert across == pytest.approx(-3.0) and along == pytest.approx(5.0)
    assert cos_angle == pytest.approx(1.0)  # opposite sense, same direction
    assert offsets_from_line(0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, -1.0)[2] == pytest.approx(0.0, abs=1e-12)
    assert offsets_from_line(0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0)[2] == 0.0  # no motion


def test_fit_track_recovers_straight_line():
    cells = diagonal_cells(step_x=1, step_y=-1)
    track = fit_track(cells, np.ones(len(cells)), GT)
    assert track.vx == pytest.approx(1.0 / GT)
    assert track.vy == pytest.approx(-1.0 / GT)
    # Each cell stands for the middle of its difference.
    for k, y, x in cells:
        px, py = track.position((k + 0.5) * GT)
        assert (px, py) == pytest.approx((x, y), abs=1e-9)
    assert track.inliers.all()


def test_fit_track_gives_the_sense_of_motion():
    forward = diagonal_cells(step_x=2, step_y=1, x0=5)
    backward = diagonal_cells(step_x=-2, step_y=-1, x0=25, y0=39)
    t_f = fit_track(forward, np.ones(len(forward)), GT)
    t_b = fit_track(backward, np.ones(len(backward)), GT)
    assert t_f.vx > 0 and t_f.vy > 0
    assert t_b.vx < 0 and t_b.vy < 0
    assert t_b.vx == pytest.approx(-t_f.vx) and t_b.vy == pytest.approx(-t_f.vy)


def test_fit_track_time_span_and_reference():
    cells = diagonal_cells(n=6, k0=4)
    track = fit_track(cells, np.ones(len(cells)), GT)
    assert track.t_first == pytest.approx(4.5 * GT)
    assert track.t_last == pytest.approx(9.5 * GT)
    assert track.t_first <= track.t_ref <= track.t_last


def test_fit_track_rejects_outlier_cell_far_away():
    cells = diagonal_cells(n=10)
    outlier = np.array([[4, 11, 24]], dtype=np.int32)  # 15 px off the line
    all_cells = np.vstack([cells, outlier])
    track = fit_track(all_cells, np.ones(len(all_cells)), GT)
    assert track is not None
    np.testing.assert_array_equal(track.inliers, [True] * 10 + [False])
    assert track.vx == pytest.approx(1.0 / GT)
    assert track.vy == pytest.approx(-1.0 / GT)


def test_fit_track_rejects_cosmic_ray_touching_the_track():
    cells = diagonal_cells(n=10)
    blob = np.array([(4, y, x) for y in (28, 29, 30) for x in (5, 6, 7)], dtype=np.int32)
    all_cells = np.vstack([cells, blob])
    track = fit_track(all_cells, np.ones(len(all_cells)), GT)
    np.testing.assert_array_equal(track.inliers, [True] * 10 + [False] * 9)
    assert track.vx == pytest.approx(1.0 / GT)
    assert track.vy == pytest.approx(-1.0 / GT)


@pytest.mark.parametrize("n_iter", [1, 2, 3])
def test_fit_track_parameters_are_the_fit_of_its_inliers(n_iter):
    # Even when the rejection passes run out before converging, the returned path
    # is the least-squares fit of the cells it reports as inliers.
    cells = diagonal_cells(n=10)
    blob = np.array([(4, y, x) for y in (28, 29, 30) for x in (5, 6, 7)], dtype=np.int32)
    all_cells = np.vstack([cells, blob])
    w = np.linspace(1, 2, len(all_cells))
    track = fit_track(all_cells, w, GT, n_iter=n_iter)
    plain = fit_track(all_cells[track.inliers], w[track.inliers], GT, n_iter=0)
    assert (track.x, track.y, track.vx, track.vy, track.t_ref) == pytest.approx(
        (plain.x, plain.y, plain.vx, plain.vy, plain.t_ref)
    )


def test_fit_track_with_several_cells_per_difference():
    # A bright mover flags a 2x2 patch per difference; the track runs through its middle.
    rows = [(k, 10 + k + dy, 3 + 2 * k + dx) for k in range(8) for dy in (0, 1) for dx in (0, 1)]
    cells = np.array(rows, dtype=np.int32)
    track = fit_track(cells, np.ones(len(cells)), GT)
    assert track.vx == pytest.approx(2.0 / GT)
    assert track.vy == pytest.approx(1.0 / GT)
    px, py = track.position(0.5 * GT)
    assert (px, py) == pytest.approx((3.5, 10.5))


def test_fit_track_weights_pull_towards_heavy_cells():
    cells = diagonal_cells(n=5, step_x=1, step_y=0)
    extra = np.array([[2, 31, 7]], dtype=np.int32)  # one row off the line at the middle time
    both = np.vstack([cells, extra])
    light = fit_track(both, np.r_[np.ones(5), 0.01], GT)
    heavy = fit_track(both, np.r_[np.ones(5), 5.0], GT)
    assert light.y < heavy.y


@pytest.mark.parametrize("ks", [[0, 0, 1, 1], [3, 3, 3], [5, 9]])
def test_fit_track_needs_three_distinct_times(ks):
    cells = np.array([(k, 10 + i, 10 + i) for i, k in enumerate(ks)], dtype=np.int32)
    assert fit_track(cells, np.ones(len(cells)), GT) is None


def test_fit_track_returns_none_when_outliers_leave_too_few_times():
    cells = np.array([(0, 10, 10), (1, 10, 11), (2, 40, 50)], dtype=np.int32)
    assert fit_track(cells, np.ones(3), GT, max_offset_px=0.5) is None


# --- moving-PSF fit ----------------------------------------------------------------

RN, GAIN = 7.0, 4.0
NG, BOX = 31, 32
PSF = psf_for_filter("F770W")
T0, T1 = difference_intervals(NG, GT)
T_REF = 0.5 * T1[-1]
SKY = np.full((BOX, BOX), 5.0 * GT)  # 5 DN/s of sky, DN per difference
TRUTH = dict(x=15.3, y=16.6, vx=0.3 / GT, vy=-0.15 / GT, flux=300.0)


def expected_cube(truth=TRUTH, psf=PSF, n_groups=NG, box=BOX):
    """Sky plus the mover's expected charge (DN) in each difference; t_ref mid-ramp."""
    t0, t1 = difference_intervals(n_groups, GT)
    grid = np.arange(box, dtype=float)
    sig = mover_differences(truth["x"], truth["y"], truth["vx"], truth["vy"], truth["flux"],
                            0.5 * t1[-1], t0, t1, psf, grid, grid)
    return 5.0 * GT + sig


def noisy(expected, seed):
    """Draw a difference cube from the package noise model.

    Shot noise is independent between differences; read noise is drawn per read
    (RN / sqrt(2) each), so adjacent differences share a read, as on the detector.
    """
    rng = np.random.default_rng(seed)
    reads = rng.normal(0.0, RN / np.sqrt(2.0), (expected.shape[0] + 1,) + expected.shape[1:])
    return rng.poisson(expected * GAIN) / GAIN + np.diff(reads, axis=0)


def rough_guess(truth=TRUTH):
    """A track as the jump flags would give it: a few tenths of a pixel and ~10 % off."""
    return Track(x=truth["x"] + 0.4, y=truth["y"] - 0.3, vx=truth["vx"] * 1.1,
                 vy=truth["vy"] * 0.9, t_ref=T_REF, t_first=T0[0], t_last=T1[-1],
                 inliers=np.zeros(0, bool))


def fit(diff, background=SKY, guess=None, psf=PSF):
    return fit_moving_psf(diff, np.zeros(diff.shape, bool), background, RN, GAIN, GT, psf,
                          guess or rough_guess())


def true_position(t, truth=TRUTH):
    return truth["x"] + truth["vx"] * (t - T_REF), truth["y"] + truth["vy"] * (t - T_REF)


def test_noise_free_fit_recovers_mover():
    result = fit(expected_cube())
    assert result.success
    x, y = true_position(result.t_ref)
    assert result.x == pytest.approx(x, abs=1e-3)
    assert result.y == pytest.approx(y, abs=1e-3)
    assert result.vx == pytest.approx(TRUTH["vx"], rel=1e-3)
    assert result.vy == pytest.approx(TRUTH["vy"], rel=1e-3)
    # The model is evaluated near the path (PSF core + margin); the far wings of
    # the few per cent of light beyond are left to each pixel's fitted level.
    assert result.flux == pytest.approx(TRUTH["flux"], rel=5e-3)
    assert result.chi2_dof < 0.01
    assert result.consistency == pytest.approx(1.0, abs=0.01)


def test_fit_reference_time_lies_inside_the_integration():
    result = fit(expected_cube())
    assert T0[0] <= result.t_ref <= T1[-1]


def test_fit_decorrelates_position_and_velocity():
    result = fit(noisy(expected_cube(), seed=0))
    corr = result.cov / np.sqrt(np.outer(np.diag(result.cov), np.diag(result.cov)))
    assert abs(corr[0, 2]) < 0.05 and abs(corr[1, 3]) < 0.05


def test_static_level_of_each_pixel_is_fitted():
    # Each pixel's constant level (sky, star, dark) is a free parameter of the
    # fit, so a background given 10 DN per difference too high everywhere only
    # costs shot-noise weights, not flux.
    n_groups, box = 61, 80
    t_ref = 0.5 * difference_intervals(n_groups, GT)[1][-1]
    truth = dict(x=40.3, y=39.6, vx=0.9 / GT, vy=0.3 / GT, flux=300.0)
    cube = expected_cube(truth, n_groups=n_groups, box=box)
    wrong = np.full((box, box), 5.0 * GT + 10.0)
    guess = Track(x=40.6, y=39.4, vx=truth["vx"] * 1.05, vy=truth["vy"] * 0.95, t_ref=t_ref,
                  t_first=0.0, t_last=2 * t_ref, inliers=np.zeros(0, bool))
    result = fit_moving_psf(cube, np.zeros(cube.shape, bool), wrong, RN, GAIN, GT, PSF, guess)
    # 0.14 % low: the computed PSF's far wing, outside the model's reach near the path, is left
    # to each pixel's level (as in test_noise_free_fit_recovers_mover).
    assert result.flux == pytest.approx(truth["flux"], rel=3e-3)


@pytest.mark.parametrize("trend_order", [0, 1])
def test_reduced_rows_give_the_full_whitened_residual(trend_order):
    # A fast source reaches most pixels of its path in a few differences: the fit
    # keeps one row per such difference instead of the pixel's whole series.  The
    # chi-square, the SNR, the data's projection and the normal matrix must be
    # those of the full whitened, profiled series.
    n_groups, box = 41, 90
    t_ref = 0.5 * difference_intervals(n_groups, GT)[1][-1]
    truth = dict(x=45.0, y=44.0, vx=1.6 / GT, vy=0.7 / GT, flux=300.0)
    diff = noisy(expected_cube(truth, n_groups=n_groups, box=box), seed=3)
    exclude = np.zeros(diff.shape, bool)
    exclude[7, 40:50, 40:50] = True  # a gap in some pixels' series
    cells = _Cells(diff, exclude, np.full((box, box), 5.0 * GT), GT, PSF, truth["x"] + 0.2, truth["y"],
                   truth["vx"], truth["vy"], t_ref, 2, trend_order)
    cells.set_noise(np.zeros(cells.data.size), np.ones(cells.data.size, bool), RN, GAIN)
    assert (~cells._full).sum() > 0.5 * cells.n_pix  # most pixels are reduced
    p = np.array([truth["x"] + 0.1, truth["y"] - 0.1, truth["vx"] * 1.02, truth["vy"], 280.0])

    def full_rows(values):
        dense = np.zeros((cells.n_k, cells.n_pix, values.shape[1]))
        dense[cells.k, cells.pix] = values
        w = whiten(dense, cells.diag, cells.off)
        return (w - np.einsum("kpi,pim->kpm", cells.u, cells._trend_coefficients(w))).reshape(-1, values.shape[1])

    model = cells.model(p, t_ref)
    d_full, m_full = full_rows(cells.data[:, None])[:, 0], full_rows(model[:, None])[:, 0]
    jac_near = cells.jacobian(p, t_ref)
    jac = np.zeros((cells.data.size, 5))
    jac[cells.near] = jac_near
    j_full, j_red = full_rows(jac), cells.whitened(jac_near)
    m_red = cells.whitened(model[cells.near])
    assert m_red.size < 0.5 * m_full.size
    assert np.sum((cells.data_w - m_red) ** 2) + cells.chi2_rest == pytest.approx(np.sum((d_full - m_full) ** 2),
                                                                                   rel=1e-9)
    assert m_red @ m_red == pytest.approx(m_full @ m_full, rel=1e-9)
    assert cells.data_w @ m_red == pytest.approx(d_full @ m_full, rel=1e-9)
    np.testing.assert_allclose(j_red.T @ j_red, j_full.T @ j_full, rtol=1e-9)
    np.testing.assert_allclose(j_red.T @ cells.data_w, j_full.T @ d_full, rtol=1e-8)


def test_fit_does_not_depend_on_a_poor_start():
    # A jump track's first guess can be off by half the speed; the fit boxes
    # are laid again along the fitted path, so it ends where a good start ends.
    cube = noisy(expected_cube(), seed=5)
    good = fit(cube, guess=rough_guess())
    half = Track(x=TRUTH["x"] + 0.5, y=TRUTH["y"], vx=0.5 * TRUTH["vx"], vy=0.5 * TRUTH["vy"], t_ref=T_REF,
                 t_first=T0[0], t_last=T1[-1], inliers=np.zeros(0, bool))
    poor = fit(cube, guess=half)
    assert poor.snr == pytest.approx(good.snr, rel=1e-3)
    assert poor.n_cells == good.n_cells
    for name in ("x", "y", "vx", "vy", "flux"):
        assert getattr(poor, name) == pytest.approx(getattr(good, name), rel=1e-4, abs=1e-4)


def test_fit_follows_a_short_jump_track_to_a_much_faster_path():
    """A fast bright mover's jump flags may form a track two groups long, its velocity off by
    more than half: that guess is known to a PSF width over its span, and a fit twice as
    fast is the object, not a runaway. The boxes are laid again along it, and the fit is a
    good start's (before, it stayed on the boxes the short track laid: SNR 220 of 385 here;
    on a bench trail the light it left became a second detection)."""
    truth = {"x": 30.0, "y": 24.0, "vx": 1.2 / GT, "vy": 0.5 / GT, "flux": 900.0}
    cube = noisy(expected_cube(truth, box=64), seed=8)
    good = fit(cube, background=np.full((64, 64), 5.0 * GT), guess=rough_guess(truth))
    t_g = T0[3]
    angle = np.arctan2(truth["vy"], truth["vx"]) + 0.4
    short = Track(x=truth["x"] + truth["vx"] * (t_g - T_REF), y=truth["y"] + truth["vy"] * (t_g - T_REF),
                  vx=0.45 * np.hypot(truth["vx"], truth["vy"]) * np.cos(angle),
                  vy=0.45 * np.hypot(truth["vx"], truth["vy"]) * np.sin(angle),
                  t_ref=t_g, t_first=T0[2], t_last=T1[4], inliers=np.zeros(0, bool))
    poor = fit(cube, background=np.full((64, 64), 5.0 * GT), guess=short)
    assert poor.snr == pytest.approx(good.snr, rel=1e-3)
    for name in ("vx", "vy", "flux"):
        assert getattr(poor, name) == pytest.approx(getattr(good, name), rel=1e-3)


def test_noisy_fit_recovers_mover_within_errors():
    result = fit(noisy(expected_cube(), seed=11))
    err = result.errors
    x, y = true_position(result.t_ref)
    assert abs(result.x - x) < 4 * err[0]
    assert abs(result.y - y) < 4 * err[1]
    assert abs(result.vx - TRUTH["vx"]) < 4 * err[2]
    assert abs(result.vy - TRUTH["vy"]) < 4 * err[3]
    assert abs(result.flux - TRUTH["flux"]) < 4 * err[4]
    assert 0.8 < result.chi2_dof < 1.2


def test_fit_snr_matches_matched_filter_snr_of_truth():
    # The fit's SNR uses the full covariance (read noise shared by adjacent
    # differences): the optimal SNR of the truth, above the diagonal yardstick.
    cube = expected_cube()
    signal = (cube - SKY[None]).reshape(cube.shape[0], -1)
    expected_snr, _ = matched_filter_snr_correlated(signal, SKY.reshape(1, -1), True, RN, GAIN)
    result = fit(noisy(cube, seed=5))
    # Each pixel's level is profiled out, which costs a little of the optimum.
    assert 0.8 * expected_snr < result.snr <= 1.05 * expected_snr
    assert result.snr > matched_filter_snr(cube - SKY[None], SKY[None], RN, GAIN)


@pytest.fixture(scope="module")
def pulls():
    """(value - truth) / error of x, y, vx, vy, flux over 50 noise draws.

    50 draws measure a pull width to +-0.10, so the 0.7-1.4 bounds sit 3 and
    4 standard errors from 1.
    """
    # A box the PSF's 49 px grid fits in: a smaller one cuts the wings and biases the flux.
    box, shift = 64, 16.0
    at = dict(TRUTH, x=TRUTH["x"] + shift, y=TRUTH["y"] + shift)
    cube = expected_cube(at, box=box)
    rows = []
    for seed in range(50):
        r = fit(noisy(cube, seed), background=np.full((box, box), 5.0 * GT), guess=rough_guess(at))
        x, y = true_position(r.t_ref, at)
        truth = np.array([x, y, TRUTH["vx"], TRUTH["vy"], TRUTH["flux"]])
        rows.append((np.array([r.x, r.y, r.vx, r.vy, r.flux]) - truth) / r.errors)
    return np.array(rows)


@pytest.mark.parametrize("name, column", [("x", 0), ("y", 1), ("vx", 2), ("vy", 3), ("flux", 4)])
def test_pull_widths_match_reported_errors(pulls, name, column):
    width = np.std(pulls[:, column], ddof=1)
    assert 0.7 < width < 1.4, f"{name} pull std {width:.2f}"


def test_pooled_pull_width_is_one(pulls):
    # All 250 pulls together measure the common width to +-0.045.
    assert np.sqrt(np.mean(pulls**2)) == pytest.approx(1.0, abs=0.15)


@pytest.mark.parametrize("name, column", [("x", 0), ("vx", 2), ("flux", 4)])
def test_pulls_are_unbiased(pulls, name, column):
    # The mean of 50 unit-width pulls has a standard error of 0.14.
    assert abs(np.mean(pulls[:, column])) < 0.5, f"{name} mean pull {np.mean(pulls[:, column]):.2f}"


def test_real_mover_is_temporally_consistent():
    for seed in range(3):
        assert fit(noisy(expected_cube(), seed)).consistency == pytest.approx(1.0, abs=0.2)


def test_flashes_lined_up_by_chance_have_low_consistency():
    # Three single-difference flashes along a straight line (cosmic-ray steps that
    # happen to line up), each bright enough to survive the fit's outlier clipping.
    psf = psf_for_filter("F1500W")
    grid = np.arange(BOX, dtype=float)
    spots = [(6, 10.0, 13.0), (15, 15.0, 16.0), (24, 20.0, 19.0)]
    vx, vy = 5.0 / 9.0 / GT, 3.0 / 9.0 / GT
    guess = Track(x=15.0, y=16.0, vx=vx, vy=vy, t_ref=15.5 * GT, t_first=T0[0], t_last=T1[-1],
                  inliers=np.zeros(0, bool))
    real = dict(x=15.0, y=16.0, vx=vx, vy=vy, flux=40.0)
    real_fit = fit(noisy(expected_cube(real, psf), 0), guess=guess, psf=psf)
    for seed in range(5):
        diff = noisy(expected_cube(dict(real, flux=0.0), psf), seed)
        for k, x, y in spots:
            diff[k] += 1200.0 * psf.pixel_fraction(grid[None, :] - x, grid[:, None] - y)
        fake = fit(diff, guess=guess, psf=psf)
        assert fake.snr > 7  # as significant as a real detection...
        assert fake.consistency < DetectionConfig().min_consistency  # ...but not steady
        assert fake.consistency < real_fit.consistency - 0.5


def test_excluded_cells_are_left_out_of_the_fit():
    cube = expected_cube()
    exclude = np.zeros(cube.shape, bool)
    exclude[10, 10:22, 10:22] = True
    cube_with_hit = cube.copy()
    cube_with_hit[10, 14:17, 14:17] += 5000.0  # a cosmic ray on the track, flagged
    result = fit_moving_psf(cube_with_hit, exclude, SKY, RN, GAIN, GT, PSF, rough_guess())
    assert result.flux == pytest.approx(TRUTH["flux"], rel=5e-3)


def test_fit_returns_none_without_usable_pixels():
    diff = np.full((NG - 1, BOX, BOX), np.nan)
    assert fit(diff) is None


# --- detection driver --------------------------------------------------------------

SUB64_GT = 0.08512
BRIGHT = Mover(x0=36.0, y0=30.0, vx=0.3 / SUB64_GT, vy=0.15 / SUB64_GT, flux=40000.0,
               t_ref=20 * SUB64_GT)


def flag_jumps(sci, groupdq, nsigma=5.0):
    """Set JUMP_DET where a difference exceeds its pixel's median by nsigma MADs."""
    for i in range(sci.shape[0]):
        d = np.diff(sci[i].astype(float), axis=0)
        d[((groupdq[i, 1:] | groupdq[i, :-1]) & G_DNU) != 0] = np.nan
        med = np.nanmedian(d, axis=0)
        mad = 1.4826 * np.nanmedian(np.abs(d - med), axis=0)
        groupdq[i, 1:][(d - med) > nsigma * mad] |= G_JUMP


@pytest.fixture(scope="module")
def bright_ramp():
    ramp, truth = simulate_ramp(subarray="SUB64", ngroups=41, filter="F770W", movers=[BRIGHT],
                                stars=0, cosmic_ray_rate=0.0, seed=3)
    groupdq = np.array(ramp.groupdq)
    flag_jumps(ramp.data, groupdq)
    return np.array(ramp.data), groupdq, np.array(ramp.pixeldq), truth


@pytest.fixture(scope="module")
def bright_detections(bright_ramp):
    sci, groupdq, pixeldq, _ = bright_ramp
    return find_movers(sci, groupdq, pixeldq, SUB64_GT, PSF, RN, GAIN, DetectionConfig(search=False))


def test_find_movers_recovers_bright_mover(bright_detections):
    table, _ = bright_detections
    assert len(table) == 1
    row = table[0]
    t = row["t_int"]
    assert row["x"] == pytest.approx(BRIGHT.x0 + BRIGHT.vx * (t - BRIGHT.t_ref), abs=0.05)
    assert row["y"] == pytest.approx(BRIGHT.y0 + BRIGHT.vy * (t - BRIGHT.t_ref), abs=0.05)
    assert row["vx"] == pytest.approx(BRIGHT.vx, rel=0.01)
    assert row["vy"] == pytest.approx(BRIGHT.vy, rel=0.01)
    assert row["flux"] == pytest.approx(BRIGHT.flux, rel=0.03)
    assert row["integration"] == 1
    assert row["method"] == "jump"


def test_find_movers_reports_evidence(bright_detections, bright_ramp):
    table, counts = bright_detections
    row = table[0]
    # The fit's SNR uses the full covariance with each pixel's level and drift
    # profiled out: below the known-background optimum; for this shot-noise
    # dominated source the profiling costs more than the covariance gains.
    truth = bright_ramp[3]
    assert 0.5 * truth["snr"][0] < row["snr"] <= 1.05 * truth["snr_optimal"][0]
    assert row["n_groups"] >= 20
    assert row["n_jumps"] >= 3 and row["n_pixels"] >= 10
    assert not row["trail_in_group"]  # 0.34 px per group, far less than the FWHM
    assert counts["n_mover_candidates"] >= 1
    # Every JUMP_DET group on a usable difference of a light-sensitive pixel counts.
    groupdq, pixeldq = bright_ramp[1][0], bright_ramp[2]
    usable_jumps = (
        ((groupdq[1:] & G_JUMP) != 0)
        & (((groupdq[1:] | groupdq[:-1]) & G_DNU) == 0)
        & ((pixeldq & P_REF) == 0)[None]
    )
    assert counts["n_jump_cells"] == int(np.sum(usable_jumps))


def test_find_movers_table_has_documented_columns(bright_detections):
    table, _ = bright_detections
    assert table.colnames == list(DETECTION_COLUMNS)
    for name, dtype in DETECTION_COLUMNS.items():
        assert table[name].dtype == np.dtype(dtype), name


@pytest.mark.parametrize("search", [False, True])
def test_ramp_without_flags_or_movers_gives_empty_table(search):
    ramp, _ = simulate_ramp(subarray="SUB64", ngroups=20, stars=0, cosmic_ray_rate=0.0, seed=1)
    table, counts = find_movers(np.array(ramp.data), np.array(ramp.groupdq), np.array(ramp.pixeldq),
                                SUB64_GT, PSF, RN, GAIN, DetectionConfig(search=search))
    assert len(table) == 0
    assert table.colnames == list(DETECTION_COLUMNS)
    for name, dtype in DETECTION_COLUMNS.items():
        assert table[name].dtype == np.dtype(dtype), name
    assert counts["n_jump_cells"] == 0
    assert counts["n_mover_candidates"] == counts["n_cosmic_rays"] == 0


def test_search_where_shifts_exceed_the_array_width_finds_the_mover():
    """Velocities whose track offsets pass the array's width (deep search, narrow
    array, long ramp) are skipped per bin, not written out of bounds."""
    truth = dict(x=20.0, y=20.3, vx=0.8 / GT, vy=0.1 / GT, flux=2000.0)
    n_groups = 60  # 3 px/group x 30 groups from mid-ramp: 90 px, the array is 40 px wide
    cube = expected_cube(truth, n_groups=n_groups, box=40)
    diff = noisy(cube, seed=4).astype(np.float32)
    candidates, _ = matched_filter_search(diff, np.zeros(diff.shape, bool), np.full((40, 40), 5.0 * GT),
                                          RN, GAIN, PSF, v_max=3.0, snr_threshold=6.0)
    best = max(candidates, key=lambda c: c.snr)
    # A coarse grid point: the moving-PSF fit refines it.
    assert abs(best.x - truth["x"]) < 2.0 and abs(best.y - truth["y"]) < 2.0
    assert abs(best.vx - 0.8) < 0.15 and abs(best.vy - 0.1) < 0.15


def test_find_movers_measures_a_bright_mover_faster_than_the_search_from_its_flags():
    """At 3.3 px/group a F560W mover's JUMP_DET cells form a separate compact event
    at each group, like a cosmic ray's, and are set aside; linked into one mover
    candidate, the flags alone find it, beyond the searches' 3 px/group."""
    psf = psf_for_filter("F560W")
    n_groups, box, v = 40, 160, (3.1 / GT, 1.2 / GT)
    t0, t1 = difference_intervals(n_groups, GT)
    grid = np.arange(box, dtype=float)
    # As faint as the flags still find it with the computed PSF (the two Gaussians' core holds
    # more of the light: 90 DN/s was enough for them).
    charge = 5.0 * GT + mover_differences(80.0, 70.0, *v, 110.0, 0.5 * t1[-1], t0, t1, psf, grid, grid)
    rng = np.random.default_rng(8)
    diff = rng.poisson(charge * GAIN) / GAIN + np.diff(rng.normal(0.0, RN / np.sqrt(2.0), (n_groups, box, box)),
                                                        axis=0)
    sci = np.cumsum(np.concatenate([np.zeros((1, box, box)), diff]), axis=0)[None].astype(np.float32)
    groupdq = np.zeros(sci.shape, np.uint8)
    flag_jumps(sci, groupdq)
    pixeldq = np.zeros((box, box), np.uint32)
    config = DetectionConfig(search=False)
    cells = jump_cells(IntegrationDifferences(sci[0], groupdq[0], pixeldq).jump)
    events = classify_events(cells, cluster_cells(cells, config.link_px, config.link_groups))
    assert events.counts()["mover_candidate"] == 0 and events.counts()["cosmic_ray"] >= 4
    table, counts = find_movers(sci, groupdq, pixeldq, GT, psf, RN, GAIN, config)
    assert counts["n_mover_candidates"] >= 1
    assert len(table) == 1 and table["method"][0] == "jump"
    row = table[0]
    assert abs(row["vx"] - v[0]) < 0.02 * v[0] and abs(row["vy"] - v[1]) < 0.05 * v[1]
    t = row["t_int"] - 0.5 * t1[-1]
    assert abs(row["x"] - (80.0 + v[0] * t)) < 0.2 and abs(row["y"] - (70.0 + v[1] * t)) < 0.2
    assert row["flux"] == pytest.approx(110.0, rel=0.05)
    assert row["trail_in_group"]


def detection_table(rows):
    """A detection table as find_movers returns it, from (integration, snr, t_int) rows."""
    n = len(rows)
    cols = {}
    for name, dtype in DETECTION_COLUMNS.items():
        cols[name] = np.zeros(n, dtype=dtype)
    cols["integration"][:] = [r[0] for r in rows]
    cols["snr"][:] = [r[1] for r in rows]
    cols["t_int"][:] = [r[2] for r in rows]
    cols["method"][:] = "jump"
    return Table(cols)


def test_catalog_ids_run_from_one_by_integration_then_snr():
    table = detection_table([(2, 10.0, 5.0), (1, 8.0, 6.0), (1, 30.0, 7.0), (2, 50.0, 8.0)])
    cat = detections_to_catalog(table, 60000.5, 100.0)
    np.testing.assert_array_equal(cat["id"], [1, 2, 3, 4])
    np.testing.assert_array_equal(cat["integration"], [1, 1, 2, 2])
    np.testing.assert_array_equal(cat["snr"], [30.0, 8.0, 50.0, 10.0])


def test_catalog_mjd_from_exposure_start():
    table = detection_table([(1, 10.0, 43.2), (3, 9.0, 86.4)])
    cat = detections_to_catalog(table, 60000.5, 100.0)
    np.testing.assert_allclose(cat["mjd"], [60000.5 + 43.2 / 86400, 60000.5 + (200 + 86.4) / 86400],
                               rtol=0, atol=1e-10)


def test_catalog_mjd_from_int_times():
    int_times = np.array([(1, 60001.0), (2, 60002.0)],
                         dtype=[("integration_number", "i4"), ("int_start_MJD_UTC", "f8")])
    table = detection_table([(2, 10.0, 864.0)])
    cat = detections_to_catalog(table, 60000.5, 100.0, int_times)
    assert cat["mjd"][0] == pytest.approx(60002.01, abs=1e-10)


def test_catalog_mjd_is_nan_without_start_time():
    cat = detections_to_catalog(detection_table([(1, 10.0, 4.0)]), None, 100.0)
    assert np.isnan(cat["mjd"][0])


def test_catalog_of_no_detections_is_empty():
    cat = detections_to_catalog(detection_table([]), 60000.5, 100.0)
    assert len(cat) == 0 and "id" in cat.dtype.names and "mjd" in cat.dtype.names


def test_catalog_of_found_mover(bright_detections):
    table, _ = bright_detections
    cat = detections_to_catalog(table, 60000.5, 10.0)
    assert list(cat["id"]) == [1]
    assert cat["x"][0] == table["x"][0] and cat["flux"][0] == table["flux"][0]
    assert cat["mjd"][0] == pytest.approx(60000.5 + table["t_int"][0] / 86400, abs=1e-10)
    assert np.isnan(cat["ra"][0])


# --- configuration -----------------------------------------------------------------


def test_default_config_is_valid():
    cfg = DetectionConfig()
    assert cfg.min_groups >= 3 and cfg.snr_threshold > 0


@pytest.mark.parametrize(
    "name, value",
    [
        ("snr_threshold", 0.0),
        ("snr_threshold", -1.0),
        ("link_px", 0.0),
        ("min_motion_sigma", -2.0),
        ("max_chi2_dof", 0.0),
        ("link_groups", 0),
        ("shower_min_pixels", 0),
        ("max_candidates", 0),
    ],
)
def test_invalid_parameter_raises_naming_it(name, value):
    with pytest.raises(ValueError, match=name):
        DetectionConfig(**{name: value})


def test_min_groups_below_three_raises():
    with pytest.raises(ValueError, match="min_groups"):
        DetectionConfig(min_groups=2)


def test_nan_threshold_raises():
    with pytest.raises(ValueError, match="snr_threshold"):
        DetectionConfig(snr_threshold=float("nan"))


def test_from_mapping_ignores_unknown_keys():
    cfg = DetectionConfig.from_mapping({"snr_threshold": 9.0, "save_results": True, "skip": False})
    assert cfg.snr_threshold == 9.0
    assert cfg.min_groups == DetectionConfig().min_groups


def test_from_mapping_validates():
    with pytest.raises(ValueError, match="link_px"):
        DetectionConfig.from_mapping({"link_px": -1.0})


def test_to_dict_round_trips():
    cfg = DetectionConfig(snr_threshold=8.5, link_groups=3)
    d = cfg.to_dict()
    assert d["snr_threshold"] == 8.5 and d["link_groups"] == 3
    assert DetectionConfig.from_mapping(d) == cfg


def test_sub_psf_fit_errors_match_scatter():
    # A mover crossing a tenth of its PSF: the profiled differences fix only
    # flux x speed, the mean image's photometry the flux (flux_from_mean_image).
    # Over 40 draws the flux and speed pulls must have unit width (+-0.11): an
    # error term beyond the photometry's noise once made the flux's 0.2.
    n_groups, box = 61, 40
    t0, t1 = difference_intervals(n_groups, GT)
    truth = dict(x=20.3, y=19.6, vx=0.01 / GT, vy=0.006 / GT, flux=150.0)
    cube = expected_cube(truth, n_groups=n_groups, box=box)
    guess = Track(x=20.4, y=19.5, vx=truth["vx"] * 1.3, vy=truth["vy"] * 0.8, t_ref=0.5 * t1[-1],
                  t_first=t0[0], t_last=t1[-1], inliers=np.zeros(0, bool))
    pulls = []
    for seed in range(40):
        diff = noisy(cube, seed)
        r = fit_moving_psf(diff, np.zeros(diff.shape, bool), diff.mean(axis=0), RN, GAIN, GT, PSF, guess,
                           flux_from_mean_image=True)
        pulls.append(((r.flux - truth["flux"]) / r.errors[4], (r.vx - truth["vx"]) / r.errors[2]))
    width = np.std(pulls, axis=0, ddof=1)
    assert 0.65 < width[0] < 1.4, f"flux pull std {width[0]:.2f}"
    assert 0.65 < width[1] < 1.4, f"vx pull std {width[1]:.2f}"


def test_mean_image_photometry_error_counts_the_border_sky():
    # The flux the mean image gives a sub-PSF fit is measured over the box's border
    # median for sky; at F2100W (FWHM 6 px, sky 130 DN/s) that median's own noise moves
    # it by about as much as the pixels under the PSF do. Over 400 draws of a static
    # source the pulls have unit width (+-0.04): without the sky's term, 1.27.
    psf = PSFModel(6.1)
    n_diff, box, flux = 39, 64, 2000.0
    yy, xx = np.mgrid[:box, :box].astype(float)
    expected = flux * psf.pixel_fraction(xx - 32.3, yy - 31.6) + 130.0 * GT
    variance = (RN**2 / n_diff + expected / GAIN) / n_diff  # of a mean of n_diff differences
    rng = np.random.default_rng(5)
    pulls = []
    for _ in range(400):
        image = expected + rng.normal(0.0, np.sqrt(variance))
        phot = _StaticImage(image, 32.3, 31.6, psf, variance)
        pulls.append((phot.flux - flux) / phot.flux_err)
    assert 0.9 < np.std(pulls, ddof=1) < 1.1 and abs(np.mean(pulls)) < 0.15


def test_a_fit_is_on_a_candidates_path_only_near_where_it_puts_the_source_then():
    # A search fit that ran off past its candidate's speed cap keeps its light in
    # the ramp only for a later candidate on its path (detect._on_path), found at
    # another time of the ramp than the fit's reference.
    from types import SimpleNamespace

    from jwst_asteroid_step.detect import _on_path

    fit = SimpleNamespace(x=100.0, y=50.0, vx=-3.0, vy=0.5, t_ref=30.0)  # px/s, s
    assert _on_path(fit, 100.0, 50.0, 30.0, tolerance_px=3.0)
    assert _on_path(fit, 70.0 + 2.0, 55.0, 40.0, tolerance_px=3.0)
    assert not _on_path(fit, 100.0, 50.0, 40.0, tolerance_px=3.0)  # the source has moved on by then


def test_a_mover_crossing_a_star_keeps_its_speed_though_the_mean_image_holds_the_star():
    # A sub-PSF candidate's flux comes from the mean image's photometry at the track's
    # middle; where the track crosses a star that photometry is the star's, 40 times the
    # mover's, and flux x speed turned it into a speed of a tenth (its core saturated, the
    # differences there say nothing). The differences alone still tell a 3 px crossing from
    # a static source: the photometry is dropped, the speed kept.
    from jwst_asteroid_step.measure import moving_psf

    n_groups, box = 50, 64  # the photometry's box is 53 px wide at F770W
    t0, t1 = difference_intervals(n_groups, GT)
    truth = {"x": 32.3, "y": 31.6, "vx": 0.075 / GT, "vy": -0.02 / GT, "flux": 200.0}
    star = 8000.0 * GT * PSF.pixel_fraction(np.arange(box)[None, :] - 32.0, np.arange(box)[:, None] - 31.8)
    cube = expected_cube(truth, n_groups=n_groups, box=box) + star[None]
    speed = np.hypot(truth["vx"], truth["vy"])
    guess = Track(x=32.2, y=31.7, vx=0.01 * truth["vx"], vy=0.01 * truth["vy"], t_ref=0.5 * t1[-1],
                  t_first=t0[0], t_last=t1[-1], inliers=np.zeros(0, bool))
    diff = noisy(cube, 7)
    saturated = np.cumsum(cube, axis=0) > 40000.0  # the star's core fills its pixels
    diff[saturated] = np.nan
    args = (diff, saturated, np.nanmean(diff, axis=0), RN, GAIN, GT, PSF, guess)
    fit = fit_moving_psf(*args, flux_from_mean_image=True)
    assert abs(np.hypot(fit.vx, fit.vy) / speed - 1) < 0.1 and abs(fit.flux / truth["flux"] - 1) < 0.15
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(moving_psf, "PRIOR_CONFLICT_CHI2", np.inf)
        held = fit_moving_psf(*args, flux_from_mean_image=True)
    assert np.hypot(held.vx, held.vy) / speed < 0.5 and held.flux > 3 * truth["flux"]


def _measured_in_turn(diff, sources, config=None):
    """Fit ``sources`` (tracks, or MovingFits taken as given) in turn, each subtracted before
    the next, as find_movers does; return the fits, their records and a refitting function."""
    from jwst_asteroid_step.detect import _accepted, _remove_track, _Subtracted

    config = config or DetectionConfig()
    exclude = np.zeros(diff.shape, bool)
    sky = np.full(diff.shape[1:], 5.0 * GT)
    sigma = np.sqrt(RN**2 + sky / GAIN)

    def fit_and_vet(track, **options):
        result = fit_moving_psf(diff, exclude, sky, RN, GAIN, GT, PSF, track, **options)
        return result if result is not None and _accepted(result, config, diff.shape[1:]) else None

    fits, records = [], []
    for source in sources:
        result = fit_and_vet(source) if isinstance(source, Track) else source
        fits.append((result, "search"))
        records.append(_Subtracted({}, *_remove_track(diff, exclude, result, PSF, GT, sigma)))
    return fits, records, exclude, fit_and_vet, sigma


def _within_errors(result, truth, n_sigma=4.0):
    err = result.errors
    x, y = true_position(result.t_ref, truth)
    offsets = np.array([result.x - x, result.y - y, result.vx - truth["vx"], result.vy - truth["vy"],
                        result.flux - truth["flux"]])
    return bool(np.all(np.abs(offsets) < n_sigma * err)), offsets / err


def test_a_fit_that_took_a_brighter_movers_light_is_dropped_when_measured_again():
    # The psf_families ghost: a bright mover's jump flags were fitted first to a nearly static
    # path 1.2 FWHM beside its own, at its flux, and subtracted; the search then measured the
    # mover right from what was left. Measured again with the mover's light out, the first
    # fit has nothing to explain and goes; the mover, measured again with the false fit's
    # light back, is as a lone fit would measure it.
    from jwst_asteroid_step.detect import remeasure_beside_others
    from jwst_asteroid_step.measure.moving_psf import MovingFit

    truth = dict(x=24.3, y=23.6, vx=0.12 / GT, vy=-0.08 / GT, flux=2000.0)
    diff = noisy(expected_cube(truth, box=48), 11)
    offset = 1.2 * PSF.fwhm
    false = MovingFit(x=truth["x"] + offset * 0.55, y=truth["y"] + offset * 0.83, vx=-0.01 / GT, vy=0.005 / GT,
                      flux=truth["flux"], t_ref=T_REF, cov=np.diag([0.01, 0.01, 1e-4, 1e-4, 100.0]), chi2_dof=1.5,
                      snr=29.5, consistency=0.8, n_groups=NG - 1, n_cells=500, success=True)
    guess = rough_guess(truth)
    fits, records, exclude, fit_and_vet, sigma = _measured_in_turn(diff, [false, guess])
    kept, n_dropped = remeasure_beside_others(fits, records, np.zeros(0, np.intp), diff, exclude, fit_and_vet,
                                              PSF, GT, sigma)
    assert n_dropped == 1 and len(kept) == 1
    ok, pulls = _within_errors(kept[0][0], truth)
    assert ok, pulls


def test_two_movers_side_by_side_are_both_kept_and_measured_again():
    from jwst_asteroid_step.detect import remeasure_beside_others

    # Under three FWHMs apart: each is first measured with the other's wing in its box.
    a = dict(x=20.3, y=21.6, vx=0.15 / GT, vy=0.02 / GT, flux=600.0)
    b = dict(x=21.1, y=21.6 + 2.8 * PSF.fwhm, vx=0.12 / GT, vy=-0.03 / GT, flux=250.0)
    diff = noisy(expected_cube(a, box=48) + expected_cube(b, box=48) - 5.0 * GT, 12)
    fits, records, exclude, fit_and_vet, sigma = _measured_in_turn(diff, [rough_guess(a), rough_guess(b)])
    kept, n_dropped = remeasure_beside_others(fits, records, np.zeros(0, np.intp), diff, exclude, fit_and_vet,
                                              PSF, GT, sigma)
    assert n_dropped == 0 and len(kept) == 2
    for (result, _), truth in zip(kept, (a, b), strict=True):
        ok, pulls = _within_errors(result, truth)
        assert ok, pulls
