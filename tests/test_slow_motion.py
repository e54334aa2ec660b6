"""Tests of the search for movers that cross less than their PSF within one integration.

Modules: jwst_asteroid_step.search.slow_motion and the mean-image flux of
jwst_asteroid_step.measure.moving_psf.
"""

import numpy as np
import pytest

from jwst_asteroid_step.config import DetectionConfig
from jwst_asteroid_step.detect import find_movers
from jwst_asteroid_step.measure.moving_psf import static_photometry
from jwst_asteroid_step.psf import psf_for_filter
from jwst_asteroid_step.search import slow_motion
from jwst_asteroid_step.search.slow_motion import slow_motion_candidates, slow_motion_statistic
from jwst_asteroid_step.simulate import Mover, simulate_ramp

# The statistic's template is the core Gaussian whatever the model; its unit tests render with the
# two Gaussians, whose light fits the small images here (the computed PSF's grid is 49 px).
PSF = psf_for_filter("F770W", model="gaussian")
SIGMA = PSF.components[0][1]
GT = 2.77504  # full-frame group time (s)


def _gradient_image(shape, x0, y0, ax, ay, info):
    """Expected z_t of a slow source: -(a . grad P)(pixel - p0) times each pixel's information."""
    gy, gx = np.mgrid[: shape[0], : shape[1]].astype(float)
    dx, dy = gx - x0, gy - y0
    px, py = PSF._profile_1d(dx, SIGMA), PSF._profile_1d(dy, SIGMA)
    dpx, dpy = PSF._profile_1d_derivative(dx, SIGMA), PSF._profile_1d_derivative(dy, SIGMA)
    return -(ax * dpx * py + ay * px * dpy) * info


def test_statistic_recovers_the_amplitude_and_its_sense():
    info = np.full((41, 41), 3.0)
    for ax, ay in [(5.0, 0.0), (-2.0, 3.0), (0.0, -4.0)]:
        z_t = _gradient_image(info.shape, 20, 20, ax, ay, info)
        snr, amplitude = slow_motion_statistic(z_t, info, PSF)
        assert amplitude(20, 20) == pytest.approx([ax, ay], abs=1e-4)
        # Its SNR is the template's: sqrt(a' F a).
        assert snr[20, 20] == pytest.approx(np.sqrt(np.sum(z_t**2 / info)), rel=1e-4)
        assert np.unravel_index(np.argmax(snr), snr.shape) == (20, 20)


def test_statistic_is_chi2_with_two_degrees_of_freedom_on_noise():
    rng = np.random.default_rng(5)
    info = rng.uniform(1.0, 4.0, (300, 300))
    z_t = rng.normal(0.0, np.sqrt(info))
    snr, _ = slow_motion_statistic(z_t, info, PSF)
    inner = snr[10:-10, 10:-10] ** 2
    assert np.mean(inner) == pytest.approx(2.0, rel=0.03)
    # Divided by the measured noise excess.
    assert np.mean(slow_motion_statistic(z_t, info, PSF, noise_scale=2.0)[0][10:-10, 10:-10] ** 2) == (
        pytest.approx(0.5, rel=0.03))


def test_statistic_is_zero_without_information():
    snr, _ = slow_motion_statistic(np.ones((20, 20)), np.zeros((20, 20)), PSF)
    assert not snr.any()


def _star(shape, x0, y0, flux, sky=2.0):
    gy, gx = np.mgrid[: shape[0], : shape[1]].astype(float)
    return sky + flux * PSF.pixel_fraction(gx - x0, gy - y0)


def test_candidates_get_their_speed_from_the_mean_image():
    info = np.full((41, 41), 100.0)  # ~ sum of t**2 / variance over 40 differences
    flux, v = 200.0, np.array([0.02, -0.01])  # charge per difference, px per group
    z_t = _gradient_image(info.shape, 20, 21, *(flux * v), info)
    x, y, vx, vy, snr = slow_motion_candidates(z_t, info, _star(info.shape, 20, 21, flux), PSF, n_diff=40,
                                               snr_threshold=6.0, max_motion_px=5.0)
    assert x.tolist() == [20.0] and y.tolist() == [21.0]
    assert vx[0] == pytest.approx(v[0], rel=0.02) and vy[0] == pytest.approx(v[1], rel=0.02)
    # Faster than the sub-PSF regime: the velocity grid's.
    assert slow_motion_candidates(z_t, info, _star(info.shape, 20, 21, flux), PSF, n_diff=40,
                                  snr_threshold=6.0, max_motion_px=0.5)[0].size == 0


def test_a_star_that_brightens_in_place_is_not_a_candidate():
    """Its linear change peaks off its centre, radially: the mean image's light is not centred there."""
    info = np.full((41, 41), 3.0)
    gy, gx = np.mgrid[:41, :41].astype(float)
    z_t = 100.0 * PSF.pixel_fraction(gx - 20, gy - 20) * info
    snr, _ = slow_motion_statistic(z_t, info, PSF)
    assert snr.max() > 20.0
    assert slow_motion_candidates(z_t, info, _star(info.shape, 20, 20, 2000.0), PSF, n_diff=40,
                                  snr_threshold=6.0, max_motion_px=5.0)[0].size == 0


