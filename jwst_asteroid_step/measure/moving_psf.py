"""Fit a moving, pixel-integrated PSF to the group differences of one integration.

The model of difference ``k`` in pixel ``p`` is the source's expected charge from
:mod:`jwst_asteroid_step.mover_model` (the package's PSF and time base); the
weights come from :mod:`jwst_asteroid_step.ramp.noise`.  Only pixels near the path
during each difference enter the fit, so the cost scales with the track length,
not with the frame.
"""

from dataclasses import dataclass, replace

import numba
import numpy as np
from scipy.optimize import least_squares

from ..mover_model import n_sub_samples
from ..ramp.noise import difference_covariance, whiten, whiten_tridiagonal
from ..ramp.systematics import trend_basis

__all__ = ["MovingFit", "fit_moving_psf", "static_photometry"]


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
        Matched-filter SNR of the fitted model with the full covariance of the
        differences, ``sqrt(m^T C^-1 m)``, each pixel's constant level profiled out.
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

    def with_noise_scale(self, scale):
        """The fit with errors multiplied and SNR divided by ``scale``."""
        if scale == 1.0:
            return self
        return replace(self, cov=self.cov * scale**2, snr=self.snr / scale)

    @property
    def errors(self):
        """One-sigma errors of ``(x, y, vx, vy, flux)``."""
        return np.sqrt(np.clip(np.diag(self.cov), 0, None))


@numba.njit(cache=True)
def _whiten_pixel(col, diag, off, u, gram_inv, out):
    """Columns ``col`` (K, M) of one pixel whitened into ``out``, its trend basis ``u`` (K, P) projected out."""
    whiten_tridiagonal(col, diag, off, out)
    n_k, n_m = out.shape
    n_p = u.shape[1]
    rhs = np.zeros(n_p)
    for c in range(n_m):
        for q in range(n_p):
            acc = 0.0
            for k in range(n_k):
                acc += u[k, q] * out[k, c]
            rhs[q] = acc
        for q in range(n_p):
            coef = 0.0
            for r in range(n_p):
                coef += gram_inv[q, r] * rhs[r]
            for k in range(n_k):
                out[k, c] -= u[k, q] * coef


@numba.njit(parallel=True, cache=True)
def _reduce_pixels(data, cell_at, near_at, full, row_off, t_off, diag, off, u, gram_inv, t_flat, data_w, rest):
    """Whitened, profiled data of each pixel, and each reduced pixel's factor ``T``.

    Per pixel (index ``j``): ``cell_at[j]`` (K) indexes the kept cells in
    ``data``, ``near_at[j]`` the kept cells the source can reach in the near
    arrays (-1: none).  A ``full`` pixel's rows are its K whitened, profiled
    differences.  For the others, with ``B = Q W E`` (whitening ``W``, the
    profile's projection ``Q``, ``E`` the unit vectors at its c near
    differences) and ``B = V T`` a thin QR, the residual ``Q W (d - E m)`` has
    norm squared ``|V^T Q W d - T m|^2 + rest``: c rows replace K, exactly.
    ``t_flat[t_off[j]:]`` receives ``T`` (c, c), ``data_w[row_off[j]:]`` the
    pixel's data rows, ``rest[j]`` the data's part outside ``V``.
    """
    n_pix, n_k = cell_at.shape
    for j in numba.prange(n_pix):
        col = np.zeros((n_k, 1))
        for k in range(n_k):
            if cell_at[j, k] >= 0:
                col[k, 0] = data[cell_at[j, k]]
        e = np.empty((n_k, 1))
        _whiten_pixel(col, diag[j], off[j], u[j], gram_inv[j], e)
        o = row_off[j]
        if full[j]:
            for k in range(n_k):
                data_w[o + k] = e[k, 0]
            rest[j] = 0.0
            continue
        near = np.flatnonzero(near_at[j] >= 0)
        c = near.size
        if c == 0:
            rest[j] = np.sum(e[:, 0] ** 2)
            continue
        unit = np.zeros((n_k, c))
        for a in range(c):
            unit[near[a], a] = 1.0
        b = np.empty((n_k, c))
        _whiten_pixel(unit, diag[j], off[j], u[j], gram_inv[j], b)
        v, t = np.linalg.qr(b)
        proj = np.ascontiguousarray(v.T) @ np.ascontiguousarray(e[:, 0])
        for a in range(c):
            data_w[o + a] = proj[a]
            for a2 in range(c):
                t_flat[t_off[j] + a * c + a2] = t[a, a2]
        rest[j] = max(np.sum(e[:, 0] ** 2) - np.sum(proj**2), 0.0)


