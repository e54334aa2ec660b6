"""Movers that cross less than their PSF within one integration.

The shift-and-stack grid moves its template by whole pixels, so a track whose
whole motion is a pixel or two is, to it, a static source or a single jump, and
a static source carries nothing once each pixel's level is profiled out.  In
that regime the moving source's charge in each difference is, to first order,

    F [P(d) - t (v . grad P)(d)],       d = pixel - p0,

with ``t`` the difference's time from the middle of the ramp (groups): the
static part drops out with the pixel's level, and what remains is a level that
changes linearly in time, with the PSF gradient's shape along the direction of
motion.  Its amplitude ``a = F v`` enters linearly, so the best ``a`` at every
position and the likelihood-ratio statistic ``T = H' I^-1 H`` (two degrees of
freedom; ``I`` the information matrix of ``a``) follow from two correlations of
the time-weighted, pre-whitened residual ``z_t``
(:func:`~jwst_asteroid_step.search.matched_filter._prewhitened_bins`) with the PSF's
derivatives, whatever the speed.  The source's mean image, its
static part, gives ``F``, hence the speed, and must be centred where ``T``
peaks: a source that brightens or fades in place (a star's residual
non-linearity) peaks off its own centre, radially, and is turned away.
"""

import numba
import numpy as np
from scipy import ndimage

from ..measure.moving_psf import static_photometry
from ..psf import PSFModel
from .peaks import local_maxima, parabola_vertex

__all__ = ["slow_motion_candidates", "slow_motion_statistic"]


def _correlate(image, profile_y, profile_x):
    out = ndimage.correlate1d(image, profile_y, axis=0, mode="constant")
    return ndimage.correlate1d(out, profile_x, axis=1, mode="constant", output=out)


@numba.njit(parallel=True, cache=True)
def correlate_planes(planes, profile):
    """:func:`_correlate` of every plane with ``profile`` along both axes, in place, planes in parallel.

    Zero outside the planes, like ``mode="constant"``; sums in float32.  Each
    thread holds a few rows, not a plane: the rows the column pass has already
    overwritten but still needs are kept in a ring.
    """
    n_planes, ny, nx = planes.shape
    r = profile.size // 2
    for b in numba.prange(n_planes):
        plane = planes[b]
        ring = np.empty((r + 1, nx), dtype=np.float32)  # original rows y - r .. y
        acc = np.empty(nx, dtype=np.float32)
        for y in range(ny):
            acc[:] = 0.0
            for j in range(profile.size):
                yy = y + j - r
                if 0 <= yy < ny:
                    w = profile[j]
                    src = ring[yy % (r + 1)] if yy < y else plane[yy]
                    for x in range(nx):
                        acc[x] += w * src[x]
            ring[y % (r + 1)] = plane[y]
            plane[y] = acc
        for y in range(ny):
            acc[:] = plane[y]
            dst = plane[y]
            dst[:] = 0.0
            for j in range(profile.size):
                d = j - r
                lo, hi = max(0, -d), min(nx, nx - d)
                if hi <= lo:
                    continue
                w = profile[j]
                src = acc[lo + d:hi + d]
                out = dst[lo:hi]
                for i in range(src.size):
                    out[i] += w * src[i]


def _core_profiles(psf, radius):
    """The PSF core's pixel-integrated 1-D profile and its derivative at offsets -radius..radius.

    The core is the Gaussian of the PSF's FWHM whatever the model: the search's templates.
    """
    core = PSFModel(psf.fwhm, wing_fraction=0.0)
    offsets = np.arange(-radius, radius + 1, dtype=float)
    return core._profile_1d(offsets, core.core_sigma), core._profile_1d_derivative(offsets, core.core_sigma)


#: Rows of the statistic's terms held at a time.
_STRIP_ROWS = 128


def _terms(z_t, info_t, p, dp, rows, cols):
    """``H = (H_x, H_y)`` and the information ``I`` (``I_xx, I_yy, I_xy``) on ``rows`` x ``cols``.

    ``H_i`` is the sum over pixels of ``dP/dd_i (d) z_t`` for the template's
    offsets ``d``.  Only the pixels the template reaches are correlated, so a
    block's values equal the whole map's.
    """
    r = p.size // 2
    ny, nx = z_t.shape
    y0, x0 = max(rows.start - r, 0), max(cols.start - r, 0)
    window = (slice(y0, min(rows.stop + r, ny)), slice(x0, min(cols.stop + r, nx)))
    z, f = z_t[window], info_t[window]
    out = (slice(rows.start - y0, rows.stop - y0), slice(cols.start - x0, cols.stop - x0))
    return (_correlate(z, p, dp)[out], _correlate(z, dp, p)[out], _correlate(f, p**2, dp**2)[out],
            _correlate(f, dp**2, p**2)[out], _correlate(f, p * dp, p * dp)[out])


@numba.njit(parallel=True, cache=True)
def _likelihood_ratio(hx, hy, fxx, fyy, fxy, out):
    """``H' I^-1 H`` per pixel (0 where the information ``I`` is singular), written to ``out``."""
    ny, nx = hx.shape
    for y in numba.prange(ny):
        for x in range(nx):
            a, b, c = fxx[y, x], fyy[y, x], fxy[y, x]
            det = a * b - c * c
            if det > 1e-6 * a * b and det > 0:
                out[y, x] = (b * hx[y, x] ** 2 - 2.0 * c * hx[y, x] * hy[y, x] + a * hy[y, x] ** 2) / det
            else:
                out[y, x] = 0.0


