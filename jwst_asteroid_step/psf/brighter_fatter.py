"""The brighter-fatter effect: bright static sources broaden as their pixels fill.

Charge collected in a pixel pushes the charge that follows towards its neighbours (Argyriou et
al. 2023 measured it in MIRI's Si:As arrays), so a bright star's PSF widens up its ramp, while a
faint mover, whose light is spread along its track, keeps the PSF of an empty pixel. Within a
ramp this shows twice:

- the star's profile in the rate image is broader than a mover's: the PSF refinement
  (:mod:`~jwst_asteroid_step.psf.refine`) measures each star's broadening between the ramp's
  halves (:func:`charge_broadening`) and takes it out (:func:`zero_charge_halves`) before it
  judges the model or stacks the stars;
- the star's pixels change in time, the core fading and the ring around it brightening: light
  that changes in time is what the search looks for, so around every bright star it found
  slow "movers" of a few per cent of its flux. :func:`broadening_trends` measures each bright
  static source's change as a drift of its pixels' rates shaped like the PSF's Laplacian, and
  :func:`subtract_broadening_trends` takes it out of the differences before the search.

A small Gaussian blur of variance ``v`` adds ``v / 2`` times the PSF's Laplacian to it
(:func:`laplacian`); a broadening linear in the collected charge is that, growing linearly in
time. A mover's motion changes its pixels as the PSF's gradient does: antisymmetric, orthogonal
to the Laplacian around its centre, and fitted beside it so that it is left alone.

Plain numpy and scipy; nothing imports stpipe.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..search.peaks import parabola_vertex

__all__ = ["BROADENING_Z", "TREND_Z", "BroadeningTrend", "ChargeBroadening", "broadening_trends", "charge_broadening",
           "charge_fractions", "core_half", "fit_point_source", "laplacian", "subtract_broadening_trends",
           "zero_charge_halves"]

#: Combined significance (:attr:`ChargeBroadening.z`) above which the refinement's stars'
#: broadening is taken out (one-sided: charge only broadens).
BROADENING_Z = 3.0

#: Significance of one source's broadening drift above which :func:`broadening_trends`
#: takes it out of the differences: hundreds of peaks in a crowded frame are tested.
TREND_Z = 5.0

#: Smallest peak of a static source, in its pixel's noise per difference, for which
#: :func:`broadening_trends` measures a broadening (fainter ones have none to measure).
MIN_PEAK_SNR = 10.0


@dataclass
class ChargeBroadening:
    """Each star's broadening between the ramp's halves (:func:`charge_broadening`).

    Attributes
    ----------
    x, y, flux : ndarray
        The star's position and flux (DN per group) fitted with the model in the rate image.
    coefficient, error : ndarray
        ``a`` of ``second half - first half = a * Laplacian(model) + constant`` and its standard
        error: the flux times the change, between the halves, of half the variance of the
        Gaussian blur that collected charge adds (> 0: the star broadens as its ramp fills).
    fwhm_growth : ndarray
        The star's FWHM in the rate image over that of an empty pixel, minus one, at this
        broadening, linear in the collected charge.
    """

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    coefficient: np.ndarray
    error: np.ndarray
    fwhm_growth: np.ndarray

    @property
    def z(self):
        """Stouffer's combined significance of the stars' broadening (NaN without a star)."""
        good = self.error > 0
        if not good.any():
            return np.nan
        return float(np.sum(self.coefficient[good] / self.error[good]) / np.sqrt(np.count_nonzero(good)))


def charge_fractions(ngroups):
    """Mean collected charge of the two halves of :func:`~jwst_asteroid_step.psf.refine.rate_halves`,
    over an integration's.

    A pixel's charge grows linearly from its reset: the group difference ``k`` (of ``M``) is
    collected at ``(k - 1/2) / M`` of the integration's charge, and each half averages its
    differences.

    Parameters
    ----------
    ngroups : int

    Returns
    -------
    tuple of float
        ``(q1, q2)``; ``(1/4, 3/4)`` for an odd number of groups.
    """
    m = max(ngroups - 1, 2)
    h = m // 2
    return h / (2.0 * m), (m + h) / (2.0 * m)


def core_half(psf):
    """Half-size (px) of the box a star's core is fitted in: 2 FWHM (at least 3 px)."""
    return max(3, int(np.ceil(2 * psf.fwhm)))


