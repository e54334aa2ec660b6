"""Group differences of one integration, their validity, and the per-pixel background.

Difference ``k`` is ``SCI[k+1] - SCI[k]`` and spans ``[k, k+1] * group_time`` (see
:mod:`jwst_asteroid_step.timebase`).  jwst's jump step flags group ``k+1`` when that
difference jumps, so JUMP_DET on group ``k+1`` labels difference ``k``.
"""

import warnings

import numba
import numpy as np
from scipy import ndimage
from stdatamodels.jwst.datamodels import dqflags

from .noise import difference_variance

__all__ = [
    "IntegrationDifferences",
    "group_differences",
    "jump_cells",
    "pixel_background",
    "pixel_mean_rate",
    "scene_background",
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
    if not sci.dtype.isnative or sci.dtype.kind != "f":
        sci = sci.astype(np.float32)
    diff = np.empty((sci.shape[0] - 1,) + sci.shape[1:], dtype=np.float32)
    _differences(sci, np.asarray(groupdq), (np.asarray(pixeldq) & _PIXEL_BAD) != 0, _GROUP_BAD, diff)
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
                    out[k, y, x] = sci[k + 1, y, x] - sci[k, y, x]


def jump_cells(jump):
    """Coordinates of the JUMP_DET differences.

    Parameters
    ----------
    jump : ndarray, bool, shape (ndiff, ny, nx)

    Returns
    -------
    ndarray, int32, shape (n, 3)
        Rows of ``(k, y, x)``.
    """
    return np.argwhere(jump).astype(np.int32)


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


def scene_background(median, n_valid, read_noise, gain, block=16, nsigma=3.0, grow_px=0,
                     grow_nsigma=50.0):
    """Background per difference: smooth sky where it fits, the pixel's own median elsewhere.

    A slow mover sits on its pixels for a good share of the ramp and pulls their
    median up, which the median then subtracts from the mover.  The sky, though, is
    smooth: where a pixel's median agrees with the local sky level (block medians,
    interpolated) within ``nsigma`` of the median's own noise, the sky level is
    used.  Stars, hot pixels and bright movers keep their own median.

    Parameters
    ----------
    median : ndarray, shape (ny, nx)
        Per-pixel median difference (DN), from :func:`pixel_background`.
    n_valid : ndarray, shape (ny, nx)
        Differences behind each median.
    read_noise, gain : float or ndarray
        Noise model parameters (CDS DN, e/DN).
    block : int
        Size (px) of the blocks whose medians trace the sky.
    nsigma : float
        Agreement required, in units of the per-pixel median's standard error.
    grow_px : int
        Pixels within this distance of a bright pixel (``grow_nsigma``) keep their
        own median too: a bright star's wings, each below ``nsigma``, add up to a
        static source that the sky level would leave in the residual.
    grow_nsigma : float
        Excess over the sky, in units of the median's standard error, that makes a
        pixel bright.  Well above what a moving source leaves in a median, so
        tracks do not grow.

    Returns
    -------
    background : ndarray, float32, shape (ny, nx)
        DN per difference; NaN where the pixel has no usable difference.
    own : ndarray, bool, shape (ny, nx)
        Pixels that keep their own median.
    """
    ny, nx = median.shape
    by, bx = -(-ny // block), -(-nx // block)
    padded = np.full((by * block, bx * block), np.nan, dtype=np.float32)
    padded[:ny, :nx] = median
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks under masks
        blocks = np.nanmedian(padded.reshape(by, block, bx, block), axis=(1, 3))
    fill = np.nanmedian(blocks) if np.isfinite(blocks).any() else 0.0
    blocks = np.where(np.isfinite(blocks), blocks, fill)
    sky = ndimage.zoom(blocks, (by * block / by, bx * block / bx), order=1, mode="nearest",
                       grid_mode=True)[:ny, :nx]
    sigma_median = 1.2533 * np.sqrt(difference_variance(sky, read_noise, gain) / np.maximum(n_valid, 1))
    with np.errstate(invalid="ignore"):
        excess = np.abs(median - sky) / sigma_median
        own = ~(excess <= nsigma)
        bright = excess > grow_nsigma
    if grow_px > 0 and bright.any():
        oy, ox = np.mgrid[-grow_px:grow_px + 1, -grow_px:grow_px + 1]
        own |= ndimage.binary_dilation(bright, structure=np.hypot(oy, ox) <= grow_px)
    background = np.where(own, median, sky).astype(np.float32)
    return background, own
