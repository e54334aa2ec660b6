"""Group differences of one integration, their validity, and the per-pixel background.

Difference ``k`` is ``SCI[k+1] - SCI[k]`` and spans ``[k, k+1] * group_time`` (see
:mod:`jwst_asteroid_step.timebase`).  jwst's jump step flags group ``k+1`` when that
difference jumps, so JUMP_DET on group ``k+1`` labels difference ``k``.
"""


import numba
import numpy as np
from stdatamodels.jwst.datamodels import dqflags


__all__ = [
    "IntegrationDifferences",
    "group_differences",
    "jump_cells",
    "pixel_background",
    "pixel_mean_rate",
    "usable_counts",
]

_GROUP_BAD = dqflags.group["DO_NOT_USE"] | dqflags.group["SATURATED"]
_PIXEL_BAD = dqflags.pixel["DO_NOT_USE"] | dqflags.pixel["REFERENCE_PIXEL"]
JUMP_DET = dqflags.group["JUMP_DET"]


class IntegrationDifferences:
    """Group differences of one integration with the masks the search needs.

    Parameters
    ----------
    sci : ndarray, shape (ngroups, ny, nx)
        Ramp (DN) of one integration.
    groupdq : ndarray, shape (ngroups, ny, nx)
        GROUPDQ of the same integration.
    pixeldq : ndarray, shape (ny, nx)
        PIXELDQ.

    Attributes
    ----------
    diff : ndarray, float32, shape (ngroups - 1, ny, nx)
        Group differences (DN); NaN where unusable.
    jump : ndarray, bool, shape (ngroups - 1, ny, nx)
        Differences flagged JUMP_DET by the jump step.
    """

    def __init__(self, sci, groupdq, pixeldq):
        self.diff = group_differences(sci, groupdq, pixeldq)
        self.jump = (groupdq[1:] & JUMP_DET) != 0
        self.jump &= np.isfinite(self.diff)

    @property
    def n_diffs(self):
        """Number of differences per pixel."""
        return self.diff.shape[0]


def group_differences(sci, groupdq, pixeldq):
    """Differences of successive reads, NaN where either read is unusable.

    A difference is unusable when either of its groups is DO_NOT_USE or SATURATED,
    when the pixel is DO_NOT_USE or a reference pixel, or when a read is not finite.

    Parameters
    ----------
    sci : ndarray, shape (ngroups, ny, nx)
    groupdq : ndarray, shape (ngroups, ny, nx)
    pixeldq : ndarray, shape (ny, nx)

    Returns
    -------
    ndarray, float32, shape (ngroups - 1, ny, nx)
    """
    sci = np.asarray(sci)
    groupdq = np.asarray(groupdq)
    bad_pixel = (np.asarray(pixeldq) & _PIXEL_BAD) != 0
    diff = np.empty((sci.shape[0] - 1,) + sci.shape[1:], dtype=np.float32)
    # FITS data arrive big-endian; convert a block of rows at a time rather
    # than copying the whole cube.
    if sci.dtype.isnative and sci.dtype.kind == "f":
        _differences(sci, groupdq, bad_pixel, _GROUP_BAD, diff)
        return diff
    for y0 in range(0, sci.shape[1], 64):
        rows = slice(y0, y0 + 64)
        _differences(sci[:, rows].astype(np.float32), groupdq[:, rows], bad_pixel[rows], _GROUP_BAD,
                     diff[:, rows])
    return diff


@numba.njit(parallel=True, cache=True)
def _differences(sci, groupdq, bad_pixel, group_bad, out):
    n_k, ny, nx = out.shape
    for y in numba.prange(ny):
        for k in range(n_k):
            for x in range(nx):
                if bad_pixel[y, x] or (groupdq[k, y, x] & group_bad) or (groupdq[k + 1, y, x] & group_bad):
                    out[k, y, x] = np.nan
                else:
                    d = sci[k + 1, y, x] - sci[k, y, x]
                    out[k, y, x] = d if np.isfinite(d) else np.nan


def jump_cells(jump):
    """Coordinates of the JUMP_DET differences.

    Parameters
    ----------
    jump : ndarray, bool, shape (ndiff, ny, nx)

    Returns
    -------
    ndarray, int32, shape (n, 3)
        Rows of ``(k, y, x)``, in C order as ``np.argwhere`` gives them.
    """
    per_diff = _count_true(jump)
    cells = np.empty((int(per_diff.sum()), 3), dtype=np.int32)
    _true_cells(jump, np.cumsum(per_diff) - per_diff, cells)
    return cells


