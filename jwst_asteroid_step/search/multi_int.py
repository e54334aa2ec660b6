"""Slow movers across integrations: objects that shift less than the PSF in one ramp.

A mover that crosses less than about one PSF FWHM during an integration looks
static to the single-integration search (:mod:`.matched_filter`), but over several
integrations it walks away from its earlier positions.  From one count-rate image
per integration this module

1. subtracts the static scene robustly (per-pixel median over integrations);
2. PSF-matched-filters each residual image (``psi = PSF (x) (r / var)``,
   ``phi = PSF**2 (x) (1 / var)``, as in :mod:`.matched_filter`);
3. takes local maxima of each integration's SNR map as seeds, links pairs of
   seeds in different integrations into straight lines of bounded speed, and
   scores each line by its stacked SNR over *all* integrations (a seed needs to
   stand out in two integrations only, so the search reaches well below the
   per-integration threshold);
4. fits a linear-motion PSF jointly to the rate images, with each pixel's static
   level profiled out (a free constant per pixel, so stars and sky cost nothing
   and the mover's own light in the static level does not bias its flux), and
   vets the fit: SNR, significance of the motion, within-integration motion under
   ``max_fwhm_per_int`` FWHM, and constant flux from integration to integration
   (a cosmic-ray remnant or a fast mover lives in one integration only).

The rate images come from :func:`integration_rates`: for every pixel the
generalised-least-squares rate of its usable group differences under the package
noise model (:mod:`jwst_asteroid_step.ramp.noise`, tridiagonal covariance: read
noise shared by adjacent differences).  When read noise dominates this is ~sqrt(N/6)
times more precise than the mean difference.  The images are time averages over
each integration with weights that the fit takes into account (``time_weights``).

With fewer than three integrations there is no robust static scene (with two, a
cosmic-ray remnant in either image is indistinguishable from a pair of mover
positions), so :func:`find_multi_int_movers` returns no detection.

Everything here takes numpy arrays and plain values.  Times are on one time base
for the whole exposure (seconds since the first read of the first integration);
catalog rows give ``t_int``, seconds since the first read of the integration they
name (DESIGN.md §4).
"""

import itertools
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize, stats
from scipy.spatial import cKDTree

from ..ramp.differences import pixel_background
from ..ramp.noise import difference_covariance, difference_variance, solve

__all__ = ["IntegrationRates", "find_multi_int_movers", "integration_rates"]

#: Rows of pixels processed at once by :func:`integration_rates` (bounds memory).
_ROW_BLOCK = 64
#: Time sub-samples per integration in the fitted model (a smear < ~1 FWHM).
_N_SUB = 7


@dataclass
class IntegrationRates:
    """Per-integration count-rate images and what the multi-integration search needs.

    Attributes
    ----------
    rates : ndarray, float64, shape (nints, ny, nx)
        Count rate (DN/s); 0 where not usable.
    errors : ndarray, float64, shape (nints, ny, nx)
        1-sigma error of ``rates`` (DN/s); inf where not usable.
    usable : ndarray, bool, shape (nints, ny, nx)
        Pixels with at least ``min_diffs`` usable differences.
    time_weights : ndarray, float64, shape (nints, ndiff)
        Mean over usable pixels of the weight each group difference has in the
        rate (each row sums to 1): the rate images are time averages with these
        weights.
    n_clipped : int
        Differences set aside as outliers (unflagged cosmic rays).
    """

    rates: np.ndarray
    errors: np.ndarray
    usable: np.ndarray
    time_weights: np.ndarray
    n_clipped: int = 0


