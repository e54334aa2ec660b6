"""The PSF refined from the exposure itself: an effective PSF built from its stars.

The model PSF (two Gaussians, or the computed instrument PSF) is what the telescope should
deliver; the exposure shows what it did deliver. Bright, unsaturated, static point sources in
the ramp's rate image, with no other source near their core and none nearly as bright in
their box, are stacked into an effective PSF (photutils' :class:`~photutils.psf.EPSFBuilder`,
Anderson & King 2000) over a box of :func:`box_half` pixels; the fainter sources in their
boxes are fitted with the model and taken out first (:func:`without_neighbours`).

The model is kept where it fits the stars to the noise (:func:`model_misfit`), or where there
is no star. A box cannot hold the light that falls beyond it, and fluxes are totals to
infinity. The box is wide (24 px or 6 FWHMs, within the computed grids) so that little light
is beyond it, and that little is a wing model's light beyond the box (:func:`wing_for`: the
computed PSF's) scaled by the ratio of the stars' level to the wing model's in the box's outer
ring: a PSF with fainter outer wings has proportionally less light beyond the box. The wing
is too faint for a local sky ring beside each star; the sky comes from a background mesh with
every source masked (:func:`sky_image`), and what it leaves is fitted in the stack's outer
ring. The two skies put 0.1-3 % different light in the box (the ring's noise, and a wing
whose shape is not the model's); that share is the ePSF's normalisation uncertainty, which
the fluxes' errors carry (``flux_uncertainty``). The ePSF is scaled so that its samples are
fractions of the total, as every PSF of the package is.

Bright stars are broader than faint movers (the brighter-fatter effect): where the ramp's halves
show the stars broadening as their pixels fill, each is taken back to the PSF of an empty
pixel, a mover's, before the model is judged and the ePSF built
(:mod:`~jwst_asteroid_step.psf.brighter_fatter`).

Every step here is plain numpy and photutils; nothing imports stpipe.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..ramp.differences import IntegrationDifferences
from .brighter_fatter import (
    BROADENING_Z,
    charge_broadening,
    charge_fractions,
    core_half,
    fit_point_source,
    zero_charge_halves,
)
from .instrument import instrument_psf
from .separable import SeparablePSF, whole_pixel_samples

__all__ = ["PSFRefinement", "box_half", "find_psf_stars", "model_misfit", "rate_halves", "refine_for_ramp",
           "refine_psf", "sky_image", "stars_epsf", "wing_for", "without_neighbours"]

#: Most separable terms of a refined PSF (the computed ones need 7 to 9).
MAX_RANK = 12

#: EPSFBuilder's iterations: each re-interpolates the grid's empty sub-pixel phases (most of
#: them with a few stars), half the refinement's time; 5 and 10 give the same fluxes (bias
#: within 0.4 %, pull widths within 0.25, over six family/filter pairs of the psf_families bench).
EPSF_ITERATIONS = 5

#: Smallest half-size (px) of the box the stars fill (more at long wavelengths: :func:`box_half`).
BOX_HALF = 24

#: Share of the ring's constant (the light the two skies put differently in the box) counted
#: as the ePSF's normalisation error: all of it, the conservative bound. No single share fits
#: every family of the psf_families bench (session 21, its per-mover rows recomputed): where
#: the constant is sky (two Gaussians, F770W, 48 ramps) the flux pulls are 0.78 wide with all
#: of it and 0.82 with 0.8; where the stars' profile differs from the model (FWHM -10 %,
#: F2100W, 24 ramps) 1.24 with all of it and 1.29 with 0.8; Moffat F2100W 0.97 and 1.15.
CONSTANT_ERROR = 1.0

#: Largest median :func:`model_misfit` of the stars at which the model is kept.
MAX_MISFIT = 2.0

#: Largest relative difference of a star's light within 1 and 3 FWHM (over that within
#: 1.5 FWHM) from the stars' median: sub-pixel phase moves it by a few per cent, a galaxy more.
CONCENTRATION_SPREAD = 0.1

#: No other source within this many FWHMs of a star (a percent of its peak counts): its core
#: is where the model is judged and the broadening measured.
CORE_RADIUS_FWHM = 4.0

#: No source brighter than this share of a star's smoothed peak within twice its box and
#: margin; fainter ones are fitted and taken out of its box (:func:`without_neighbours`).
NEIGHBOUR_RATIO = 0.25


@dataclass
class PSFRefinement:
    """What the refinement did, for the catalog's metadata.

    Attributes
    ----------
    refined : bool
        Whether the returned PSF is the one built from the exposure.
    n_stars : int
        Stars stacked.
    box_half : int
        Half-size (px) of the box the stars fill.
    misfit : float
        How much worse than the noise the model fits the median star (:func:`model_misfit`).
    box_fraction : float
        Fraction of a source's total flux in the box (the rest from the scaled wing model).
    wing_ratio : float
        The stars' level in the box's outer ring over the wing model's (1: its wing as it is).
    wing_name : str
        The model whose light beyond the box completes the ePSF.
    flux_uncertainty : float
        Relative uncertainty of the ePSF's normalisation, carried by the fluxes' errors:
        :data:`CONSTANT_ERROR` of the share of the box's light that the constant fitted in
        its outer ring, besides the mesh's sky, took, and that constant's noise, in quadrature.
    charge_broadening : float
        Median over the stars of their FWHM in the rate image over that of an empty pixel,
        minus one, where their broadening with collected charge was taken out; 0 otherwise.
    charge_z : float
        Combined significance of the stars' broadening between the ramp's halves.
    reason : str
        Why the model was kept, when it was.
    """

    refined: bool
    n_stars: int = 0
    box_half: int = 0
    misfit: float = np.nan
    box_fraction: float = np.nan
    wing_ratio: float = np.nan
    wing_name: str = ""
    flux_uncertainty: float = 0.0
    charge_broadening: float = 0.0
    charge_z: float = np.nan
    reason: str = ""

    def describe(self, prior_name):
        """One line for ``meta.asteroid_detect.psf_refinement``."""
        charge = (f"; the stars' brighter-fatter broadening ({self.charge_broadening:+.1%} in FWHM, "
                  f"z {self.charge_z:.1f}) taken out" if self.charge_broadening else "")
        if not self.refined:
            return f"not refined ({self.reason}{charge}); {prior_name} used as it is"
        return (f"ePSF of {self.n_stars} stars in the exposure (the model's misfit {self.misfit:.1f}{charge}), "
                f"box +/-{self.box_half} px holding "
                f"{self.box_fraction:.3f} of the flux; beyond it {self.wing_name}'s wing x {self.wing_ratio:.2f}; "
                f"normalisation uncertain by {self.flux_uncertainty:.1%}, carried by flux_err")


def rate_halves(sci, groupdq, pixeldq):
    """Each pixel's mean group difference in the first and second half of the ramp.

    Jump-flagged, saturated and DO_NOT_USE differences are left out; the halves of every
    integration are averaged.

    Parameters
    ----------
    sci : ndarray, shape (nints, ngroups, ny, nx)
    groupdq : ndarray, shape (nints, ngroups, ny, nx)
    pixeldq : ndarray, shape (ny, nx)

    Returns
    -------
    ndarray, float32, shape (2, ny, nx)
        DN per group; NaN where a half holds no usable difference.
    """
    total = np.zeros((2,) + sci.shape[2:], dtype=np.float64)
    count = np.zeros((2,) + sci.shape[2:], dtype=np.int32)
    for i in range(sci.shape[0]):
        d = IntegrationDifferences(sci[i], groupdq[i], pixeldq)
        diff = d.diff
        diff[d.jump] = np.nan
        half = diff.shape[0] // 2
        for h, part in enumerate((diff[:half], diff[half:])):
            total[h] += np.nansum(part, axis=0, dtype=np.float64)
            count[h] += np.isfinite(part).sum(axis=0, dtype=np.int32)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).astype(np.float32)


def _sources(rate, fwhm):
    """Peaks of a rate image smoothed to the PSF's width, 5 sigma above its noise.

    Returns
    -------
    image : ndarray
        ``rate`` less its median, 0 where not finite.
    smooth : ndarray
        ``image`` smoothed with a Gaussian of the PSF's FWHM.
    peaks : ndarray, bool
        Local maxima of ``smooth`` within ``2 FWHM + 1`` px, above 5 sigma.
    noise : float
        Robust noise of a pixel of ``rate``; 0 when it has no usable pixels.
    """
    finite = np.isfinite(rate)
    if finite.sum() < 100:
        zeros = np.zeros(rate.shape)
        return zeros, zeros, zeros.astype(bool), 0.0
    sky = np.median(rate[finite])
    noise = 1.4826 * np.median(np.abs(rate[finite] - sky))
    image = np.where(finite, rate - sky, 0.0)
    smooth = ndimage.gaussian_filter(image, fwhm / 2.3548)
    smooth_noise = 1.4826 * np.median(np.abs(smooth[finite] - np.median(smooth[finite])))
    size = 2 * int(np.ceil(fwhm)) + 1
    peaks = (smooth == ndimage.maximum_filter(smooth, size=size)) & (smooth > 5 * smooth_noise) & finite
    return image, smooth, peaks, float(noise)


def find_psf_stars(halves, psf, box_half, snr_min=200.0, max_stars=40):
    """Bright, unsaturated, static point sources without a close or bright neighbour.

    Parameters
    ----------
    halves : ndarray, shape (2, ny, nx)
        :func:`rate_halves`.
    psf : PSFModel or SeparablePSF
        The model PSF (its FWHM sets the apertures; its concentration the point-source test).
    box_half : int
        Half-size (px) of a star's box: the box and a margin around it lie on the array, and
        the star's core (:func:`~jwst_asteroid_step.psf.brighter_fatter.core_half`) holds only
        usable pixels. No other source lies within :data:`CORE_RADIUS_FWHM` of it, and none
        brighter than :data:`NEIGHBOUR_RATIO` of it within twice the box and margin; fainter
        ones farther out are taken out of the stack (:func:`without_neighbours`).
    snr_min : float
        Smallest SNR of a star's light within 1.5 FWHM.
    max_stars : int
        The brightest this many are kept.

    Returns
    -------
    ndarray, shape (n, 3)
        Rows of ``(x, y, flux)``: first-moment positions (to 0.1 px; the ePSF builder
        recentres), flux in DN per group within 1.5 FWHM; brightest first.
    """
    rate = np.mean(halves, axis=0)
    ny, nx = rate.shape
    fwhm = float(psf.fwhm)
    image, smooth, peaks, noise = _sources(rate, fwhm)
    if not noise > 0:
        return np.empty((0, 3))
    sky = np.median(rate[np.isfinite(rate)])
    py, px = np.nonzero(peaks)
    r_ap = 1.5 * fwhm
    n_ap = np.pi * r_ap**2
    margin = box_half + int(np.ceil(2 * fwhm))
    core = core_half(psf)
    unusable = ~np.all(np.isfinite(halves), axis=0)
    # Where the point-source test's aperture fractions come from: the model, on a centred source.
    ref_inner, ref_outer = _aperture_fractions(psf, fwhm)
    stars = []
    for y, x in zip(py, px, strict=True):
        if y < margin or x < margin or y >= ny - margin or x >= nx - margin:
            continue
        if unusable[y - core:y + core + 1, x - core:x + core + 1].any():
            continue  # a bad, saturated or unusable pixel in its core
        # Another source in its core, not its own rings (a percent of its peak), or one
        # bright enough that its light near the star is more than a model can take out.
        others = np.hypot(px - x, py - y)
        level = smooth[py, px] / smooth[y, x]
        if np.count_nonzero((others <= CORE_RADIUS_FWHM * fwhm) & (level > 0.01)) > 1:
            continue
        if np.count_nonzero((others <= 2 * margin) & (level > NEIGHBOUR_RATIO)) > 1:
            continue
        y0, y1, x0, x1 = y - margin, y + margin + 1, x - margin, x + margin + 1
        cut = image[y0:y1, x0:x1]
        yy, xx = np.mgrid[y0:y1, x0:x1]
        r = np.hypot(xx - x, yy - y)
        flux = cut[r <= r_ap].sum()
        if flux < snr_min * noise * np.sqrt(n_ap):
            continue
        inner = cut[r <= fwhm].sum() / flux
        outer = cut[r <= 3 * fwhm].sum() / flux
        # A galaxy spreads its light further than any PSF the model could be mistaken for.
        if abs(inner / ref_inner - 1) > 0.3 or abs(outer / ref_outer - 1) > 0.3:
            continue
        # A mover shifts its light between the ramp's halves; a star does not.
        c = [_centroid(h[y0:y1, x0:x1] - sky, r <= r_ap, xx, yy) for h in halves]
        if np.hypot(c[0][0] - c[1][0], c[0][1] - c[1][1]) > 0.05:
            continue
        stars.append((float(c[0][0] + c[1][0]) / 2, float(c[0][1] + c[1][1]) / 2, float(flux), inner, outer))
    stars = np.asarray(stars, dtype=float).reshape(-1, 5)
    if len(stars) >= 3:
        # The stars share one PSF; a compact galaxy or a blend is less concentrated than they are.
        typical = np.median(stars[:, 3:], axis=0)
        stars = stars[np.all(np.abs(stars[:, 3:] / typical - 1) <= CONCENTRATION_SPREAD, axis=1)]
    stars = stars[np.argsort(-stars[:, 2])]
    return stars[:max_stars, :3]


def without_neighbours(rate, stars, psf, box_half):
    """The stars' boxes with every other source taken out: fitted and subtracted, its core masked.

    Each other source within twice the box of a star is fitted with the PSF (position, flux,
    sky; :func:`~jwst_asteroid_step.psf.brighter_fatter.fit_point_source`) and subtracted;
    where its model is above a pixel's noise, or within 2 FWHM (3 when the fit is not
    possible), the pixels become NaN, which the ePSF builder leaves out, bar the stars' own
    cores. A model that is not
    the stars' PSF leaves a few per cent of a neighbour's light where it is brightest: those
    pixels go, the faint rest is subtracted. Peaks of a percent of a star's or less are its
    own rings and spikes (and neighbours too faint to matter), and stay.

    Parameters
    ----------
    rate : ndarray, shape (ny, nx)
        Rate image, its sky subtracted.
    stars : ndarray, shape (n, 3)
        :func:`find_psf_stars` rows.
    psf : PSFModel or SeparablePSF
    box_half : int

    Returns
    -------
    out : ndarray, shape (ny, nx)
        A copy of ``rate``.
    n_neighbours : int
        Sources taken out.
    """
    out = np.array(rate, dtype=float)
    fwhm = float(psf.fwhm)
    _, smooth, peaks, noise = _sources(rate, fwhm)
    py, px = np.nonzero(peaks)
    ny, nx = rate.shape
    core = core_half(psf)
    star_peak = smooth[np.round(stars[:, 1]).astype(int), np.round(stars[:, 0]).astype(int)]
    # A neighbour's light in a star's core is subtracted, never masked: the core centres the star.
    kept = np.zeros(rate.shape, dtype=bool)
    for x, y, _ in stars:
        kept[max(round(y) - core, 0):round(y) + core + 1, max(round(x) - core, 0):round(x) + core + 1] = True
    n_neighbours = 0
    for y, x in zip(py, px, strict=True):
        near = np.maximum(np.abs(stars[:, 0] - x), np.abs(stars[:, 1] - y)) <= 2 * box_half
        # The stars' own rings and spikes, a percent of their peak or less, stay.
        if (not near.any() or np.hypot(stars[:, 0] - x, stars[:, 1] - y).min() < fwhm
                or smooth[y, x] <= 0.01 * star_peak[near].max()):
            continue
        n_neighbours += 1
        y0, y1 = max(y - box_half, 0), min(y + box_half + 1, ny)
        x0, x1 = max(x - box_half, 0), min(x + box_half + 1, nx)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        box = rate[y - core:y + core + 1, x - core:x + core + 1]
        if box.shape != (2 * core + 1,) * 2 or not np.all(np.isfinite(box)):
            out[y0:y1, x0:x1][(np.hypot(xx - x, yy - y) <= 3 * fwhm) & ~kept[y0:y1, x0:x1]] = np.nan
            continue
        fx, fy, flux, _, _ = fit_point_source(psf, rate, x, y, core)
        model = flux * psf.pixel_fraction(xx - fx, yy - fy)
        out[y0:y1, x0:x1] -= model
        hide = (model > noise) | (np.hypot(xx - fx, yy - fy) <= 2 * fwhm)
        out[y0:y1, x0:x1][hide & ~kept[y0:y1, x0:x1]] = np.nan
    return out, n_neighbours


def _centroid(cut, mask, xx, yy):
    w = np.where(mask, cut, 0.0)
    return np.sum(w * xx) / np.sum(w), np.sum(w * yy) / np.sum(w)


def _aperture_fractions(psf, fwhm):
    """Fractions of a centred source's light within 1 and 3 FWHM, over that within 1.5 FWHM."""
    r = int(np.ceil(3 * fwhm)) + 1
    g = np.arange(-r, r + 1, dtype=float)
    frac = psf.pixel_fraction(g[None, :], g[:, None])
    rr = np.hypot(g[None, :], g[:, None])
    ap = frac[rr <= 1.5 * fwhm].sum()
    return frac[rr <= fwhm].sum() / ap, frac[rr <= 3 * fwhm].sum() / ap


