"""Tests of the package's one PSF model (jwst_asteroid_step.psf)."""

import numpy as np
import pytest
from scipy.special import erf

from jwst_asteroid_step.psf import FILTER_FWHM, PSFModel, instrument_psf, psf_for_filter

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def box_image(psf, half, x0=0.0, y0=0.0):
    """pixel_fraction on a (2 half + 1)**2 box of pixel centres around the origin."""
    grid = np.arange(-half, half + 1, dtype=float)
    return psf.pixel_fraction(grid[None, :] - x0, grid[:, None] - y0)


def measured_fwhm(psf, oversample=50):
    """FWHM (px) of a profile sampled at 1/oversample px through the source centre.

    A PSF with every width scaled up by ``oversample`` and integrated over unit
    pixels is the original PSF integrated over pixels ``1/oversample`` wide, so
    pixel smearing is negligible.
    """
    fine = PSFModel(psf.fwhm * oversample, psf.wing_fraction, psf.wing_scale)
    offsets = np.arange(-6 * fine.fwhm, 6 * fine.fwhm + 1)
    profile = fine.pixel_fraction(offsets, 0.0)
    half = profile.max() / 2
    above = np.flatnonzero(profile >= half)
    i0, i1 = above[0], above[-1]
    left = np.interp(half, profile[i0 - 1 : i0 + 1], offsets[i0 - 1 : i0 + 1])
    right = np.interp(half, profile[i1 : i1 + 2][::-1], offsets[i1 : i1 + 2][::-1])
    return (right - left) / oversample


# --- flux bookkeeping ---------------------------------------------------------------


@pytest.mark.parametrize("filter_name", sorted(FILTER_FWHM))
def test_pixel_fractions_in_big_box_sum_to_one(filter_name):
    psf = psf_for_filter(filter_name, model="gaussian")
    sigma_wing = max(s for _, s in psf.components)
    img = box_image(psf, int(np.ceil(7 * sigma_wing)), x0=0.3, y0=-0.2)
    assert img.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("half", [1, 3, 6])
def test_pixel_fractions_sum_to_one_minus_flux_outside_box(half):
    psf = psf_for_filter("F1500W", model="gaussian")
    # Analytic flux inside a (2 half + 1)-pixel square box around a centred source.
    inside = sum(
        frac * erf((half + 0.5) / (np.sqrt(2) * sigma)) ** 2 for frac, sigma in psf.components
    )
    assert inside < 0.999  # the box really does cut off flux
    assert box_image(psf, half).sum() == pytest.approx(inside, rel=1e-12)


@pytest.mark.parametrize("filter_name", sorted(FILTER_FWHM))
def test_radius_box_holds_more_than_99_percent(filter_name):
    psf = psf_for_filter(filter_name, model="gaussian")
    assert box_image(psf, psf.radius).sum() > 0.99


def test_pixel_fractions_are_positive_and_peak_at_source():
    psf = psf_for_filter("F770W", model="gaussian")
    img = box_image(psf, 8)
    assert np.all(img > 0)
    assert np.unravel_index(np.argmax(img), img.shape) == (8, 8)


# --- render ------------------------------------------------------------------------


def test_render_of_static_source_equals_pixel_fraction():
    psf = psf_for_filter("F1000W", model="gaussian")
    x_grid = np.arange(10.0, 30.0)
    y_grid = np.arange(-5.0, 12.0)
    xs = np.full((1, 7), 19.37)
    ys = np.full((1, 7), 3.81)
    img = psf.render(xs, ys, x_grid, y_grid)
    expected = psf.pixel_fraction(x_grid[None, :] - 19.37, y_grid[:, None] - 3.81)
    assert img.shape == (1, y_grid.size, x_grid.size)
    np.testing.assert_allclose(img[0], expected, rtol=1e-12, atol=1e-15)