def fit_point_source(psf, rate, x, y, half):
    """Fit a star's ``2 half + 1`` box around ``(x, y)`` with the PSF: position, flux, sky.

    The box must lie within ``rate`` and hold finite values.

    Returns
    -------
    x, y, flux, sky : float
    residual : ndarray
        Model minus data over the box, flattened.
    """
    from scipy.optimize import least_squares

    g = np.arange(-half, half + 1, dtype=float)
    ix, iy = round(x), round(y)
    cut = rate[iy - half:iy + half + 1, ix - half:ix + half + 1].astype(float).ravel()

    def design(p):
        m = psf.pixel_fraction(g[None, :] - (p[0] - ix), g[:, None] - (p[1] - iy)).ravel()
        return np.stack([m, np.ones_like(m)], axis=1)

    def residual(p):
        d = design(p)
        return d @ np.linalg.lstsq(d, cut, rcond=None)[0] - cut

    fit = least_squares(residual, [x, y], diff_step=1e-3)
    flux, sky = np.linalg.lstsq(design(fit.x), cut, rcond=None)[0]
    return float(fit.x[0]), float(fit.x[1]), float(flux), float(sky), fit.fun


def laplacian(psf, x, y, x_grid, y_grid, step=0.25):
    """The Laplacian (per px^2) of the pixel fractions of a source at ``(x, y)``.

    A Gaussian blur of small variance ``v`` adds ``v / 2`` times it to the PSF.

    Returns
    -------
    ndarray, shape (len(y_grid), len(x_grid))
    """
    dx = x_grid[None, :] - x
    dy = y_grid[:, None] - y
    centre = psf.pixel_fraction(dx, dy)
    around = (psf.pixel_fraction(dx + step, dy) + psf.pixel_fraction(dx - step, dy)
              + psf.pixel_fraction(dx, dy + step) + psf.pixel_fraction(dx, dy - step))
    return (around - 4.0 * centre) / step**2


def charge_broadening(psf, halves, stars, fractions=(0.25, 0.75)):
    """How much each star broadens between the first and second half of its ramp.

    A star's light moves outwards as its pixels fill; a faint mover's does not. Over each
    star's core (:func:`core_half`) the difference of the halves is fitted with the
    model's Laplacian and a constant: the static PSF, whatever its shape, cancels, and what is
    left is the broadening (a small blur of variance ``v`` adds ``v / 2`` times the Laplacian).
    Its error comes from the residuals (heteroscedasticity-consistent: the core's shot noise
    is larger than the sky's).

    Parameters
    ----------
    psf : PSFModel or SeparablePSF
        The model PSF, for positions, fluxes and the Laplacian.
    halves : ndarray, shape (2, ny, nx)
        :func:`~jwst_asteroid_step.psf.refine.rate_halves`.
    stars : ndarray, shape (n, 3)
        :func:`~jwst_asteroid_step.psf.refine.find_psf_stars` rows.
    fractions : tuple of float
        :func:`charge_fractions` of the halves.

    Returns
    -------
    ChargeBroadening
    """
    half = core_half(psf)
    g = np.arange(-half, half + 1, dtype=float)
    rate = np.mean(halves, axis=0)
    sigma2 = (psf.fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))) ** 2
    q1, q2 = fractions
    rows = []
    for x0, y0, _ in stars:
        x, y, flux, _, _ = fit_point_source(psf, rate, x0, y0, half)
        ix, iy = round(x0), round(y0)
        diff = (halves[1] - halves[0])[iy - half:iy + half + 1, ix - half:ix + half + 1].astype(float).ravel()
        design = np.stack([laplacian(psf, x, y, ix + g, iy + g).ravel(), np.ones(diff.size)], axis=1)
        pinv = np.linalg.pinv(design)
        coef = pinv @ diff
        residual = diff - design @ coef
        error = float(np.sqrt(np.sum((pinv[0] * residual) ** 2)))
        # a = flux * (v(q2) - v(q1)) / 2 with v linear in charge; the rate image's blur is v at
        # the halves' mean charge, and a Gaussian core of variance sigma2 widens by v / (2 sigma2).
        v_mean = 2.0 * coef[0] / flux * (q1 + q2) / (2.0 * (q2 - q1)) if flux > 0 else 0.0
        rows.append((x, y, flux, coef[0], error, v_mean / (2.0 * sigma2)))
    cols = np.asarray(rows, dtype=float).reshape(-1, 6).T
    return ChargeBroadening(*cols)