def slow_motion_statistic(z_t, info_t, psf, noise_scale=1.0):
    """Per-position SNR and best amplitude ``a = F v`` of a slowly moving source.

    Parameters
    ----------
    z_t, info_t : ndarray, float32, shape (ny, nx)
        Per pixel, the time-weighted pre-whitened residual and its variance.
    psf : PSFModel
        The PSF; its core Gaussian (integrated over the pixel) is the template.
    noise_scale : float or ndarray, shape (ny, nx)
        Measured excess of the noise over the model; the SNR is divided by it.

    Returns
    -------
    snr : ndarray, float32, shape (ny, nx)
        ``sqrt(T)``, the likelihood-ratio statistic of a moving over a static
        source at each position (0 where the pixels carry no information).
    amplitude : callable
        ``amplitude(y, x)`` gives the best ``(a_x, a_y)`` there (charge per
        difference x px per group); the charge moves away from where the
        gradient points, ``a = -I^-1 H``.
    """
    p, dp = (v.astype(np.float32) for v in _core_profiles(psf, int(np.ceil(3.0 * psf.core_sigma))))
    z_t, info_t = np.asarray(z_t, dtype=np.float32), np.asarray(info_t, dtype=np.float32)
    ny, nx = z_t.shape

    # In strips of rows: five full-frame maps of H and I would outweigh a short
    # ramp's cube.
    snr = np.empty(z_t.shape, dtype=np.float32)
    for y0 in range(0, ny, _STRIP_ROWS):
        rows = slice(y0, min(y0 + _STRIP_ROWS, ny))
        _likelihood_ratio(*_terms(z_t, info_t, p, dp, rows, slice(0, nx)), snr[rows])
    # Rounding leaves a few slightly negative ratios where the information is
    # nearly singular: no evidence of motion there.
    np.sqrt(np.maximum(snr, 0.0, out=snr), out=snr)
    snr /= np.broadcast_to(np.asarray(noise_scale, dtype=np.float32), snr.shape)

    def amplitude(y, x):
        hx, hy, fxx, fyy, fxy = (float(t[0, 0]) for t in _terms(z_t, info_t, p, dp, slice(y, y + 1),
                                                                 slice(x, x + 1)))
        return -np.linalg.solve(np.array([[fxx, fxy], [fxy, fyy]]), np.array([hx, hy]))

    return snr, amplitude


def slow_motion_candidates(z_t, info_t, mean_image, psf, n_diff, snr_threshold, max_motion_px,
                           noise_scale=1.0, min_separation=3, max_candidates=200, max_offset_px=0.6):
    """Candidates of sub-PSF motion within one integration.

    Parameters
    ----------
    z_t, info_t : ndarray, shape (ny, nx)
        Time-weighted pre-whitened residual per pixel and its variance.
    mean_image : ndarray, shape (ny, nx)
        Each pixel's mean difference (DN): the static scene, mover included.
    psf : PSFModel
    n_diff : int
        Differences in the integration.
    snr_threshold : float
        Least :func:`slow_motion_statistic` SNR of a candidate.
    max_motion_px : float
        Largest motion over the integration kept: a faster source's passage
        also raises the statistic, but the velocity grid of the shift-and-stack
        search is the tool for it.
    noise_scale : float or ndarray
        Measured noise excess over the model.
    min_separation : int
        Half-size (px) of the neighbourhood a candidate must be the maximum of.
    max_candidates : int
        Most candidates returned, highest SNR first.
    max_offset_px : float
        Largest distance between the statistic's peak (refined to a fraction of
        a pixel) and the centroid of the mean image's light.

    Returns
    -------
    x, y, vx, vy, snr : ndarray
        Positions (px) at the middle of the integration, velocities ``a / F``
        (px per group), SNRs; highest SNR first.
    """
    snr, amplitude = slow_motion_statistic(z_t, info_t, psf, noise_scale)
    ys, xs = np.nonzero(snr >= snr_threshold)
    keep = local_maxima(snr, ys, xs, min_separation)
    ys, xs = ys[keep], xs[keep]
    order = np.argsort(snr[ys, xs])[::-1]
    rows = []
    for i in order[: 4 * max_candidates]:
        y, x = int(ys[i]), int(xs[i])
        sx, sy = x + parabola_vertex(snr[y, x - 1:x + 2]), y + parabola_vertex(snr[y - 1:y + 2, x])
        flux, offset = static_photometry(mean_image, sx, sy, psf)
        if not flux > 0 or offset > max_offset_px:
            continue  # no source, or one that brightens or fades off this spot
        vx, vy = amplitude(y, x) / flux
        if np.hypot(vx, vy) * n_diff > max_motion_px:
            continue
        rows.append((sx, sy, vx, vy, snr[y, x]))
        if len(rows) >= max_candidates:
            break
    return tuple(np.array(c, dtype=float) for c in zip(*rows)) if rows else tuple(np.zeros(0) for _ in range(5))