@pytest.mark.parametrize("psf", [PSF, psf_for_filter("F770W", model="instrument")], ids=["gaussian", "instrument"])
def test_static_photometry_measures_flux_and_centre(psf):
    gy, gx = np.mgrid[:80, :80].astype(float)
    image = 3.0 + 200.0 * psf.pixel_fraction(gx - 40.3, gy - 39.6)
    flux, offset = static_photometry(image, 40.3, 39.6, psf)
    assert flux == pytest.approx(200.0, rel=0.01)
    assert offset < 0.05
    # Off its centre by 1 px the light's centroid says so.
    assert static_photometry(image, 41.3, 39.6, psf)[1] > 0.8
    assert np.isnan(static_photometry(image, 1.0, 1.0, psf)[0])


@pytest.fixture(scope="module")
def slow_ramp():
    """A mover crossing 0.8 px in 25 full-frame groups (F770W FWHM 2.4 px): a shifting star.

    Before the sub-PSF search this one went undetected: the grid saw it as static.
    """
    mover = Mover(40.0, 45.0, 0.018 / GT, -0.026 / GT, 150.0, t_ref=12 * GT)  # SNR of the motion ~17
    ramp, truth = simulate_ramp(subarray="SUB128", ngroups=25, group_time=GT, filter="F770W", movers=[mover],
                                stars=0, cosmic_ray_rate=0.0, seed=11, psf=PSF)
    return np.array(ramp.data), np.array(ramp.groupdq), np.array(ramp.pixeldq), truth


def test_find_movers_measures_a_mover_that_crosses_less_than_its_psf(slow_ramp):
    sci, groupdq, pixeldq, truth = slow_ramp
    table, counts = find_movers(sci, groupdq, pixeldq, GT, PSF, 7.0, 4.0, DetectionConfig())
    assert counts["n_slow_motion_candidates"] >= 1
    assert len(table) == 1
    row, t = table[0], truth[0]
    assert row["method"] == "search"
    dt = row["t_int"] - t["t_ref"]
    assert row["x"] == pytest.approx(t["x"] + t["vx"] * dt, abs=0.2)
    assert row["y"] == pytest.approx(t["y"] + t["vy"] * dt, abs=0.2)
    # The mean image fixes the flux, so the speed is measured, with its sense.
    assert row["flux"] == pytest.approx(t["flux"], rel=0.1)
    assert np.hypot(row["vx"], row["vy"]) == pytest.approx(np.hypot(t["vx"], t["vy"]), rel=0.3)
    assert row["vx"] * t["vx"] + row["vy"] * t["vy"] > 0
    assert np.hypot(row["vx"], row["vy"]) > 2.0 * np.hypot(row["vx_err"], row["vy_err"])


def test_mean_image_flux_breaks_the_fits_flux_speed_degeneracy(slow_ramp):
    from jwst_asteroid_step.measure.moving_psf import fit_moving_psf
    from jwst_asteroid_step.ramp.differences import IntegrationDifferences, pixel_mean_rate
    from jwst_asteroid_step.search.tracks import Track

    sci, groupdq, pixeldq, truth = slow_ramp
    diffs = IntegrationDifferences(sci[0], groupdq[0], pixeldq)
    mean_image = np.nan_to_num(pixel_mean_rate(diffs.diff, diffs.jump))
    t = truth[0]
    guess = Track(x=t["x"], y=t["y"], vx=t["vx"], vy=t["vy"], t_ref=t["t_ref"], t_first=0.0, t_last=24 * GT,
                  inliers=np.zeros(0, dtype=bool))
    fits = {flag: fit_moving_psf(diffs.diff, diffs.jump, mean_image, 7.0, 4.0, GT, PSF, guess,
                                 flux_from_mean_image=flag) for flag in (False, True)}
    speed_err = {flag: np.hypot(*f.errors[2:4]) for flag, f in fits.items()}
    # The differences, each pixel's level profiled, fix flux x speed; the mean image the flux.
    assert speed_err[True] < 0.5 * speed_err[False]
    assert fits[True].flux == pytest.approx(t["flux"], rel=0.1)
    assert fits[True].snr == pytest.approx(fits[False].snr, rel=0.1)


def test_the_statistic_in_strips_equals_the_whole_map(monkeypatch):
    # The terms are correlated a strip of rows at a time, and amplitudes at
    # single pixels: each value must see every pixel its template reaches.
    rng = np.random.default_rng(7)
    z_t = rng.normal(size=(41, 33)).astype(np.float32)
    info_t = rng.uniform(1.0, 2.0, size=(41, 33)).astype(np.float32)
    whole, amp_whole = slow_motion_statistic(z_t, info_t, PSF)
    monkeypatch.setattr(slow_motion, "_STRIP_ROWS", 5)
    strips, amp_strips = slow_motion_statistic(z_t, info_t, PSF)
    np.testing.assert_array_equal(strips, whole)
    for y, x in [(0, 0), (4, 5), (5, 5), (40, 32), (20, 0), (2, 31)]:
        np.testing.assert_array_equal(amp_strips(y, x), amp_whole(y, x))


def test_correlate_planes_equals_scipy_on_every_plane():
    # In place with a ring of rows per thread: the same sums as scipy's two
    # passes on each plane, zero outside.
    from jwst_asteroid_step.search.slow_motion import _correlate, correlate_planes

    rng = np.random.default_rng(8)
    planes = rng.normal(size=(3, 23, 17)).astype(np.float32)
    profile = rng.uniform(size=7).astype(np.float32)
    expected = np.stack([_correlate(p, profile, profile) for p in planes])
    correlate_planes(planes, profile)
    np.testing.assert_allclose(planes, expected, rtol=1e-5, atol=1e-5)
