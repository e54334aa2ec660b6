"""The one noise model of the package, for single group differences.

A group difference ``d = R[k+1] - R[k]`` in DN has variance

    var = rn_cds**2 + max(S, 0) / gain

where ``rn_cds`` is the correlated-double-sample read noise (DN; the quantity the
CRDS READNOISE reference file holds, and what stcal's jump step uses for a
one-frame-per-group readout) and ``S`` is the expected charge collected in the
interval (DN: background, stars, and the source itself).  The simulator draws
noise from this model and the detector weights by it.
"""

import numpy as np

__all__ = ["difference_variance", "matched_filter_snr", "matched_filter_snr_correlated"]


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


def matched_filter_snr_correlated(signal_dn, background_dn, valid, read_noise_cds, gain):
    """Matched-filter SNR with the read-noise correlation of adjacent differences.

    Read noise is drawn per read (``read_noise_cds / sqrt(2)`` each), so two
    adjacent differences of a pixel share a read and have covariance
    ``-read_noise_cds**2 / 2``; :func:`matched_filter_snr` ignores that.  For a
    template that changes slowly from one difference to the next (a slow mover,
    a star) the read noise largely cancels along a pixel's ramp, and the true SNR
    of a filter is higher than :func:`matched_filter_snr` says whenever read noise
    dominates the variance.  Pixels are independent; each pixel's covariance over
    its valid differences is tridiagonal.

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
    s = np.asarray(signal_dn, dtype=float)
    shape = s.shape
    valid = np.broadcast_to(valid, shape)
    s = np.where(valid, s, 0.0)
    rn2 = np.broadcast_to(np.asarray(read_noise_cds, dtype=float) ** 2, shape)
    diag = difference_variance(s + np.broadcast_to(background_dn, shape), read_noise_cds, gain)
    diag = np.where(valid, np.maximum(np.broadcast_to(diag, shape), 1e-30), 1.0)
    both = valid[1:] & valid[:-1]
    off = np.where(both, -0.5 * 0.5 * (rn2[1:] + rn2[:-1]), 0.0)

    # Thomas algorithm along the difference axis, vectorised over pixels.
    n_k = shape[0]
    c_prime = np.zeros_like(s)
    d_prime = np.zeros_like(s)
    m = diag[0]
    d_prime[0] = s[0] / m
    if n_k > 1:
        c_prime[0] = off[0] / m
    for k in range(1, n_k):
        m = diag[k] - off[k - 1] * c_prime[k - 1]
        if k < n_k - 1:
            c_prime[k] = off[k] / m
        d_prime[k] = (s[k] - off[k - 1] * d_prime[k - 1]) / m
    x = np.empty_like(s)
    x[-1] = d_prime[-1]
    for k in range(n_k - 2, -1, -1):
        x[k] = d_prime[k] - c_prime[k] * x[k + 1]
    snr_optimal = float(np.sqrt(max(np.sum(s * x), 0.0)))

    w = np.where(valid, s / diag, 0.0)
    num = np.sum(w * s)
    den = np.sum(w * w * diag) + 2.0 * np.sum(w[1:] * w[:-1] * off)
    snr_diagonal = float(num / np.sqrt(den)) if den > 0 else 0.0
    return snr_optimal, snr_diagonal
