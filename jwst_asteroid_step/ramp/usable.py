"""GROUPDQ as the search should see it: unreadable reads and shower storms set aside.

Pure array logic for the step: the input flags are never modified; a copy is made
only when something has to change.
"""

from dataclasses import dataclass, field

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
        bad_read = ~(np.abs(data[i]) <= MAX_ABS_DN)  # NaN compares False
        if bad_read.any():
            if not copied:
                out.groupdq, copied = groupdq.copy(), True
            out.groupdq[i][bad_read] |= _DO_NOT_USE
            out.n_bad_reads += int(bad_read.sum())
        good = (out.groupdq[i] & _GROUP_UNUSABLE) == 0
        usable = good[1:] & good[:-1] & pixel_ok
        n_here = int(usable.sum())
        out.n_usable += n_here
        n_jump = int(np.count_nonzero(((out.groupdq[i][1:] & _JUMP_DET) != 0) & usable))
        if n_here and n_jump > max_jump_fraction * n_here:
            if not copied:
                out.groupdq, copied = groupdq.copy(), True
            flagged = (out.groupdq[i] & _JUMP_DET) != 0
            out.groupdq[i][flagged] &= ~np.uint8(_JUMP_DET)
            out.groupdq[i][flagged] |= _DO_NOT_USE
            out.storms.append((i, n_jump, n_here))
    return out
