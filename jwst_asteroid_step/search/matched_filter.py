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
(:mod:`jwst_asteroid_step.measure.moving_psf`) refines and vets.  Sources that move
less than a grid step in the whole integration, static to the grid's whole-pixel
shifts, are found from the same pre-whitened differences by
:mod:`jwst_asteroid_step.search.slow_motion`.

Memory: the bins of the fastest class are built first, in the differences' own
memory when the caller allows it (``overwrite``), and each slower class's bins
are the previous ones summed in pairs in place, so the search holds no cube of
its own.
"""

import warnings
from dataclasses import dataclass

import numba
import numpy as np

from ..mover_model import mover_differences
from ..psf import PSFModel
from ..ramp.differences import usable_counts
from ..ramp.noise import difference_covariance, profiled_information
from ..ramp.systematics import SAMPLE_SEED, mad_sigma, trend_basis
from ..timebase import difference_intervals
from .backends import halves_layout, scan_cuda
from .peaks import local_maxima
from .slow_motion import _core_profiles, _correlate, correlate_planes, slow_motion_candidates
from .tracks import offsets_from_line

__all__ = ["SearchCandidate", "speed_classes", "velocity_grid_step", "matched_filter_search"]


#: A search candidate's fit that ends faster than this many times the top speed
#: of the scan that found it has run off to something else and is dropped.  One
#: such fit (0.67 px/group, SNR 8.2) was the only false detection left on the
#: real ground-test ramp.  So a candidate stands in for another at its place
#: only if its own scan reached as fast (:meth:`SearchCandidate.stands_in_for`).
FIT_SPEED_CAP = 1.25


@dataclass
class SearchCandidate:
    """A local maximum of the shift-and-stack SNR.

    Attributes
    ----------
    x, y : float
        Position (px) at ``t_ref``: the middle of the integration, or for the
        fast search the middle of the window that found it.
    vx, vy : float
        Velocity (px per group).
    snr : float
        Coarse SNR of the grid point (an underestimate of the refined SNR).
    t_ref : float
        Reference time in groups since the first read.
    v_searched : float
        Top speed (px/group) of the scan that found it: a fit that runs off far
        beyond it (:attr:`max_fit_speed`) is not this candidate any more.
    noise_scale : float
        Noise of the scan that found it beyond what the noise model and the
        per-pixel ``noise_scale`` explain (:func:`_excess_window_noise`); the
        candidate's measurement must be judged with it.
    sub_psf : bool
        Found as motion across less than the PSF
        (:mod:`~jwst_asteroid_step.search.slow_motion`): its flux is best
        measured in the mean image.
    """

    x: float
    y: float
    vx: float
    vy: float
    snr: float
    t_ref: float
    v_searched: float = np.inf
    noise_scale: float = 1.0
    sub_psf: bool = False

    @property
    def max_fit_speed(self):
        """Fastest (px/group) a fit from this candidate may end and still be it: :data:`FIT_SPEED_CAP`
        times :attr:`v_searched`."""
        return FIT_SPEED_CAP * self.v_searched

    def stands_in_for(self, other):
        """Whether this candidate's fit can do all that ``other``'s would, were they at one place.

        It must be allowed the speeds ``other``'s fit is, and, if ``other`` moves
        less than its PSF, take the flux from the mean image as ``other``'s fit
        does: without it a fit fixes only flux x velocity, and its speed is not
        significant.
        """
        return self.max_fit_speed >= other.max_fit_speed and (self.sub_psf or not other.sub_psf)


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

    Bin lengths are the finest class's length times powers of two, so the bins of
    every class are sums of the finest bins.

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
    base = max(1, int(np.floor(max_smear_px / v_max)))
    classes = []
    hi, bin_len = float(v_max), base
    while True:
        if 2 * bin_len > max_bin:
            classes.append((0.0, hi, bin_len))
            return classes[::-1]
        classes.append((hi / 2.0, hi, bin_len))
        hi, bin_len = hi / 2.0, 2 * bin_len


@numba.njit(parallel=True, fastmath=True, cache=True)
def _scan(psi, t_bin, vxs, vys, vnorm, norm, best_snr, best_iv, rows):
    """For every starting pixel in ``rows``, the best SNR over the velocities and its index."""
    n_bins, ny, nx = psi.shape
    for i_row in numba.prange(rows.size):
        y = rows[i_row]
        acc = np.empty(nx, dtype=np.float32)
        row_best, row_iv = _row_buffers(nx)
        for iv in range(vxs.size):
            acc[:] = 0.0
            for b in range(n_bins):
                yy = y + int(np.rint(vys[iv] * t_bin[b]))
                if yy < 0 or yy >= ny:
                    continue
                dx = int(np.rint(vxs[iv] * t_bin[b]))
                x_lo, x_hi = max(0, -dx), min(nx, nx - dx)
                if x_hi <= x_lo:
                    continue  # the whole shifted row is off the array
                # Contiguous 1-D slices so the add vectorises.
                src = psi[b, yy][x_lo + dx:x_hi + dx]
                dst = acc[x_lo:x_hi]
                for i in range(src.size):
                    dst[i] += src[i]
            _keep_best(acc, vnorm[iv], iv, row_best, row_iv)
        _merge_row(row_best, row_iv, norm[y], best_snr[y], best_iv[y])


@numba.njit(cache=True)
def _row_buffers(nx):
    return np.full(nx, -np.inf, dtype=np.float32), np.zeros(nx, dtype=np.int32)


@numba.njit(fastmath=True, cache=True)
def _keep_best(acc, scale, iv, row_best, row_iv):
    """Keep, per pixel, the largest ``acc * scale`` so far and its velocity.

    Selects rather than branches, so the loop vectorises: the comparison over
    the velocities is most of a scan's time otherwise.  The pixel's own
    normalisation, the same for every velocity, waits for :func:`_merge_row`.
    """
    for x in range(acc.size):
        s = acc[x] * scale
        better = s > row_best[x]
        row_best[x] = s if better else row_best[x]
        row_iv[x] = iv if better else row_iv[x]


@numba.njit(cache=True)
def _merge_row(row_best, row_iv, norm_row, best_row, iv_row):
    for x in range(row_best.size):
        s = row_best[x] * norm_row[x]
        if s > best_row[x]:
            best_row[x] = s
            iv_row[x] = row_iv[x]


@numba.njit(parallel=True, fastmath=True, cache=True)
def _half_sums(psi, t_off, split, uxs, uys, pad, out):
    """Shift-and-stack of each half of the bins (before and from ``split``) at velocities ``(uxs, uys)``.

    ``out[h, iu]`` is the planes' frame padded by ``pad`` on each side: tracks
    whose middle (``t_off`` is each bin's time from its half's middle) lies off
    the planes still collect the samples that fall on them.  Rows outermost, so
    the velocities of a row reuse the same rows of the planes from the cache.
    """
    n_bins, ny, nx = psi.shape
    n_xp = out.shape[3]
    for r in numba.prange(out.shape[2]):
        for h in range(2):
            b0, b1 = (0, split) if h == 0 else (split, n_bins)
            for iu in range(uxs.size):
                row = out[h, iu, r]
                row[:] = 0.0
                for b in range(b0, b1):
                    yy = r - pad + int(np.rint(uys[iu] * t_off[b]))
                    if yy < 0 or yy >= ny:
                        continue
                    dx = int(np.rint(uxs[iu] * t_off[b]))
                    lo, hi = max(0, pad - dx), min(n_xp, nx + pad - dx)
                    if hi <= lo:
                        continue
                    src = psi[b, yy][lo - pad + dx:hi - pad + dx]
                    dst = row[lo:hi]
                    for i in range(src.size):
                        dst[i] += src[i]


@numba.njit(parallel=True, fastmath=True, cache=True)
def _scan_halves(h_a, h_b, c_a, c_b, cell, vxs, vys, vnorm, iv0, norm, best_snr, best_iv):
    """:func:`_scan` over velocities whose two halves' stacks are ``h_a[cell]`` and ``h_b[cell]``."""
    ny, nx = norm.shape
    pad = (h_a.shape[2] - nx) // 2
    for y in numba.prange(ny):
        acc = np.empty(nx, dtype=np.float32)
        row_best, row_iv = _row_buffers(nx)
        for iv in range(vxs.size):
            row_a = h_a[cell[iv], pad + y + int(np.rint(vys[iv] * c_a))]
            row_b = h_b[cell[iv], pad + y + int(np.rint(vys[iv] * c_b))]
            xa, xb = pad + int(np.rint(vxs[iv] * c_a)), pad + int(np.rint(vxs[iv] * c_b))
            src_a, src_b = row_a[xa:xa + nx], row_b[xb:xb + nx]
            for x in range(nx):
                acc[x] = src_a[x] + src_b[x]
            _keep_best(acc, vnorm[iv], iv0 + iv, row_best, row_iv)
        _merge_row(row_best, row_iv, norm[y], best_snr[y], best_iv[y])


