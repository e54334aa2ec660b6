"""What real ramps add to the noise model: early transients and excess slow noise.

The search and the fit weight the differences with the read-noise covariance
(:mod:`.noise`), under which a signal lasting many groups is measured very
precisely.  Real ramps carry slow structure that model lacks: the reset anomaly
and RSCD in the first groups where calibration left them, non-linearity, 1/f
noise.  Two measurements keep the statistics honest on such data: leading and
trailing differences whose frame-wide level departs from the rest are set aside,
and the spread of the search statistic over source-free pixels is measured, so
that SNRs can be scaled by it.
"""

import warnings

import numpy as np

from .differences import usable_counts
from .noise import difference_covariance, solve

__all__ = ["SAMPLE_SEED", "drift_excess", "edge_transients", "grouped_mad_sigma", "mad_sigma", "noise_scale",
           "trend_basis"]

#: Seed of the pixel sample that :func:`noise_scale` and :func:`drift_excess` draw by
#: default: the only random draw of the detection, recorded in the catalog.
SAMPLE_SEED = 0


def trend_basis(n_diffs, order):
    """Slow trends of a pixel's difference rate: powers of time up to ``order``.

    Each pixel's static scene is a constant rate (order 0); orders 1 and 2 add a
    drift and a curvature of the rate, which absorb residual non-linearity, the
    tail of the reset anomaly, RSCD and slow drifts.  Their coefficients are
    profiled out of the search and the fit per pixel.  A source that stays on a
    pixel for a large share of the ramp looks like such a trend and loses
    significance: that is the price of robustness, set by ``order``.

    Parameters
    ----------
    n_diffs : int
        Differences per integration.
    order : int
        Highest power of time (0, 1 or 2).

    Returns
    -------
    ndarray, shape (n_diffs, order + 1)
    """
    t = (np.arange(n_diffs) - 0.5 * (n_diffs - 1)) / max(0.5 * n_diffs, 1.0)
    return np.stack([t**p for p in range(order + 1)], axis=1)