@numba.njit(parallel=True, cache=True)
def _whiten_near(values, near_at, full, row_off, t_off, diag, off, u, gram_inv, t_flat, out):
    """Rows of :func:`_reduce_pixels` for ``values`` (n_near, M) at the near cells, zero elsewhere."""
    n_pix, n_k = near_at.shape
    n_m = values.shape[1]
    for j in numba.prange(n_pix):
        o = row_off[j]
        if full[j]:
            col = np.zeros((n_k, n_m))
            for k in range(n_k):
                i = near_at[j, k]
                if i >= 0:
                    for m in range(n_m):
                        col[k, m] = values[i, m]
            _whiten_pixel(col, diag[j], off[j], u[j], gram_inv[j], out[o:o + n_k])
            continue
        near = np.flatnonzero(near_at[j] >= 0)
        c = near.size
        for a in range(c):
            for m in range(n_m):
                acc = 0.0
                for a2 in range(a, c):  # T is upper triangular
                    acc += t_flat[t_off[j] + a * c + a2] * values[near_at[j, near[a2]], m]
                out[o + a, m] = acc


#: Most differences of a pixel reduced to their own rows: reducing costs ~K c**2
#: once per noise model, whitening all K rows ~K per call, and a fit makes tens
#: of calls.
_MAX_REDUCED = 8

#: How much better (chi-square of the differences) a fit without the mean image's flux must
#: explain them than the fit with it for the photometry to be dropped (5 sigma): near a
#: star the photometry measures the star, and the flux x speed the differences fix turns
#: that into a speed near zero.
PRIOR_CONFLICT_CHI2 = 25.0

#: Largest half-size (px) of a box the photometry and the subtraction of a fitted source use:
#: the double-Gaussian model's at F2550W. The computed grids reach 8 FWHM (59 px at F2550W)
#: for the refinement's wing (psf.refine), where a source leaves ~1e-5 of its light a pixel.
MAX_BOX_RADIUS = 33