def stars_epsf(rate, stars, box_half, oversample=4):
    """Stack stars into an effective PSF normalised to their light in the box.

    Parameters
    ----------
    rate : ndarray, shape (ny, nx)
        Rate image, its sky subtracted (:func:`sky_image`); NaN pixels are left out.
    stars : ndarray, shape (n, 3)
        :func:`find_psf_stars` rows.
    box_half : int
    oversample : int

    Returns
    -------
    ndarray, shape (m, m)
        The ePSF, ``m = (2 * box_half + 1) * oversample + 1``; its samples at whole-pixel
        offsets (``-box_half`` to ``box_half``) add up to 1.
    """
    from astropy.nddata import NDData
    from astropy.table import Table
    from photutils.psf import EPSFBuilder, extract_stars

    rate = np.asarray(rate, dtype=float)
    usable = np.isfinite(rate)
    builder = EPSFBuilder(oversampling=oversample, maxiters=EPSF_ITERATIONS, progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # photutils' convergence chatter
        # Masked, not NaN: the builder's star fits would meet the NaN values through zero weights.
        cutouts = extract_stars(NDData(np.where(usable, rate, 0.0), mask=~usable),
                                Table({"x": stars[:, 0], "y": stars[:, 1]}), size=2 * box_half + 1)
        epsf, _ = builder(cutouts)
    grid = np.asarray(epsf.data, dtype=float)
    return grid / grid[whole_pixel_samples(grid.shape[0], oversample)].sum()


def sky_image(rate, stars, fwhm, box_half):
    """The sky under the stars: a background mesh with every source masked.

    A star's box holds thousands of pixels, so its light there is as good as the sky under
    it: a sky off by 0.04 of a pixel's noise, as a plain median of an image with a few per
    cent of its pixels on sources is, moves a bright star's box light by per cents. The mesh
    (photutils' ``Background2D``, sigma-clipped medians of boxes twice the star's box wide)
    leaves out pixels within 2 FWHM of anything 2 sigma above the smoothed sky, and the stars'
    boxes whole, and follows the gradients of a ramp's rate image (no flat field is applied
    yet). What it leaves under the stars, :func:`refine_psf` fits in their stack.

    Parameters
    ----------
    rate : ndarray, shape (ny, nx)
    stars : ndarray, shape (n, 3)
    fwhm : float
    box_half : int

    Returns
    -------
    ndarray, shape (ny, nx)
    """
    from astropy.stats import SigmaClip, sigma_clipped_stats
    from photutils.background import Background2D, MedianBackground

    finite = np.isfinite(rate)
    level = np.median(rate[finite])
    image = np.where(finite, rate, level)
    smooth = ndimage.gaussian_filter(image - level, fwhm / 2.3548)
    noise = 1.4826 * np.median(np.abs(smooth[finite]))
    mask = ndimage.binary_dilation(smooth > 2 * noise, iterations=int(np.ceil(2 * fwhm))) | ~finite
    yy, xx = np.indices(rate.shape)
    for x, y, _ in stars:
        mask |= np.hypot(xx - x, yy - y) <= box_half
    if mask.all():
        return np.full(rate.shape, level)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mesh = Background2D(image, min(2 * (2 * box_half + 1), *rate.shape), mask=mask,
                                exclude_percentile=90, filter_size=1, sigma_clip=SigmaClip(3.0),
                                bkg_estimator=MedianBackground())
        return np.asarray(mesh.background, dtype=float)
    except ValueError:  # every mesh box masked: one sky for the frame
        return np.full(rate.shape, sigma_clipped_stats(image, mask=mask)[1])


def wing_for(psf, filter_name):
    """The PSF whose light beyond the refinement's box completes it.

    A grid (the computed PSF, a user's file) as it is; for the two Gaussians, which have
    next to no light there, the computed PSF of the filter where one is shipped.
    """
    if isinstance(psf, SeparablePSF):
        return psf
    try:
        return instrument_psf((filter_name or "").upper())
    except ValueError:
        return psf


def box_half(wing):
    """Half-size (px) of the stars' box: 24 px or 6 FWHMs, within the wing model's own grid."""
    half = max(BOX_HALF, int(np.ceil(6 * wing.fwhm)))
    return min(half, wing.radius) if isinstance(wing, SeparablePSF) else half


def refine_psf(prior, halves, wing=None, snr_min=200.0, min_stars=1, max_misfit=MAX_MISFIT, oversample=4,
               fractions=(0.25, 0.75)):
    """The PSF of the exposure: its stars' ePSF, with a model's wing beyond the box.

    Parameters
    ----------
    prior : PSFModel or SeparablePSF
        The model PSF; kept when the exposure has no usable star.
    halves : ndarray, shape (2, ny, nx)
        :func:`rate_halves`.
    wing : PSFModel or SeparablePSF, optional
        The model whose light beyond the box, scaled, completes the ePSF; by default the
        prior. The two-Gaussian model has next to no light there; the computed PSF has the
        telescope's.
    snr_min : float
        Smallest SNR of a star used.
    min_stars : int
        Fewest stars that make a refinement.
    max_misfit : float
        The model is kept when it fits the median star this well (:func:`model_misfit`):
        an ePSF of a few stars is noisier than a model the data cannot tell from the truth.
        The median keeps a galaxy or a blend that passed :func:`find_psf_stars` from
        deciding, among three stars or more.
    oversample : int
        Samples per pixel of the ePSF.
    fractions : tuple of float
        :func:`charge_fractions` of the halves, for the stars' brighter-fatter broadening.

    Returns
    -------
    psf : PSFModel or SeparablePSF
    info : PSFRefinement
    """
    wing = prior if wing is None else wing
    half = box_half(wing)
    stars = find_psf_stars(halves, prior, half, snr_min=snr_min)
    if len(stars) < min_stars:
        return prior, PSFRefinement(False, n_stars=len(stars), reason=(
            f"{len(stars)} bright, isolated, unsaturated static point source(s) found, "
            f"{min_stars} needed"))
    # The movers' PSF is an empty pixel's: where the stars show that their collected charge
    # broadened them, they are judged and stacked as an empty pixel would have recorded them.
    charge = charge_broadening(prior, halves, stars, fractions)
    growth = 0.0
    if charge.z > BROADENING_Z:
        halves = zero_charge_halves(halves, prior, charge, half, fractions)
        growth = float(np.median(charge.fwhm_growth))
    # A galaxy or a blend that passed as a star fits no PSF; the median star speaks for the model.
    misfit = float(np.median(model_misfit(prior, halves, stars)))
    if misfit <= max_misfit:
        return prior, PSFRefinement(False, n_stars=len(stars), misfit=misfit, charge_broadening=growth,
                                    charge_z=charge.z, reason=(
            f"the model fits its {len(stars)} star(s) to the noise: misfit {misfit:.2f} <= {max_misfit:g}"))
    psf, parts = _stack(halves, stars, prior, wing, half, oversample)
    return psf, PSFRefinement(True, n_stars=len(stars), box_half=half, misfit=misfit, wing_name=wing.name,
                              charge_broadening=growth, charge_z=charge.z, **parts)


def _stack(halves, stars, prior, wing, half, oversample):
    """The stars' ePSF completed by the wing model's light beyond the box (:func:`refine_psf`).

    Returns
    -------
    psf : SeparablePSF
    parts : dict
        ``box_fraction``, ``wing_ratio`` and ``flux_uncertainty`` for :class:`PSFRefinement`.
    """
    rate = np.mean(halves, axis=0)
    rate, _ = without_neighbours(rate - sky_image(rate, stars, prior.fwhm, half), stars, prior, half)
    epsf = stars_epsf(rate, stars, half, oversample)
    # The model's light per unit total: in the box's outer ring and beyond the box.
    d = (np.arange(epsf.shape[0]) - (epsf.shape[0] - 1) / 2) / oversample
    model = wing.pixel_fraction(d[None, :], d[:, None])
    r = np.hypot(d[None, :], d[:, None])
    whole = whole_pixel_samples(epsf.shape[0], oversample)
    ring = (r >= 0.7 * half) & (r <= half)
    # What the sky mesh left under the stars, a constant in the stack: in the box's outer
    # ring, the stack is that constant plus the wing model's profile, scaled.
    sky_left, _ = _ring_fit(epsf, model, ring)
    # Its error from the ring's whole-pixel samples alone: they carry its noise, the phases
    # between them are interpolated from the same pixels.
    on_pixel = np.zeros(epsf.shape, dtype=bool)
    on_pixel[whole] = True
    _, sky_error = _ring_fit(epsf, model, ring & on_pixel)
    # The mesh's sky and the ring's put different light in the box, and the ring's is no
    # surer than its noise: over thousands of pixels, a sky off by a twentieth of a pixel's
    # noise moves the box's light by a per cent at F2100W. The constant is taken out, yet
    # some of it may be the stars' wing rather than sky: the truth lies between the two
    # skies, and CONSTANT_ERROR of their difference is its standard error. The fluxes'
    # errors carry that and the ring's noise.
    flux_uncertainty = float(np.hypot(CONSTANT_ERROR * sky_left, sky_error) * epsf[whole].size / epsf[whole].sum())
    epsf = epsf - sky_left
    epsf /= epsf[whole].sum()
    beyond = max(1.0 - model[whole].sum(), 0.0)
    model_ring = model[ring].mean()
    epsf_ring = max(epsf[ring].mean(), 0.0)  # per unit box light
    # The stars' light beyond the box is the model's times the rings' ratio (per unit total):
    # box_fraction * (1 + beyond * epsf_ring / model_ring) = 1.
    box_fraction = 1.0 / (1.0 + beyond * epsf_ring / model_ring) if model_ring > 0 else 1.0
    wing_ratio = epsf_ring * box_fraction / model_ring if model_ring > 0 else 0.0
    psf = SeparablePSF(epsf * box_fraction, oversample, max_rank=MAX_RANK, flux_uncertainty=flux_uncertainty,
                       name=f"ePSF from {len(stars)} stars in the exposure (wing beyond {half} px: {wing.name})")
    return psf, {"box_fraction": float(box_fraction), "wing_ratio": float(wing_ratio),
                 "flux_uncertainty": flux_uncertainty}


def _ring_fit(epsf, model, ring):
    """The constant of ``epsf = constant + scale * model`` over ``ring``, and its standard error."""
    design = np.stack([np.ones(np.count_nonzero(ring)), model[ring]], axis=1)
    coefficients = np.linalg.lstsq(design, epsf[ring], rcond=None)[0]
    residual = epsf[ring] - design @ coefficients
    variance = residual @ residual / max(len(residual) - 2, 1)
    return float(coefficients[0]), float(np.sqrt(np.linalg.pinv(design.T @ design)[0, 0] * variance))


def refine_for_ramp(psf, sci, groupdq, pixeldq, filter_name):
    """What the step does with ``psf_refine``: :func:`refine_psf` on a jump-flagged ramp.

    The ramp's :func:`rate_halves` and their :func:`charge_fractions`, the wing of
    :func:`wing_for` the filter.

    Parameters
    ----------
    psf : PSFModel or SeparablePSF
        The model.
    sci, groupdq : ndarray, shape (nints, ngroups, ny, nx)
    pixeldq : ndarray, shape (ny, nx)
    filter_name : str or None

    Returns
    -------
    psf : PSFModel or SeparablePSF
    info : PSFRefinement
    """
    return refine_psf(psf, rate_halves(sci, groupdq, pixeldq), wing=wing_for(psf, filter_name),
                      fractions=charge_fractions(sci.shape[1]))


def model_misfit(psf, halves, stars):
    """How much worse than the noise ``psf`` fits each star's core.

    Each star's box of ``2 FWHM`` half-size is fitted with the PSF (position, flux and sky
    free); the residuals' power is divided by the noise power the two halves show,
    ``((h1 - h2) / 2)**2`` summed over the same pixels. A PSF as good as the data gives about 1.

    Parameters
    ----------
    psf : PSFModel or SeparablePSF
    halves : ndarray, shape (2, ny, nx)
    stars : ndarray, shape (n, 3)

    Returns
    -------
    ndarray, shape (n,)
        One ratio per star.
    """
    half = core_half(psf)
    rate = np.mean(halves, axis=0)
    out = np.full(len(stars), np.inf)
    for j, (x, y, _) in enumerate(stars):
        *_, residual = fit_point_source(psf, rate, x, y, half)
        ix, iy = round(x), round(y)
        noise = (0.5 * (halves[0] - halves[1])[iy - half:iy + half + 1, ix - half:ix + half + 1]) ** 2
        if np.sum(noise) > 0:
            out[j] = np.sum(residual**2) / np.sum(noise)
    return out
