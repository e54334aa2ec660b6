"""The one noise model of the package, for group differences.

A group difference ``d = R[k+1] - R[k]`` in DN has variance

    var = rn_cds**2 + max(S, 0) / gain

where ``rn_cds`` is the correlated-double-sample read noise (DN; the quantity the
CRDS READNOISE reference file holds, and what stcal's jump step uses for a
one-frame-per-group readout) and ``S`` is the expected charge collected in the
interval (DN: background, stars, and the source itself).  Read noise is drawn once
per read, so two adjacent differences of a pixel share a read and have covariance
``-rn_cds**2 / 2``; shot noise is independent between differences.  Over a pixel's
differences the covariance is therefore tridiagonal (:func:`difference_covariance`),
and :func:`whiten` / :func:`solve` apply its inverse Cholesky factor or its inverse.
When read noise dominates, a slowly varying signal is measured far better than the
diagonal formula of DESIGN.md §3 says: the read noise cancels along the ramp.  The
simulator draws noise from this model and the detector weights by it.
"""

import numba
import numpy as np

__all__ = [
    "difference_covariance",
    "difference_variance",
    "matched_filter_snr",
    "matched_filter_snr_correlated",
    "matched_filter_snr_moving",
    "profiled_information",
    "solve",
    "solve_tridiagonal",
    "whiten",
]


def difference_variance(expected_dn, read_noise_cds, gain):
    """Variance (DN**2) of a group difference.

    Parameters
    ----------
    expected_dn : float or ndarray
        Expected charge in the difference (DN), all sources included.
    read_noise_cds : float or ndarray
        CDS read noise (DN).
    gain : float or ndarray
        Gain (electrons / DN).

    Returns
    -------
    ndarray
        Variance in DN**2, broadcast over the inputs.
    """
    return np.asarray(read_noise_cds) ** 2 + np.maximum(expected_dn, 0.0) / np.asarray(gain)


def matched_filter_snr(signal_dn, background_dn, read_noise_cds, gain):
    """Matched-filter SNR of a known signal in group differences (DESIGN.md §3).

    ``SNR = sqrt(sum(s**2 / var))`` with ``var`` from :func:`difference_variance`
    evaluated on background plus signal.

    Parameters
    ----------
    signal_dn : ndarray
        Expected source charge per pixel and group difference (DN).
    background_dn : float or ndarray
        Expected non-source charge per pixel and difference (DN), broadcastable.
    read_noise_cds, gain : float or ndarray
        Detector noise parameters, broadcastable.

    Returns
    -------
    float
    """
    s = np.asarray(signal_dn, dtype=float)
    var = difference_variance(s + background_dn, read_noise_cds, gain)
    return float(np.sqrt(np.sum(s**2 / var)))


def difference_covariance(expected_dn, valid, read_noise_cds, gain):
    """Bands of the covariance of a pixel's group differences (axis 0 is time).

    Parameters
    ----------
    expected_dn : ndarray, shape (K, ...)
        Expected charge (DN) in each difference, all sources included.
    valid : ndarray of bool, broadcastable to ``expected_dn``
        Differences that are used; an unused difference breaks the chain, and its
        row is set to unit variance so it stays inert.
    read_noise_cds, gain : float or ndarray, broadcastable
        As in :func:`difference_variance`.

    Returns
    -------
    diag : ndarray, shape (K, ...)
        Variances (DN**2).
    off : ndarray, shape (K - 1, ...)
        Covariance of differences k and k+1: ``-rn_cds**2 / 2`` where both are used.
    """
    shape = np.shape(expected_dn)
    valid = np.broadcast_to(valid, shape)
    diag = np.broadcast_to(difference_variance(expected_dn, read_noise_cds, gain), shape)
    diag = np.where(valid, np.maximum(diag, 1e-30), 1.0)
    rn2 = np.broadcast_to(np.asarray(read_noise_cds, dtype=float) ** 2, shape)
    off = np.where(valid[1:] & valid[:-1], -0.25 * (rn2[1:] + rn2[:-1]), 0.0)
    return diag, off


