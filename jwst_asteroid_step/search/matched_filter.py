"""Matched-filter search below the jump threshold: shift-and-stack inside the ramp.

For a straight track, the matched-filter statistic (DESIGN.md §3) is

    Psi = sum_k psi_k(p_k),   Phi = sum_k phi_k(p_k),   SNR = Psi / sqrt(Phi)

with ``psi_k = PSF (x) (r_k / var)`` and ``phi_k = PSF**2 (x) (1 / var)`` the
PSF-correlated, inverse-variance weighted residual differences and ``p_k`` the
track's position during difference ``k`` (the likelihood of KBMOD, applied to the
group differences of one integration instead of to images).

The search is hierarchical in speed.  Differences are summed into time bins short
enough that a source of the class's top speed smears by at most ``max_smear_px``
inside one bin, so slow classes use few, long bins and fast classes many, short
ones; the cost of a class then scales as its (speed range)**3, not as
(number of groups) x (number of velocities) for every velocity.  Each class
tests a square velocity grid whose spacing keeps the SNR lost to the grid under
``grid_loss`` (default 10 %).  The scan keeps, for every starting pixel, the best
velocity; local maxima above a threshold become candidates that the moving-PSF fit
(:mod:`jwst_asteroid_step.measure.moving_psf`) refines and vets.
"""

from dataclasses import dataclass

import numba
import numpy as np
from scipy import ndimage

from ..ramp.noise import difference_variance

__all__ = ["SearchCandidate", "speed_classes", "velocity_grid_step", "matched_filter_search"]


@dataclass
class SearchCandidate:
    """A local maximum of the shift-and-stack SNR.

    Attributes
    ----------
    x, y : float
        Position (px) at the middle of the integration, ``t_ref``.
    vx, vy : float
        Velocity (px per group).
    snr : float
        Coarse SNR of the grid point (an underestimate of the refined SNR).
    t_ref : float
        Reference time in groups since the first read.
    """

    x: float
    y: float
    vx: float
    vy: float
    snr: float
    t_ref: float


def velocity_grid_step(sigma_eff, n_groups, grid_loss=0.1):
    """Velocity grid spacing (px/group) that loses at most ``grid_loss`` of the SNR.

    A velocity error ``dv`` misplaces the track by ``dv * t`` at time ``t`` from the
    middle; averaged over the track, a Gaussian PSF of width ``sigma_eff`` keeps a
    fraction ``~1 - a**2 / (12 sigma_eff**2)`` of the SNR, ``a`` being the offset at
    the ends.  The worst grid point is half a diagonal away.

    Parameters
    ----------
    sigma_eff : float
        PSF core width (px) including pixelisation.
    n_groups : int
        Track duration in groups.
    grid_loss : float
        Tolerated fractional SNR loss.

    Returns
    -------
    float
    """
    a = sigma_eff * np.sqrt(12.0 * grid_loss)
    return 2.0 * np.sqrt(2.0) * a / max(n_groups, 1)


def speed_classes(v_max, max_smear_px=1.0, max_bin=16):
    """Split ``[0, v_max]`` (px/group) into octaves with their time-bin lengths.

    Parameters
    ----------
    v_max : float
        Top speed searched (px/group).
    max_smear_px : float
        Largest motion (px) of a class's fastest source within one bin.
    max_bin : int
        Longest bin (group differences); the slowest class reaches down to 0.

    Returns
    -------
    list of tuple (v_low, v_high, bin_len)
        Slowest class first.
    """
    classes = []
    hi = float(v_max)
    while True:
        bin_len = max(1, int(np.floor(max_smear_px / hi)))
        lo = hi / 2.0
        if max(1, int(np.floor(max_smear_px / lo))) > max_bin:
            classes.append((0.0, hi, bin_len))
            return classes[::-1]
        classes.append((lo, hi, bin_len))
        hi = lo


def _core_profile(psf, radius):
    """1-D pixel-integrated core Gaussian of the PSF, normalised to unit sum of the 2-D core."""
    sigma = psf.components[0][1]
    offs = np.arange(-radius, radius + 1, dtype=float)
    return psf._profile_1d(offs, sigma)


def _correlate_separable(image, profile):
    out = ndimage.correlate1d(image, profile, axis=0, mode="constant")
    return ndimage.correlate1d(out, profile, axis=1, mode="constant")


@numba.njit(parallel=True, cache=True)
def _scan(psi, t_bin, vxs, vys, norm, best_snr, best_iv):
    n_bins, ny, nx = psi.shape
    nv = vxs.size
    for y in numba.prange(ny):
        acc = np.empty(nx, dtype=np.float32)
        for iv in range(nv):
            acc[:] = 0.0
            for b in range(n_bins):
                dy = int(np.rint(vys[iv] * t_bin[b]))
                dx = int(np.rint(vxs[iv] * t_bin[b]))
                yy = y + dy
                if yy < 0 or yy >= ny:
                    continue
                x_lo = max(0, -dx)
                x_hi = min(nx, nx - dx)
                for x in range(x_lo, x_hi):
                    acc[x] += psi[b, yy, x + dx]
            for x in range(nx):
                s = acc[x] * norm[y, x]
                if s > best_snr[y, x]:
                    best_snr[y, x] = s
                    best_iv[y, x] = iv