class _Cells:
    """Every difference of the pixels near a path, for model evaluation and whitening.

    Each pixel contributes its whole time series and its constant level (sky,
    star, dark: the static scene), with optional slow trends, is profiled out of
    the fit, so no background model can bias it however slow the source.  Residuals are
    whitened with each pixel's tridiagonal covariance
    (:func:`~jwst_asteroid_step.ramp.noise.whiten`), so the fit, its errors and its
    SNR use the read-noise correlation of adjacent differences.  The source model
    is evaluated only on the ``near`` cells, those within reach of the path: in
    each difference, a box of ``width`` pixels a side centred on the path, where
    the PSF's separability gives it as a product of row and column profiles.  A
    pixel that a fast source reaches in only a few differences still needs its
    whole series for its level, but only those few residual rows
    (:meth:`_reduce`): the least squares see one row per near cell there.
    """

    def __init__(self, diff, exclude, background, group_time, psf, x, y, vx, vy, t_ref, margin,
                 trend_order):
        nk, ny, nx = diff.shape
        self.trend = trend_basis(nk, trend_order)
        core_sigma = psf.core_sigma
        travel = np.hypot(vx, vy) * group_time
        half = int(np.ceil(2.5 * core_sigma + travel / 2 + margin))
        self.half, self.width = half, 2 * half + 1
        tm = (np.arange(nk) + 0.5) * group_time - t_ref
        # Centre of each difference's box; boxes cut by the frame keep this origin.
        self.box_x0 = np.round(x + vx * tm).astype(int) - half
        self.box_y0 = np.round(y + vy * tm).astype(int) - half
        ks, ys, xs = [], [], []
        for k in range(nk):
            x0, x1 = max(self.box_x0[k], 0), min(self.box_x0[k] + self.width, nx)
            y0, y1 = max(self.box_y0[k], 0), min(self.box_y0[k] + self.width, ny)
            if x0 >= x1 or y0 >= y1:
                continue
            gy, gx = np.mgrid[y0:y1, x0:x1]
            ks.append(np.full(gx.size, k))
            ys.append(gy.ravel())
            xs.append(gx.ravel())
        k_near, y_near, x_near = (np.concatenate(a) if a else np.zeros(0, int) for a in (ks, ys, xs))
        pix = np.unique(y_near * nx + x_near)
        py, px = np.divmod(pix, nx)
        # Every difference of every pixel the path reaches: a fast path's pixels
        # make millions of cells, so the per-cell arrays stay as small as they can.
        k = np.repeat(np.arange(nk, dtype=np.int32), pix.size)
        cell_pix = np.tile(np.arange(pix.size, dtype=np.int32), nk)
        is_near = np.zeros(nk * pix.size, dtype=bool)
        is_near[k_near * pix.size + np.searchsorted(pix, y_near * nx + x_near)] = True

        d = diff[k, py[cell_pix], px[cell_pix]].astype(float)
        ok = np.isfinite(d) & ~exclude[k, py[cell_pix], px[cell_pix]]
        self.k, self.pix = k[ok], cell_pix[ok]
        del k, cell_pix
        self.pix_y, self.pix_x = py, px
        self.n_pix, self.n_k = pix.size, nk
        self.data = d[ok]
        self.near = is_near[ok]
        # Profiled per pixel: the static level and its trends.
        self.n_levels = int(np.unique(self.pix).size) * self.trend.shape[1]
        self.background = background[py, px].astype(float)[self.pix]
        self.group_time = group_time
        self.psf = psf
        self.n_sub = n_sub_samples(1.5 * np.hypot(vx, vy) + 1e-3, group_time)
        frac = (np.arange(self.n_sub) + 0.5) / self.n_sub
        self.t = (np.arange(nk)[:, None] + frac[None, :]) * group_time  # (K, n_sub)
        k_on = self.k[self.near]
        self.k_near = k_on
        pix_on = self.pix[self.near]
        self.ix = px[pix_on] - self.box_x0[k_on]
        self.iy = py[pix_on] - self.box_y0[k_on]
        self.t_span = (self.t[k_on.min(), 0], self.t[k_on.max(), -1]) if k_on.size else (0.0, nk * group_time)

    def set_noise(self, source_dn, keep, read_noise, gain):
        """Covariance bands for the kept cells, given the source's expected charge.

        Also whitens each pixel's trend basis, the templates profiled out of
        every whitened quantity.
        """
        expected = np.zeros((self.n_k, self.n_pix))
        valid = np.zeros((self.n_k, self.n_pix), dtype=bool)
        expected[self.k, self.pix] = self.background + np.maximum(source_dn, 0)
        valid[self.k[keep], self.pix[keep]] = True
        self.diag, self.off = difference_covariance(
            expected, valid, self._at_pixels(read_noise), self._at_pixels(gain))
        self.keep = keep
        self.var = self.diag[self.k, self.pix]
        basis = np.zeros((self.n_k, self.n_pix, self.trend.shape[1]))
        basis[self.k[keep], self.pix[keep]] = self.trend[self.k[keep]]
        self.u = whiten(basis, self.diag, self.off)  # (K, n_pix, P)
        gram = np.einsum("kpi,kpj->pij", self.u, self.u)
        gram += 1e-9 * np.eye(gram.shape[1]) * np.trace(gram, axis1=1, axis2=2)[:, None, None] + 1e-300
        self.gram = gram
        self._reduce(keep)

    def _reduce(self, keep):
        """Rows of the fit's residual: see :func:`_reduce_pixels`.

        A pixel the source reaches in at most :data:`_MAX_REDUCED` of its
        differences, and in at most a quarter of them (a fast source's path), keeps
        one row per such difference; the others keep all.
        """
        kept = np.flatnonzero(keep)
        cell_at = np.full((self.n_pix, self.n_k), -1, dtype=np.int64)
        cell_at[self.pix[kept], self.k[kept]] = kept
        self._near_at = np.full((self.n_pix, self.n_k), -1, dtype=np.int32)
        near_kept = np.flatnonzero(keep[self.near])
        on = np.flatnonzero(self.near)[near_kept]
        self._near_at[self.pix[on], self.k[on]] = near_kept
        c = np.count_nonzero(self._near_at >= 0, axis=1)
        self._full = (4 * c > self.n_k) | (c > _MAX_REDUCED)
        rows = np.where(self._full, self.n_k, c)
        self._row_off = np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(np.int64)
        sizes = np.where(self._full, 0, c * c)
        self._t_off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self._t_flat = np.zeros(int(sizes.sum()))
        self._bands = (np.ascontiguousarray(self.diag.T), np.ascontiguousarray(self.off.T),
                       np.ascontiguousarray(self.u.transpose(1, 0, 2)), np.linalg.inv(self.gram))
        self.data_w = np.zeros(int(rows.sum()))
        rest = np.zeros(self.n_pix)
        _reduce_pixels(self.data, cell_at, self._near_at, self._full, self._row_off, self._t_off,
                       *self._bands, self._t_flat, self.data_w, rest)
        #: The data's residual outside the rows: chi-square = |data_w - whitened(model)|^2 + this.
        self.chi2_rest = float(rest.sum())

    def _trend_coefficients(self, w):
        """Least-squares trend coefficients of whitened columns ``w`` (K, n_pix, m)."""
        rhs = np.einsum("kpi,kpm->pim", self.u, w)
        return np.linalg.solve(self.gram, rhs)  # (n_pix, P, m)

    def _at_pixels(self, value):
        """A scalar, or a (ny, nx) map sampled at the fit's pixels as a row."""
        value = np.asarray(value, dtype=float)
        return value if value.ndim == 0 else value[self.pix_y, self.pix_x][None, :]

    def whitened(self, values):
        """Residual rows (:meth:`_reduce`) of values that are zero off the near cells.

        Parameters
        ----------
        values : ndarray, shape (n_near,) or (n_near, m)
            At the near cells (``self.near``), as :meth:`model_near` and
            :meth:`jacobian` give them.

        Returns
        -------
        ndarray, shape (n_rows,) or (n_rows, m)
            In the order of ``data_w``.
        """
        cols = values[:, None] if values.ndim == 1 else values
        out = np.empty((self.data_w.size, cols.shape[1]))
        _whiten_near(np.ascontiguousarray(cols, dtype=np.float64), self._near_at, self._full, self._row_off,
                     self._t_off, *self._bands, self._t_flat, out)
        return out[:, 0] if values.ndim == 1 else out

    def static_level(self, resid):
        """Fitted static scene and trend (DN per difference) of each cell."""
        dense = np.zeros((self.n_k, self.n_pix, 1))
        dense[self.k[self.keep], self.pix[self.keep], 0] = resid[self.keep]
        coef = self._trend_coefficients(whiten(dense, self.diag, self.off))[:, :, 0]
        return np.sum(self.trend[self.k] * coef[self.pix], axis=1)

    def _profiles(self, p, t_ref, derivative=False):
        """Row and column profiles of each component along path ``p``, per difference and sub-sample."""
        x, y, vx, vy, _ = p
        dt = self.t - t_ref
        rows = self.psf.pixel_profiles(self.box_x0[:, None], self.width, x + vx * dt, derivative, axis="x")
        cols = self.psf.pixel_profiles(self.box_y0[:, None], self.width, y + vy * dt, derivative, axis="y")
        return dt, rows, cols

    def _at_near(self, boxes):
        """Sub-sample mean of (K, n_sub, width) x (K, n_sub, width) outer products, at the near cells."""
        weights, cols, rows = zip(*boxes)
        # One matrix product sums over sub-samples and terms together.
        col = np.concatenate([w * c for w, c in zip(weights, cols)], axis=1)
        total = np.matmul(col.transpose(0, 2, 1), np.concatenate(rows, axis=1))
        return total[self.k_near, self.iy, self.ix] / self.n_sub

    def model_near(self, p, t_ref):
        """The source's charge (DN) at the near cells along path ``p``."""
        _, rows, cols = self._profiles(p, t_ref)
        return p[4] * self.group_time * self._at_near((frac, col, row) for (frac, row), (_, col) in zip(rows, cols))

    def model(self, p, t_ref):
        """The source's charge (DN) in every cell along path ``p``."""
        out = np.zeros(self.data.size)
        out[self.near] = self.model_near(p, t_ref)
        return out

    def jacobian(self, p, t_ref):
        """Derivatives of :meth:`model_near` with respect to (x, y, vx, vy, flux), shape (n_near, 5)."""
        dt, rows, cols = self._profiles(p, t_ref, derivative=True)
        dt = dt[..., None]
        scale = -p[4] * self.group_time
        comps = [(frac, row, d_row, col, d_col) for (frac, row, d_row), (_, col, d_col) in zip(rows, cols)]
        return np.column_stack([
            scale * self._at_near((f, col, d_row) for f, row, d_row, col, d_col in comps),
            scale * self._at_near((f, d_col, row) for f, row, d_row, col, d_col in comps),
            scale * self._at_near((f, col * dt, d_row) for f, row, d_row, col, d_col in comps),
            scale * self._at_near((f, d_col * dt, row) for f, row, d_row, col, d_col in comps),
            self.group_time * self._at_near((f, col, row) for f, row, d_row, col, d_col in comps),
        ])