def zero_charge_halves(halves, psf, broadening, box_half, fractions=(0.25, 0.75)):
    """The rate halves with each star's broadening by collected charge taken out.

    Each half holds its star blurred by its mean charge (``fractions``); broadening linear in
    the charge, ``a * q_h / (q2 - q1)`` times the model's Laplacian is taken from half ``h``
    over the star's box, which leaves the star as an empty pixel would have recorded it: the
    PSF a faint mover has.

    Parameters
    ----------
    halves : ndarray, shape (2, ny, nx)
    psf : PSFModel or SeparablePSF
    broadening : ChargeBroadening
    box_half : int
        Half-size (px) of each star's box.
    fractions : tuple of float

    Returns
    -------
    ndarray, shape (2, ny, nx)
        A corrected copy.
    """
    out = np.array(halves, dtype=np.float32, copy=True)
    ny, nx = out.shape[1:]
    q1, q2 = fractions
    for x, y, a in zip(broadening.x, broadening.y, broadening.coefficient, strict=True):
        x0, x1 = max(round(x) - box_half, 0), min(round(x) + box_half + 1, nx)
        y0, y1 = max(round(y) - box_half, 0), min(round(y) + box_half + 1, ny)
        lap = laplacian(psf, x, y, np.arange(x0, x1, dtype=float), np.arange(y0, y1, dtype=float))
        for h, q in enumerate((q1, q2)):
            out[h, y0:y1, x0:x1] -= (a * q / (q2 - q1) * lap).astype(np.float32)
    return out


@dataclass
class BroadeningTrend:
    """A bright static source whose pixels drift as its PSF broadens (:func:`broadening_trends`).

    Attributes
    ----------
    x, y : float
        Its position (px).
    rate : float
        Its ``laplacian`` coefficient's drift: DN per difference per difference.
    z : float
        The drift's significance.
    """

    x: float
    y: float
    rate: float
    z: float