@numba.njit(cache=True)
def whiten_tridiagonal(values, diag, off, out):
    """``out = L^-1 values`` for one pixel's columns ``values`` (K, M) (numba, for kernels).

    ``diag`` and ``off`` are the pixel's covariance bands (:func:`difference_covariance`).
    """
    n_k, n_m = values.shape
    prev_l = np.sqrt(diag[0])
    for c in range(n_m):
        out[0, c] = values[0, c] / prev_l
    for k in range(1, n_k):
        m = off[k - 1] / prev_l
        lkk = np.sqrt(max(diag[k] - m * m, 1e-30))
        for c in range(n_m):
            out[k, c] = (values[k, c] - m * out[k - 1, c]) / lkk
        prev_l = lkk


@numba.njit(cache=True)
def _whiten(values, diag, off, out):
    # values, out: (K, N, M), M columns sharing each pixel's covariance.
    for j in range(values.shape[1]):
        whiten_tridiagonal(values[:, j], diag[:, j], off[:, j], out[:, j])


def whiten(values, diag, off):
    """Apply ``L^-1``, ``C = L L^T`` being a pixel's tridiagonal covariance.

    Whitened residuals are independent with unit variance, so least squares on
    them is least squares with the full covariance.

    Parameters
    ----------
    values : ndarray, shape (K, N) or (K, N, M)
        One column per pixel (or M of them); rows are differences.
    diag, off : ndarray, shapes (K, N) and (K - 1, N)
        From :func:`difference_covariance`.

    Returns
    -------
    ndarray, float64, shape of ``values``
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    v3 = values[..., None] if values.ndim == 2 else values
    out = np.empty_like(v3)
    _whiten(v3, np.ascontiguousarray(diag, dtype=np.float64),
            np.ascontiguousarray(off, dtype=np.float64), out)
    return out[..., 0] if values.ndim == 2 else out


@numba.njit(cache=True)
def solve_tridiagonal(values, diag, off, c_prime, out):
    """``out = C^-1 values`` for one pixel (Thomas algorithm; numba, for kernels).

    ``c_prime`` is scratch space of length ``len(values) - 1``.
    """
    n_k = values.size
    m = diag[0]
    out[0] = values[0] / m
    for k in range(1, n_k):
        c_prime[k - 1] = off[k - 1] / m
        m = diag[k] - off[k - 1] * c_prime[k - 1]
        out[k] = (values[k] - off[k - 1] * out[k - 1]) / m
    for k in range(n_k - 2, -1, -1):
        out[k] -= c_prime[k] * out[k + 1]


@numba.njit(cache=True)
def _solve(values, diag, off, out):
    n_k, n = values.shape
    c_prime = np.empty(max(n_k - 1, 1))
    col = np.empty(n_k)
    res = np.empty(n_k)
    for j in range(n):
        for k in range(n_k):
            col[k] = values[k, j]
        solve_tridiagonal(col, diag[:, j], off[:, j], c_prime, res)
        for k in range(n_k):
            out[k, j] = res[k]


def solve(values, diag, off):
    """Apply ``C^-1`` (Thomas algorithm), one pixel's differences per column.

    Parameters
    ----------
    values : ndarray, shape (K, N)
    diag, off : ndarray, shapes (K, N) and (K - 1, N)
        From :func:`difference_covariance`.

    Returns
    -------
    ndarray, float64, shape (K, N)
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    out = np.empty_like(values)
    _solve(values, np.ascontiguousarray(diag, dtype=np.float64),
           np.ascontiguousarray(off, dtype=np.float64), out)
    return out