class _StaticImage:
    """PSF-weighted photometry of the mean image (each pixel's mean difference) near a point.

    The weights are the PSF at ``(x, y)``, on a box whose border's median is the
    sky (robust to the other sources of a crowded field, where a sky fitted with
    the PSF over the box is not); pixels with no usable difference, which read 0
    in the mean image, are left out.  A source crossing less than its PSF leaves
    most of its light in the static scene that the moving-PSF fit profiles out,
    so the fit alone knows only ``flux x speed``; this photometry knows the flux.
    """

    def __init__(self, mean_image, x, y, psf, variance=None, diff=None):
        r = min(psf.radius, MAX_BOX_RADIUS) + 2
        ny, nx = mean_image.shape
        cx, cy = int(round(x)), int(round(y))
        self.inside = r <= cx < nx - r and r <= cy < ny - r
        if not self.inside:
            return
        rows, cols = slice(cy - r, cy + r + 1), slice(cx - r, cx + r + 1)
        gy, gx = np.mgrid[rows, cols]
        self.gx, self.gy, self.psf = gx.astype(float), gy.astype(float), psf
        usable = np.ones(gx.shape, dtype=bool) if diff is None else np.isfinite(diff[:, rows, cols]).any(axis=0)
        self.w = psf.pixel_fraction(self.gx - x, self.gy - y) * usable
        self.norm = float(np.sum(self.w**2))
        box = mean_image[rows, cols].astype(float)
        edge = np.ones(box.shape, dtype=bool)
        edge[1:-1, 1:-1] = False
        if not np.any(edge & usable):
            self.inside = False
            return
        border = box[edge & usable]
        sky = np.median(border)
        sub = np.where(usable, box - sky, 0.0)
        self.flux = float(np.sum(self.w * sub) / self.norm)  # charge per difference
        if variance is not None:
            var = variance[rows, cols]
            # The border's median is as unsure as its pixels' scatter allows, and a sky off
            # by d moves the flux by d times the PSF's noise-equivalent area: at F2100W
            # about as much as the pixels' own noise does.
            sky_err = np.sqrt(0.5 * np.pi / border.size) * 1.4826 * np.median(np.abs(border - sky))
            self.flux_err = float(np.hypot(np.sqrt(np.sum(self.w**2 * var)), sky_err * np.sum(self.w)) / self.norm)
        else:
            self.flux_err = np.nan
        # Unweighted centroid of the light within three core widths: a weighted
        # one would be pulled towards (x, y).
        disk = np.hypot(self.gx - x, self.gy - y) <= 3.0 * psf.core_sigma
        total = np.sum(sub[disk])
        self.offset = (float(np.hypot(np.sum(sub[disk] * (self.gx[disk] - x)),
                                      np.sum(sub[disk] * (self.gy[disk] - y))) / total)
                       if total > 0 else np.inf)

    def model(self, p, t):
        """The photometry of the model's own mean image (same weights), per difference."""
        x, y, vx, vy, flux = p
        n = self.gx.shape[1]
        rows = self.psf.pixel_profiles(self.gx[0, 0], n, x + vx * t, axis="x")
        cols = self.psf.pixel_profiles(self.gy[0, 0], n, y + vy * t, axis="y")
        col = np.stack([frac * c for (frac, _), (_, c) in zip(rows, cols)])  # (terms, t, y)
        total = np.sum((col @ self.w) * np.stack([r for _, r in rows]))
        return flux * float(total) / t.size / self.norm