def integration_rates(diffs, exclude, group_time, read_noise, gain, clip_sigma=5.0, min_diffs=2):
    """Count-rate image of each integration from its group differences.

    Each pixel's rate is the generalised-least-squares constant fitted to its
    usable differences with the package covariance (read noise shared by adjacent
    differences, shot noise of the pixel's mean charge per difference).

    Parameters
    ----------
    diffs : ndarray, shape (nints, ndiff, ny, nx), or sequence of (ndiff, ny, nx)
        Group differences (DN), NaN where unusable
        (:class:`~jwst_asteroid_step.ramp.differences.IntegrationDifferences`).
    exclude : ndarray of bool, same shape, or sequence, or None
        Differences to leave out (JUMP_DET cells, showers, edge transients).
    group_time : float
        Seconds per group.
    read_noise, gain : float or ndarray, shape (ny, nx)
        CDS read noise (DN) and gain (e/DN).
    clip_sigma : float or None
        Also leave out differences further than this many sigma from the pixel's
        median difference: cosmic rays the jump step missed would otherwise sit in
        one integration's image.  A slow mover changes a pixel's charge far less
        than that within one difference.  ``None`` disables it.
    min_diffs : int
        Fewest usable differences for a pixel to count.

    Returns
    -------
    IntegrationRates
    """
    n_ints = len(diffs)
    n_diff, ny, nx = np.shape(diffs[0])
    rates = np.zeros((n_ints, ny, nx))
    errors = np.full((n_ints, ny, nx), np.inf)
    usable = np.zeros((n_ints, ny, nx), dtype=bool)
    weights = np.zeros((n_ints, n_diff))
    rn = np.broadcast_to(np.asarray(read_noise, dtype=float), (ny, nx))
    g = np.broadcast_to(np.asarray(gain, dtype=float), (ny, nx))
    n_clipped = 0
    for i in range(n_ints):
        diff = np.asarray(diffs[i], dtype=np.float32)
        excl = np.zeros(diff.shape, bool) if exclude is None else np.asarray(exclude[i], dtype=bool)
        med, _ = pixel_background(diff, excl)
        w_sum = np.zeros(n_diff)
        n_pix = 0
        for y0 in range(0, ny, _ROW_BLOCK):
            rows = slice(y0, min(y0 + _ROW_BLOCK, ny))
            d = diff[:, rows].astype(float)
            valid = np.isfinite(d) & ~excl[:, rows]
            m = np.nan_to_num(med[rows].astype(float))
            if clip_sigma is not None:
                sig = np.sqrt(difference_variance(m, rn[rows], g[rows]))
                with np.errstate(invalid="ignore"):
                    out = valid & (np.abs(d - m[None]) > clip_sigma * sig[None])
                n_clipped += int(out.sum())
                valid &= ~out
            # Shot noise from the pixel's mean difference: read noise telescopes in
            # the mean, so it is ~sqrt(N) times steadier than the median, whose
            # scatter would swamp a faint sky's charge and misstate the errors.
            n_valid = valid.sum(axis=0)
            mean = np.where(valid, d, 0.0).sum(axis=0) / np.maximum(n_valid, 1)
            diag, off = difference_covariance(np.broadcast_to(mean, d.shape), valid, rn[rows],
                                              g[rows])
            shape2 = (n_diff, -1)
            # x = C^-1 1 over the usable differences: the GLS weights, unnormalised.
            x = solve(valid.reshape(shape2).astype(float), diag.reshape(shape2),
                      off.reshape(max(n_diff - 1, 0), -1))
            x[~valid.reshape(shape2)] = 0.0
            info = x.sum(axis=0)
            ok = (n_valid.ravel() >= min_diffs) & (info > 0)
            dz = np.where(valid, d, 0.0).reshape(shape2)
            rate = np.zeros(info.shape)
            rate[ok] = (x[:, ok] * dz[:, ok]).sum(axis=0) / info[ok] / group_time
            err = np.full(info.shape, np.inf)
            err[ok] = 1.0 / np.sqrt(info[ok]) / group_time
            rates[i, rows] = rate.reshape(-1, nx)
            errors[i, rows] = err.reshape(-1, nx)
            usable[i, rows] = ok.reshape(-1, nx)
            if ok.any():
                w_sum += (x[:, ok] / info[ok]).sum(axis=1)
                n_pix += int(ok.sum())
        weights[i] = w_sum / w_sum.sum() if n_pix else np.full(n_diff, 1.0 / n_diff)
    return IntegrationRates(rates, errors, usable, weights, n_clipped)


def _psf_kernel(psf, half):
    grid = np.arange(-half, half + 1, dtype=float)
    return psf.pixel_fraction(grid[None, :], grid[:, None])


