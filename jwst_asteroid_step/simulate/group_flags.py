"""GROUPDQ flags that MIRI Stage 1 sets on whole groups: first/last frame and RSCD.

What jwst 3.0 does (``jwst/lastframe``, ``jwst/firstframe``, ``jwst/rscd``):

- ``lastframe`` sets DO_NOT_USE on the last group of every integration when
  ``ngroups > 2`` (the last read is pulled down by the reset that follows it).
- ``firstframe`` (deprecated in jwst 3.0, off by default; "flagging the first groups
  has been added to the RSCD step") set DO_NOT_USE on group 0 when ``ngroups > 3``.
- ``rscd`` flags the first ``N`` groups of an integration as DO_NOT_USE, where ``N``
  comes from the RSCD reference file's group-skip table for the readout pattern
  and subarray: ``group_skip1`` for integration 1 (which follows many resets, so
  usually 1, taking over from firstframe) and ``group_skip`` for integrations
  2 and later (which follow a single reset and carry the reset-switch charge decay,
  so more).  Then, per exposure: with ``ngroups <= 5`` both become 1; each is cut
  to ``max(0, ngroups - 3)`` when ``ngroups < N + 3``; nothing is flagged when
  ``ngroups < 3``.  Per pixel and integration, when group ``N + 1`` (0-based) is
  SATURATED (and group 0 is not), ``N`` is lowered until group ``N + 1`` is not
  saturated or ``N`` reaches 0, so a bright pixel keeps two usable groups where it
  can; such pixels get FLUX_ESTIMATED in PIXELDQ.

:func:`rscd_group_flags` reproduces that flagging on arrays; the reference-file
values are not available offline, so the caller chooses ``N``.
"""

import numpy as np
from stdatamodels.jwst.datamodels import dqflags

__all__ = ["edge_groups", "rscd_skip_counts", "rscd_group_flags", "valid_differences"]

_DO_NOT_USE = dqflags.group["DO_NOT_USE"]
_SATURATED = dqflags.group["SATURATED"]
_FLUX_ESTIMATED = dqflags.pixel["FLUX_ESTIMATED"]


def edge_groups(ngroups):
    """Indices of the first and last group, the ones ``flag_edges`` sets DO_NOT_USE."""
    return [0, ngroups - 1] if ngroups > 1 else [0]


def rscd_skip_counts(ngroups, nints, skip_int1, skip_int2p):
    """Groups the jwst 3.0 RSCD step flags at the start of each integration.

    Parameters
    ----------
    ngroups, nints : int
        Groups per integration and integrations.
    skip_int1, skip_int2p : int
        Reference-file ``group_skip1`` (integration 1) and ``group_skip``
        (integrations 2+).

    Returns
    -------
    ndarray of int, shape (nints,)
        Groups to flag per integration, before any saturation back-off.
    """
    if ngroups < 3:
        return np.zeros(nints, dtype=int)
    s1, s2 = int(skip_int1), int(skip_int2p)
    if s1 < 0:  # deprecated reference files: the step uses 1
        s1 = 1
    if ngroups <= 5:
        s1 = s2 = 1
    if ngroups < s1 + 3:
        s1 = max(0, ngroups - 3)
    if nints > 1 and ngroups < s2 + 3:
        s2 = max(0, ngroups - 3)
    counts = np.full(nints, s2, dtype=int)
    counts[0] = s1
    return counts


def rscd_group_flags(groupdq, pixeldq, skip_int1, skip_int2p):
    """Set the RSCD step's DO_NOT_USE flags on a ramp's GROUPDQ, in place.

    Parameters
    ----------
    groupdq : ndarray of uint8, shape (nints, ngroups, ny, nx)
        GROUPDQ with SATURATED already set; modified in place.
    pixeldq : ndarray of uint32, shape (ny, nx)
        PIXELDQ; FLUX_ESTIMATED is added where saturation lowered the count.
    skip_int1, skip_int2p : int
        As for :func:`rscd_skip_counts`.

    Returns
    -------
    ndarray of int, shape (nints,)
        The exposure-level counts used (before per-pixel back-off).
    """
    nints, ngroups = groupdq.shape[:2]
    counts = rscd_skip_counts(ngroups, nints, skip_int1, skip_int2p)
    backed_off = np.zeros(groupdq.shape[2:], dtype=bool)
    groups = np.arange(ngroups)
    for i in range(nints):
        n = int(counts[i])
        if n <= 0:
            continue
        sat = (groupdq[i] & _SATURATED) != 0
        # First saturated group of each pixel (ngroups if never); a pixel saturated
        # already in group 0 is left at n, as the step does.
        first_sat = np.where(sat.any(axis=0), np.argmax(sat, axis=0), ngroups)
        skip = np.where(first_sat == 0, n, np.clip(first_sat - 2, 0, n))
        backed_off |= skip < n
        groupdq[i][groups[:, None, None] < skip[None]] |= _DO_NOT_USE
    pixeldq[backed_off] |= _FLUX_ESTIMATED
    return counts


def valid_differences(ngroups, flag_edges=True, n_skip=0):
    """Group differences that touch no DO_NOT_USE group (exposure-level flags).

    Parameters
    ----------
    ngroups : int
        Groups in the integration.
    flag_edges : bool
        Whether the first and last groups are DO_NOT_USE.
    n_skip : int
        Leading groups flagged by RSCD.

    Returns
    -------
    ndarray of bool, shape (ngroups - 1,)
    """
    bad = np.zeros(ngroups, dtype=bool)
    if flag_edges:
        bad[edge_groups(ngroups)] = True
    bad[: max(int(n_skip), 0)] = True
    return ~(bad[1:] | bad[:-1])
