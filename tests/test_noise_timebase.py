"""Tests of the noise model, the time base and the mover model.

Modules: jwst_asteroid_step.ramp.noise, jwst_asteroid_step.timebase,
jwst_asteroid_step.mover_model.
"""

import numpy as np
import pytest

from jwst_asteroid_step.mover_model import MAX_SUB_STEP_PX, mover_differences, n_sub_samples
from jwst_asteroid_step.psf import psf_for_filter
from jwst_asteroid_step.ramp.noise import difference_variance, matched_filter_snr
from jwst_asteroid_step.timebase import (
    difference_intervals,
    integration_start_mjd,
    t_int_to_mjd,
)

INT_TIMES_DTYPE = [("integration_number", "i4"), ("int_start_MJD_UTC", "f8")]


# --- noise -------------------------------------------------------------------------


def test_difference_variance_is_read_noise_plus_poisson():
    # 7 DN CDS read noise, 100 DN collected at 4 e/DN: 49 + 25.
    assert difference_variance(100.0, 7.0, 4.0) == pytest.approx(74.0)


def test_difference_variance_of_no_charge_is_read_noise_squared():
    assert difference_variance(0.0, 6.5, 4.0) == pytest.approx(6.5**2)


def test_difference_variance_ignores_negative_expected_charge():
    assert difference_variance(-30.0, 7.0, 4.0) == pytest.approx(49.0)


def test_difference_variance_broadcasts():
    expected = np.array([[0.0, 8.0], [40.0, -1.0]])
    gain = np.array([2.0, 4.0])
    var = difference_variance(expected, 3.0, gain)
    np.testing.assert_allclose(var, [[9.0, 11.0], [29.0, 9.0]])


def test_matched_filter_snr_matches_hand_computation():
    signal = np.array([10.0, 20.0, 0.0, 5.0])
    background = 4.0
    # var = rn**2 + (s + b) / gain with rn = 2, gain = 2
    var = 4.0 + (signal + background) / 2.0
    expected = np.sqrt(np.sum(signal**2 / var))
    assert matched_filter_snr(signal, background, 2.0, 2.0) == pytest.approx(expected)
    # the numbers, spelled out: 100/11 + 400/16 + 0 + 25/8.5
    assert expected == pytest.approx(np.sqrt(100 / 11 + 400 / 16 + 25 / 8.5))


def test_matched_filter_snr_adds_in_quadrature_over_cells():
    one = matched_filter_snr([50.0], 10.0, 7.0, 4.0)
    assert matched_filter_snr([50.0] * 9, 10.0, 7.0, 4.0) == pytest.approx(3 * one)


def test_matched_filter_snr_of_no_signal_is_zero():
    assert matched_filter_snr(np.zeros((3, 4, 4)), 5.0, 7.0, 4.0) == 0.0


# --- time base ---------------------------------------------------------------------


def test_difference_intervals_span_successive_reads():
    t0, t1 = difference_intervals(4, 2.5)
    np.testing.assert_allclose(t0, [0.0, 2.5, 5.0])
    np.testing.assert_allclose(t1, [2.5, 5.0, 7.5])


def test_difference_intervals_count_is_groups_minus_one():
    t0, t1 = difference_intervals(50, 2.77504)
    assert t0.shape == t1.shape == (49,)
    np.testing.assert_allclose(t1 - t0, 2.77504)
    assert t1[-1] == pytest.approx(49 * 2.77504)


def test_integration_start_from_exposure_start_and_period():
    mjd = integration_start_mjd(3, 60000.5, 864.0)
    assert mjd == pytest.approx(60000.5 + 2 * 864.0 / 86400.0, abs=1e-12)


def test_first_integration_starts_at_exposure_start():
    assert integration_start_mjd(1, 60000.25, 500.0) == 60000.25


def test_integration_start_prefers_int_times_row():
    int_times = np.array([(1, 60001.0), (2, 60001.01), (3, 60001.02)], dtype=INT_TIMES_DTYPE)
    assert integration_start_mjd(2, 60000.5, 864.0, int_times) == 60001.01


def test_integration_start_finds_row_by_integration_number_not_position():
    int_times = np.array([(3, 60001.02), (1, 60001.0), (2, 60001.01)], dtype=INT_TIMES_DTYPE)
    assert integration_start_mjd(3, 60000.5, 864.0, int_times) == 60001.02


def test_integration_start_falls_back_without_int_times_row():
    int_times = np.array([(1, 60001.0)], dtype=INT_TIMES_DTYPE)
    mjd = integration_start_mjd(2, 60000.5, 864.0, int_times)
    assert mjd == pytest.approx(60000.5 + 864.0 / 86400.0, abs=1e-12)


@pytest.mark.parametrize("bad", [0.0, np.nan])
def test_integration_start_ignores_unset_int_times_value(bad):
    int_times = np.array([(1, bad)], dtype=INT_TIMES_DTYPE)
    assert integration_start_mjd(1, 60000.5, 864.0, int_times) == 60000.5


def test_integration_start_ignores_empty_or_foreign_int_times():
    empty = np.zeros(0, dtype=INT_TIMES_DTYPE)
    foreign = np.array([(1, 59000.0)], dtype=[("n", "i4"), ("start", "f8")])
    assert integration_start_mjd(1, 60000.5, 864.0, empty) == 60000.5
    assert integration_start_mjd(1, 60000.5, 864.0, foreign) == 60000.5


