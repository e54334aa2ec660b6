"""Straight tracks in (x, y, t) through the JUMP_DET cells of a mover candidate."""

from dataclasses import dataclass

import numpy as np

__all__ = ["Track", "fit_track", "offsets_from_line"]


def offsets_from_line(x0, y0, vx0, vy0, x, y, vx, vy):
    """Where a track lies relative to a line, whatever either one's timing.

    Parameters
    ----------
    x0, y0, vx0, vy0 : float
        A point of the line and its direction (any non-zero velocity).
    x, y, vx, vy : float
        A point of the track and its velocity.

    Returns
    -------
    across, along : float
        Offset of ``(x, y)`` from ``(x0, y0)`` across and along the line (px).
    cos_angle : float
        ``|cos|`` of the angle between the two directions, whichever the sense;
        0 for a track that does not move.
    """
    speed0, speed = np.hypot(vx0, vy0), np.hypot(vx, vy)
    ux, uy = vx0 / speed0, vy0 / speed0
    dx, dy = x - x0, y - y0
    cos_angle = abs(ux * vx + uy * vy) / speed if speed > 0 else 0.0
    return dx * uy - dy * ux, dx * ux + dy * uy, cos_angle


@dataclass
class Track:
    """A linear path ``p(t) = p_ref + v (t - t_ref)`` on the detector.

    Attributes
    ----------
    x, y : float
        Position (px) at ``t_ref``.
    vx, vy : float
        Velocity (px/s).
    t_ref : float
        Reference time (s since the integration's first read).
    t_first, t_last : float
        Time span (s) of the cells the track was fitted to.
    inliers : ndarray, bool
        Which of the input cells lie on the track.
    """

    x: float
    y: float
    vx: float
    vy: float
    t_ref: float
    t_first: float
    t_last: float
    inliers: np.ndarray

    @classmethod
    def from_search(cls, candidate, group_time):
        """Track of a matched-filter candidate (positions in px, velocity in px/group)."""
        t_ref = candidate.t_ref * group_time
        return cls(x=candidate.x, y=candidate.y, vx=candidate.vx / group_time,
                   vy=candidate.vy / group_time, t_ref=t_ref, t_first=0.0, t_last=2 * t_ref,
                   inliers=np.zeros(0, dtype=bool))

    def position(self, t):
        """Position (px) at time(s) ``t`` (s)."""
        dt = np.asarray(t) - self.t_ref
        return self.x + self.vx * dt, self.y + self.vy * dt


def fit_track(cells, weights, group_time, max_offset_px=2.5, n_iter=4):
    """Fit a straight track through cells, rejecting cells far from it.

    Each cell ``(k, y, x)`` stands for the source being near pixel ``(x, y)`` at
    the middle of difference ``k``; weighted least squares of position against time
    gives the path, and cells farther than ``max_offset_px`` from it (cosmic rays
    that touch the track) are dropped and the fit repeated.

    Parameters
    ----------
    cells : ndarray, int, shape (n, 3)
        ``(k, y, x)`` rows.
    weights : ndarray, shape (n,)
        Non-negative weight of each cell (e.g. its significance).
    group_time : float
        Seconds per group.
    max_offset_px : float
        Largest distance (px) of an inlier from the track.
    n_iter : int
        Rejection passes.

    Returns
    -------
    Track or None
        None when fewer than three distinct times remain.
    """
    t = (cells[:, 0] + 0.5) * group_time
    y = cells[:, 1].astype(float)
    x = cells[:, 2].astype(float)
    w = np.clip(np.asarray(weights, dtype=float), 1e-6, None)
    inl = np.ones(len(cells), dtype=bool)
    for i in range(n_iter + 1):
        if np.unique(t[inl]).size < 3:
            return None
        ww = w[inl]
        t_ref = np.sum(ww * t[inl]) / np.sum(ww)
        dt = t[inl] - t_ref
        sxx = np.sum(ww * dt * dt)
        vx = np.sum(ww * dt * x[inl]) / sxx
        vy = np.sum(ww * dt * y[inl]) / sxx
        x0 = np.sum(ww * x[inl]) / np.sum(ww)
        y0 = np.sum(ww * y[inl]) / np.sum(ww)
        if i == n_iter:
            break  # rejection passes used up: the fit above is that of the final inliers
        off = np.hypot(x - x0 - vx * (t - t_ref), y - y0 - vy * (t - t_ref))
        new = off <= max_offset_px
        if np.array_equal(new, inl):
            break
        inl = new
    if np.unique(t[inl]).size < 3:
        return None
    return Track(
        x=x0, y=y0, vx=vx, vy=vy, t_ref=t_ref,
        t_first=float(t[inl].min()), t_last=float(t[inl].max()), inliers=inl,
    )
