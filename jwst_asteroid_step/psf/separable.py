"""A PSF given as an effective-PSF grid, held as a short sum of separable terms.

The moving-PSF fit, the simulator and the photometry need the flux a source puts in a row
of pixels many times over; a separable PSF gives a box's pixel fractions as outer products of
a row and a column profile, which is what keeps the fit cheap. A real PSF (hexagonal
diffraction, the detector's cruciform) is not separable, but its effective-PSF grid ``E`` is
close to a matrix of low rank: the singular value decomposition ``E = sum_k s_k u_k v_k^T``
truncated where the rest holds less than ``tolerance`` of the grid's norm reproduces it, with
a handful of terms, to that accuracy. Each term's row and column profiles are cubic splines
through the grid's samples, so profiles and their derivatives exist at any sub-pixel offset.
"""

import numpy as np
from scipy.interpolate import make_interp_spline

__all__ = ["SeparablePSF", "pixel_integrate", "whole_pixel_samples"]


def pixel_integrate(image, oversample):
    """Integrate an oversampled intensity image over a detector pixel.

    Each sample becomes the flux of a pixel centred there: the sum of the
    ``oversample`` x ``oversample`` samples the pixel covers.
    """
    from scipy.ndimage import uniform_filter

    return uniform_filter(image, size=oversample, mode="constant") * oversample**2


def whole_pixel_samples(n, oversample):
    """Index of an ePSF grid's samples at whole-pixel offsets from its central sample.

    For a source at a pixel centre they are its pixels' fractions; they add up to the light
    of the pixels the grid covers, for a source at any sub-pixel phase.
    """
    c = (n - 1) // 2
    return (slice(c % oversample, None, oversample),) * 2


