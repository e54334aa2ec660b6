"""Showers the jump flags missed: large, faint areas at one instant, and their afterglow.

A MIRI cosmic-ray shower deposits a few DN, about the read noise, over hundreds of
pixels at one instant, then leaks more charge over the following groups.  Pixel by
pixel it rarely passes the jump step's threshold (unless the jump step's own shower
search ran), yet summed along a track its area and its afterglow look like a faint
source that appears, or fades, during the ramp: a false mover.  Averaged over a
box much larger than the PSF it stands out clearly, while a point source, clipped
pixel by pixel first, cannot, unless its PSF is wide: a bright mover at F2100W. A shower
starts at one instant, from quiet, while a mover's light goes on from difference to
difference: only onsets are showers. Movers the jump flags traced are also named to it, and
areas on them are not showers, their first difference included.
"""

import numba
import numpy as np
from scipy import ndimage

__all__ = ["find_showers"]

#: Fewest independent boxes over the array for the box averages' spread to be the sky's.
_MIN_BOXES = 50


def find_showers(diff, exclude, background, sigma, group_time, box=16, clip=3.0, threshold=6.0,
                 source_sigma=10.0, mask_time=20.0, sources=None, source_groups=5, onset_ratio=0.5,
                 onset_groups=2):
    """Showers that the jump flags missed, with their afterglow.

    Parameters
    ----------
    diff : ndarray, shape (ndiff, ny, nx)
        Group differences (DN), NaN where unusable.
    exclude : ndarray, bool, shape (ndiff, ny, nx)
        Cells already set aside (they count as zero).
    background : ndarray, shape (ny, nx)
        Each pixel's static difference level (DN).
    sigma : ndarray, shape (ny, nx)
        Noise of one difference (DN).
    group_time : float
        Seconds per group.
    box : int
        Side (px, even) of the averaging box; a shower covers 100-1000 pixels.
    clip : float
        Per-pixel residuals are clipped at ``±clip`` sigma before averaging, so a
        star, a mover or a cosmic-ray remnant adds at most a few pixels' worth.
    threshold : float
        Box-averaged significance, in units of its robust spread over the frame,
        above which a difference's area is a shower.
    source_sigma : float
        An area holding a pixel this many sigma above its level is a bright
        source's wings, not a shower (whose charge is about the read noise).
    mask_time : float
        Seconds after the shower (and the shower's difference itself) masked, for
        the leaked charge; jwst's ``time_masked_after_shower`` plays the same role.
    sources : ndarray, int, shape (n, 3), optional
        ``(k, y, x)`` cells of known movers (the jump flags' tracks). An area within a
        quarter box of one is that mover's light: at F2100W a bright mover's PSF spreads
        it below ``source_sigma`` in every pixel while its box average passes
        ``threshold``, and masking it took two thirds of the cells along its path from
        its fit.
    source_groups : int
        Differences either side of an area's within which a mover's cells count.
    onset_ratio : float
        A shower starts at one instant: an area is one only where, within ``edge`` bins
        of it, the box averages of the ``onset_groups`` differences before it stayed below
        ``onset_ratio * threshold``.  A bright mover's box average, steady about the
        threshold from difference to difference, is light going on, not a new shower.
    onset_groups : int
        Differences before an area that must be quiet.

    Returns
    -------
    areas : list of (int, int, ndarray of bool, shape (ny, nx))
        ``(k_first, k_stop, area)``: set ``area`` aside in differences
        ``k_first:k_stop`` (a list, not a cube: it costs no memory of the ramp's size).
    n_showers : int
        Showers found (connected areas, counted in the difference they start in).
    """
    n_k, ny, nx = diff.shape
    areas = []
    if (ny // box) * (nx // box) < _MIN_BOXES:
        # Too few independent boxes to measure the sky's own spread: SUB64 and
        # smaller, where one bright source sets it.
        return areas, 0
    n_after = int(np.ceil(mask_time / group_time))
    # Work on 2 x 2 bins: a shower is far larger, and it is four times cheaper.
    hy, hx = ny // 2, nx // 2
    half_box = box // 2
    edge = half_box // 2
    binned = np.empty((hy, hx), dtype=np.float32)
    peak = np.empty((hy, hx), dtype=np.float32)
    inv_sigma = (1.0 / sigma).astype(np.float32)
    background = np.asarray(background, dtype=np.float32)
    n_showers = 0
    # The movers' cells on the 2 x 2 bins.
    known = None
    if sources is not None and len(sources):
        known = np.asarray(sources, dtype=np.intp) // np.array([1, 2, 2])
        known = known[(known[:, 1] < hy) & (known[:, 2] < hx)]
    previous = []  # the warm maps of the last onset_groups differences
    for k in range(n_k):
        _clipped_bins(diff[k], exclude[k], background, inv_sigma, np.float32(clip), binned, peak)
        smooth = ndimage.uniform_filter(binned, half_box, mode="constant")
        sample = smooth[edge:hy - edge:2, edge:hx - edge:2]
        centre = np.median(sample)
        spread = 1.4826 * np.median(np.abs(sample - centre))
        if not spread > 0:
            continue
        hot = smooth > centre + threshold * spread
        warm = smooth > centre + onset_ratio * threshold * spread
        before, previous = previous, [warm, *previous[:onset_groups - 1]]
        if not hot.any():
            continue
        labels, n = ndimage.label(hot)
        if before:
            # Light that was there already is a source's (a mover a few px a group stays
            # within ``edge`` bins, its box average about the threshold), or an afterglow
            # set aside with its onset.
            going_on = ndimage.binary_dilation(np.logical_or.reduce(before), iterations=edge)
            hot &= ~np.isin(labels, labels[going_on & hot])
        # Brightest pixel within the box of any part of the area: a box touching
        # a bright source's core is raised by its wings.
        near_peak = ndimage.maximum_filter(peak, size=half_box + 1, mode="constant", cval=-np.inf)
        bright = np.asarray(ndimage.maximum(near_peak, labels, np.arange(1, n + 1))) > source_sigma
        hot &= ~np.isin(labels, np.flatnonzero(bright) + 1)
        near = known[np.abs(known[:, 0] - k) <= source_groups] if known is not None else ()
        if len(near):
            # Within the reach of the box average: a hot area peaks a bin or two off the
            # mover's flagged cells, which lie on the leading edge of its light.
            movers = np.zeros((hy, hx), dtype=bool)
            movers[near[:, 1], near[:, 2]] = True
            movers = ndimage.binary_dilation(movers, iterations=edge)
            hot &= ~np.isin(labels, labels[movers & hot])
        if not hot.any():
            continue
        # The box average reaches ~half a box beyond the shower's rim.
        area = ndimage.binary_dilation(hot, iterations=edge)
        full = np.zeros((ny, nx), dtype=bool)
        full[:2 * hy, :2 * hx] = np.repeat(np.repeat(area, 2, axis=0), 2, axis=1)
        # Areas still masked as an earlier shower's afterglow are not new showers.
        earlier = np.zeros((ny, nx), dtype=bool)
        for k_first, k_stop, a in areas:
            if k_first < k < k_stop:
                earlier |= a
        n_showers += ndimage.label(full & ~earlier)[1]
        areas.append((k, min(n_k, k + 1 + n_after), full))
    return areas, int(n_showers)


@numba.njit(parallel=True, cache=True)
def _clipped_bins(diff, exclude, background, inv_sigma, clip, out, peak):
    """Per 2 x 2 bin: the mean clipped residual ``(diff - background) / sigma`` (0 where
    unusable) into ``out``, its largest unclipped value into ``peak``."""
    hy, hx = out.shape
    for j in numba.prange(hy):
        for i in range(hx):
            acc = 0.0
            top = -np.inf
            for y in range(2 * j, 2 * j + 2):
                for x in range(2 * i, 2 * i + 2):
                    v = diff[y, x]
                    if v == v and not exclude[y, x]:
                        r = (v - background[y, x]) * inv_sigma[y, x]
                        acc += min(max(r, -clip), clip)
                        top = max(top, r)
            out[j, i] = 0.25 * acc
            peak[j, i] = top