def _velocity_annulus(lo, hi, step):
    n = int(np.ceil(hi / step))
    g = np.arange(-n, n + 1) * step
    vx, vy = np.meshgrid(g, g)
    speed = np.hypot(vx, vy)
    sel = (speed <= hi + 0.5 * step) & (speed > lo - 0.5 * step) if lo > 0 else speed <= hi + 0.5 * step
    return vx[sel].astype(np.float32), vy[sel].astype(np.float32)


def matched_filter_search(diff, exclude, background, read_noise, gain, psf, v_max=0.5,
                          snr_threshold=5.0, grid_loss=0.1, max_smear_px=1.0, max_candidates=200,
                          min_separation=3):
    """Shift-and-stack search of one integration's group differences.

    Parameters
    ----------
    diff : ndarray, float32, shape (ndiff, ny, nx)
        Group differences (DN), NaN where unusable.
    exclude : ndarray, bool, shape (ndiff, ny, nx)
        Cells to leave out (cosmic rays, showers, JUMP_DET cells).
    background : ndarray, shape (ny, nx)
        Per-pixel median difference (DN).
    read_noise, gain : float or ndarray, shape (ny, nx)
        CDS read noise (DN) and gain (e/DN).
    psf : PSFModel
        The PSF; the search kernel is its pixel-integrated core.
    v_max : float
        Top speed searched (px/group); the grid reaches down to zero.
    snr_threshold : float
        Coarse-SNR threshold for candidates.
    grid_loss : float
        Largest SNR fraction lost to the velocity grid spacing.
    max_smear_px : float
        Largest motion (px) within one time bin.
    max_candidates : int
        Most candidates returned, highest SNR first.
    min_separation : int
        Half-size (px) of the neighbourhood a candidate must be the maximum of.

    Returns
    -------
    candidates : list of SearchCandidate
    stats : dict
        ``n_velocities`` tested, ``n_trials`` (velocities x pixels) and the number
        of local maxima above threshold before truncation.
    """
    n_diff, ny, nx = diff.shape
    var = np.broadcast_to(difference_variance(np.nan_to_num(background), read_noise, gain), (ny, nx))
    weight = (1.0 / var).astype(np.float32)
    usable = np.isfinite(diff) & ~exclude
    resid = np.where(usable, diff - background[None], 0.0).astype(np.float32)

    sigma = psf.components[0][1]
    radius = int(np.ceil(3.0 * sigma))
    prof = _core_profile(psf, radius)
    phi = _correlate_separable(usable.sum(axis=0).astype(np.float32) * weight, (prof**2).astype(np.float32))
    norm = np.where(phi > 0, 1.0 / np.sqrt(np.maximum(phi, 1e-30)), 0.0).astype(np.float32)

    t_ref = 0.5 * n_diff  # groups; difference k is centred at k + 0.5
    step = velocity_grid_step(np.sqrt(sigma**2 + 1.0 / 12.0), n_diff, grid_loss)
    best_snr = np.full((ny, nx), -np.inf, dtype=np.float32)
    best_v = np.zeros((ny, nx, 2), dtype=np.float32)
    n_vel = 0
    for lo, hi, bin_len in speed_classes(v_max, max_smear_px):
        n_bins = int(np.ceil(n_diff / bin_len))
        psi = np.empty((n_bins, ny, nx), dtype=np.float32)
        t_bin = np.empty(n_bins, dtype=np.float32)
        for b in range(n_bins):
            k0, k1 = b * bin_len, min((b + 1) * bin_len, n_diff)
            psi[b] = _correlate_separable((resid[k0:k1].sum(axis=0) * weight), prof.astype(np.float32))
            t_bin[b] = 0.5 * (k0 + k1) - t_ref
        vxs, vys = _velocity_annulus(lo, hi, step)
        n_vel += vxs.size
        class_snr = np.full((ny, nx), -np.inf, dtype=np.float32)
        class_iv = np.zeros((ny, nx), dtype=np.int32)
        _scan(psi, t_bin, vxs, vys, norm, class_snr, class_iv)
        better = class_snr > best_snr
        best_snr[better] = class_snr[better]
        best_v[better, 0] = vxs[class_iv[better]]
        best_v[better, 1] = vys[class_iv[better]]
        del psi

    size = 2 * min_separation + 1
    peaks = (best_snr >= snr_threshold) & (best_snr == ndimage.maximum_filter(best_snr, size=size))
    ys, xs = np.nonzero(peaks)
    order = np.argsort(best_snr[ys, xs])[::-1]
    n_peaks = order.size
    order = order[:max_candidates]
    candidates = [
        SearchCandidate(x=float(xs[i]), y=float(ys[i]), vx=float(best_v[ys[i], xs[i], 0]),
                        vy=float(best_v[ys[i], xs[i], 1]), snr=float(best_snr[ys[i], xs[i]]), t_ref=t_ref)
        for i in order
    ]
    stats = {"n_velocities": n_vel, "n_trials": n_vel * ny * nx, "n_peaks": int(n_peaks)}
    return candidates, stats
