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

__all__ = ["difference_variance", "matched_filter_snr"]


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