def broadening_trends(diff, exclude, background, sigma, psf, z_min=TREND_Z, min_peak_snr=MIN_PEAK_SNR):
    """Bright static sources whose profile broadens (or narrows) up the integration.

    For each local peak of the mean rate ``min_peak_snr`` times its noise above the median
    level (placed by a parabola through its neighbours: hundreds are tested in a crowded
    frame, and the templates need no better), every pixel's rate drift over the integration (least squares over its usable
    differences) is fitted, over the source's core (2 FWHM), with the PSF's
    :func:`laplacian` (a blur growing in time), its two gradients (motion, or a position a
    little off), the PSF itself (a source brightening or fading) and a constant, weighted by
    the noise model. Sources whose Laplacian term is significant beyond ``z_min``, and more
    significant than their motion, are returned.

    Parameters
    ----------
    diff : ndarray, shape (ndiff, ny, nx)
        Group differences (DN).
    exclude : ndarray of bool, shape (ndiff, ny, nx)
        Cells left out (jumps, cosmic rays, saturation).
    background : ndarray, shape (ny, nx)
        Each pixel's mean difference.
    sigma : ndarray, shape (ny, nx)
        Each pixel's noise in one difference.
    psf : PSFModel or SeparablePSF
    z_min, min_peak_snr : float

    Returns
    -------
    list of BroadeningTrend
    """
    n = diff.shape[0]
    if n < 4:
        return []
    half = core_half(psf)
    level = background - np.median(background)
    size = 2 * int(np.ceil(psf.fwhm)) + 1
    peaks = (level == ndimage.maximum_filter(level, size=size)) & (level > min_peak_snr * sigma)
    peaks[:half, :] = peaks[-half:, :] = peaks[:, :half] = peaks[:, -half:] = False
    t = np.arange(n, dtype=float) - 0.5 * (n - 1)
    g = np.arange(-half, half + 1, dtype=float)
    out = []
    for py, px in zip(*np.nonzero(peaks), strict=True):
        box = (slice(py - half, py + half + 1), slice(px - half, px + half + 1))
        d = diff[(slice(None),) + box].astype(float)
        use = ~exclude[(slice(None),) + box] & np.isfinite(d)
        if not use[:, half, half].any():
            continue
        slope, var = _rate_drift(np.where(use, d, 0.0), use, t, sigma[box].astype(float))
        good = np.isfinite(slope) & (var > 0)
        if np.count_nonzero(good) < 10:
            continue
        x, y = px + parabola_vertex(level[py, px - 1:px + 2]), py + parabola_vertex(level[py - 1:py + 2, px])
        xs, ys = px + g, py + g
        shifts = [(0.25, 0.0), (0.0, 0.25)]
        gradients = [(psf.pixel_fraction(xs[None, :] - x - sx, ys[:, None] - y - sy)
                      - psf.pixel_fraction(xs[None, :] - x + sx, ys[:, None] - y + sy)) / 0.5 for sx, sy in shifts]
        profile = psf.pixel_fraction(xs[None, :] - x, ys[:, None] - y)
        design = np.stack([laplacian(psf, x, y, xs, ys)[good], gradients[0][good], gradients[1][good],
                           profile[good], np.ones(np.count_nonzero(good))], axis=1)
        w = 1.0 / np.sqrt(var[good])
        coef, *_ = np.linalg.lstsq(design * w[:, None], slope[good] * w, rcond=None)
        cov = np.linalg.pinv((design * w[:, None]).T @ (design * w[:, None]))
        err = np.sqrt(np.maximum(np.diag(cov), 1e-300))
        z = coef[0] / err[0]
        z_motion = float(np.hypot(coef[1] / err[1], coef[2] / err[2]))
        if abs(z) > z_min and abs(z) > z_motion:
            out.append(BroadeningTrend(float(x), float(y), float(coef[0]), float(z)))
    return out


def _rate_drift(d, use, t, sigma):
    """Each pixel's least-squares drift of its differences (per difference) and its variance."""
    w = use.astype(float)
    n = w.sum(axis=0)
    st = np.tensordot(t, w, axes=1)
    stt = np.tensordot(t**2, w, axes=1)
    sd = d.sum(axis=0)
    std = np.tensordot(t, d, axes=1)
    den = n * stt - st**2
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(den > 0, (n * std - st * sd) / den, np.nan)
        var = np.where(den > 0, sigma**2 * n / den, np.nan)
    return slope, var


def subtract_broadening_trends(diff, trends, psf):
    """Take each source's broadening drift out of the differences, in place.

    Over a box of 3 FWHM (at least the core's) around each source, difference ``k`` loses
    ``rate * (k - (ndiff - 1) / 2) * laplacian``: each pixel's mean is kept.

    Parameters
    ----------
    diff : ndarray, shape (ndiff, ny, nx)
    trends : list of BroadeningTrend
    psf : PSFModel or SeparablePSF
    """
    n, ny, nx = diff.shape
    half = max(core_half(psf), int(np.ceil(3 * psf.fwhm)))
    t = (np.arange(n, dtype=float) - 0.5 * (n - 1)).astype(diff.dtype)
    for tr in trends:
        x0, x1 = max(round(tr.x) - half, 0), min(round(tr.x) + half + 1, nx)
        y0, y1 = max(round(tr.y) - half, 0), min(round(tr.y) + half + 1, ny)
        lap = laplacian(psf, tr.x, tr.y, np.arange(x0, x1, dtype=float), np.arange(y0, y1, dtype=float))
        diff[:, y0:y1, x0:x1] -= t[:, None, None] * (tr.rate * lap).astype(diff.dtype)[None]