class SeparablePSF:
    """PSF from an effective-PSF (ePSF) grid, with the interface of the Gaussian model.

    Parameters
    ----------
    epsf : ndarray, shape (n, n), n odd
        Fraction of a source's total flux falling in a pixel whose centre is offset
        ``((i - c) / oversample, (j - c) / oversample)`` px (rows, columns) from the source,
        ``c = (n - 1) / 2``: photutils' ePSF convention. Its samples at whole-pixel spacing
        add up to the fraction of the total flux the grid holds (less than 1 when light
        falls beyond it), so fluxes fitted with the model are totals to infinity.
    oversample : int
        Samples per pixel.
    tolerance : float
        Largest relative Frobenius norm of the grid left out of the separable terms.
    name : str
        What the PSF is (recorded in the catalog's metadata).
    max_rank : int, optional
        Most separable terms kept: a grid built from noisy data needs many terms to
        reproduce its noise, which no fit needs.
    flux_uncertainty : float
        Relative uncertainty of the grid's normalisation (the total a fitted flux stands
        for); the fluxes' errors carry it. 0 where it is not known.
    """

    def __init__(self, epsf, oversample, tolerance=5e-3, name="ePSF", max_rank=None, flux_uncertainty=0.0):
        epsf = np.asarray(epsf, dtype=float)
        n = epsf.shape[0]
        if epsf.ndim != 2 or epsf.shape[1] != n or n % 2 == 0 or n < 3 * oversample:
            raise ValueError(f"an ePSF grid must be square with an odd size, got shape {epsf.shape}")
        if not np.all(np.isfinite(epsf)) or epsf.sum() <= 0:
            raise ValueError("an ePSF grid must be finite with a positive sum")
        self.oversample = int(oversample)
        self.name = name
        self.flux_uncertainty = float(flux_uncertainty)
        self.grid = epsf
        u, s, vt = np.linalg.svd(epsf)
        left = np.sqrt(np.maximum(np.cumsum((s**2)[::-1])[::-1], 0.0)) / np.sqrt(np.sum(s**2))
        rank = int(np.argmax(np.append(left[1:], 0.0) <= tolerance)) + 1
        if max_rank is not None:
            rank = min(rank, int(max_rank))
        self.rank = rank
        self.offsets = (np.arange(n) - (n - 1) / 2) / self.oversample
        self.half_extent = float(self.offsets[-1])
        whole = whole_pixel_samples(n, self.oversample)[0]
        self._centred = epsf[whole, whole]  # the pixels' fractions for a source at a pixel centre
        self.enclosed = float(self._centred.sum())
        # The terms left out carry a little light: scale the kept ones to the grid's total,
        # so that fitted fluxes stay totals.
        kept = np.einsum("k,ik,kj->", s[:rank], u[whole, :rank], vt[:rank, whole])
        scale = self.enclosed / kept
        # Rows of the grid run along y, columns along x; the singular value goes with x.
        # One spline per axis carries every term (a trailing axis of its coefficients),
        # so each evaluation finds a point's knot interval once for all terms.
        self._x = make_interp_spline(self.offsets, (scale * s[:rank, None] * vt[:rank]).T, k=3)
        self._y = make_interp_spline(self.offsets, u[:, :rank], k=3)
        self._dx = self._x.derivative()
        self._dy = self._y.derivative()
        self.fwhm = _fwhm(epsf, self.oversample)

    # ---- the interface the package's PSF users rely on ----

    @property
    def core_sigma(self):
        """Sigma (px) of the Gaussian with this PSF's FWHM: sets box sizes and search templates."""
        return self.fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))

    @property
    def radius(self):
        """Half-size (px) of the grid: the model is zero beyond it."""
        return int(np.floor(self.half_extent))

    @property
    def n_eff(self):
        """Noise-equivalent area ``1 / sum(p**2)`` in pixels, for a centred source."""
        return float(1.0 / np.sum(self._centred**2))

    def _evaluate(self, spline, offsets):
        """Every term's spline at ``offsets``, zero beyond the grid: shape ``offsets.shape + (rank,)``."""
        inside = np.abs(offsets) <= self.half_extent
        clipped = np.clip(offsets, -self.half_extent, self.half_extent)
        return np.where(inside[..., None], spline(clipped), 0.0)

    def pixel_profiles(self, first, n, pos, derivative=False, axis="x"):
        """Each term's 1-D profile in a row of ``n`` adjacent pixels along ``axis``.

        Parameters
        ----------
        first : array_like
            Centre (px) of the row's first pixel; broadcast against ``pos``.
        n : int
            Number of pixels.
        pos : array_like
            Source coordinate (px) along ``axis``.
        derivative : bool
            Also return each profile's derivative with respect to the pixel offset.
        axis : {"x", "y"}
            Which profile: a term's weight rides on its x profile, so the outer product of
            the x and y profiles of term k is that term's share of the image.

        Returns
        -------
        list of tuple
            ``(1.0, profile)`` or ``(1.0, profile, d_profile)`` per term, arrays of shape
            ``broadcast(first, pos).shape + (n,)``.
        """
        offsets = (np.asarray(first, dtype=float) - np.asarray(pos, dtype=float))[..., None] + np.arange(n)
        values = _terms_first(self._evaluate(self._x if axis == "x" else self._y, offsets))
        if not derivative:
            return [(1.0, v) for v in values]
        slopes = _terms_first(self._evaluate(self._dx if axis == "x" else self._dy, offsets))
        return [(1.0, v, d) for v, d in zip(values, slopes, strict=True)]

    def pixel_fraction(self, dx, dy):
        """Fraction of the flux in a pixel whose centre is offset ``(dx, dy)`` from the source."""
        dx, dy = np.broadcast_arrays(np.asarray(dx, dtype=float), np.asarray(dy, dtype=float))
        return np.einsum("...k,...k->...", self._evaluate(self._x, dx), self._evaluate(self._y, dy))

    def render(self, xs, ys, x_grid, y_grid):
        """Mean pixel-integrated PSF over sub-sample positions (see the Gaussian model's)."""
        xs = np.atleast_2d(xs)
        ys = np.atleast_2d(ys)
        n_img, n_sub = xs.shape
        x_grid = np.asarray(x_grid, dtype=float)
        y_grid = np.asarray(y_grid, dtype=float)
        px = self._evaluate(self._x, x_grid[None, None, :] - xs[..., None])  # (K, S, nx, rank)
        py = self._evaluate(self._y, y_grid[None, None, :] - ys[..., None])  # (K, S, ny, rank)
        # Sum over sub-samples and terms at once: one matrix product per image.
        rows = py.transpose(0, 2, 1, 3).reshape(n_img, y_grid.size, -1)
        cols = px.transpose(0, 1, 3, 2).reshape(n_img, -1, x_grid.size)
        return np.matmul(rows, cols) / n_sub


def _terms_first(values):
    """Split an array whose last axis runs over terms into one contiguous array per term."""
    return list(np.ascontiguousarray(np.moveaxis(values, -1, 0)))


def _fwhm(epsf, oversample):
    """FWHM (px) of the grid's azimuthal profile, from the area above half the peak."""
    above = np.count_nonzero(epsf >= 0.5 * epsf.max())
    return float(2.0 * np.sqrt(above / np.pi) / oversample)
