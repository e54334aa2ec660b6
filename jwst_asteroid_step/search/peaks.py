"""Local maxima of a statistic's map, for the searches' candidates, and their sub-pixel vertices."""

import numba
import numpy as np

__all__ = ["local_maxima", "parabola_vertex"]


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


def parabola_vertex(values):
    """Sub-pixel offset of a parabola's peak through three samples (0 at an edge), within +-0.5."""
    if values.size != 3:
        return 0.0
    curvature = values[0] - 2.0 * values[1] + values[2]
    return float(np.clip(0.5 * (values[0] - values[2]) / curvature, -0.5, 0.5)) if curvature < 0 else 0.0
