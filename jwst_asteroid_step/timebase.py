"""The one time base of the package (DESIGN.md §4).

``t_int`` is seconds since the first read of an integration: read ``k`` (0-based)
happens at ``k * group_time``, so group difference ``k`` (reads ``k`` to ``k+1``)
collects charge over ``[k, k + 1] * group_time``.  ``mjd`` is the UTC MJD of the same
instant.
"""

import numpy as np

__all__ = ["difference_intervals", "integration_offsets", "integration_start_mjd", "t_int_to_mjd"]

_SECONDS_PER_DAY = 86400.0


def difference_intervals(n_groups, group_time):
    """Start and end times (s) of each group difference.

    Parameters
    ----------
    n_groups : int
        Number of groups (reads) in the integration.
    group_time : float
        Seconds between reads.

    Returns
    -------
    t0, t1 : ndarray, shape (n_groups - 1,)
    """
    k = np.arange(n_groups - 1, dtype=float)
    return k * group_time, (k + 1.0) * group_time


def integration_start_mjd(integration, exposure_start_mjd, integration_period, int_times=None):
    """UTC MJD of the first read of an integration.

    Parameters
    ----------
    integration : int
        1-based integration number.
    exposure_start_mjd : float or None
        ``meta.exposure.start_time`` (UTC MJD).
    integration_period : float
        Seconds from one integration's start to the next, used when there is no
        INT_TIMES row for the integration.
    int_times : structured ndarray, optional
        The INT_TIMES table; its ``int_start_MJD_UTC`` column wins when it has a row
        for this integration.

    Returns
    -------
    float
        MJD, or NaN if no start time is known.
    """
    if int_times is not None and len(int_times) > 0:
        names = int_times.dtype.names or ()
        if "int_start_MJD_UTC" in names and "integration_number" in names:
            rows = np.flatnonzero(np.asarray(int_times["integration_number"]) == integration)
            if rows.size:
                value = float(int_times["int_start_MJD_UTC"][rows[0]])
                if np.isfinite(value) and value > 0:
                    return value
    if exposure_start_mjd is None or not np.isfinite(exposure_start_mjd):
        return float("nan")
    return float(exposure_start_mjd) + (integration - 1) * integration_period / _SECONDS_PER_DAY


def t_int_to_mjd(t_int, start_mjd):
    """Convert seconds since the integration's first read to UTC MJD."""
    return start_mjd + np.asarray(t_int) / _SECONDS_PER_DAY


def integration_offsets(nints, integration_period, int_times=None):
    """Seconds from the first read of the exposure to the first read of each integration.

    The INT_TIMES table's start times win when it has a finite row for every
    integration; otherwise integration ``i`` starts ``i * integration_period`` after
    the first.

    Parameters
    ----------
    nints : int
        Integrations in the exposure (or segment).
    integration_period : float
        Seconds from one integration's start to the next.
    int_times : structured ndarray, optional
        The INT_TIMES table.

    Returns
    -------
    ndarray, shape (nints,)
    """
    nominal = np.arange(nints, dtype=float) * float(integration_period)
    if int_times is None or len(int_times) < nints:
        return nominal
    names = int_times.dtype.names or ()
    if "int_start_MJD_UTC" not in names:
        return nominal
    mjd = np.asarray(int_times["int_start_MJD_UTC"][:nints], dtype=float)
    if not np.all(np.isfinite(mjd) & (mjd > 0)):
        return nominal
    return (mjd - mjd[0]) * _SECONDS_PER_DAY
