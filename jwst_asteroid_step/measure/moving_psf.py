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
    """The pixel-differences near a path, flattened for fast model evaluation.

    Sky pixels contribute the differences during which the source is near them,
    with the sky level as known background.  Pixels with a background of their own
    (stars, or a bright track whose median holds source flux) contribute their whole
    time series, and their background is a free parameter profiled out of the fit
    (:meth:`project`): exact however slow the source, and no wing of it can leak in.
    """

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
        k, yy, xx = (np.concatenate(a) if a else np.zeros(0, int) for a in (ks, ys, xs))
        sky = ~own[yy, xx]
        own_pix = np.unique(yy[~sky] * nx + xx[~sky])
        oy, ox = np.divmod(own_pix, nx)
        k = np.concatenate([k[sky], np.repeat(np.arange(nk), own_pix.size)])
        yy = np.concatenate([yy[sky], np.tile(oy, nk)])
        xx = np.concatenate([xx[sky], np.tile(ox, nk)])
        pix_group = np.concatenate([np.full(sky.sum(), -1), np.tile(np.arange(own_pix.size), nk)])

        d = diff[k, yy, xx].astype(float) - background[yy, xx]
        ok = np.isfinite(d) & ~exclude[k, yy, xx] & np.isfinite(var0[yy, xx])
        self.k, self.y, self.x = k[ok], yy[ok].astype(float), xx[ok].astype(float)
        self.data = d[ok]
        self.var0 = var0[yy[ok], xx[ok]].astype(float)
        self.group = pix_group[ok]
        self.profiled = self.group >= 0
        self.n_own = np.unique(self.group[self.profiled]).size
        self.group_time = group_time
        self.psf = psf
        self.n_sub = n_sub_samples(1.5 * np.hypot(vx, vy) + 1e-3, group_time)
        frac = (np.arange(self.n_sub) + 0.5) / self.n_sub
        self.t = (self.k[:, None] + frac[None, :]) * group_time

    def project(self, values, weight, keep):
        """Remove each own-background pixel's weighted mean from ``values[keep]``.

        Parameters
        ----------
        values : ndarray, shape (n,) or (n, m)
        weight : ndarray, shape (n,)
            Inverse variances.
        keep : ndarray, bool, shape (n,)

        Returns
        -------
        ndarray, shape of ``values[keep]``
        """
        v = values[keep]
        sel = self.profiled[keep]
        if not sel.any():
            return v
        g = self.group[keep][sel]
        w = weight[keep][sel]
        n = self.group.max() + 1
        wsum = np.maximum(np.bincount(g, w, minlength=n), 1e-300)
        v = v.copy()
        if v.ndim == 1:
            v[sel] -= (np.bincount(g, w * v[sel], minlength=n) / wsum)[g]
        else:
            for j in range(v.shape[1]):
                v[sel, j] -= (np.bincount(g, w * v[sel, j], minlength=n) / wsum)[g]
        return v

    def model(self, p, t_ref):
        x, y, vx, vy, flux = p
        dt = self.t - t_ref
        f = self.psf.pixel_fraction(self.x[:, None] - (x + vx * dt), self.y[:, None] - (y + vy * dt))
        return flux * self.group_time * f.mean(axis=1)

    def jacobian(self, p, t_ref):
        """Derivatives of :meth:`model` with respect to (x, y, vx, vy, flux), shape (n, 5)."""
        x, y, vx, vy, flux = p
        dt = self.t - t_ref
        f, gx, gy = self.psf.pixel_fraction_gradient(self.x[:, None] - (x + vx * dt),
                                                     self.y[:, None] - (y + vy * dt))
        scale = -flux * self.group_time
        return np.column_stack([
            scale * gx.mean(axis=1), scale * gy.mean(axis=1),
            scale * (gx * dt).mean(axis=1), scale * (gy * dt).mean(axis=1),
            self.group_time * f.mean(axis=1),
        ])


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
        Pixels with a background of their own; near the track, their background
        is fitted along with the source.
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
    if cells.data.size < 6 + cells.n_own:
        return None
    t_ref = guess.t_ref
    keep = np.ones(cells.data.size, dtype=bool)
    var = cells.var0.copy()
    p0 = np.array([guess.x, guess.y, guess.vx, guess.vy, 1.0])
    m_unit = cells.project(cells.model(p0, t_ref), 1 / var, keep)
    d_proj = cells.project(cells.data, 1 / var, keep)
    p0[4] = max(np.sum(d_proj * m_unit / var) / max(np.sum(m_unit**2 / var), 1e-30), 1e-3)

    gain_arr = np.broadcast_to(gain, background.shape)[cells.y.astype(int), cells.x.astype(int)]
    result = None
    for _ in range(2):
        w, sig = 1.0 / var, np.sqrt(var[keep])

        def residuals(p):
            return cells.project(cells.data - cells.model(p, t_ref), w, keep) / sig

        def jacobian(p):
            return -cells.project(cells.jacobian(p, t_ref), w, keep) / sig[:, None]

        result = least_squares(residuals, p0, jac=jacobian, x_scale="jac", method="lm")
        p0 = result.x
        model = cells.model(p0, t_ref)
        # Second pass: Poisson noise of the source itself, and drop cells the
        # model cannot explain (unflagged cosmic rays near the track).
        var = cells.var0 + np.maximum(model, 0) / gain_arr
        resid = np.full(cells.data.size, np.inf)
        resid[keep] = cells.project(cells.data - model, 1.0 / var, keep)
        keep = np.abs(resid) / np.sqrt(var) < 6.0
    w = 1.0 / var
    sig = np.sqrt(var[keep])
    data_p = cells.project(cells.data, w, keep)
    model_p = cells.project(model, w, keep)
    jac = result.jac
    dof = max(int(keep.sum()) - 5 - cells.n_own, 1)
    chi2 = float(np.sum(((data_p - model_p) / sig) ** 2))
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

    snr = float(np.sqrt(np.sum(model_p**2 / var[keep])))
    consistency, n_groups = _temporal_consistency(cells.k[keep], data_p, model_p, var[keep])
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
