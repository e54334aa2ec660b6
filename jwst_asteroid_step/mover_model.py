"""Expected charge of a linearly moving point source in group differences.

Shared by the simulator (which renders movers with it) and the measurement (which
fits it), on the package's one PSF model and one time base.
"""

import numpy as np

__all__ = ["n_sub_samples", "mover_differences"]

#: Largest motion (px) between two sub-samples of one group interval.
MAX_SUB_STEP_PX = 0.2


def n_sub_samples(speed_px_per_s, interval_s, max_samples=512):
    """Number of time samples needed inside one interval for a smooth trail.

    Parameters
    ----------
    speed_px_per_s : float
        Apparent speed.
    interval_s : float
        Length of one group interval.
    max_samples : int
        Upper bound, for the fastest movers.

    Returns
    -------
    int
    """
    travel = abs(speed_px_per_s) * interval_s
    return int(np.clip(np.ceil(travel / MAX_SUB_STEP_PX) + 1, 1, max_samples))


def mover_differences(x_ref, y_ref, vx, vy, flux, t_ref, t0, t1, psf, x_grid, y_grid, n_sub=None):
    """Expected source charge (DN) per pixel in each group difference.

    Parameters
    ----------
    x_ref, y_ref : float
        Position (px) at ``t_ref``.
    vx, vy : float
        Velocity (px/s).
    flux : float
        Count rate (DN/s) of the whole source.
    t_ref : float
        Reference time (s since the integration's first read).
    t0, t1 : ndarray, shape (K,)
        Start and end of each group interval (s), see
        :func:`jwst_asteroid_step.timebase.difference_intervals`.
    psf : PSFModel
        The PSF.
    x_grid, y_grid : ndarray
        Pixel-centre coordinates of the box columns and rows.
    n_sub : int, optional
        Time samples per interval; by default from :func:`n_sub_samples`.

    Returns
    -------
    ndarray, shape (K, ny, nx)
        Expected DN collected from the source in each pixel and interval.
    """
    t0 = np.asarray(t0, dtype=float)
    t1 = np.asarray(t1, dtype=float)
    if n_sub is None:
        n_sub = n_sub_samples(np.hypot(vx, vy), float(np.max(t1 - t0)))
    # Mid-points of n_sub equal sub-intervals: exact for the time-average of a
    # linear path to second order in the sub-step.
    frac = (np.arange(n_sub) + 0.5) / n_sub
    t = t0[:, None] + (t1 - t0)[:, None] * frac[None, :]
    xs = x_ref + vx * (t - t_ref)
    ys = y_ref + vy * (t - t_ref)
    img = psf.render(xs, ys, x_grid, y_grid)
    return img * (flux * (t1 - t0))[:, None, None]