def _sample_times(int_start_times, time_weights, group_time, n_sub=_N_SUB):
    """Sub-sample times (s) and weights for each integration's time average.

    The differences are binned into ``n_sub`` consecutive groups; each bin is
    represented by its weighted mean time.
    """
    n_ints, n_diff = time_weights.shape
    t_diff = (np.arange(n_diff) + 0.5) * group_time
    edges = np.linspace(0, n_diff, min(n_sub, n_diff) + 1).round().astype(int)
    times = np.zeros((n_ints, len(edges) - 1))
    wts = np.zeros_like(times)
    for j, (a, b) in enumerate(itertools.pairwise(edges)):
        w = time_weights[:, a:b]
        wts[:, j] = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            tj = (w * t_diff[a:b]).sum(axis=1) / wts[:, j]
        times[:, j] = np.where(wts[:, j] > 0, tj, t_diff[a:b].mean())
    wts /= wts.sum(axis=1, keepdims=True)
    return times + np.asarray(int_start_times, float)[:, None], wts


def _snr_maps(rates, errors, usable, psf):
    """Static-subtracted, PSF-matched-filtered images of each integration.

    Returns ``psi``, ``phi`` (already divided by each map's measured noise scale
    squared, so that ``psi / sqrt(phi)`` has unit noise) and the SNR maps.
    """
    w = np.where(usable, 1.0 / np.where(usable, errors, 1.0) ** 2, 0.0)
    data = np.where(usable, rates, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pixels never usable
        static = np.nanmedian(data, axis=0)
    resid = np.where(usable, rates - np.nan_to_num(static)[None], 0.0)
    kern = _psf_kernel(psf, int(np.ceil(1.5 * psf.fwhm)))
    psi = np.empty_like(resid)
    phi = np.empty_like(resid)
    snr = np.zeros_like(resid)
    for i in range(len(resid)):
        psi[i] = ndimage.correlate(resid[i] * w[i], kern, mode="constant")
        phi[i] = ndimage.correlate(w[i], kern**2, mode="constant")
        good = phi[i] > 0.2 * np.median(phi[i][phi[i] > 0]) if np.any(phi[i] > 0) else phi[i] > 0
        z = np.where(good, psi[i] / np.sqrt(np.where(good, phi[i], 1.0)), 0.0)
        # The residual carries the median's noise too, and real noise is never
        # quite the model's: scale each map to unit robust spread.
        vals = z[good]
        scale = 1.4826 * np.median(np.abs(vals - np.median(vals))) if vals.size > 10 else 1.0
        scale = scale if scale > 0 else 1.0
        snr[i] = z / scale
        psi[i] = np.where(good, psi[i] / scale**2, 0.0)
        phi[i] = np.where(good, phi[i] / scale**2, 0.0)
    return psi, phi, snr


def _peaks(snr_map, threshold, size=3):
    local_max = snr_map == ndimage.maximum_filter(snr_map, size=size, mode="constant")
    is_max = local_max & (snr_map >= threshold)
    y, x = np.nonzero(is_max)
    return np.column_stack([x, y]).astype(float), snr_map[y, x]


def _stacked_snr(psi, phi, t_mid, x, y, vx, vy):
    """Stacked matched-filter SNR of lines ``(x, y) + v (t - t_mid[0])`` (bilinear sampling).

    ``x, y, vx, vy`` are arrays of equal length, one entry per line.
    """
    dt = t_mid - t_mid[0]
    num = np.zeros(np.shape(x))
    den = np.zeros(np.shape(x))
    for i in range(len(psi)):
        c = np.vstack([np.ravel(y + vy * dt[i]), np.ravel(x + vx * dt[i])])
        num += ndimage.map_coordinates(psi[i], c, order=1, mode="constant").reshape(num.shape)
        den += ndimage.map_coordinates(phi[i], c, order=1, mode="constant").reshape(den.shape)
    return np.where(den > 0, num / np.sqrt(np.where(den > 0, den, 1.0)), 0.0)


#: Neighbouring steps in (x, y, vx, vy) of the local polish.
_POLISH_STEPS = np.array([s for s in np.ndindex(3, 3, 3, 3) if s != (1, 1, 1, 1)], float) - 1.0


def _dedupe(cands, t_mid, tol, limit):
    """Greedy: best first, drop lines that stay within ``tol`` of a kept one."""
    kept = []
    for c in sorted(cands, key=lambda c: -c[0]):
        if not any(_lines_close(c, k, t_mid, tol) for k in kept):
            kept.append(c)
            if len(kept) >= limit:
                break
    return kept


def _link(psi, phi, snr, t_mid, v_max, peak_snr, min_stack, tol, max_candidates):
    """Candidate lines ``(snr, x, y at t_mid[0], vx, vy)`` from pairs of per-integration peaks."""
    n_ints = len(snr)
    peaks = [_peaks(snr[i], peak_snr)[0] for i in range(n_ints)]
    pairs = []
    for i in range(n_ints):
        for j in range(i + 1, n_ints):
            if not len(peaks[i]) or not len(peaks[j]):
                continue
            dt = t_mid[j] - t_mid[i]
            for a, bs in enumerate(cKDTree(peaks[j]).query_ball_point(peaks[i], v_max * dt + tol)):
                if bs:
                    v = (peaks[j][bs] - peaks[i][a]) / dt
                    p0 = peaks[i][a] - v * (t_mid[i] - t_mid[0])
                    pairs.append(np.column_stack([p0, v]))
    if not pairs:
        return []
    pairs = np.concatenate(pairs)
    s = _stacked_snr(psi, phi, t_mid, *pairs.T)
    keep = s >= 0.5 * min_stack
    cands = _dedupe([(si,) + tuple(p) for si, p in zip(s[keep], pairs[keep])], t_mid, tol,
                    4 * max_candidates)
    # Peaks sit on whole pixels: polish position (half pixels) and velocity (half a
    # pixel over the exposure) by local ascent of the stacked SNR.
    dv = 0.5 / max(t_mid[-1] - t_mid[0], 1e-30)
    step = np.array([0.5, 0.5, dv, dv])
    polished = []
    for c in cands:
        best = np.array(c[1:])
        best_s = c[0]
        for _ in range(4):
            trials = best[None] + _POLISH_STEPS * step[None]
            st = _stacked_snr(psi, phi, t_mid, *trials.T)
            k = int(np.argmax(st))
            if st[k] <= best_s:
                break
            best, best_s = trials[k], st[k]
        if best_s >= min_stack:
            polished.append((best_s,) + tuple(best))
    return _dedupe(polished, t_mid, tol, max_candidates)


def _lines_close(a, b, t_mid, tol):
    """Whether two lines (snr, x, y at t_mid[0], vx, vy) stay within ``tol`` px."""
    dt = t_mid - t_mid[0]
    dx = (a[1] - b[1]) + (a[3] - b[3]) * dt
    dy = (a[2] - b[2]) + (a[4] - b[4]) * dt
    return bool(np.all(np.hypot(dx, dy) < tol))


class _JointFit:
    """Linear-motion PSF model fitted to the rate images of a stamp, static level profiled.

    Model of integration ``i``, pixel ``p``: ``b_p + flux * m_ip(x, y, vx, vy)``,
    ``m_ip`` the PSF averaged over the integration's time samples.  The per-pixel
    constant ``b_p`` (sky, stars, and the share of the mover in the static level)
    is eliminated analytically, so least squares runs on the residuals projected
    orthogonal to a constant in time, weighted by the rate errors.
    """

    def __init__(self, rates, errors, usable, times, wts, psf, box, t_ref):
        y0, y1, x0, x1 = box
        self.d = rates[:, y0:y1, x0:x1].reshape(len(rates), -1)
        err = errors[:, y0:y1, x0:x1].reshape(len(rates), -1)
        self.w = np.where(usable[:, y0:y1, x0:x1].reshape(len(rates), -1), 1.0 / err**2, 0.0)
        self.xg = np.arange(x0, x1, dtype=float)
        self.yg = np.arange(y0, y1, dtype=float)
        self.times, self.wts, self.psf, self.t_ref = times, wts, psf, t_ref

    def unit_model(self, x, y, vx, vy):
        dt = self.times - self.t_ref
        xs, ys = x + vx * dt, y + vy * dt
        n_ints, n_sub = xs.shape
        img = self.psf.render(xs.reshape(-1, 1), ys.reshape(-1, 1), self.xg, self.yg)
        img = img.reshape(n_ints, n_sub, -1)
        return np.einsum("is,isp->ip", self.wts, img)

    def project(self, a):
        """Remove each pixel's weighted mean over integrations (the profiled constant)."""
        wsum = self.w.sum(axis=0)
        mean = np.divide((self.w * a).sum(axis=0), wsum, out=np.zeros(a.shape[1]), where=wsum > 0)
        return a - mean[None]

    def residuals(self, p):
        m = self.unit_model(*p[:4])
        r = self.project(self.d - p[4] * m)
        return (r * np.sqrt(self.w)).ravel()

    def fit(self, p0):
        span = max(float(np.ptp(self.times)), 1e-30)
        scale = np.array([0.3, 0.3, 0.3 / span, 0.3 / span, max(abs(p0[4]), 1e-3)])
        return optimize.least_squares(self.residuals, p0, x_scale=scale, method="trf", max_nfev=200)


def _fit_candidate(rates, errors, usable, times, wts, time_weights, int_starts, duration, psf, cand,
                   t_mid, info_time):
    """Joint fit of one candidate line; returns a dict of results or None."""
    n_ints, ny, nx = rates.shape
    _, x, y, vx, vy = cand
    # Reference: the integration nearest the information-weighted time, at that
    # time if it falls inside the integration.
    k = int(np.argmin(np.abs(t_mid - info_time)))
    t_int = float(np.clip(info_time - int_starts[k], 0.0, duration))
    t_ref = int_starts[k] + t_int
    xr, yr = x + vx * (t_ref - t_mid[0]), y + vy * (t_ref - t_mid[0])
    r = int(np.ceil(2.0 * psf.fwhm)) + 1
    px = xr + vx * (t_mid - t_ref)
    py = yr + vy * (t_mid - t_ref)
    box = (max(int(np.floor(py.min())) - r, 0), min(int(np.ceil(py.max())) + r + 1, ny),
           max(int(np.floor(px.min())) - r, 0), min(int(np.ceil(px.max())) + r + 1, nx))
    if box[0] >= box[1] or box[2] >= box[3]:
        return None
    jf = _JointFit(rates, errors, usable, times, wts, psf, box, t_ref)
    # Linear flux at the candidate's geometry as the start.
    m = jf.project(jf.unit_model(xr, yr, vx, vy))
    mm = np.sum(jf.w * m * m)
    if mm <= 0:
        return None
    f0 = np.sum(jf.w * m * jf.project(jf.d)) / mm
    p = np.array([xr, yr, vx, vy, max(f0, 1e-3)])
    res = None
    for _ in range(2):
        res = jf.fit(p)
        p = res.x
        # Unflagged remnants (a cosmic ray's tail in one integration): leave out
        # cells the model cannot explain, then fit again.
        rr = res.fun.reshape(jf.w.shape)
        bad = np.abs(rr) > 5.0
        if not bad.any():
            break
        jf.w[bad] = 0.0
    n_used = int(np.count_nonzero(jf.w))
    dof = n_used - int(np.count_nonzero(jf.w.sum(axis=0))) - 5
    if not res.success or dof <= 0:
        return None
    chi2 = float(np.sum(res.fun**2))
    chi2_dof = chi2 / dof
    jac = res.jac
    try:
        cov = np.linalg.inv(jac.T @ jac) * max(chi2_dof, 1.0)
    except np.linalg.LinAlgError:
        return None
    err = np.sqrt(np.clip(np.diag(cov), 0, None))
    m = jf.project(jf.unit_model(*p[:4]))
    # Matched-filter SNR of the fitted source against the static-subtracted images.
    snr = float(p[4] * np.sqrt(np.sum(jf.w * m * m)))
    # Per-integration fluxes at the fitted geometry: a real mover shines in all.
    unit = jf.unit_model(*p[:4])
    info_i = np.array([np.sum(jf.w[i] * unit[i] ** 2) for i in range(n_ints)])
    covered = info_i > 0.05 * info_i.max() if info_i.max() > 0 else info_i > 0
    cols = [jf.project(np.where(np.arange(n_ints)[:, None] == i, unit, 0.0))
            for i in np.flatnonzero(covered)]
    a = np.stack([(c * np.sqrt(jf.w)).ravel() for c in cols], axis=1)
    b = (jf.project(jf.d) * np.sqrt(jf.w)).ravel()
    ata = a.T @ a
    try:
        ata_inv = np.linalg.pinv(ata)
    except np.linalg.LinAlgError:
        return None
    f_i = ata_inv @ (a.T @ b)
    dev = f_i - p[4]
    # The per-integration fluxes share the profiled static level: use their
    # full covariance (pinv: the constant is partly degenerate with it).
    consistency_chi2 = float(dev @ ata @ dev)
    n_cov = int(covered.sum())
    p_consistency = float(stats.chi2.sf(consistency_chi2, max(n_cov - 1, 1)))
    # Evidence: differences with weight in the covered integrations, and pixels
    # within one FWHM of the path (as the single-integration rows count them).
    n_groups = int(np.count_nonzero(time_weights[covered] > 0))
    pts_x = (p[0] + p[2] * (times - t_ref))[covered].ravel()
    pts_y = (p[1] + p[3] * (times - t_ref))[covered].ravel()
    yy, xx = np.mgrid[box[0]:box[1], box[2]:box[3]]
    dist = np.hypot(xx.ravel()[:, None] - pts_x[None], yy.ravel()[:, None] - pts_y[None])
    near = dist.min(axis=1) <= psf.fwhm
    return {
        "params": p, "err": err, "cov": cov, "snr": snr, "chi2_dof": chi2_dof, "integration": k + 1,
        "t_int": t_int, "t_ref": t_ref, "n_ints": n_cov, "p_consistency": p_consistency,
        "n_groups": n_groups, "n_pixels": int(np.count_nonzero(near)),
    }


def find_multi_int_movers(rates, rate_errs, usable, int_start_times, time_weights, group_time, psf,
                          *, snr_threshold=8.0, min_motion_sigma=5.0, max_fwhm_per_int=1.0,
                          min_integrations=3, peak_snr=3.0, min_consistency=1e-3,
                          max_chi2_dof=3.0, max_candidates=50, edge_px=2.0):
    """Find movers that shift under one PSF FWHM per integration but move across integrations.

    Parameters
    ----------
    rates, rate_errs : ndarray, shape (nints, ny, nx)
        Count-rate images (DN/s) of each integration and their 1-sigma errors
        (:func:`integration_rates`).
    usable : ndarray of bool, shape (nints, ny, nx)
        Pixels with a valid rate.
    int_start_times : ndarray, shape (nints,)
        Time (s) of each integration's first read on one time base for the
        exposure (e.g. ``k * integration_period``, or from INT_TIMES).
    time_weights : ndarray, shape (nints, ndiff)
        Weight of each group difference in the rate images
        (``IntegrationRates.time_weights``; for plain means of all differences,
        rows of ones).
    group_time : float
        Seconds per group.
    psf : PSFModel
        The exposure's PSF.
    snr_threshold : float
        Least matched-filter SNR of an accepted mover.
    min_motion_sigma : float
        Least significance of the speed (``speed / speed_err``).
    max_fwhm_per_int : float
        Largest motion within one integration, in PSF FWHM; faster movers are the
        single-integration search's.  Fits up to 1.5 times this are kept so that
        objects at the boundary are found by one of the two searches.
    min_integrations : int
        Fewest integrations in which the fitted source must be on usable pixels.
    peak_snr : float
        Threshold of the per-integration peaks that seed the linking.
    min_consistency : float
        Least probability (chi-square) that the per-integration fluxes are one
        constant flux.
    max_chi2_dof : float
        Largest reduced chi-square of the joint fit.
    max_candidates : int
        Most linked candidates fitted.
    edge_px : float
        The reported position must lie this far inside the array.

    Returns
    -------
    list of dict
        Keys of :data:`jwst_asteroid_step.detect.DETECTION_COLUMNS`: ``integration``
        (1-based; the integration nearest the information-weighted mean time),
        ``x``, ``y`` (px) at ``t_int`` (s since that integration's first read),
        ``vx``, ``vy`` (px/s), ``flux`` (DN/s), their errors from the fit
        covariance (scaled by ``chi2_dof`` when above 1), ``snr`` (matched-filter
        SNR of the fitted source against the static-subtracted images),
        ``n_groups`` (group differences on the track, over the integrations used),
        ``n_pixels`` (pixels within one FWHM of the path), ``n_jumps`` = 0,
        ``chi2_dof``, ``trail_in_group`` = False, ``method`` = ``"multi-int"``;
        and two extra keys, ``n_integrations`` (integrations used) and
        ``flux_consistency`` (chi-square probability of one flux in all of them).
        Fewer than three integrations (or fewer than ``min_integrations``) give an
        empty list.
    """
    rates = np.asarray(rates, dtype=float)
    n_ints = rates.shape[0] if rates.ndim == 3 else 0
    if n_ints < max(3, min_integrations):
        return []
    rate_errs = np.asarray(rate_errs, dtype=float)
    usable = (np.asarray(usable, dtype=bool) & np.isfinite(rates) & np.isfinite(rate_errs)
              & (rate_errs > 0))
    rates = np.where(usable, rates, 0.0)
    int_starts = np.asarray(int_start_times, dtype=float)
    time_weights = np.clip(np.asarray(time_weights, dtype=float), 0.0, None)
    # An integration with no usable difference still needs a time: its middle.
    time_weights[time_weights.sum(axis=1) <= 0] = 1.0
    n_diff = time_weights.shape[1]
    duration = n_diff * group_time
    times, wts = _sample_times(int_starts, time_weights, group_time)
    t_mid = (times * wts).sum(axis=1)
    v_max = max_fwhm_per_int * psf.fwhm / duration

    psi, phi, snr = _snr_maps(rates, rate_errs, usable, psf)
    tol = max(1.0, 0.5 * psf.fwhm)
    cands = _link(psi, phi, snr, t_mid, 1.5 * v_max, peak_snr, 0.7 * snr_threshold, tol,
                  max_candidates)

    ny, nx = rates.shape[1:]
    fits = []
    for cand in cands:
        # Information-weighted mean time from the candidate's coverage.
        xs = cand[1] + cand[3] * (t_mid - t_mid[0])
        ys = cand[2] + cand[4] * (t_mid - t_mid[0])
        info = np.array([ndimage.map_coordinates(phi[i], [[ys[i]], [xs[i]]], order=1)[0]
                         for i in range(n_ints)])
        if info.sum() <= 0:
            continue
        info_time = float(np.sum(info * t_mid) / info.sum())
        fit = _fit_candidate(rates, rate_errs, usable, times, wts, time_weights, int_starts,
                             duration, psf, cand, t_mid, info_time)
        if fit is None:
            continue
        x, y, vx, vy, flux = fit["params"]
        err = fit["err"]
        speed = np.hypot(vx, vy)
        speed_err = np.hypot(vx * err[2], vy * err[3]) / max(speed, 1e-30)
        inside = (edge_px - 0.5 <= x <= nx - 0.5 - edge_px
                  and edge_px - 0.5 <= y <= ny - 0.5 - edge_px)
        if not (inside and flux > 0 and np.all(np.isfinite(err))
                and fit["snr"] >= snr_threshold
                and speed >= min_motion_sigma * speed_err
                and speed <= 1.5 * v_max
                and fit["n_ints"] >= min_integrations
                and fit["p_consistency"] >= min_consistency
                and fit["chi2_dof"] <= max_chi2_dof):
            continue
        fits.append(fit)

    # One object may be reached from several seeds: keep the best SNR.
    kept = []
    for fit in sorted(fits, key=lambda f: -f["snr"]):
        p = fit["params"]
        dt0 = t_mid[0] - fit["t_ref"]
        line = (fit["snr"], p[0] + p[2] * dt0, p[1] + p[3] * dt0, p[2], p[3])
        if any(_lines_close(line, k, t_mid, tol) for k in (kf["_line"] for kf in kept)):
            continue
        fit["_line"] = line
        kept.append(fit)
    return [_row(f) for f in kept]


def _row(fit):
    x, y, vx, vy, flux = fit["params"]
    err = fit["err"]
    return {
        "integration": int(fit["integration"]), "x": float(x), "y": float(y),
        "x_err": float(err[0]), "y_err": float(err[1]), "t_int": float(fit["t_int"]),
        "vx": float(vx), "vy": float(vy), "vx_err": float(err[2]), "vy_err": float(err[3]),
        "flux": float(flux), "flux_err": float(err[4]), "snr": float(fit["snr"]),
        "n_groups": fit["n_groups"], "n_pixels": fit["n_pixels"], "n_jumps": 0,
        "chi2_dof": float(fit["chi2_dof"]), "trail_in_group": False, "method": "multi-int",
        "n_integrations": int(fit["n_ints"]), "flux_consistency": float(fit["p_consistency"]),
    }