def edge_transients(diff, exclude, sigma, level=0.05, max_fraction=0.3):
    """Leading and trailing differences whose frame-wide level is off.

    Parameters
    ----------
    diff : ndarray, shape (ndiff, ny, nx)
        Group differences (DN), NaN where unusable.
    exclude : ndarray, bool, shape (ndiff, ny, nx)
        Cells already set aside.
    sigma : ndarray, shape (ny, nx)
        Noise of one difference (DN).
    level : float
        Largest frame-median departure, in units of a difference's noise,
        tolerated; over a whole ramp even a few per cent of sigma adds up.
    max_fraction : float
        At most this share of the differences is set aside at either end.

    Returns
    -------
    n_lead, n_trail : int
        Differences to set aside at the start and at the end.
    """
    n_k, ny, nx = diff.shape
    # About 20,000 pixels per difference: the frame median then scatters by
    # ~0.01 sigma, well below ``level``; small arrays are used whole.
    step = max(1, int(np.sqrt(ny * nx / 20000)))
    sample = (slice(None), slice(None, None, step), slice(None, None, step))
    d = np.where(exclude[sample], np.nan, diff[sample]) / sigma[sample[1:]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN edge differences
        frame = np.nanmedian(d.reshape(n_k, -1), axis=1)
    core = frame[n_k // 3: 2 * n_k // 3]
    ref = np.nanmedian(core) if np.isfinite(core).any() else 0.0
    # On small arrays the frame median itself scatters by more than ``level``:
    # only a departure well outside that scatter is a transient.
    n = np.maximum(np.isfinite(d.reshape(n_k, -1)).sum(axis=1), 1)
    off = ~(np.abs(frame - ref) <= np.maximum(level, 3.0 * _MEDIAN_ERROR / np.sqrt(n)))
    limit = int(max_fraction * n_k)
    n_lead = 0
    while n_lead < limit and off[n_lead]:
        n_lead += 1
    n_trail = 0
    while n_trail < limit and off[n_k - 1 - n_trail]:
        n_trail += 1
    return n_lead, n_trail


def noise_scale(diff, exclude, background, read_noise, gain, length=10, trend_order=0, n_pixels=20000,
                seed=SAMPLE_SEED):
    """Spread of the profiled, covariance-weighted statistic on source-free pixels.

    For a boxcar template of ``length`` differences in the middle of the ramp,
    each pixel's level and trends (:func:`trend_basis`) profiled out as the
    search and the fit do, the statistic
    ``u^T C^-1 r / sqrt(u^T C^-1 u)`` is a unit normal under the noise model.
    Its robust spread over pixels with no excluded cell, frame-wide and per row
    and column, measures how far the real noise departs from the model at the
    time scales of a moving source crossing a pixel.

    Parameters
    ----------
    diff, exclude : ndarray, shape (ndiff, ny, nx)
    background : ndarray, shape (ny, nx)
        Static scene per difference (DN), for the shot noise.
    read_noise, gain : float or ndarray, shape (ny, nx)
    length : int
        Boxcar length (differences).
    trend_order : int
        Trends profiled out, as in the search.
    n_pixels : int
        Pixels sampled.
    seed : int
        Seed of the sampling, for reproducible results.

    Returns
    -------
    ndarray, float32, shape (ny, nx)
        At least 1 everywhere (the model is never trusted to be pessimistic): the
        frame-wide scale, raised in rows and columns whose own spread is larger
        (edge rows, noisy columns).
    """
    n_k, ny, nx = diff.shape
    if n_k < length + 4:
        return np.ones((ny, nx), dtype=np.float32)
    u = np.zeros(n_k)
    start = (n_k - length) // 2
    u[start:start + length] = 1.0
    sample = _template_statistic(diff, exclude, background, read_noise, gain, u, trend_order, n_pixels,
                                 seed)
    if sample is None:
        return np.ones((ny, nx), dtype=np.float32)
    t, py, px = sample
    # Robust spreads (MAD): a source's wings in a few sampled pixels must not
    # pass for noise.
    frame = max(1.0, mad_sigma(t))
    scale = np.full((ny, nx), frame, dtype=np.float32)
    for axis_index, size, axis in ((py, ny, 0), (px, nx, 1)):
        # A row's or column's spread is shrunk by twice its standard error
        # towards the frame's: a track crosses many of them, and the largest of
        # many raw estimates would cost every track ~20 % of SNR, while a truly
        # noisy row (edge rows, 1/f noise) stays raised.
        spread, n = grouped_mad_sigma(axis_index, t, size)
        line = np.where(n >= 10, spread - 2.0 * frame * _MAD_SIGMA_ERROR / np.sqrt(np.maximum(n, 1)), 1.0)
        line = line.astype(np.float32)
        np.maximum(scale, line[:, None] if axis == 0 else line[None, :], out=scale)
    return scale


def drift_excess(diff, exclude, background, read_noise, gain, n_pixels=20000, seed=SAMPLE_SEED):
    """Robust spread of each pixel's fitted drift, in units of its noise.

    The drift of a pixel's difference rate (the linear term of
    :func:`trend_basis`, its level profiled out) is a unit normal under the noise
    model.  Ramps whose calibration left residual non-linearity, reset anomaly or
    RSCD drift in every pixel give a spread well above 1; a few movers or stars
    do not move the median-based spread.  It decides whether drifts must be
    profiled out (``trend_order="auto"``).

    Parameters
    ----------
    diff, exclude : ndarray, shape (ndiff, ny, nx)
    background : ndarray, shape (ny, nx)
    read_noise, gain : float or ndarray, shape (ny, nx)
    n_pixels : int
        Pixels sampled.
    seed : int
        Seed of the sampling.

    Returns
    -------
    float
        1 for ramps the model describes; NaN when too few clean pixels exist.
    """
    n_k = diff.shape[0]
    if n_k < 6:
        return float("nan")
    drift = trend_basis(n_k, 1)[:, 1]
    sample = _template_statistic(diff, exclude, background, read_noise, gain, drift, 0, n_pixels, seed)
    return float("nan") if sample is None else mad_sigma(sample[0])


#: Sampled pixels whose time series are solved together in :func:`_template_statistic`.
_CHUNK_PIXELS = 2048


def _template_terms(diff, exclude, background, read_noise, gain, template, trend_order, py, px):
    """``u^T C^-1 r`` and ``u^T C^-1 u``, level and trends profiled, at pixels ``(py, px)``."""
    n_k, ny, nx = diff.shape
    r = diff[:, py, px].astype(float)
    valid = np.isfinite(r) & ~exclude[:, py, px]
    r = np.where(valid, r, 0.0)
    bg = np.broadcast_to(background, (ny, nx))[py, px]
    rn = np.broadcast_to(np.asarray(read_noise, float), (ny, nx))[py, px]
    g = np.broadcast_to(np.asarray(gain, float), (ny, nx))[py, px]
    diag, off = difference_covariance(np.broadcast_to(bg, r.shape), valid, rn[None], g[None])
    u = np.asarray(template, float)[:, None] * valid
    basis = trend_basis(n_k, trend_order)[:, None, :] * valid[..., None]
    cb = np.stack([solve(basis[..., j], diag, off) for j in range(basis.shape[2])], axis=2)
    gram = np.einsum("kni,knj->nij", basis, cb) + 1e-12 * np.eye(basis.shape[2])
    cr, cu = solve(r, diag, off), solve(u, diag, off)
    bu = np.einsum("kni,kn->ni", basis, cu)
    br = np.einsum("kni,kn->ni", basis, cr)
    a = np.sum(u * cr, axis=0) - np.einsum("ni,ni->n", bu, np.linalg.solve(gram, br[..., None])[..., 0])
    b = np.sum(u * cu, axis=0) - np.einsum("ni,ni->n", bu, np.linalg.solve(gram, bu[..., None])[..., 0])
    return a, b


def _template_statistic(diff, exclude, background, read_noise, gain, template, trend_order, n_pixels,
                        seed):
    """``u^T C^-1 r / sqrt(u^T C^-1 u)`` with level and trends profiled, on clean sampled pixels.

    Returns ``(t, py, px)`` or None when fewer than 50 pixels are clean.
    """
    n_k, ny, nx = diff.shape
    # Pixels that lost nothing but what every pixel lost: no event, no mask.
    n_usable, _ = usable_counts(diff, exclude)
    rows = np.flatnonzero(n_usable.ravel() >= n_usable.max())
    if rows.size < 50:
        return None
    pick = np.sort(np.random.default_rng(seed).choice(rows, size=min(n_pixels, rows.size), replace=False))
    py, px = np.divmod(pick, nx)
    # In chunks of pixels: a dozen (n_k, pixels) float64 arrays of all 20,000
    # sampled pixels were the step's memory peak (~150 MB at 100 groups).
    a, b = np.empty(pick.size), np.empty(pick.size)
    for i in range(0, pick.size, _CHUNK_PIXELS):
        part = slice(i, i + _CHUNK_PIXELS)
        a[part], b[part] = _template_terms(diff, exclude, background, read_noise, gain, template, trend_order,
                                           py[part], px[part])
    good = b > 0
    if good.sum() < 50:
        return None
    return a[good] / np.sqrt(b[good]), py[good], px[good]


#: Standard error of the median of unit normals times sqrt(sample size).
_MEDIAN_ERROR = 1.2533

#: Relative standard error of :func:`mad_sigma` times sqrt(sample size), for normal data.
_MAD_SIGMA_ERROR = 1.17


def mad_sigma(values):
    """Standard deviation of normal ``values`` from their median absolute deviation."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def _grouped_median(group, values, size):
    """Median of ``values`` in each group ``0 .. size - 1`` (NaN where empty), and the groups' sizes."""
    order = np.lexsort((values, group))
    ordered = values[order]
    counts = np.bincount(group, minlength=size)
    starts = np.cumsum(counts) - counts
    median = np.full(size, np.nan)
    some = counts > 0
    median[some] = 0.5 * (ordered[starts[some] + (counts[some] - 1) // 2] + ordered[starts[some] + counts[some] // 2])
    return median, counts


def grouped_mad_sigma(group, values, size):
    """:func:`mad_sigma` of ``values`` in each group (0 to ``size - 1``), without a loop over the groups.

    Returns
    -------
    sigma : ndarray, shape (size,)
        NaN for empty groups.
    counts : ndarray of int, shape (size,)
    """
    median, counts = _grouped_median(group, values, size)
    deviation, _ = _grouped_median(group, np.abs(values - median[group]), size)
    return 1.4826 * deviation, counts