#: Fewest bins scanned as two halves (:func:`_scan_by_halves`); below it the
#: comparison over velocities, not the additions, is most of a scan.
_MIN_BINS_BY_HALVES = 16


def _scan_by_halves(psi, t_bin, vxs, vys, vnorm, norm, best_snr, best_iv, half_step, block=4):
    """:func:`_scan` as the sum of the stack's two halves, each stacked on a grid ``half_step`` apart.

    Half a stack is half as long, so a velocity grid twice as coarse places its
    track as well as the whole stack's grid places the whole track.  Each half
    is stacked once per coarse velocity (a quarter as many as the fine grid),
    and every fine velocity adds the two half stacks of its nearest coarse
    velocity, each shifted to the half's middle: ~3x fewer additions for long
    stacks.  A placement rounds twice (up to a pixel, against half a pixel).
    ``block`` coarse velocities are held at a time (~9 MB each on a full frame).
    """
    _, ny, nx = psi.shape
    lay = halves_layout(t_bin, vxs, vys, half_step)
    n_coarse, pad = lay.ux.size, lay.pad
    halves = np.empty((2, min(block, n_coarse), ny + 2 * pad, nx + 2 * pad), dtype=np.float32)
    # The kernel keeps velocity indices of its own slice: best_iv is mapped back after.
    sorted_iv = np.full((ny, nx), 0, dtype=np.int32)
    for first in range(0, n_coarse, block):
        last = min(first + block, n_coarse)
        _half_sums(psi, lay.t_off, lay.split, lay.ux[first:last], lay.uy[first:last], pad,
                   halves[:, :last - first])
        lo, hi = lay.bounds[first], lay.bounds[last]
        sel = lay.order[lo:hi]
        _scan_halves(halves[0], halves[1], lay.c_a, lay.c_b, lay.cell[lo:hi] - first, vxs[sel], vys[sel],
                     vnorm[sel], lo, norm, best_snr, sorted_iv)
    best_iv[:] = lay.order[sorted_iv]