def test_render_averages_over_sub_samples():
    psf = psf_for_filter("F560W", model="gaussian")
    grid = np.arange(-10.0, 11.0)
    xs = np.array([[-1.0, 2.5], [0.0, 0.0]])
    ys = np.array([[0.5, -3.0], [1.0, 1.0]])
    img = psf.render(xs, ys, grid, grid)
    first = 0.5 * (
        psf.pixel_fraction(grid[None, :] + 1.0, grid[:, None] - 0.5)
        + psf.pixel_fraction(grid[None, :] - 2.5, grid[:, None] + 3.0)
    )
    second = psf.pixel_fraction(grid[None, :], grid[:, None] - 1.0)
    np.testing.assert_allclose(img[0], first, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(img[1], second, rtol=1e-12, atol=1e-15)


# --- symmetry ----------------------------------------------------------------------


def test_pixel_fraction_is_symmetric():
    psf = psf_for_filter("F1280W", model="gaussian")
    rng = np.random.default_rng(1)
    dx, dy = rng.uniform(-8, 8, (2, 200))
    p = psf.pixel_fraction(dx, dy)
    np.testing.assert_allclose(psf.pixel_fraction(-dx, dy), p, rtol=1e-12)
    np.testing.assert_allclose(psf.pixel_fraction(dx, -dy), p, rtol=1e-12)
    np.testing.assert_allclose(psf.pixel_fraction(dy, dx), p, rtol=1e-12)


def test_rendered_image_of_centred_source_is_symmetric():
    psf = psf_for_filter("F2100W", model="gaussian")
    img = box_image(psf, 12)
    np.testing.assert_allclose(img, img[::-1, :], rtol=1e-12)
    np.testing.assert_allclose(img, img[:, ::-1], rtol=1e-12)
    np.testing.assert_allclose(img, img.T, rtol=1e-12)


# --- widths ------------------------------------------------------------------------


@pytest.mark.parametrize("filter_name", sorted(FILTER_FWHM))
def test_core_fwhm_matches_filter_table(filter_name):
    psf = psf_for_filter(filter_name, model="gaussian")
    core_only = PSFModel(psf.fwhm, wing_fraction=0.0)
    assert measured_fwhm(core_only) == pytest.approx(FILTER_FWHM[filter_name], rel=2e-3)


@pytest.mark.parametrize("filter_name", sorted(FILTER_FWHM))
def test_fwhm_with_wings_stays_close_to_filter_table(filter_name):
    # The faint, broad wing lifts the half-maximum level only slightly.
    psf = psf_for_filter(filter_name, model="gaussian")
    assert measured_fwhm(psf) == pytest.approx(FILTER_FWHM[filter_name], rel=0.01)


def test_n_eff_grows_with_fwhm():
    widths = sorted(FILTER_FWHM.values())
    n_eff = [PSFModel(w).n_eff for w in widths]
    assert np.all(np.diff(n_eff) > 0)


def test_n_eff_of_a_wide_gaussian_is_four_pi_sigma_squared():
    # For a Gaussian, 1 / sum(p**2) = 4 pi sigma**2; pixels add 1/12 px**2 to sigma**2.
    psf = PSFModel(6.0, wing_fraction=0.0)
    sigma2 = (6.0 * FWHM_TO_SIGMA) ** 2 + 1.0 / 12.0
    assert psf.n_eff == pytest.approx(4 * np.pi * sigma2, rel=2e-3)


def test_wing_has_requested_fraction_and_scale():
    psf = PSFModel(3.0, wing_fraction=0.2, wing_scale=5.0)
    (f_core, s_core), (f_wing, s_wing) = psf.components
    assert (f_core, f_wing) == pytest.approx((0.8, 0.2))
    assert s_core == pytest.approx(3.0 * FWHM_TO_SIGMA)
    assert s_wing == pytest.approx(5.0 * s_core)


def test_zero_wing_fraction_gives_single_component():
    assert len(PSFModel(3.0, wing_fraction=0.0).components) == 1


# --- validation --------------------------------------------------------------------


@pytest.mark.parametrize("fwhm", [0.0, -1.5, np.nan, np.inf])
def test_bad_fwhm_raises(fwhm):
    with pytest.raises(ValueError, match="FWHM"):
        PSFModel(fwhm)


@pytest.mark.parametrize("wing_fraction", [-0.1, 1.0, 1.5])
def test_bad_wing_fraction_raises(wing_fraction):
    with pytest.raises(ValueError, match="wing_fraction"):
        PSFModel(2.0, wing_fraction=wing_fraction)


def test_explicit_bad_psf_fwhm_raises():
    with pytest.raises(ValueError):
        psf_for_filter("F770W", fwhm=-2.0)


# --- psf_for_filter ----------------------------------------------------------------


@pytest.mark.parametrize("filter_name", sorted(FILTER_FWHM))
def test_psf_for_filter_uses_filter_table(filter_name):
    assert psf_for_filter(filter_name, model="gaussian").fwhm == FILTER_FWHM[filter_name]


def test_psf_for_filter_is_case_insensitive():
    assert psf_for_filter("f770w", model="gaussian") == psf_for_filter("F770W", model="gaussian")


def test_explicit_fwhm_overrides_filter():
    assert psf_for_filter("F770W", fwhm=3.3).fwhm == 3.3
    assert psf_for_filter("NOT_A_FILTER", fwhm=3.3).fwhm == 3.3
    assert psf_for_filter(None, fwhm=3.3).fwhm == 3.3


@pytest.mark.parametrize("filter_name", ["F999W", "CLEAR", "", None])
def test_unknown_filter_error_mentions_psf_fwhm(filter_name):
    with pytest.raises(ValueError, match="psf_fwhm"):
        psf_for_filter(filter_name)


@pytest.mark.parametrize("psf", [PSFModel(2.45), instrument_psf("F770W"), instrument_psf("F2100W")],
                         ids=["gaussian", "instrument-F770W", "instrument-F2100W"])
def test_row_and_column_profiles_multiply_to_pixel_fractions_and_their_gradient(psf):
    """The separable form the moving-PSF fit uses: the same box as pixel_fraction, and its derivatives."""
    x0, y0, n, h = 10, 20, 9, 1e-6
    pos_x, pos_y = np.array([13.3, 14.05]), np.array([24.7, 23.9])
    rows = psf.pixel_profiles(x0, n, pos_x, derivative=True, axis="x")
    cols = psf.pixel_profiles(y0, n, pos_y, derivative=True, axis="y")
    f = sum(fr * c[:, :, None] * r[:, None, :] for (fr, r, _), (_, c, _) in zip(rows, cols))
    gx = sum(fr * c[:, :, None] * dr[:, None, :] for (fr, _, dr), (_, c, _) in zip(rows, cols))
    gy = sum(fr * dc[:, :, None] * r[:, None, :] for (fr, r, _), (_, _, dc) in zip(rows, cols))
    gyy, gxx = np.mgrid[y0:y0 + n, x0:x0 + n]
    for i in range(pos_x.size):
        dx, dy = gxx - pos_x[i], gyy - pos_y[i]
        np.testing.assert_allclose(f[i], psf.pixel_fraction(dx, dy), rtol=0, atol=1e-14)
        num_x = (psf.pixel_fraction(dx + h, dy) - psf.pixel_fraction(dx - h, dy)) / (2 * h)
        num_y = (psf.pixel_fraction(dx, dy + h) - psf.pixel_fraction(dx, dy - h)) / (2 * h)
        np.testing.assert_allclose(gx[i], num_x, rtol=0, atol=1e-7)
        np.testing.assert_allclose(gy[i], num_y, rtol=0, atol=1e-7)
    plain = psf.pixel_profiles(x0, n, pos_x, axis="x")
    assert all(len(c) == 2 and np.array_equal(c[1], r[1]) for c, r in zip(plain, rows))
