"""GROUPDQ as the search should see it: unreadable reads and shower storms set aside.

Pure array logic for the step: the input flags are never modified; a copy is made
only when something has to change.
"""

from dataclasses import dataclass, field

import numba
import numpy as np
from stdatamodels.jwst.datamodels import dqflags

__all__ = ["MAX_ABS_DN", "UsableFlags", "usable_groupdq"]

#: Reads beyond this (DN) are no detector value (16-bit ADC plus corrections): a
#: corrupt file.  Below it, float32 differences of two reads cannot overflow.
MAX_ABS_DN = 1e9

_GROUP_UNUSABLE = dqflags.group["DO_NOT_USE"] | dqflags.group["SATURATED"]
_PIXEL_UNUSABLE = dqflags.pixel["DO_NOT_USE"] | dqflags.pixel["REFERENCE_PIXEL"]
_JUMP_DET = dqflags.group["JUMP_DET"]
_DO_NOT_USE = dqflags.group["DO_NOT_USE"]


@dataclass
class UsableFlags:
    """Result of :func:`usable_groupdq`.

    Attributes
    ----------
    groupdq : ndarray
        The input GROUPDQ itself when nothing changed, else a changed copy.
    n_bad_reads : int
        Reads that were not finite or beyond :data:`MAX_ABS_DN`, now DO_NOT_USE.
    n_usable : int
        Usable group differences over all integrations.
    storms : list of (int, int, int)
        ``(integration index, JUMP_DET differences, usable differences)`` of each
        integration whose flags were set aside.
    """

    groupdq: np.ndarray
    n_bad_reads: int = 0
    n_usable: int = 0
    storms: list = field(default_factory=list)


def usable_groupdq(data, groupdq, pixeldq, max_jump_fraction):
    """Flags for the search: unreadable reads DO_NOT_USE, storm integrations unflagged.

    An integration in which more than ``max_jump_fraction`` of the usable
    differences are JUMP_DET (a shower storm, or a jump step run with a broken
    threshold) would cost time and memory growing with its events and fill the
    search with chance alignments: its JUMP_DET groups become DO_NOT_USE and lose
    the flag, so it is searched by the matched filter only.

    Parameters
    ----------
    data : ndarray, shape (nints, ngroups, ny, nx)
        SCI reads (DN).
    groupdq : ndarray of uint8, same shape
    pixeldq : ndarray, shape (ny, nx)
    max_jump_fraction : float

    Returns
    -------
    UsableFlags
    """
    out = UsableFlags(groupdq)
    copied = False
    pixel_ok = (pixeldq & _PIXEL_UNUSABLE) == 0
    for i in range(data.shape[0]):
        reads = data[i] if data.dtype.isnative else data[i].astype(data.dtype.newbyteorder("="))
        # One pass counts what the rare repairs below need; most integrations have none.
        n_bad, n_here, n_jump = _flag_counts(reads, groupdq[i], pixel_ok).sum(axis=0)
        if n_bad:
            if not copied:
                out.groupdq, copied = groupdq.copy(), True
            bad_read = ~(np.abs(data[i]) <= MAX_ABS_DN)  # NaN compares False
            out.groupdq[i][bad_read] |= _DO_NOT_USE
            out.n_bad_reads += int(n_bad)
        out.n_usable += int(n_here)
        if n_here and n_jump > max_jump_fraction * n_here:
            if not copied:
                out.groupdq, copied = groupdq.copy(), True
            flagged = (out.groupdq[i] & _JUMP_DET) != 0
            out.groupdq[i][flagged] &= ~np.uint8(_JUMP_DET)
            out.groupdq[i][flagged] |= _DO_NOT_USE
            out.storms.append((i, int(n_jump), int(n_here)))
    return out


@numba.njit(parallel=True, cache=True)
def _flag_counts(data, groupdq, pixel_ok):
    """Per row of one integration: unreadable reads, usable differences, and the JUMP_DET ones among them.

    A read is unusable when unreadable or flagged DO_NOT_USE or SATURATED; a
    difference is usable when both its reads and its pixel are.
    """
    n_groups, ny, nx = data.shape
    counts = np.zeros((ny, 3), dtype=np.int64)
    for y in numba.prange(ny):
        prev_good = np.zeros(nx, dtype=np.bool_)
        n_bad = n_usable = n_jump = 0
        for g in range(n_groups):
            for x in range(nx):
                bad = not (abs(data[g, y, x]) <= MAX_ABS_DN)
                dq = groupdq[g, y, x]
                good = not bad and (dq & _GROUP_UNUSABLE) == 0
                if g > 0 and good and prev_good[x] and pixel_ok[y, x]:
                    n_usable += 1
                    if dq & _JUMP_DET:
                        n_jump += 1
                n_bad += bad
                prev_good[x] = good
        counts[y, 0], counts[y, 1], counts[y, 2] = n_bad, n_usable, n_jump
    return counts
