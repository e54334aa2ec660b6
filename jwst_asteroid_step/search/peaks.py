"""Local maxima of a statistic's map, for the searches' candidates."""

import numba
import numpy as np

__all__ = ["local_maxima"]


@numba.njit(cache=True)
def local_maxima(snr, ys, xs, half):
    """Whether each ``snr[ys, xs]`` is the maximum of its ``2 half + 1`` square (cut at the edges).

    Only the pixels above a threshold are looked at: a maximum filter of the
    whole map would cost more than the scan of the slowest classes.
    """
    ny, nx = snr.shape
    keep = np.ones(ys.size, dtype=np.bool_)
    for i in range(ys.size):
        y, x = ys[i], xs[i]
        v = snr[y, x]
        for yy in range(max(0, y - half), min(ny, y + half + 1)):
            for xx in range(max(0, x - half), min(nx, x + half + 1)):
                if snr[yy, xx] > v:
                    keep[i] = False
                    break
            if not keep[i]:
                break
    return keep