def matched_filter_snr_correlated(signal_dn, background_dn, valid, read_noise_cds, gain):
    """Matched-filter SNR with the read-noise correlation of adjacent differences.

    :func:`matched_filter_snr` ignores the correlation; for a template that changes
    slowly from one difference to the next (a slow mover, a star) the read noise
    largely cancels along a pixel's ramp, and the true SNR of a filter is higher
    than :func:`matched_filter_snr` says whenever read noise dominates.

    Parameters
    ----------
    signal_dn : ndarray, shape (K, N)
        Expected source charge (DN) in each of K differences of N pixels.
    background_dn : ndarray, broadcastable to (K, N)
        Expected non-source charge (DN).
    valid : ndarray of bool, broadcastable to (K, N)
        Differences that count; two differences are correlated only when both are
        valid and adjacent.
    read_noise_cds, gain : float or ndarray, broadcastable to (K, N)
        As in :func:`difference_variance`.

    Returns
    -------
    snr_optimal : float
        ``sqrt(sum_p s_p^T C_p^-1 s_p)``: the SNR of the ideal matched filter
        ``w = C^-1 s`` with the true covariance ``C``.
    snr_diagonal : float
        The true SNR ``w.s / sqrt(w^T C w)`` of the filter :func:`matched_filter_snr`
        assumes, ``w = s / var``.
    """
    s, valid, diag, off = _template_covariance(signal_dn, background_dn, valid, read_noise_cds, gain)
    shape = s.shape
    flat = s.reshape(shape[0], -1)
    x = solve(flat, diag.reshape(shape[0], -1), off.reshape(max(shape[0] - 1, 0), -1))
    snr_optimal = float(np.sqrt(max(np.sum(flat * x), 0.0)))

    w = np.where(valid, s / diag, 0.0)
    num = np.sum(w * s)
    den = np.sum(w * w * diag) + 2.0 * np.sum(w[1:] * w[:-1] * off)
    snr_diagonal = float(num / np.sqrt(den)) if den > 0 else 0.0
    return snr_optimal, snr_diagonal


def profiled_information(s, valid, basis, diag, off):
    """Per pixel ``s^T C^-1 s - (B^T C^-1 s)^T (B^T C^-1 B)^-1 (B^T C^-1 s)``.

    The information (squared SNR) a template ``s`` keeps once each pixel's
    coefficients of ``basis`` (its static level, and trends) are fitted too.

    Parameters
    ----------
    s : ndarray, shape (K, N)
        Template of K differences in N pixels.
    valid : ndarray of bool, shape (K, N)
    basis : ndarray, shape (K, B)
        Per-pixel nuisance time series (e.g. :func:`~.systematics.trend_basis`).
    diag, off : ndarray
        The covariance from :func:`difference_covariance`.

    Returns
    -------
    ndarray, shape (N,)
    """
    cs = solve(s, diag, off)
    b = basis[:, None, :] * valid[..., None]
    cb = np.stack([solve(b[..., j], diag, off) for j in range(b.shape[2])], axis=2)
    gram = np.einsum("kni,knj->nij", b, cb) + 1e-12 * np.eye(b.shape[2])
    bs = np.einsum("kni,kn->ni", b, cs)
    return np.sum(s * cs, axis=0) - np.einsum("ni,ni->n", bs, np.linalg.solve(gram, bs[..., None])[..., 0])


def matched_filter_snr_moving(signal_dn, background_dn, valid, read_noise_cds, gain):
    """Optimal SNR of what tells a mover from a static source: its changes in time.

    :func:`matched_filter_snr_correlated` with each pixel's constant level fitted
    too.  A star is a constant level; a source that moves less than its PSF
    during the integration is nearly one, and within one integration only this
    part of its signal shows it moves.  It bounds what any single-integration
    mover search can reach.

    Parameters
    ----------
    signal_dn, background_dn, valid, read_noise_cds, gain
        As in :func:`matched_filter_snr_correlated`.

    Returns
    -------
    float
    """
    s, valid, diag, off = _template_covariance(signal_dn, background_dn, valid, read_noise_cds, gain)
    k = s.shape[0]
    info = profiled_information(s.reshape(k, -1), valid.reshape(k, -1), np.ones((k, 1)),
                                diag.reshape(k, -1), off.reshape(max(k - 1, 0), -1))
    return float(np.sqrt(max(np.sum(info), 0.0)))


def _template_covariance(signal_dn, background_dn, valid, read_noise_cds, gain):
    """A template zeroed where invalid, its validity, and the covariance of its differences."""
    s = np.asarray(signal_dn, dtype=float)
    valid = np.broadcast_to(valid, s.shape)
    s = np.where(valid, s, 0.0)
    diag, off = difference_covariance(s + np.broadcast_to(background_dn, s.shape), valid,
                                      read_noise_cds, gain)
    return s, valid, diag, off