def test_int_times_suffices_without_exposure_start():
    int_times = np.array([(1, 60001.0)], dtype=INT_TIMES_DTYPE)
    assert integration_start_mjd(1, None, 864.0, int_times) == 60001.0


@pytest.mark.parametrize("start", [None, np.nan])
def test_integration_start_is_nan_without_any_start_time(start):
    assert np.isnan(integration_start_mjd(2, start, 864.0))


def test_t_int_to_mjd_converts_seconds_to_days():
    mjd = t_int_to_mjd(np.array([0.0, 43200.0, 86400.0]), 60000.0)
    np.testing.assert_allclose(mjd, [60000.0, 60000.5, 60001.0], rtol=0, atol=1e-12)


# --- mover model -------------------------------------------------------------------

GROUP_TIME = 2.77504
PSF = psf_for_filter("F770W", model="gaussian")  # holds all its light: charge is flux x time exactly


def render_track(vx, vy, n_groups=21, size=81, x_ref=40.0, y_ref=40.0, flux=1000.0, n_sub=None):
    """Expected differences of a mover centred in a large box at mid-integration."""
    t0, t1 = difference_intervals(n_groups, GROUP_TIME)
    t_ref = 0.5 * t1[-1]
    grid = np.arange(size, dtype=float)
    img = mover_differences(x_ref, y_ref, vx, vy, flux, t_ref, t0, t1, PSF, grid, grid, n_sub=n_sub)
    return img, t0, t1, t_ref


def test_total_charge_is_flux_times_time():
    flux = 1234.0
    # 0.4 px/group over 20 differences: an 8 px track, > 25 px from every box edge.
    img, t0, t1, _ = render_track(0.4 / GROUP_TIME, -0.25 / GROUP_TIME, flux=flux)
    assert img.sum() == pytest.approx(flux * (t1[-1] - t0[0]), rel=1e-6)


def test_charge_per_difference_is_flux_times_interval():
    img, t0, t1, _ = render_track(0.4 / GROUP_TIME, 0.3 / GROUP_TIME, flux=500.0)
    np.testing.assert_allclose(img.sum(axis=(1, 2)), 500.0 * (t1 - t0), rtol=1e-6)


@pytest.mark.parametrize("speed_px_per_group", [0.0, 0.1, 0.7, 2.5])
def test_centroid_of_each_difference_is_path_midpoint(speed_px_per_group):
    vx = 0.8 * speed_px_per_group / GROUP_TIME
    vy = -0.6 * speed_px_per_group / GROUP_TIME
    img, t0, t1, t_ref = render_track(vx, vy, n_groups=9, x_ref=40.3, y_ref=39.8)
    grid = np.arange(img.shape[2], dtype=float)
    total = img.sum(axis=(1, 2))
    cx = np.einsum("kyx,x->k", img, grid) / total
    cy = np.einsum("kyx,y->k", img, grid) / total
    t_mid = 0.5 * (t0 + t1)
    np.testing.assert_allclose(cx, 40.3 + vx * (t_mid - t_ref), atol=0.01)
    np.testing.assert_allclose(cy, 39.8 + vy * (t_mid - t_ref), atol=0.01)


def test_static_source_is_the_psf_times_charge():
    img, t0, t1, _ = render_track(0.0, 0.0, n_groups=3, flux=100.0, x_ref=40.2, y_ref=39.6)
    grid = np.arange(81.0)
    psf_img = PSF.pixel_fraction(grid[None, :] - 40.2, grid[:, None] - 39.6)
    for k in range(2):
        np.testing.assert_allclose(img[k], 100.0 * (t1[k] - t0[k]) * psf_img, rtol=1e-10, atol=1e-14)


def test_default_sub_sampling_renders_a_smooth_trail():
    # 3 px per group: far longer than the PSF core.  The default sampling must agree
    # with a very fine one; a single sample (a point, not a trail) must not.
    vx = 3.0 / GROUP_TIME
    default, *_ = render_track(vx, 0.0, n_groups=4)
    fine, *_ = render_track(vx, 0.0, n_groups=4, n_sub=600)
    point, *_ = render_track(vx, 0.0, n_groups=4, n_sub=1)
    peak = fine.max()
    assert np.max(np.abs(default - fine)) < 2e-3 * peak
    assert np.max(np.abs(point - fine)) > 0.1 * peak


def test_n_sub_samples_is_one_for_a_static_source():
    assert n_sub_samples(0.0, 2.775) == 1


def test_n_sub_samples_keeps_sub_steps_below_limit():
    for speed in [0.01, 0.1, 0.5, 2.0, 7.3]:
        n = n_sub_samples(speed, 2.775)
        assert speed * 2.775 / n <= MAX_SUB_STEP_PX


def test_n_sub_samples_grows_with_speed():
    speeds = np.linspace(0, 20, 60)
    n = [n_sub_samples(s, 2.775) for s in speeds]
    assert np.all(np.diff(n) >= 0)
    assert n[-1] > n[1] > n[0]


def test_n_sub_samples_ignores_direction_sign():
    assert n_sub_samples(-1.3, 2.775) == n_sub_samples(1.3, 2.775)


def test_n_sub_samples_is_capped():
    assert n_sub_samples(1e6, 2.775, max_samples=64) == 64