def static_photometry(mean_image, x, y, psf):
    """PSF-weighted flux of a static source at ``(x, y)`` in a mean image, and the light's offset from it.

    Parameters
    ----------
    mean_image : ndarray, shape (ny, nx)
        Each pixel's mean group difference (DN).
    x, y : float
        Position (px).
    psf : PSFModel

    Returns
    -------
    flux : float
        Charge per difference (DN) of a PSF at ``(x, y)`` that explains the
        light above the box's border; NaN when the box leaves the image.
    offset : float
        Distance (px) from ``(x, y)`` of the light's centroid within three core
        widths; infinite when there is no light.
    """
    phot = _StaticImage(mean_image, x, y, psf)
    return (phot.flux, phot.offset) if phot.inside else (np.nan, np.nan)


class _FluxPrior:
    """The mean image's photometry as one more measurement in the fit.

    Its residual compares the data's photometry with that of the model's mean
    image over the same weights, so a track that moves within the box is
    measured as what it is; the error is the photometry's noise.  (The PSF
    model's own error, like the differences', is not in it: a systematic
    term here made the sub-PSF fits' flux and speed errors two to five times
    the scatter in simulations.)
    """

    def __init__(self, phot, t, group_time):
        self.phot, self.t, self.group_time = phot, t, group_time
        # The floor only keeps a noiseless box (zero read noise, no sky) finite.
        self.sigma = float(max(phot.flux_err, 1e-3 * abs(phot.flux), 1e-30))

    def residual(self, p):
        return np.array([(self.phot.flux - self.group_time * self.phot.model(p, self.t)) / self.sigma])

    def jacobian(self, p, step=(1e-3, 1e-3, 1e-5, 1e-5)):
        row = np.empty((1, 5))
        base = self.residual(p)[0]
        for i, h in enumerate(step):  # the motion's effect on the mean image, numerically
            q = np.array(p, dtype=float)
            q[i] += h
            row[0, i] = (self.residual(q)[0] - base) / h
        row[0, 4] = -self.group_time * self.phot.model(np.r_[p[:4], 1.0], self.t) / self.sigma
        return row