@numba.njit(parallel=True, cache=True)
def _count_true(jump):
    n = np.zeros(jump.shape[0], dtype=np.int64)
    for k in numba.prange(jump.shape[0]):
        n[k] = np.count_nonzero(jump[k])
    return n


@numba.njit(parallel=True, cache=True)
def _true_cells(jump, first, cells):
    # A sparse cube (a few JUMP_DET cells in a thousand): a difference per task.
    n_k, ny, nx = jump.shape
    for k in numba.prange(n_k):
        j = first[k]
        for y in range(ny):
            for x in range(nx):
                if jump[k, y, x]:
                    cells[j, 0], cells[j, 1], cells[j, 2] = k, y, x
                    j += 1


@numba.njit(parallel=True, cache=True)
def _masked_median(diff, exclude, out_med, out_n):
    nk, ny, nx = diff.shape
    for y in numba.prange(ny):
        buf = np.empty(nk, dtype=np.float32)
        for x in range(nx):
            n = 0
            for k in range(nk):
                v = diff[k, y, x]
                if not exclude[k, y, x] and v == v:
                    buf[n] = v
                    n += 1
            out_n[y, x] = n
            out_med[y, x] = np.median(buf[:n]) if n > 0 else np.nan


@numba.njit(parallel=True, cache=True)
def _masked_mean(diff, exclude, out):
    nk, ny, nx = diff.shape
    for y in numba.prange(ny):
        for x in range(nx):
            total = 0.0
            n = 0
            for k in range(nk):
                v = diff[k, y, x]
                if not exclude[k, y, x] and v == v:
                    total += v
                    n += 1
            out[y, x] = total / n if n > 0 else np.nan


def pixel_mean_rate(diff, exclude):
    """Mean usable difference of each pixel (DN per group); NaN where none is usable.

    The static scene's shot noise is all the detector needs it for, so the mean
    (ten times faster than the median on a full frame) serves.

    Parameters
    ----------
    diff : ndarray, float32, shape (ndiff, ny, nx)
    exclude : ndarray, bool, shape (ndiff, ny, nx)

    Returns
    -------
    ndarray, float32, shape (ny, nx)
    """
    out = np.empty(diff.shape[1:], dtype=np.float32)
    _masked_mean(np.ascontiguousarray(diff, dtype=np.float32), np.ascontiguousarray(exclude), out)
    return out


def pixel_background(diff, exclude=None):
    """Robust per-pixel rate of the non-moving scene: the median difference.

    The median ignores the few differences a cosmic ray or a passing mover
    brightens, as long as they are fewer than half of the pixel's differences.

    Parameters
    ----------
    diff : ndarray, float32, shape (ndiff, ny, nx)
        Differences, NaN where unusable.
    exclude : ndarray, bool, optional
        Extra differences to leave out (e.g. JUMP_DET cells).

    Returns
    -------
    median : ndarray, float32, shape (ny, nx)
        Median difference (DN per group); NaN for pixels with no usable difference.
    n_valid : ndarray, int32, shape (ny, nx)
        Number of differences used.
    """
    if exclude is None:
        exclude = np.zeros(diff.shape, dtype=np.bool_)
    med = np.empty(diff.shape[1:], dtype=np.float32)
    n = np.empty(diff.shape[1:], dtype=np.int32)
    _masked_median(np.ascontiguousarray(diff, dtype=np.float32), np.ascontiguousarray(exclude), med, n)
    return med, n


@numba.njit(parallel=True, cache=True)
def _usable_counts(diff, exclude, per_pixel, per_row_diff):
    n_k, ny, nx = diff.shape
    for y in numba.prange(ny):
        for k in range(n_k):
            n = 0
            for x in range(nx):
                if diff[k, y, x] == diff[k, y, x] and not exclude[k, y, x]:
                    per_pixel[y, x] += 1
                    n += 1
            per_row_diff[y, k] = n


def usable_counts(diff, exclude):
    """Usable differences of each pixel, and usable pixels of each difference.

    A difference is usable where it is finite and not excluded.  One pass, no
    cube of flags beside the differences.

    Parameters
    ----------
    diff : ndarray, shape (ndiff, ny, nx)
    exclude : ndarray, bool, shape (ndiff, ny, nx)

    Returns
    -------
    per_pixel : ndarray, int32, shape (ny, nx)
    per_diff : ndarray, int64, shape (ndiff,)
    """
    n_k, ny, nx = diff.shape
    per_pixel = np.zeros((ny, nx), dtype=np.int32)
    per_row_diff = np.zeros((ny, n_k), dtype=np.int64)
    _usable_counts(diff, exclude, per_pixel, per_row_diff)
    return per_pixel, per_row_diff.sum(axis=0)