def _fold_pairs(planes):
    """Sum successive pairs of planes in place; returns the first half (a view)."""
    n = planes.shape[0]
    for b in range(n // 2):
        np.add(planes[2 * b], planes[2 * b + 1], out=planes[b])
    if n % 2:
        planes[n // 2] = planes[n - 1]
    return planes[: -(-n // 2)]


def _robust_sigma(plane):
    """Standard deviation of a plane from the MAD of a subsample; stars and tracks barely move it.

    Every 4th pixel in each axis; every 8th on full frames, which still leaves
    ~16,000 (with 1,000 on a 256² array, the clip levels moved enough to turn a
    bench ramp's bright fast mover into 30 false fragments).
    """
    stride = 8 if plane.size >= 2**20 else 4
    sample = plane[::stride, ::stride]
    sample = sample[sample != 0]
    if sample.size == 0:
        return np.inf
    return mad_sigma(sample)


def _velocity_annulus(lo, hi, step):
    n = int(np.ceil(hi / step))
    g = np.arange(-n, n + 1) * step
    vx, vy = np.meshgrid(g, g)
    speed = np.hypot(vx, vy).ravel()
    sel = (speed <= hi + 0.5 * step) & ((speed > lo - 0.5 * step) if lo > 0 else True)
    return vx.ravel()[sel].astype(np.float32), vy.ravel()[sel].astype(np.float32)


def _bilinear(planes, t_bin, x, y, vx, vy):
    """Sum over bins of planes sampled bilinearly along tracks; arrays broadcast.

    Samples outside the planes count as zero.
    """
    x, y, vx, vy = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (x, y, vx, vy)))
    out = _bilinear_sums(planes, np.asarray(t_bin, dtype=np.float64), x.ravel(), y.ravel(), vx.ravel(),
                         vy.ravel())
    return out.reshape(x.shape) if x.ndim else float(out[0])


@numba.njit(cache=True)
def _bilinear_sums(planes, t_bin, x, y, vx, vy):
    # Serial: called thousands of times on small inputs, where a parallel
    # region's start-up, on a machine busy with other work, costs more than it saves.
    out = np.zeros(x.size)
    for i in range(x.size):
        out[i] = _track_sum(planes, t_bin, x[i], y[i], vx[i], vy[i])
    return out


#: Most a peak's SNR can gain from the sub-pixel, sub-grid refinement of
#: :func:`_refine_peaks`: half a pixel off in each axis and half a grid step
#: lose < 20 % of a mover's SNR at the narrowest PSF (F560W).  Peaks that stay
#: below the threshold even with this gain are not refined.
_REFINE_GAIN = 1.5


@numba.njit(cache=True)
def _sample(plane, px, py):
    """``plane`` interpolated bilinearly at ``(px, py)``; off the plane counts as zero."""
    ny, nx = plane.shape
    x0, y0 = int(np.floor(px)), int(np.floor(py))
    fx, fy = px - x0, py - y0
    total = 0.0
    for oy in range(2):
        yi = y0 + oy
        if yi < 0 or yi >= ny:
            continue
        wy = fy if oy else 1.0 - fy
        for ox in range(2):
            xi = x0 + ox
            if 0 <= xi < nx:
                total += plane[yi, xi] * wy * (fx if ox else 1.0 - fx)
    return total


@numba.njit(cache=True)
def _track_sum(planes, t_bin, x, y, vx, vy):
    """Sum over bins of ``planes`` sampled bilinearly along one track."""
    total = 0.0
    for b in range(planes.shape[0]):
        total += _sample(planes[b], x + vx * t_bin[b], y + vy * t_bin[b])
    return total


@numba.njit(cache=True)
def _speed_norm_at(speed, speeds, values, floor):
    """:class:`SpeedNorm` for one speed, in a numba kernel."""
    phi = np.interp(speed, speeds, values)
    return 1.0 / np.sqrt(phi) if phi > floor else 0.0


@numba.njit(parallel=True, cache=True)
def _refine_peaks(planes, t_bin, norm, speeds, values, floor, xs, ys, vxs, vys, step, m, min_snr, out):
    """Best sub-pixel position and sub-grid velocity around each grid peak.

    First, with ``m > 0``, the velocity over ``(2 m + 1)**2`` points ``step``
    apart at the peak's pixel (a coarser grid's cell); a peak that cannot reach
    ``min_snr`` even with :data:`_REFINE_GAIN` stops there, with SNR ``-inf``.
    Then position and velocity together, over a quarter pixel and half a step
    around the best.  ``out[p]`` is ``x, y, vx, vy, snr``.
    """
    for p in numba.prange(xs.size):
        x, y = float(xs[p]), float(ys[p])
        bvx, bvy, best = vxs[p], vys[p], -np.inf
        for i in range(-m, m + 1):
            for j in range(-m, m + 1):
                vx, vy = vxs[p] + i * step, vys[p] + j * step
                s = _track_sum(planes, t_bin, x, y, vx, vy) * _speed_norm_at(np.hypot(vx, vy), speeds, values,
                                                                               floor)
                if s > best:
                    bvx, bvy, best = vx, vy, s
        out[p, 0], out[p, 1], out[p, 2], out[p, 3], out[p, 4] = x, y, bvx, bvy, -np.inf
        if best * norm[ys[p], xs[p]] * _REFINE_GAIN < min_snr:
            continue
        best = -np.inf
        for iy in range(5):
            gy = y + 0.25 * (iy - 2)
            for ix in range(5):
                gx = x + 0.25 * (ix - 2)
                nrm = _sample(norm, gx, gy)
                for i in range(3):
                    vx = bvx + 0.5 * step * (i - 1)
                    for j in range(3):
                        vy = bvy + 0.5 * step * (j - 1)
                        s = (_track_sum(planes, t_bin, gx, gy, vx, vy) * nrm
                             * _speed_norm_at(np.hypot(vx, vy), speeds, values, floor))
                        if s > best:
                            best = s
                            out[p, 0], out[p, 1], out[p, 2], out[p, 3], out[p, 4] = gx, gy, vx, vy, s


def _refine(planes, t_bin, norm, speed_norm, xs, ys, vxs, vys, step, m=0, min_snr=-np.inf):
    """:func:`_refine_peaks` of grid peaks at pixels ``(xs, ys)``; returns an array (n, 5)."""
    out = np.empty((len(xs), 5))
    if len(xs):
        _refine_peaks(planes, np.asarray(t_bin, dtype=np.float64), norm, speed_norm.speeds, speed_norm.values,
                      speed_norm.floor, np.asarray(xs, dtype=np.int64), np.asarray(ys, dtype=np.int64),
                      np.asarray(vxs, dtype=np.float64), np.asarray(vys, dtype=np.float64), float(step), int(m),
                      float(min_snr), out)
    return out


#: Pixels of a row solved together: their working arrays stay in the core's cache.
_CHUNK = 64


@numba.njit(cache=True)
def _solve_small(gram, rhs, out, work):
    """``out = gram^-1 rhs`` for a small symmetric positive-definite ``gram`` (Cholesky, no allocation).

    ``work`` is scratch of ``gram``'s shape; a per-pixel ``np.linalg.solve``
    would allocate, and cost more than the pixel's whole tridiagonal solve.
    """
    n = rhs.size
    for i in range(n):
        for j in range(i + 1):
            acc = gram[i, j]
            for m in range(j):
                acc -= work[i, m] * work[j, m]
            work[i, j] = np.sqrt(max(acc, 1e-300)) if i == j else acc / work[j, j]
    for i in range(n):
        acc = rhs[i]
        for m in range(i):
            acc -= work[i, m] * out[m]
        out[i] = acc / work[i, i]
    for i in range(n - 1, -1, -1):
        acc = out[i]
        for m in range(i + 1, n):
            acc -= work[m, i] * out[m]
        out[i] = acc / work[i, i]


@numba.njit(parallel=True, cache=True)
def _prewhitened_bins(diff, exclude, read_noise, sky, gain, basis, bin_len, out, z_t, info_t):
    """Sum over time bins of the profiled, pre-whitened residual of every pixel.

    Per pixel, ``z = C^-1 (r - B c)`` with ``B c`` the generalised-least-squares
    fit of the pixel's static level and trends (``basis``, columns of B): a
    track's profiled matched-filter numerator is then ``sum_k s_k z_k``, again a
    sum along the track, so the shift-and-stack runs on ``z`` exactly as on
    independent data.  The pixel's static scene drops out, whatever its level.

    Also ``z_t = sum_k t_k z_k`` and its variance ``info_t = t' P t`` (``t_k``:
    the difference's time from the middle, in groups; ``P``: the profiled
    precision), the numerator and information of a level that changes linearly
    in time: what a source crossing less than its PSF leaves in each pixel
    (:mod:`~jwst_asteroid_step.search.slow_motion`).  Empty ``z_t`` and
    ``info_t`` skip them, and a tridiagonal solve per pixel.

    A row's pixels are solved together in chunks, the recursions running along
    the differences and vectorised over the chunk; each pixel's tridiagonal
    matrix is factored once for all its right-hand sides.  The noise model
    (``read_noise``, CDS, and ``gain``; ``sky``, each pixel's static charge per
    difference in DN, for the shot noise) is evaluated per chunk: no maps of
    variances beside the inputs.
    """
    n_k, ny, nx = diff.shape
    n_b = basis.shape[1]
    with_t = z_t.size > 0
    i_t = 1 + n_b  # right-hand sides: residual, basis columns, time
    n_rhs = i_t + 1 if with_t else i_t
    n_chunks = -(-nx // _CHUNK)
    for task in numba.prange(ny * n_chunks):
        y, x0 = task // n_chunks, (task % n_chunks) * _CHUNK
        nc = min(_CHUNK, nx - x0)
        sol = np.empty((n_rhs, n_k, nc))
        used = np.empty((n_k, nc))  # 1 where the difference is usable, else 0
        c_prime = np.empty((n_k, nc))
        inv_m = np.empty(nc)
        rn2, var = np.empty(nc), np.empty(nc)
        for x in range(nc):
            rn2[x] = float(read_noise[y, x0 + x]) ** 2
            var[x] = rn2[x] + max(float(sky[y, x0 + x]), 0.0) / float(gain[y, x0 + x])
        # Forward sweep of the Thomas algorithm for all right-hand sides.
        for k in range(n_k):
            t_k = k + 0.5 - 0.5 * n_k
            for x in range(nc):
                v = diff[k, y, x0 + x]
                ok = v == v and not exclude[k, y, x0 + x]
                u = 1.0 if ok else 0.0
                used[k, x] = u
                sol[0, k, x] = v if ok else 0.0
                for j in range(n_b):
                    sol[1 + j, k, x] = basis[k, j] * u
                if with_t:
                    sol[i_t, k, x] = t_k * u
                m = var[x] if ok else 1.0
                if k > 0:
                    o = -0.5 * rn2[x] * u * used[k - 1, x]
                    c = o * inv_m[x]
                    c_prime[k - 1, x] = c
                    m -= o * c
                    for i in range(n_rhs):
                        sol[i, k, x] -= o * sol[i, k - 1, x]
                inv_m[x] = 1.0 / m
                for i in range(n_rhs):
                    sol[i, k, x] *= inv_m[x]
        for k in range(n_k - 2, -1, -1):
            for x in range(nc):
                for i in range(n_rhs):
                    sol[i, k, x] -= c_prime[k, x] * sol[i, k + 1, x]
        # Per pixel: generalised-least-squares fit of the basis, and t' P t.
        coef = np.empty((n_b, nc))
        gram = np.empty((n_b, n_b))
        chol = np.empty((n_b, n_b))
        rhs = np.empty(n_b)
        sol_b = np.empty(n_b)
        bt = np.empty(n_b)
        for x in range(nc):
            for i in range(n_b):
                rhs[i] = 0.0
                bt[i] = 0.0
                for j in range(n_b):
                    gram[i, j] = 1e-12 if i == j else 0.0
            tt = 0.0
            for k in range(n_k):
                u = used[k, x]
                if u == 0.0:
                    continue
                for i in range(n_b):
                    b_ki = basis[k, i]
                    rhs[i] += b_ki * sol[0, k, x]
                    for j in range(n_b):
                        gram[i, j] += b_ki * sol[1 + j, k, x]
                    if with_t:
                        bt[i] += b_ki * sol[i_t, k, x]
                if with_t:
                    tt += (k + 0.5 - 0.5 * n_k) * sol[i_t, k, x]
            _solve_small(gram, rhs, sol_b, chol)
            for i in range(n_b):
                coef[i, x] = sol_b[i]
            if with_t:
                # t' P t = t' C^-1 t - (B' C^-1 t)' (B' C^-1 B)^-1 (B' C^-1 t)
                _solve_small(gram, bt, sol_b, chol)
                for i in range(n_b):
                    tt -= bt[i] * sol_b[i]
                info_t[y, x0 + x] = max(tt, 0.0)
        # The chunk's differences are all read: ``out`` may share diff's memory.
        for ib in range(out.shape[0]):
            for x in range(nc):
                out[ib, y, x0 + x] = 0.0
        zt = np.zeros(nc)
        for k in range(n_k):
            t_k = k + 0.5 - 0.5 * n_k
            for x in range(nc):
                acc = sol[0, k, x]
                for j in range(n_b):
                    acc -= coef[j, x] * sol[1 + j, k, x]
                out[k // bin_len, y, x0 + x] += acc
                zt[x] += t_k * used[k, x] * acc
        if with_t:
            for x in range(nc):
                z_t[y, x0 + x] = zt[x]


def _speed_normalisation(psf, n_diff, valid_k, background, read_noise, gain, v_max, basis, sampled=False):
    """``1 / sqrt(Phi)`` of the search kernel's template, as a function of speed.

    ``Phi``: the information in a unit template (the kernel: the PSF core)
    crossing uniform sky once each pixel's static level and trends (``basis``)
    are profiled out, on a grid of speeds, interpolated between them.  Fast
    tracks are evaluated over a shorter stretch in the middle of the ramp and
    scaled, the statistic being additive along the track; each pixel is still
    profiled over all ``n_diff`` differences, as in the search.  (Profiled over
    the stretch alone, a fast track's pixels lost a larger share of its
    information to their levels: ``Phi`` fell too fast with speed, and the
    fast windows' SNR in noise spread 1.30 wide at 3 px/group against 0.99 at
    0.6, which pulled a track's best velocity to faster ones.)

    By default the template is the mover's own, trailed over each difference:
    the main search's thresholds were set with it, and its SNR in noise spreads
    ~0.92 wide at 0.1 px/group (F770W).  With ``sampled``, it is what the
    statistic sums per single difference: the core correlated at whole pixels,
    read off bilinearly at the difference's mid-time position
    (:func:`_track_sum`).  ``Phi`` is then the statistic's own noise variance,
    and its SNR has unit spread in noise at every speed
    (``benchmarks/window_noise.py``); the fast search uses it.
    """
    core = PSFModel(psf.fwhm, wing_fraction=0.0)
    prof = _core_profiles(psf, int(np.ceil(3.0 * psf.core_sigma)))[0]  # the search's
    speeds = np.concatenate([[0.0], np.geomspace(v_max / 200.0, v_max, 24)])
    values = []
    for v in speeds:
        n_t = int(min(n_diff, np.ceil(40.0 / max(v, 1e-9)) + 4))
        t0, t1 = difference_intervals(n_t + 1, 1.0)
        half = max(core.radius, prof.size // 2 + 1) + 0.5 * v * n_t + 1
        grid = np.arange(-np.ceil(half), np.ceil(half) + 1)
        vx, vy = v * np.cos(0.5), v * np.sin(0.5)
        if sampled:
            t = 0.5 * (t0 + t1) - 0.5 * n_t
            tmpl = _bilinear_kernel(prof, vx * t, vy * t, grid)
        else:
            tmpl = mover_differences(0.0, 0.0, vx, vy, 1.0, 0.5 * n_t, t0, t1, core, grid, grid)
        # The stretch sits in the middle of the whole ramp: each pixel's level
        # and trends are profiled over all its differences, as in the search.
        k0 = (n_diff - n_t) // 2
        valid = np.broadcast_to(valid_k[:, None], (n_diff, tmpl[0].size))
        s = np.zeros(valid.shape)
        s[k0:k0 + n_t] = np.where(valid[k0:k0 + n_t], tmpl.reshape(n_t, -1), 0.0)
        diag, off = difference_covariance(np.full(s.shape, background), valid, read_noise, gain)
        phi = profiled_information(s, valid, basis, diag, off)
        values.append(np.sum(phi) * n_diff / n_t)
    # Profiled, a static source carries no information: Phi(0) = 0.
    return SpeedNorm(speeds, np.maximum(values, 0.0))


def _bilinear_kernel(prof, xs, ys, grid):
    """Per position ``(xs[k], ys[k])``, the weights on ``grid`` x ``grid`` of a bilinear read of
    a plane correlated with ``prof`` along both axes; shape ``(len(xs), grid.size, grid.size)``."""
    r = prof.size // 2
    out = np.zeros((len(xs), grid.size, grid.size))
    for k, (x, y) in enumerate(zip(xs, ys)):
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        for cy, wy in ((y0, 1.0 - fy), (y0 + 1, fy)):
            for cx, wx in ((x0, 1.0 - fx), (x0 + 1, fx)):
                iy, ix = cy - int(grid[0]) - r, cx - int(grid[0]) - r
                out[k, iy:iy + prof.size, ix:ix + prof.size] += wy * wx * np.outer(prof, prof)
    return out


class SpeedNorm:
    """``1 / sqrt(Phi)`` interpolated in speed, zero where ``Phi`` is below 5 % of its top.

    Speeds whose track stays within a fraction of the PSF carry too little
    information to search.  Callable on speeds; its table (``speeds``,
    ``values``, ``floor``) feeds the numba kernels.
    """

    def __init__(self, speeds, values):
        self.speeds, self.values = np.asarray(speeds, dtype=np.float64), np.asarray(values, dtype=np.float64)
        self.floor = 0.05 * float(self.values.max())

    def __call__(self, speed):
        phi = np.interp(speed, self.speeds, self.values)
        return np.where(phi > self.floor, 1.0 / np.sqrt(np.maximum(phi, self.floor)), 0.0)


def _window_starts(n_diff, window):
    """First differences of windows of ``window`` differences covering ``n_diff``.

    The last window ends with the ramp, so it may overlap the one before.
    """
    if window >= n_diff:
        return [0]
    starts = list(range(0, n_diff - window + 1, window))
    if starts[-1] + window < n_diff:
        starts.append(n_diff - window)
    return starts


def _clip_planes(planes, clip_sigma, keep=False):
    """Clip each plane in place at ``clip_sigma`` of its robust standard deviation.

    Returns
    -------
    clipped : list of (int, ndarray, ndarray, float32)
        With ``keep``, per plane the flat indices and former values of what was
        clipped (a few pixels: cosmic-ray residuals, bright sources) and the clip
        level, for :func:`_unclip_planes`; otherwise empty (the search's main
        classes clip for good, and finding what was clipped costs a pass over
        every plane).
    """
    clipped = []
    for i, plane in enumerate(planes):
        limit = np.float32(clip_sigma * _robust_sigma(plane))
        if keep:
            idx, values = _clip_kept(plane.reshape(-1), limit)
            clipped.append((i, idx, values, limit))
        else:
            np.clip(plane, -limit, limit, out=plane)
    return clipped


@numba.njit(cache=True)
def _clip_kept(flat, limit):
    """Clip ``flat`` in place at ``+-limit``; the indices and former values of what was clipped."""
    n = 0
    for v in flat:
        n += abs(v) > limit
    idx, values = np.empty(n, dtype=np.int64), np.empty(n, dtype=flat.dtype)
    j = 0
    for i in range(flat.size):
        v = flat[i]
        if abs(v) > limit:
            idx[j], values[j] = i, v
            j += 1
            flat[i] = limit if v > 0 else -limit
    return idx, values


def _unclip_planes(planes, clipped):
    """Undo :func:`_clip_planes`."""
    for i, idx, values, _ in clipped:
        planes[i].reshape(-1)[idx] = values


def _unflattened_velocities(planes, clipped, t_bin, xs, ys, vxs, vys, iv, min_share=0.5):
    """Grid velocities of peaks, chosen again on the unclipped planes where the clip flattened their tracks.

    A source bright enough to reach the clip level in most of a short stack's
    planes is a plateau there: every velocity that keeps the track on it stacks
    about the same sum, and the speed normalisation, which grows with speed,
    then picks the fastest (a streak of 1.47 px/group was nominated at 2.9 px/group,
    its fit never found it, and the main search's fragments of it became a
    dozen false detections).  Where at least ``min_share`` of a peak's samples
    sit at the clip level, its velocity is the one that stacks the most light
    on the unclipped planes: the normalisation is for telling a track from
    noise, and such a source is plainly there.  A cosmic-ray remnant, clipped
    in one plane, cannot qualify.

    Parameters
    ----------
    planes : ndarray, float32, shape (n_bins, ny, nx)
        Clipped planes (restored on return).
    clipped : list
        What :func:`_clip_planes` with ``keep`` clipped from ``planes``, plane
        indices counted from ``planes[0]``.
    t_bin : ndarray, float32, shape (n_bins,)
    xs, ys : ndarray of int
        The peaks' pixels.
    vxs, vys : ndarray, float32, shape (n_vel,)
        The velocity grid.
    iv : ndarray of int
        Each peak's grid velocity on the clipped planes.

    Returns
    -------
    ndarray of int
        Each peak's grid velocity.
    """
    if not clipped or iv.size == 0:
        return iv
    n_bins, ny, nx = planes.shape
    limits = np.full(n_bins, np.inf, dtype=np.float32)
    for i, _, _, limit in clipped:
        limits[i] = limit
    # Samples as the scan takes them: whole-pixel shifts rounded half to even.
    py = ys[:, None] + np.rint(vys[iv][:, None] * t_bin[None, :]).astype(int)
    px = xs[:, None] + np.rint(vxs[iv][:, None] * t_bin[None, :]).astype(int)
    on = (py >= 0) & (py < ny) & (px >= 0) & (px < nx)
    b = np.broadcast_to(np.arange(n_bins), py.shape)
    at_limit = np.zeros(py.shape, dtype=bool)
    at_limit[on] = np.abs(planes[b[on], py[on], px[on]]) >= limits[b[on]]
    flat = np.flatnonzero(at_limit.sum(axis=1) >= min_share * n_bins)
    if flat.size == 0:
        return iv
    kept = [(i, idx, planes[i].reshape(-1)[idx].copy(), limit) for i, idx, _, limit in clipped]
    _unclip_planes(planes, clipped)
    try:
        sums = _bilinear(planes, t_bin, xs[flat, None], ys[flat, None], vxs[None, :], vys[None, :])
    finally:
        _unclip_planes(planes, kept)
    iv = iv.copy()
    iv[flat] = np.argmax(sums, axis=1)
    return iv


def _scan_maxima(planes, t_bin, vxs, vys, vnorm, norm, threshold, min_separation, backend, half_step=0.0):
    """Scan the velocities; local maxima of the best SNR at or above ``threshold``.

    With ``half_step`` > 0 (px/group; stacks of at least
    :data:`_MIN_BINS_BY_HALVES` bins: the caller decides) the stack is scanned as
    two halves on that coarser grid (:func:`_scan_by_halves`, or its CUDA twin).

    Returns
    -------
    snr, best_iv : ndarray, shape (ny, nx)
        Best SNR of every starting pixel and the index of its velocity.
    ys, xs : ndarray of int
        The maxima, highest SNR first.
    """
    ny, nx = planes.shape[1:]
    if backend == "cpu":
        snr = np.full((ny, nx), -np.inf, dtype=np.float32)
        best_iv = np.zeros((ny, nx), dtype=np.int32)
        if half_step > 0:
            _scan_by_halves(planes, t_bin, vxs, vys, vnorm, norm, snr, best_iv, half_step)
        else:
            _scan(planes, t_bin, vxs, vys, vnorm, norm, snr, best_iv, np.arange(ny))
    else:
        snr, best_iv = scan_cuda(planes, t_bin, vxs, vys, vnorm, norm, half_step)
    ys, xs = np.nonzero(snr >= threshold)
    keep = local_maxima(snr, ys, xs, min_separation)
    ys, xs = ys[keep], xs[keep]
    order = np.argsort(snr[ys, xs])[::-1]
    return snr, best_iv, ys[order], xs[order]


def _window_times(window):
    """Times (groups) of a window's differences from the window's middle."""
    return (np.arange(window) + 0.5 - 0.5 * window).astype(np.float32)


_PROBE_ANGLES = np.arange(8) * np.pi / 4


def _window_spread(planes, norm, speed_norm, window, speed, margin):
    """Robust spread of the windows' SNR at one speed in eight directions.

    Pixels within ``margin`` of the edges, whose tracks leave the planes, do not
    count.  Returns an array (windows, directions), NaN where too few pixels remain.
    """
    n_diff, ny, nx = planes.shape
    vxs = (speed * np.cos(_PROBE_ANGLES)).astype(np.float32)
    vys = (speed * np.sin(_PROBE_ANGLES)).astype(np.float32)
    vnorm = (speed_norm(np.full(vxs.size, speed)) * np.sqrt(n_diff / window)).astype(np.float32)
    t_bin = _window_times(window)
    # About 60,000 pixels fix a spread to ~0.5 %; large arrays are subsampled to
    # save the medians' cost.
    stride = max(1, int(np.sqrt(max(ny - 2 * margin, 0) * max(nx - 2 * margin, 0) / 6e4)))
    inner = (slice(margin, ny - margin, stride), slice(margin, nx - margin, stride))
    rows = np.arange(ny)[inner[0]]  # only the sampled rows are scanned
    starts = _window_starts(n_diff, window)
    spreads = np.full((len(starts), vxs.size), np.nan)
    snr, unused_iv = np.empty((ny, nx), dtype=np.float32), np.zeros((ny, nx), dtype=np.int32)
    for i, start in enumerate(starts):
        for j in range(vxs.size):
            snr[:] = -np.inf
            _scan(planes[start:start + window], t_bin, vxs[j:j + 1], vys[j:j + 1], vnorm[j:j + 1], norm, snr,
                  unused_iv, rows)
            s = snr[inner][norm[inner] > 0]
            if s.size >= 50:
                spreads[i, j] = mad_sigma(s)
    return spreads


def _float32_map(value, shape):
    """``value`` (a number or a map) as a C-contiguous float32 map of ``shape``; not copied if it is one."""
    a = np.asarray(value, dtype=np.float32)
    return a if a.shape == shape and a.flags.c_contiguous else np.ascontiguousarray(np.broadcast_to(a, shape))


def _model_noise_planes(n_diff, size, read_noise, poisson, basis, prof, seed):
    """Pure model noise through the search's steps: its planes of single differences.

    Read noise (CDS, DN) drawn once per read and shot noise (``poisson``, DN**2
    per difference) on ``size`` x ``size`` pixels, pre-whitened with each pixel's
    level and trends (``basis``) profiled, then correlated with ``prof`` along
    both axes.  The reference for what the search's statistics should do in
    noise.
    """
    rng = np.random.default_rng(seed)
    reads = rng.normal(0.0, read_noise / np.sqrt(2.0), (n_diff + 1, size, size))
    shot = rng.normal(0.0, np.sqrt(poisson), (n_diff, size, size))
    diff = (np.diff(reads, axis=0) + shot).astype(np.float32)
    del reads, shot
    planes = np.empty_like(diff)
    unused = np.empty((0, 0), dtype=np.float32)
    shape = (size, size)
    _prewhitened_bins(diff, np.zeros(diff.shape, dtype=bool), _float32_map(read_noise, shape),
                      _float32_map(poisson, shape), _float32_map(1.0, shape), basis, 1, planes, unused, unused)
    correlate_planes(planes, prof)
    return planes


def _excess_window_noise(fine, norm, speed_norm, speed, window, read_noise, poisson, basis, prof, clip_sigma,
                         size=160, seed=SAMPLE_SEED):
    """How much noisier the windows' statistic is on the data than on the noise model, by direction.

    A fast track lingers a difference or two on each pixel, so noise correlated
    along a row or over a few differences adds to its statistic far more than
    the per-pixel ``noise_scale``, measured on slow templates, tells: the pickup
    of real MIRI subarrays makes bands that move along the columns, and tracks
    that follow them.  The windows' statistic at one speed is measured in eight
    directions on the data and, through the same steps, on pure model noise of
    the ramp's median pixel (the windows' normalisation is only approximate, so
    the model's own spread is the reference).

    Returns
    -------
    callable
        Excess (at least 1) for velocities ``(vx, vy)``: the larger of the two
        probed orientations either side of the direction, whichever the sense.
    """
    n_diff = fine.shape[0]
    window = min(window, n_diff)
    margin = int(np.ceil(0.5 * speed * window)) + prof.size // 2 + 1
    model = _model_noise_planes(n_diff, size, read_noise, poisson, basis, prof, seed)
    _clip_planes(model, clip_sigma)
    # The model is isotropic: its directions are pooled.
    expected = np.nanmedian(_window_spread(model, np.ones((size, size), dtype=np.float32), speed_norm, window,
                                           speed, margin))
    ratio = _window_spread(fine, norm, speed_norm, window, speed, margin) / expected
    # Per direction the median over windows; per orientation the larger of its
    # two senses, since a fast track's sense is the fit's to find.  Too small an
    # array to measure: the model is trusted.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN directions
        direction = np.nanmedian(ratio, axis=0)
    orientation = np.maximum(1.0, np.nan_to_num(np.fmax(direction[:4], direction[4:]), nan=1.0))

    def excess(vx, vy):
        a = np.mod(np.arctan2(vy, vx), np.pi) / (np.pi / 4)  # in probe steps, 0 to 4
        lo = np.floor(a).astype(int) % 4
        return np.maximum(orientation[lo], orientation[(lo + 1) % 4])

    return excess


def _fast_candidates(fine, norm, speed_norm, lo, hi, sigma_eff, grid_loss, window, window_snr,
                     snr_threshold, min_separation, max_peaks, backend, excess, min_consistency=0.3, clipped=()):
    """Candidates of ``lo``-``hi`` px/group from short windows, confirmed along the whole ramp.

    A coherent search of the whole ramp needs a velocity grid whose spacing shrinks
    as one over its length, so its cost grows as the cube of the top speed.  Within
    a window of ``window`` differences the grid can be that much coarser: each
    window is scanned on its own grid (the window's SNR is the whole track's times
    about sqrt(window / n_diff)), and each of its peaks is refined along the whole
    ramp, first in velocity over the window's grid cell, then as in the main
    search; a candidate must pass ``snr_threshold`` over the whole ramp.

    Parameters
    ----------
    fine : ndarray, float32, shape (n_diff, ny, nx)
        PSF-correlated, clipped planes of single differences.
    norm : ndarray, shape (ny, nx)
        Per-pixel normalisation of the whole ramp's statistic.
    speed_norm : callable
        Per-speed normalisation of the whole ramp's statistic, reaching ``hi``.
    lo, hi : float
        Speeds searched (px/group).
    sigma_eff : float
        PSF core width (px) with the pixel.
    grid_loss : float
        SNR fraction the whole ramp's velocity grid may lose; a window's grid
        may lose twice as much.
    window : int
        Differences per window.
    window_snr : float
        A window's SNR that makes a peak worth refining.
    snr_threshold : float
        Whole-ramp SNR a candidate must reach.
    min_separation : int
        Half-size (px) of the neighbourhood a window's peak must be the maximum of.
    max_peaks : int
        Most peaks refined per window.
    backend : str
        Where the scan runs.
    excess : callable
        Noise of the windows beyond the model for velocities ``(vx, vy)``
        (:func:`_excess_window_noise`): the fast search's SNRs are divided by it.
    min_consistency : float
        Least :func:`_window_consistency` of a candidate.
    clipped : list
        What :func:`_clip_planes` clipped from ``fine`` (``keep``): a window
        peak whose track the clip flattened takes its velocity from the
        unclipped window (:func:`_unflattened_velocities`).

    Returns
    -------
    candidates : list of SearchCandidate
    n_trials : int
        Velocities x pixels scanned over all windows.
    """
    n_diff, ny, nx = fine.shape
    window = min(window, n_diff)
    step = velocity_grid_step(sigma_eff, n_diff, grid_loss)
    # The windows only nominate: their grid may lose twice as much as the whole
    # ramp's, which confirms every candidate.
    step_w = velocity_grid_step(sigma_eff, window, 2.0 * grid_loss)
    vxs, vys = _velocity_annulus(lo, hi, step_w)
    # The window holds window / n_diff of the track's information.
    vnorm = speed_norm(np.hypot(vxs, vys)) * np.sqrt(n_diff / window) / excess(vxs, vys)
    vnorm = vnorm.astype(np.float32)
    m = int(np.ceil(0.5 * step_w / step))
    t_bin = _window_times(window)
    found, n_trials = [], 0
    for start in _window_starts(n_diff, window):
        t_w = start + 0.5 * window
        best_iv, ys, xs = _scan_maxima(fine[start:start + window], t_bin, vxs, vys, vnorm, norm,
                                       window_snr, min_separation, backend)[1:]
        n_trials += vxs.size * ny * nx
        t_all = (np.arange(n_diff) + 0.5 - t_w).astype(np.float32)
        ys, xs = ys[:max_peaks], xs[:max_peaks]
        ivs = best_iv[ys, xs]
        del best_iv  # not held through the next window's scan
        in_window = [(i - start, idx, values, limit) for i, idx, values, limit in clipped
                     if start <= i < start + window]
        ivs = _unflattened_velocities(fine[start:start + window], in_window, t_bin, xs, ys, vxs, vys, ivs)
        # Velocity over the window's grid cell at the window's peak, then position
        # and velocity together, along the whole ramp.
        refined = _refine(fine, t_all, norm, speed_norm, xs, ys, vxs[ivs], vys[ivs], step, m=m, min_snr=snr_threshold)
        for yi, xi, iv, (x, y, vx, vy, s) in zip(ys, xs, ivs, refined):
            if _on_a_line(float(xi), float(yi), vxs[iv], vys[iv], found, hi * n_diff):
                continue  # a streak already followed (see _on_a_line)
            scale = float(excess(vx, vy))
            s /= scale
            if s < snr_threshold or _window_consistency(fine, t_all, x, y, vx, vy, window) < min_consistency:
                continue
            found.append(SearchCandidate(x=x, y=y, vx=vx, vy=vy, snr=s, t_ref=t_w, v_searched=hi,
                                         noise_scale=scale))
    return found, n_trials


def _window_consistency(fine, t, x, y, vx, vy, window):
    """Median share of the statistic along a track that each window holds, relative to an even share.

    About 1 for a mover; a track that only crosses a bright streak, or that lines
    up chance peaks, gets most of its sum from one window and scores near 0.
    Windows whose middle lies off the array do not count.
    """
    n_diff, ny, nx = fine.shape
    psi = []
    for start in _window_starts(n_diff, window):
        t_mid = t[start] + 0.5 * min(window, n_diff) - 0.5
        if 0 <= x + vx * t_mid <= nx - 1 and 0 <= y + vy * t_mid <= ny - 1:
            psi.append(float(_bilinear(fine[start:start + window], t[start:start + window], x, y, vx, vy)))
    if len(psi) < 2:
        return 1.0  # one window: nothing to compare
    psi = np.asarray(psi)
    return float(np.median(psi) / max(np.mean(psi), 1e-30))


def _on_a_line(x, y, vx, vy, lines, length, max_offset_px=3.0, max_angle=0.2):
    """Whether a track lies along one of ``lines`` (candidates), whatever its timing.

    In read-noise-limited ramps the group differences fix where a fast track lies
    far better than when the source passed each pixel (a step in a ramp is timed
    only to a fraction of the ramp), so one streak peaks all along its length in
    every window, at speeds along it that differ.  A track whose position lies
    within ``max_offset_px`` of a line, within ``length`` of its point along it,
    and whose direction agrees within ``max_angle`` (either sense) is that streak
    again: the moving-PSF fit, started from the line's best candidate, times it.
    """
    for c in lines:
        across, along, cos_angle = offsets_from_line(c.x, c.y, c.vx, c.vy, x, y, vx, vy)
        if abs(across) < max_offset_px and abs(along) < length and cos_angle > np.cos(max_angle):
            return True
    return False


def matched_filter_search(diff, exclude, background, read_noise, gain, psf, v_max=0.5,
                          snr_threshold=6.0, grid_loss=0.1, max_smear_px=1.0, max_candidates=200,
                          clip_sigma=8.0, min_separation=3, trend_order=0, noise_scale=1.0,
                          overwrite=False, backend="cpu", fast_max_speed=0.0, fast_window=12,
                          fast_snr_threshold=5.5, fast_confirm_snr=8.0):
    """Shift-and-stack search of one integration's group differences.

    Parameters
    ----------
    diff : ndarray, float32, shape (ndiff, ny, nx)
        Group differences (DN), NaN where unusable.
    exclude : ndarray, bool, shape (ndiff, ny, nx)
        Cells to leave out (cosmic rays, showers, noisy pixels).
    background : ndarray, shape (ny, nx)
        Static scene per difference (DN), for the shot noise only: each pixel's
        constant level is profiled out of the statistic.
    read_noise, gain : float or ndarray, shape (ny, nx)
        CDS read noise (DN) and gain (e/DN).
    psf : PSFModel
        The PSF; the search kernel is its pixel-integrated core.
    v_max : float
        Top speed searched (px/group); the grid reaches down to zero.
    snr_threshold : float
        SNR (after sub-grid refinement) a candidate must reach.
    grid_loss : float
        Largest SNR fraction lost to the velocity grid spacing.
    max_smear_px : float
        Largest motion (px) within one time bin.
    max_candidates : int
        Most candidates returned, highest SNR first.
    clip_sigma : float
        Each time bin's plane is clipped at this many of its robust standard
        deviations, so a cosmic-ray remnant the jump step missed cannot make a
        track on its own.
    min_separation : int
        Half-size (px) of the neighbourhood a candidate must be the maximum of.
    trend_order : int
        Per-pixel trends of the difference rate profiled out with the static
        level (:func:`~jwst_asteroid_step.ramp.systematics.trend_basis`).
    noise_scale : float or ndarray, shape (ny, nx)
        Measured excess of the real noise over the model
        (:func:`~jwst_asteroid_step.ramp.systematics.noise_scale`); SNRs are
        divided by it.
    overwrite : bool
        Build the search's planes in ``diff``'s own memory (its values are lost),
        so that the search needs no second cube.
    backend : {"cpu", "cupy"}
        Where the velocity scans run: the numba kernels, or their CUDA twins
        through CuPy on a GPU (:mod:`~jwst_asteroid_step.search.backends`).
    fast_max_speed : float
        Above ``v_max``, up to this speed (px/group), search windows of
        ``fast_window`` differences on their own coarser velocity grids and
        confirm their peaks along the whole ramp (:func:`_fast_candidates`);
        0 (or anything up to ``v_max``) for none.
    fast_window : int
        Differences per window of the fast search.
    fast_snr_threshold : float
        A window's SNR that makes a peak of the fast search worth refining.
    fast_confirm_snr : float
        Whole-ramp SNR a fast-search candidate must reach (at least
        ``snr_threshold``): its many windows' trials raise the noise tail.

    Returns
    -------
    candidates : list of SearchCandidate
    stats : dict
        ``n_velocities`` tested, ``n_trials`` (velocities x pixels, the fast
        windows' included), ``n_peaks``, grid maxima refined, and
        ``n_fast_candidates``, candidates of the fast windows;
        ``n_slow_candidates``, candidates of sub-pixel motion
        (:mod:`~jwst_asteroid_step.search.slow_motion`);
        ``fast_noise_excess``, the largest :attr:`SearchCandidate.noise_scale`
        of any direction.
    """
    n_diff, ny, nx = diff.shape
    # The noise model's inputs as float32 maps (no copies of maps that are
    # already): at a few groups per-pixel maps, not the cube, set the search's memory.
    rn, sky, gain = (_float32_map(a, (ny, nx)) for a in (read_noise, background, gain))
    median_rn, median_gain = float(np.median(rn)), float(np.median(gain))
    median_poisson = float(np.median(np.maximum(sky, 0) / gain))
    sigma = psf.core_sigma
    prof = _core_profiles(psf, int(np.ceil(3.0 * sigma)))[0].astype(np.float32)

    # How much of the ideal data each starting point's footprint holds, relative
    # to clean sky (diagonal approximation): masks, cosmic rays, stars.  Points
    # that lost most of it (reference columns, masked regions) are not searched.
    n_usable, per_diff = usable_counts(diff, exclude)
    valid_k = per_diff > 0.5 * ny * nx
    weight = np.square(rn)
    weight += np.maximum(sky, 0) / gain
    ref_weight = np.float32(1.0 / np.median(weight))
    np.reciprocal(weight, out=weight)
    phi_full = _correlate(weight, prof**2, prof**2)  # all n_diff differences usable, over n_diff
    weight *= n_usable
    del n_usable
    phi = _correlate(weight, prof**2, prof**2)
    del weight
    phi_ref = n_diff * ref_weight * np.sum(prof**2) ** 2
    norm = np.where(phi >= 0.5 * n_diff * phi_full, np.sqrt(phi_ref / np.maximum(phi, 1e-30)), 0.0).astype(np.float32)
    del phi, phi_full
    norm /= np.broadcast_to(np.asarray(noise_scale, dtype=np.float32), (ny, nx))
    basis = trend_basis(n_diff, trend_order)
    speed_norm = _speed_normalisation(psf, n_diff, valid_k, float(np.median(sky)), median_rn, median_gain,
                                      v_max, basis)

    t_ref = 0.5 * n_diff  # in groups; difference k is centred at k + 0.5
    sigma_eff = np.sqrt(sigma**2 + 1.0 / 12.0)
    step = velocity_grid_step(sigma_eff, n_diff, grid_loss)
    classes = speed_classes(v_max, max_smear_px)
    fast = fast_max_speed > v_max
    finest = 1 if fast else classes[-1][2]
    n_fine = -(-n_diff // finest)
    fine = diff[:n_fine] if overwrite else np.empty((n_fine, ny, nx), dtype=np.float32)
    # A profiled drift takes a sub-PSF mover's signal whole: no sub-PSF search then.
    sub_psf = trend_order == 0
    t_shape = (ny, nx) if sub_psf else (0, 0)
    z_t, info_t = np.empty(t_shape, dtype=np.float32), np.empty(t_shape, dtype=np.float32)
    _prewhitened_bins(diff, exclude, rn, sky, gain, basis, finest, fine, z_t, info_t)
    correlate_planes(fine, prof)
    found, n_vel, n_peaks, n_trials = [], 0, 0, 0
    # Sources that cross less than a grid step: to the grid's whole-pixel shifts
    # they are static, or a jump.  (Their fits may end anywhere in the main range.)
    if sub_psf:
        for x, y, vx, vy, s in zip(*slow_motion_candidates(
                z_t, info_t, background, psf, n_diff, snr_threshold, 2.0 * step * n_diff, noise_scale,
                min_separation, max_candidates)):
            found.append(SearchCandidate(x=x, y=y, vx=vx, vy=vy, snr=s, t_ref=t_ref, v_searched=v_max,
                                         sub_psf=True))
    n_slow = len(found)
    del z_t, info_t
    if fast:
        # The windows clip single differences; the main classes must see the same
        # bins with or without the fast search and clip their own, so it is undone.
        clipped = _clip_planes(fine, clip_sigma, keep=True)
        fast_norm = _speed_normalisation(psf, n_diff, valid_k, float(np.median(sky)), median_rn, median_gain,
                                         fast_max_speed, basis, sampled=True)
        excess = _excess_window_noise(fine, norm, fast_norm, 0.5 * (v_max + fast_max_speed), fast_window,
                                      median_rn, median_poisson, basis, prof, clip_sigma)
        fast_found, n_trials = _fast_candidates(
            fine, norm, fast_norm, v_max, fast_max_speed, sigma_eff, grid_loss, fast_window,
            fast_snr_threshold, max(snr_threshold, fast_confirm_snr), min_separation, max_candidates,
            backend, excess=excess, clipped=clipped)
        found.extend(fast_found)
        _unclip_planes(fine, clipped)
        del clipped
    n_fast = len(found) - n_slow
    # Fastest class first, on the finest bins; each slower class's bins are then
    # the previous ones summed in pairs, in place, so the search holds one set of
    # planes at a time.
    planes, bin_len = fine, finest
    for lo, hi, class_bin in classes[::-1]:
        while bin_len < class_bin:
            planes = _fold_pairs(planes)
            bin_len *= 2
        n_bins = planes.shape[0]
        t_bin = np.array([0.5 * (b * bin_len + min((b + 1) * bin_len, n_diff)) - t_ref
                          for b in range(n_bins)], dtype=np.float32)
        _clip_planes(planes, clip_sigma)
        vxs, vys = _velocity_annulus(lo, hi, step)
        n_vel += vxs.size
        vnorm = speed_norm(np.hypot(vxs, vys)).astype(np.float32)
        # Grid points a little below threshold can refine above it.  Long stacks,
        # scanned as halves, lose ~5 % more on the grid, and place a track that
        # the planes' edge cuts short with one half's coarser grid: their peaks
        # are taken from 0.8 (not 0.85) of the threshold, and the refinement first
        # looks a step around the grid's velocity.  (On short stacks that would
        # only send more noise peaks to the fit: 103 candidates at 10 groups.)
        halves = planes.shape[0] >= _MIN_BINS_BY_HALVES
        best_iv, ys, xs = _scan_maxima(planes, t_bin, vxs, vys, vnorm, norm,
                                       (0.8 if halves else 0.85) * snr_threshold, min_separation, backend,
                                       half_step=2.0 * step if halves else 0.0)[1:]
        ys, xs = ys[: 4 * max_candidates], xs[: 4 * max_candidates]
        ivs = best_iv[ys, xs]
        del best_iv  # not held through the next class's scan
        n_peaks += ys.size
        refined = _refine(planes, t_bin, norm, speed_norm, xs, ys, vxs[ivs], vys[ivs], step, m=1 if halves else 0)
        for x, y, vx, vy, s in refined:
            if s >= snr_threshold:
                found.append(SearchCandidate(x=x, y=y, vx=vx, vy=vy, snr=s, t_ref=t_ref, v_searched=v_max))
    del planes, fine

    candidates = []
    for cand in sorted(found, key=lambda c: -c.snr):
        # Compared where each would be at the middle of the ramp; a stronger one
        # at its place replaces it only if its fit can do what its own would.
        x, y = cand.x + cand.vx * (t_ref - cand.t_ref), cand.y + cand.vy * (t_ref - cand.t_ref)
        if all(np.hypot(x - c.x - c.vx * (t_ref - c.t_ref), y - c.y - c.vy * (t_ref - c.t_ref)) > min_separation
               or not c.stands_in_for(cand) for c in candidates):
            candidates.append(cand)
        if len(candidates) >= max_candidates:
            break
    worst = float(np.max(excess(np.cos(_PROBE_ANGLES), np.sin(_PROBE_ANGLES)))) if fast else 1.0
    stats = {"n_velocities": n_vel, "n_trials": n_vel * ny * nx + n_trials, "n_peaks": int(n_peaks),
             "n_fast_candidates": n_fast, "n_slow_candidates": n_slow, "fast_noise_excess": worst}
    return candidates, stats