def fit_moving_psf(diff, exclude, background, read_noise, gain, group_time, psf, guess, margin=2,
                   min_start_snr=0.0, min_start_consistency=-np.inf, trend_order=0, rebuild_px=0.5,
                   max_rebuilds=2, flux_from_mean_image=False):
    """Least-squares fit of a moving PSF to group differences, with their full covariance.

    Parameters
    ----------
    diff : ndarray, shape (ndiff, ny, nx)
        Group differences (DN); NaN where unusable.
    exclude : ndarray, bool, shape (ndiff, ny, nx)
        Cells to leave out (cosmic rays, showers).
    background : ndarray, shape (ny, nx)
        Static scene per difference (DN), e.g. each pixel's median difference:
        only its shot noise matters, the level itself is fitted per pixel.
    read_noise, gain : float or ndarray, shape (ny, nx)
        CDS read noise (DN) and gain (e/DN).
    group_time : float
        Seconds per group.
    psf : PSFModel
        The PSF.
    guess : Track
        Starting path; its ``t_ref`` is the initial reference time.
    margin : int
        Extra pixels around the PSF core and path in the fit boxes.
    trend_order : int
        Per-pixel trends of the difference rate profiled out with the static
        level (:func:`~jwst_asteroid_step.ramp.systematics.trend_basis`).
    min_start_snr, min_start_consistency : float
        Give up before iterating when the guess, with its best flux, falls short
        of these: most search candidates are noise, and a full fit costs far
        more than this look.
    rebuild_px, max_rebuilds : float, int
        When the first pass moves the path by more than ``rebuild_px`` (px) at
        some difference, the fit boxes are laid again along the fitted path and
        the pass repeated, at most ``max_rebuilds`` times.
    flux_from_mean_image : bool
        Also fit the PSF-weighted photometry of ``background`` (each pixel's mean
        difference) at the guess's mid-integration position, for a source that
        crosses less than its PSF: the profiled differences fix only its
        ``flux x speed``.  Where other light shares the spot (a star the source
        crosses), the differences say so: a fit without the photometry, started
        faster and fainter along the same line, that explains them better by
        :data:`PRIOR_CONFLICT_CHI2` replaces it.

    Returns
    -------
    MovingFit or None
        None when no usable pixels lie near the path, or the guess falls short.
    """
    t_ref = guess.t_ref
    p0 = np.array([guess.x, guess.y, guess.vx, guess.vy, 1.0])
    t_mid = (np.arange(diff.shape[0]) + 0.5) * group_time - t_ref

    def cells_along(p):
        """Cells of the boxes along path ``p``, with the sky's noise; None when too few."""
        cells = _Cells(diff, exclude, background, group_time, psf, *p[:4], t_ref, margin, trend_order)
        if cells.data.size < 6 + cells.n_levels:
            return None
        cells.set_noise(np.zeros(cells.data.size), np.ones(cells.data.size, dtype=bool), read_noise, gain)
        return cells

    cells = cells_along(p0)
    if cells is None:
        return None
    prior = None
    if flux_from_mean_image:
        n_diff = diff.shape[0]
        t_half = 0.5 * n_diff * group_time - t_ref
        variance = (np.asarray(read_noise, dtype=float) ** 2 / n_diff
                    + np.maximum(background, 0) / np.asarray(gain, dtype=float)) / n_diff
        phot = _StaticImage(background, guess.x + guess.vx * t_half, guess.y + guess.vy * t_half, psf,
                            np.broadcast_to(variance, background.shape), diff)
        prior = _FluxPrior(phot, t_mid, group_time) if phot.inside and phot.flux > 0 else None
    m_w = cells.whitened(cells.model_near(p0, t_ref))
    d_w = cells.data_w
    p0[4] = max(np.dot(d_w, m_w) / max(np.dot(m_w, m_w), 1e-30), 1e-3)
    if np.dot(d_w, m_w) / np.sqrt(max(np.dot(m_w, m_w), 1e-30)) < min_start_snr:
        return None
    if min_start_consistency > -np.inf:
        m0 = cells.model(p0, t_ref)
        start = _temporal_consistency(cells.k, cells.data - cells.static_level(cells.data - m0), m0,
                                      cells.var)[0]
        if start < min_start_consistency:
            return None

    # A guess's velocity is known to about a PSF width over the time it spans: a jump
    # track two groups long may be wrong by a few px/group, and its fit rightly much faster.
    v_slack = psf.fwhm / max(guess.t_last - guess.t_first, group_time)
    for rebuild in range(max_rebuilds + 1):
        p = _least_squares(cells, p0, t_ref, prior).x
        # The fit sees only the boxes laid along the path it started from: where
        # it moved the path far within them, lay them again along the fitted one,
        # so that what it measures does not depend on where it started (a jump
        # track's guess can be off by half its speed).
        # Only a fit that stayed on its object is followed: one that ran off (far
        # from the guess at t_ref, or much faster) is left to be rejected, and
        # boxes laid along a runaway path would only cost time.
        shift = np.max(np.hypot(p[0] - p0[0] + (p[2] - p0[2]) * t_mid, p[1] - p0[1] + (p[3] - p0[3]) * t_mid))
        on_object = (np.all(np.isfinite(p)) and p[4] > 0 and np.hypot(p[0] - p0[0], p[1] - p0[1]) <= cells.half
                     and np.hypot(p[2], p[3]) <= 2.0 * max(np.hypot(p0[2], p0[3]), 0.5 / group_time) + v_slack)
        p0 = p
        if shift < rebuild_px or not on_object or rebuild == max_rebuilds:
            break
        cells = None  # the old boxes go before the new ones are laid: a fast path has millions of cells
        cells = cells_along(p0)
        if cells is None:
            return None

    if prior is not None and (free := _free_of_prior(cells, p0, t_ref)) is not None:
        prior, p0 = None, free
        cells = cells_along(p0)
        if cells is None:
            return None

    # Second pass: Poisson noise of the source itself, and drop cells the model
    # cannot explain (unflagged cosmic rays near the track).
    model = _reweight(cells, p0, t_ref, read_noise, gain)
    result = _least_squares(cells, p0, t_ref, prior)
    p0 = result.x
    model = _reweight(cells, p0, t_ref, read_noise, gain)
    keep = cells.keep
    d_w = cells.data_w
    m_w = cells.whitened(model[cells.near])
    jac = cells.whitened(cells.jacobian(p0, t_ref))
    if prior is not None:
        jac = np.vstack([jac, prior.jacobian(p0)])
    dof = max(int(keep.sum()) - 5 - cells.n_levels, 1)
    chi2 = float(np.sum((d_w - m_w) ** 2)) + cells.chi2_rest
    try:
        cov = np.linalg.inv(jac.T @ jac)
    except np.linalg.LinAlgError:
        cov = np.full((5, 5), np.nan)
    x, y, vx, vy, flux = p0
    # Move t_ref to where position and velocity errors decorrelate.
    denom = cov[2, 2] + cov[3, 3]
    shift = -(cov[0, 2] + cov[1, 3]) / denom if np.isfinite(denom) and denom > 0 else 0.0
    shift = float(np.clip(shift, cells.t_span[0] - t_ref, cells.t_span[1] - t_ref))
    a = np.eye(5)
    a[0, 2] = a[1, 3] = shift
    cov = a @ cov @ a.T
    x, y, t_ref = x + vx * shift, y + vy * shift, t_ref + shift

    snr = float(np.sqrt(np.dot(m_w, m_w)))
    data = cells.data - cells.static_level(cells.data - model)
    consistency, n_groups = _temporal_consistency(cells.k[keep], data[keep], model[keep], cells.var[keep])
    return MovingFit(
        x=float(x), y=float(y), vx=float(vx), vy=float(vy), flux=float(flux), t_ref=float(t_ref),
        cov=cov, chi2_dof=chi2 / dof, snr=snr, consistency=consistency, n_groups=n_groups,
        n_cells=int(keep.sum()), success=bool(result.success),
    )


