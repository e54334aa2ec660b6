"""The analytic PSF model: a pixel-integrated sum of two circular Gaussians.

The model is the sum of two concentric circular Gaussians: a core whose FWHM is the
filter's measured FWHM (DESIGN.md §2) and a broad, faint wing standing in for the
diffraction wings of the real PSF.  Both are separable, so the flux falling in a
pixel is an exact product of error-function differences; no oversampling is needed.
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import erf

__all__ = ["FILTER_FWHM", "PSFModel"]

#: Core FWHM in pixels of the MIRI imager PSF for each filter (DESIGN.md §2).
FILTER_FWHM = {
    "F560W": 1.88,
    "F770W": 2.45,
    "F1000W": 2.98,
    "F1130W": 3.41,
    "F1280W": 3.82,
    "F1500W": 4.44,
    "F1800W": 5.37,
    "F2100W": 6.13,
    "F2550W": 7.30,
}

_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
_SQRT2 = np.sqrt(2.0)


@dataclass(frozen=True)
class PSFModel:
    """Pixel-integrated double-Gaussian PSF.

    Parameters
    ----------
    fwhm : float
        FWHM of the core Gaussian, in pixels.
    wing_fraction : float
        Fraction of the total flux in the wing component.
    wing_scale : float
        Width of the wing Gaussian in units of the core width.
    """

    fwhm: float
    wing_fraction: float = 0.12
    wing_scale: float = 4.0

    def __post_init__(self):
        if not np.isfinite(self.fwhm) or self.fwhm <= 0:
            raise ValueError(f"PSF FWHM must be a positive number of pixels, got {self.fwhm!r}")
        if not 0 <= self.wing_fraction < 1:
            raise ValueError(f"wing_fraction must be in [0, 1), got {self.wing_fraction!r}")

    @property
    def components(self):
        """List of ``(flux_fraction, sigma_px)`` for the Gaussian components."""
        sigma = self.fwhm * _FWHM_TO_SIGMA
        comps = [(1.0 - self.wing_fraction, sigma)]
        if self.wing_fraction > 0:
            comps.append((self.wing_fraction, sigma * self.wing_scale))
        return comps

    @property
    def core_sigma(self):
        """Sigma (px) of the core Gaussian: sets box sizes and the search's templates."""
        return self.fwhm * _FWHM_TO_SIGMA

    @property
    def name(self):
        """What the model is, for the catalog's metadata."""
        return f"double Gaussian (FWHM {self.fwhm:g} px, wing {self.wing_fraction:g} x {self.wing_scale:g})"

    @property
    def flux_uncertainty(self):
        """Relative uncertainty of the model's normalisation carried by fluxes' errors: none known."""
        return 0.0

    @property
    def radius(self):
        """Half-size in pixels of a box that holds > 99 % of the flux."""
        return int(np.ceil(max(s for _, s in self.components) * 2.6))

    @property
    def n_eff(self):
        """Noise-equivalent area ``1 / sum(p**2)`` in pixels, for a centred source."""
        r = self.radius
        grid = np.arange(-r, r + 1, dtype=float)
        img = self.render(np.array([[0.0]]), np.array([[0.0]]), grid, grid)[0]
        return float(1.0 / np.sum(img**2))

    def _profile_1d(self, offsets, sigma):
        """Fraction of a 1-D Gaussian falling in unit pixels centred at ``offsets``."""
        s = _SQRT2 * sigma
        return 0.5 * (erf((offsets + 0.5) / s) - erf((offsets - 0.5) / s))

    def pixel_fraction(self, dx, dy):
        """Fraction of the flux in a pixel whose centre is offset ``(dx, dy)`` from the source.

        Parameters
        ----------
        dx, dy : ndarray
            Pixel-centre minus source position (px), broadcastable.

        Returns
        -------
        ndarray
        """
        out = 0.0
        for frac, sigma in self.components:
            out = out + frac * self._profile_1d(dx, sigma) * self._profile_1d(dy, sigma)
        return out

    def _profile_1d_derivative(self, offsets, sigma):
        """Derivative of :meth:`_profile_1d` with respect to the offset."""
        c = 1.0 / (np.sqrt(2.0 * np.pi) * sigma)
        return c * (np.exp(-0.5 * ((offsets + 0.5) / sigma) ** 2) - np.exp(-0.5 * ((offsets - 0.5) / sigma) ** 2))

    def pixel_profiles(self, first, n, pos, derivative=False, axis="x"):
        """Each component's 1-D flux fractions in a row of ``n`` adjacent pixels.

        Separability makes a box's pixel fractions the outer product of a row
        and a column profile, which costs ``n + 1`` error functions instead of
        two per pixel: this is what keeps the moving-PSF fit cheap.

        Parameters
        ----------
        first : array_like
            Centre (px) of the row's first pixel; broadcast against ``pos``.
        n : int
            Number of pixels in the row.
        pos : array_like
            Source coordinate (px).
        derivative : bool
            Also return each profile's derivative with respect to the pixel
            offset (pixel centre minus source).
        axis : {"x", "y"}
            The profile's axis; the components are circular, so both are the same.

        Returns
        -------
        list of tuple
            One ``(flux_fraction, profile)`` per component, or ``(flux_fraction,
            profile, d_profile)`` with ``derivative``; arrays of shape
            ``broadcast(first, pos).shape + (n,)``.
        """
        edges = (np.asarray(first, dtype=float) - np.asarray(pos, dtype=float))[..., None] + (
            np.arange(n + 1) - 0.5)
        out = []
        for frac, sigma in self.components:
            cdf = 0.5 * erf(edges / (_SQRT2 * sigma))
            prof = np.diff(cdf, axis=-1)
            if derivative:
                density = np.exp(-0.5 * (edges / sigma) ** 2) / (np.sqrt(2.0 * np.pi) * sigma)
                out.append((frac, prof, np.diff(density, axis=-1)))
            else:
                out.append((frac, prof))
        return out

    def render(self, xs, ys, x_grid, y_grid):
        """Mean pixel-integrated PSF over a set of sub-sample positions.

        Parameters
        ----------
        xs, ys : ndarray, shape (K, S)
            Source positions (pixels) for K output images, each averaged over S
            sub-samples (the source's positions during one group interval).
        x_grid, y_grid : ndarray, shape (nx,), (ny,)
            Pixel-centre coordinates of the box columns and rows.

        Returns
        -------
        ndarray, shape (K, ny, nx)
            Fraction of the source flux landing in each pixel, averaged over S.
        """
        xs = np.atleast_2d(xs)
        ys = np.atleast_2d(ys)
        n_sub = xs.shape[1]
        dx = x_grid[None, None, :] - xs[..., None]
        dy = y_grid[None, None, :] - ys[..., None]
        out = None
        for frac, sigma in self.components:
            term = np.einsum("ksy,ksx->kyx", self._profile_1d(dy, sigma), self._profile_1d(dx, sigma))
            term *= frac / n_sub
            out = term if out is None else out + term
        return out
