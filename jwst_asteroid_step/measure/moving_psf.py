"""Fit a moving, pixel-integrated PSF to the group differences of one integration.

The model of difference ``k`` in pixel ``p`` is the source's expected charge from
:mod:`jwst_asteroid_step.mover_model` (the package's PSF and time base); the
weights come from :mod:`jwst_asteroid_step.ramp.noise`.  Only pixels near the path
during each difference enter the fit, so the cost scales with the track length,
not with the frame.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from ..mover_model import n_sub_samples
from ..ramp.noise import difference_variance

__all__ = ["MovingFit", "fit_moving_psf"]


@dataclass
class MovingFit:
    """Result of a moving-PSF fit.

    Attributes
    ----------
    x, y : float
        Position (px) at ``t_ref``.
    vx, vy : float
        Velocity (px/s).
    flux : float
        Count rate (DN/s).
    t_ref : float
        Reference time (s since the integration's first read), chosen so that the
        position and velocity errors are uncorrelated.
    cov : ndarray, shape (5, 5)
        Covariance of ``(x, y, vx, vy, flux)``.
    chi2_dof : float
        Reduced chi-square.
    snr : float
        Matched-filter SNR of the fitted model, ``sqrt(sum(m**2 / var))``.
    consistency : float
        Median over differences of the flux seen in that difference relative to
        the fit; about 1 for a steady mover, near 0 when a few instants dominate
        (cosmic rays lined up by chance).
    n_groups : int
        Differences in which the source is well on the detector (expected
        per-difference SNR**2 above 30 % of its maximum).
    n_cells : int
        Pixel-differences in the fit.
    success : bool
        Whether the optimiser converged.
    """

    x: float
    y: float
    vx: float
    vy: float
    flux: float
    t_ref: float
    cov: np.ndarray
    chi2_dof: float
    snr: float
    consistency: float
    n_groups: int
    n_cells: int
    success: bool

    @property
    def errors(self):
        """One-sigma errors of ``(x, y, vx, vy, flux)``."""
        return np.sqrt(np.clip(np.diag(self.cov), 0, None))


class _Cells:
    """The pixel-differences near a path, flattened for fast model evaluation."""

    def __init__(self, diff, exclude, background, own, var0, group_time, psf, x, y, vx, vy, t_ref,
                 margin):
        nk, ny, nx = diff.shape
        core_sigma = psf.components[0][1]
        travel = np.hypot(vx, vy) * group_time
        half = int(np.ceil(2.5 * core_sigma + travel / 2 + margin))
        ks, ys, xs = [], [], []
        for k in range(nk):
            tm = (k + 0.5) * group_time
            cx = int(round(x + vx * (tm - t_ref)))
            cy = int(round(y + vy * (tm - t_ref)))
            x0, x1 = max(cx - half, 0), min(cx + half + 1, nx)
            y0, y1 = max(cy - half, 0), min(cy + half + 1, ny)
            if x0 >= x1 or y0 >= y1:
                continue
            gy, gx = np.mgrid[y0:y1, x0:x1]
            ks.append(np.full(gx.size, k))
            ys.append(gy.ravel())
            xs.append(gx.ravel())
        if ks:
            k = np.concatenate(ks)
            yy = np.concatenate(ys)
            xx = np.concatenate(xs)
        else:
            k = yy = xx = np.zeros(0, dtype=int)
        local_bg = _off_track_background(diff, exclude, background, own, yy, xx, group_time,
                                         x, y, vx, vy, t_ref, exclusion=half)
        d = diff[k, yy, xx].astype(float) - local_bg
        ok = np.isfinite(d) & ~exclude[k, yy, xx] & np.isfinite(var0[yy, xx])
        self.k, self.y, self.x = k[ok], yy[ok].astype(float), xx[ok].astype(float)
        self.data = d[ok]
        self.var0 = var0[yy[ok], xx[ok]].astype(float)
        self.group_time = group_time
        self.psf = psf
        self.n_sub = n_sub_samples(1.5 * np.hypot(vx, vy) + 1e-3, group_time)
        frac = (np.arange(self.n_sub) + 0.5) / self.n_sub
        self.t = (self.k[:, None] + frac[None, :]) * group_time

    def model(self, p, t_ref):
        x, y, vx, vy, flux = p
        dt = self.t - t_ref
        f = self.psf.pixel_fraction(self.x[:, None] - (x + vx * dt), self.y[:, None] - (y + vy * dt))
        return flux * self.group_time * f.mean(axis=1)


def _off_track_background(diff, exclude, background, own, yy, xx, group_time, x, y, vx, vy, t_ref,
                          exclusion, min_diffs=5):
    """Per-cell background; pixels with their own median re-measure it off the track.

    Where the background is the pixel's own median (``own``: stars, or a bright
    source's track), that median still holds source flux (the PSF wings, or the
    core for a large share of the ramp); the median of the differences during which
    the source was farther than ``exclusion`` pixels does not.  Pixels with fewer
    than ``min_diffs`` such differences, and sky pixels, keep ``background``.
    """
    pix, inverse = np.unique(yy * diff.shape[2] + xx, return_inverse=True)
    py, px = np.divmod(pix, diff.shape[2])
    tm = (np.arange(diff.shape[0]) + 0.5) * group_time
    sx = x + vx * (tm - t_ref)
    sy = y + vy * (tm - t_ref)
    away = np.maximum(np.abs(px[None] - sx[:, None]), np.abs(py[None] - sy[:, None])) > exclusion
    col = diff[:, py, px].astype(float)
    col[~away | exclude[:, py, px]] = np.nan
    enough = (np.sum(np.isfinite(col), axis=0) >= min_diffs) & own[py, px]
    local = np.asarray(background, dtype=float)[py, px].copy()
    if enough.any():
        local[enough] = np.nanmedian(col[:, enough], axis=0)
    return local[inverse]


def fit_moving_psf(diff, exclude, background, own, read_noise, gain, group_time, psf, guess, margin=2):
    """Least-squares fit of a moving PSF to group differences.

    Parameters
    ----------
    diff : ndarray, shape (ndiff, ny, nx)
        Group differences (DN); NaN where unusable.
    exclude : ndarray, bool, shape (ndiff, ny, nx)
        Cells to leave out (cosmic rays, showers).
    background : ndarray, shape (ny, nx)
        Background per difference (DN), from
        :func:`~jwst_asteroid_step.ramp.differences.scene_background`.
    own : ndarray, bool, shape (ny, nx)
        Pixels whose background is their own median; near the track these are
        re-measured from differences taken while the source was away.
    read_noise, gain : float or ndarray (ny, nx)
        CDS read noise (DN) and gain (e/DN).
    group_time : float
        Seconds per group.
    psf : PSFModel
        The PSF.
    guess : Track
        Starting path; its ``t_ref`` is the initial reference time.
    margin : int
        Extra pixels around the PSF core and path in the fit boxes.

    Returns
    -------
    MovingFit or None
        None when no usable pixels lie near the path.
    """
    var0 = np.broadcast_to(difference_variance(background, read_noise, gain), background.shape)
    cells = _Cells(diff, exclude, background, own, var0, group_time, psf,
                   guess.x, guess.y, guess.vx, guess.vy, guess.t_ref, margin)
    if cells.data.size < 6:
        return None
    t_ref = guess.t_ref
    p0 = np.array([guess.x, guess.y, guess.vx, guess.vy, 0.0])
    m_unit = cells.model(np.r_[p0[:4], 1.0], t_ref)
    p0[4] = max(np.sum(cells.data * m_unit / cells.var0) / max(np.sum(m_unit**2 / cells.var0), 1e-30), 1e-3)

    gain_arr = np.broadcast_to(gain, background.shape)[cells.y.astype(int), cells.x.astype(int)]
    keep = np.ones(cells.data.size, dtype=bool)
    var = cells.var0.copy()
    result = None
    for _ in range(2):
        sig = np.sqrt(var[keep])

        def residuals(p):
            return (cells.data[keep] - cells.model(p, t_ref)[keep]) / sig

        result = least_squares(residuals, p0, x_scale="jac", method="trf")
        p0 = result.x
        model = cells.model(p0, t_ref)
        # Second pass: Poisson noise of the source itself, and drop cells the
        # model cannot explain (unflagged cosmic rays near the track).
        var = cells.var0 + np.maximum(model, 0) / gain_arr
        keep = np.abs(cells.data - model) / np.sqrt(var) < 6.0
    sig = np.sqrt(var[keep])
    jac = result.jac
    dof = max(int(keep.sum()) - 5, 1)
    chi2 = float(np.sum(((cells.data[keep] - model[keep]) / sig) ** 2))
    try:
        cov = np.linalg.inv(jac.T @ jac)
    except np.linalg.LinAlgError:
        cov = np.full((5, 5), np.nan)
    x, y, vx, vy, flux = p0
    # Move t_ref to where position and velocity errors decorrelate.
    denom = cov[2, 2] + cov[3, 3]
    shift = -(cov[0, 2] + cov[1, 3]) / denom if np.isfinite(denom) and denom > 0 else 0.0
    shift = float(np.clip(shift, cells.t.min() - t_ref, cells.t.max() - t_ref))
    a = np.eye(5)
    a[0, 2] = a[1, 3] = shift
    cov = a @ cov @ a.T
    x, y, t_ref = x + vx * shift, y + vy * shift, t_ref + shift

    snr2_cell = model**2 / var
    snr = float(np.sqrt(np.sum(snr2_cell[keep])))
    consistency, n_groups = _temporal_consistency(cells.k[keep], cells.data[keep], model[keep], var[keep])
    return MovingFit(
        x=float(x), y=float(y), vx=float(vx), vy=float(vy), flux=float(flux), t_ref=float(t_ref),
        cov=cov, chi2_dof=chi2 / dof, snr=snr, consistency=consistency, n_groups=n_groups,
        n_cells=int(keep.sum()), success=bool(result.success),
    )


def _temporal_consistency(k, data, model, var):
    """Median per-difference amplitude of the data relative to the model."""
    num = np.bincount(k, data * model / var)
    den = np.bincount(k, model**2 / var)
    if not np.any(den > 0):
        return 0.0, 0
    on = den > 0.3 * den.max()  # differences where the source is well on the detector
    if not on.any():
        return 0.0, 0
    return float(np.median(num[on] / den[on])), int(on.sum())