def _least_squares(cells, p0, t_ref, prior=None):
    """Levenberg-Marquardt fit of (x, y, vx, vy, flux) to the whitened, profiled cells (and a prior)."""
    d_w = cells.data_w
    # MINPACK wants as many residuals as parameters; a source that reaches few
    # cells has fewer rows (see _Cells._reduce), and zero rows change nothing.
    pad = max(p0.size - d_w.size - (prior is not None), 0)

    def residual(p):
        r = d_w - cells.whitened(cells.model_near(p, t_ref))
        return np.concatenate([r, np.zeros(pad)] + ([] if prior is None else [prior.residual(p)]))

    def jacobian(p):
        j = -cells.whitened(cells.jacobian(p, t_ref))
        return np.vstack([j, np.zeros((pad, p0.size))] + ([] if prior is None else [prior.jacobian(p)]))

    return least_squares(residual, p0, jac=jacobian, x_scale="jac", method="lm")


def _free_of_prior(cells, p, t_ref, speedups=(3.0, 10.0, 30.0)):
    """A fit of the differences alone that explains them far better than ``p`` does, or None.

    ``p`` was fitted with the mean image's photometry, which fixes the flux where the
    differences fix only ``flux x speed``. Fits without it start along the same line,
    ``speedups`` times faster and as many times fainter (the same ``flux x speed``).
    """
    def chi2(q):
        r = cells.data_w - cells.whitened(cells.model_near(q, t_ref))
        return float(r @ r)

    best, best_chi2 = None, chi2(p) - PRIOR_CONFLICT_CHI2
    for k in speedups:
        q = _least_squares(cells, np.array([p[0], p[1], p[2] * k, p[3] * k, p[4] / k]), t_ref).x
        if np.all(np.isfinite(q)) and q[4] > 0 and (c := chi2(q)) < best_chi2:
            best, best_chi2 = q, c
    return best


def _reweight(cells, p, t_ref, read_noise, gain, clip=6.0):
    """Noise with the source's own shot noise; cells beyond ``clip`` sigma of the model dropped.

    Returns the source's model charge in every cell.
    """
    model = cells.model(p, t_ref)
    resid = cells.data - model - cells.static_level(cells.data - model)
    cells.set_noise(model, np.abs(resid) / np.sqrt(cells.var) < clip, read_noise, gain)
    return model


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
