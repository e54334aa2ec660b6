"""Two baseline mover detectors the package is measured against.

Both are pure functions on arrays and return an :class:`astropy.table.Table` with
the columns of :func:`jwst_asteroid_step.detect.find_movers` that they can fill
(``integration, x, y, t_int, vx, vy, flux, snr``) plus a few of their own.  Units
as in the package: px, s since the integration's first read, px/s, DN/s.

``seed_baseline``
    What one can do with the jump step's JUMP_DET flags alone (the "seed" of the
    package's detector, without its matched filter and moving-PSF fit): cluster
    the flagged (x, y, t) cells, keep clusters the package's event classifier
    calls mover candidates, fit a straight (x, y, t) line through the cells with
    equal weights, and keep lines with enough groups, at least one pixel of
    motion and a significant velocity.  Flux is the summed jump amplitude
    (difference minus the pixel's median difference) over the line's cells,
    divided by the time the line spans; SNR is that sum over its noise.

``rate_baseline``
    What one can do with the rate image (jwst's ramp_fit output) and no ramp:
    subtract a smooth background and column / row medians (destriping), smooth
    with the PSF core, threshold, label
    connected segments, and keep elongated ones.  A streak's second moments give
    its centroid, axis and length; the speed is the length over the time span of
    the fitted reads.  The sense of motion is unknowable from one image: the
    velocity is reported along the axis with an arbitrary sign and the column
    ``direction_ambiguous`` is True.  Implemented with scipy.ndimage only
    (photutils is not a dependency of the package, and one implementation keeps
    the numbers independent of what else is installed).
"""

import warnings

import numpy as np
from astropy.table import Table
from scipy import ndimage
from stdatamodels.jwst.datamodels import dqflags

from jwst_asteroid_step.ramp.differences import IntegrationDifferences, jump_cells, pixel_background
from jwst_asteroid_step.ramp.events import MOVER, classify_events, cluster_cells
from jwst_asteroid_step.ramp.noise import difference_variance
from jwst_asteroid_step.search.tracks import fit_track

__all__ = ["BASELINE_COLUMNS", "rate_baseline", "rate_baseline_exposure", "seed_baseline"]

#: Columns of both baselines' tables (a subset of find_movers' plus their own).
BASELINE_COLUMNS = {
    "integration": "i4", "x": "f8", "y": "f8", "t_int": "f8", "vx": "f8", "vy": "f8",
    "flux": "f8", "snr": "f8", "n_groups": "i4", "n_pixels": "i4", "length": "f8",
    "direction_ambiguous": "?",
}

_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
_DO_NOT_USE = dqflags.pixel["DO_NOT_USE"]
_REFERENCE = dqflags.pixel["REFERENCE_PIXEL"]
_GROUP_DO_NOT_USE = dqflags.group["DO_NOT_USE"]


def _table(rows):
    return Table({c: np.array([r[c] for r in rows], dtype=dt) for c, dt in BASELINE_COLUMNS.items()})


# ---------------------------------------------------------------------------
# Seed-style baseline: JUMP_DET flags only
# ---------------------------------------------------------------------------

def seed_baseline(sci, groupdq, pixeldq, group_time, read_noise=7.0, gain=4.0, *, min_groups=3,
                  link_px=1.5, link_groups=2, shower_min_pixels=30, min_motion_px=1.0,
                  min_velocity_sigma=3.0, max_offset_px=2.5):
    """Movers from JUMP_DET flags alone.

    Parameters
    ----------
    sci, groupdq : ndarray, shape (nints, ngroups, ny, nx)
        Ramp (DN) and GROUPDQ after the jump step.
    pixeldq : ndarray, shape (ny, nx)
    group_time : float
        Seconds per group.
    read_noise, gain : float or ndarray, shape (ny, nx)
        CDS read noise (DN) and gain (e/DN): only for the reported SNR.
    min_groups : int
        Distinct group differences the line must span (after outlier rejection).
    link_px, link_groups, shower_min_pixels :
        Clustering and classification, as :func:`~jwst_asteroid_step.ramp.events.cluster_cells`
        and :func:`~jwst_asteroid_step.ramp.events.classify_events`.
    min_motion_px : float
        Least motion (px) between the line's first and last cell.
    min_velocity_sigma : float
        Least significance of the fitted speed (position scatter about the line,
        floored at a pixel's 1/sqrt(12), propagated to the velocity).
    max_offset_px : float
        Outlier distance of :func:`~jwst_asteroid_step.search.tracks.fit_track`.

    Returns
    -------
    astropy.table.Table
        Columns :data:`BASELINE_COLUMNS`; ``n_pixels`` is the number of JUMP_DET
        cells on the line, ``length`` the motion (px) the line spans.
    """
    rows = []
    for i in range(sci.shape[0]):
        diffs = IntegrationDifferences(sci[i], groupdq[i], pixeldq)
        cells = jump_cells(diffs.jump)
        labels = cluster_cells(cells, link_px, link_groups)
        events = classify_events(cells, labels, shower_min_pixels, min_groups)
        movers = np.flatnonzero(events.kind == MOVER)
        if movers.size == 0:
            continue
        median, _ = pixel_background(diffs.diff, exclude=diffs.jump)
        median = np.nan_to_num(median)
        tracks = []
        for ev in movers:
            c = events.cells_of(ev)
            track = fit_track(c, np.ones(len(c)), group_time, max_offset_px=max_offset_px)
            if track is None:
                continue
            row = _seed_row(track, c[track.inliers], diffs.diff, median, group_time, read_noise, gain,
                            min_groups, min_motion_px, min_velocity_sigma)
            if row is not None:
                row["integration"] = i + 1
                tracks.append(row)
        rows.extend(_merge_seed_tracks(tracks))
    return _table(rows)


def _seed_row(track, cells, diff, median, group_time, read_noise, gain, min_groups, min_motion_px,
              min_velocity_sigma):
    k, y, x = cells.T
    if np.unique(k).size < min_groups:
        return None
    t = (k + 0.5) * group_time
    dt = t - track.t_ref
    speed = np.hypot(track.vx, track.vy)
    motion = speed * (track.t_last - track.t_first)
    if motion < min_motion_px:
        return None
    res = np.concatenate([x - track.x - track.vx * dt, y - track.y - track.vy * dt])
    n_dof = max(2 * len(k) - 4, 1)
    scatter = max(np.sqrt(np.sum(res**2) / n_dof), 1.0 / np.sqrt(12.0))
    speed_err = scatter / np.sqrt(max(np.sum(dt**2), 1e-30))
    if speed < min_velocity_sigma * speed_err:
        return None
    amp = np.nan_to_num(diff[k, y, x] - median[y, x])
    var = difference_variance(median[y, x], _at(read_noise, y, x), _at(gain, y, x))
    span = track.t_last - track.t_first + group_time
    return {
        "x": track.x, "y": track.y, "t_int": track.t_ref, "vx": track.vx, "vy": track.vy,
        "flux": float(amp.sum() / span), "snr": float(amp.sum() / np.sqrt(var.sum())),
        "n_groups": int(np.unique(k).size), "n_pixels": len(k), "length": float(motion),
        "direction_ambiguous": False,
    }


def _at(value, y, x):
    value = np.asarray(value, dtype=float)
    return value[y, x] if value.ndim == 2 else value


def _merge_seed_tracks(rows, tolerance_px=3.0):
    """One row per object: a mover whose flags break into several clusters gives several
    lines; keep the one with most cells among lines that agree in position and velocity."""
    kept = []
    for r in sorted(rows, key=lambda r: -r["n_pixels"]):
        same = False
        for k in kept:
            dt = r["t_int"] - k["t_int"]
            dx = k["x"] + k["vx"] * dt - r["x"]
            dy = k["y"] + k["vy"] * dt - r["y"]
            dv = np.hypot(k["vx"] - r["vx"], k["vy"] - r["vy"])
            if np.hypot(dx, dy) < tolerance_px and dv <= 0.3 * np.hypot(k["vx"], k["vy"]):
                same = True
                break
        if not same:
            kept.append(r)
    return kept


# ---------------------------------------------------------------------------
# Rate-image baseline: streaks in the slope image, no ramp
# ---------------------------------------------------------------------------

def fitted_read_span(groupdq, group_time):
    """Start and end (s) of the reads ramp_fit used: groups not DO_NOT_USE in every pixel.

    Parameters
    ----------
    groupdq : ndarray, shape (ngroups, ny, nx)
        One integration's GROUPDQ.
    group_time : float

    Returns
    -------
    t_start, t_end : float
    """
    flagged = np.all((groupdq & _GROUP_DO_NOT_USE) != 0, axis=(1, 2))
    used = np.flatnonzero(~flagged)
    if used.size < 2:
        return 0.0, (groupdq.shape[0] - 1) * group_time
    return used[0] * group_time, used[-1] * group_time


def rate_baseline(rate, err, dq, psf_fwhm, t_start, t_end, *, nsigma=3.0, min_pixels=5,
                  snr_threshold=5.0, min_elongation=1.5, min_length_fwhm=1.0, length_factor=20.0,
                  block=32):
    """Streaks in one rate image.

    Parameters
    ----------
    rate, err : ndarray, shape (ny, nx)
        Slope (DN/s) and its uncertainty, from ramp_fit (rate or one rateints plane).
    dq : ndarray, shape (ny, nx)
        Its DQ; DO_NOT_USE and reference pixels are ignored.
    psf_fwhm : float
        PSF core FWHM (px): smoothing kernel, and the shortest streak reported is
        ``min_length_fwhm`` of it.
    t_start, t_end : float
        Time span (s) of the fitted reads (:func:`fitted_read_span`); the speed is
        the streak length over it and ``t_int`` its middle.
    nsigma : float
        Detection threshold on the smoothed image, in units of its own robust noise.
    min_pixels : int
        Smallest segment (px above threshold).
    snr_threshold : float
        Least segment SNR (summed flux over the root-sum-square of ``err``).
    min_elongation : float
        Least ratio of major to minor axis (second moments).
    min_length_fwhm : float
        Least streak length in PSF FWHM.
    length_factor : float
        Streak length ``L = sqrt(length_factor * (a**2 - b**2))`` from the major and
        minor axis variances.  A uniform streak has ``L**2 / 12`` along its axis;
        ramp_fit's least-squares slope weights a step at fraction ``u`` of the ramp
        by ``6 u (1 - u)`` (read-noise-limited weighting), so the streak's profile
        in the rate image is parabolic and its variance ``L**2 / 20``.
    block : int
        Block size (px) of the smooth background.

    Returns
    -------
    astropy.table.Table
        Columns :data:`BASELINE_COLUMNS` with ``integration`` 1; ``vx, vy`` along
        the streak's axis with an arbitrary sign (``direction_ambiguous`` True).
    """
    rate = np.asarray(rate, dtype=float)
    err = np.asarray(err, dtype=float)
    good = np.isfinite(rate) & ((np.asarray(dq) & (_DO_NOT_USE | _REFERENCE)) == 0)
    good &= np.isfinite(err) & (err > 0)
    rows = []
    if good.sum() < 100:
        return _table(rows)
    resid = np.where(good, rate - _smooth_background(rate, good, block), np.nan)
    # Column and row stripes (real MIRI rate images have them) would be long,
    # thin "streaks": remove each column's and row's median, as destriping does.
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        resid -= np.nan_to_num(np.nanmedian(resid, axis=0))[None, :]
        resid -= np.nan_to_num(np.nanmedian(resid, axis=1))[:, None]
    resid = np.where(good, resid, 0.0)
    sigma = psf_fwhm * _FWHM_TO_SIGMA
    weight = ndimage.gaussian_filter(good.astype(float), sigma, mode="constant")
    conv = ndimage.gaussian_filter(resid, sigma, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        conv = np.where(weight > 0.3, conv / weight, 0.0)
    inside = good & (weight > 0.3)
    noise = 1.4826 * np.median(np.abs(conv[inside] - np.median(conv[inside])))
    labels, n = ndimage.label(inside & (conv > nsigma * noise), structure=np.ones((3, 3)))
    if n == 0:
        return _table(rows)
    duration = max(t_end - t_start, 1e-30)
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        seg = labels[sl] == lab
        if seg.sum() < min_pixels:
            continue
        yy, xx = np.nonzero(seg)
        yy = yy + sl[0].start
        xx = xx + sl[1].start
        values = resid[yy, xx]
        flux = values.sum()
        flux_err = np.sqrt(np.sum(err[yy, xx] ** 2))
        if not flux > snr_threshold * flux_err:
            continue
        w = np.clip(values, 0, None)
        if w.sum() <= 0:
            continue
        xc, yc = np.average(xx, weights=w), np.average(yy, weights=w)
        cxx = np.average((xx - xc) ** 2, weights=w)
        cyy = np.average((yy - yc) ** 2, weights=w)
        cxy = np.average((xx - xc) * (yy - yc), weights=w)
        evals, evecs = np.linalg.eigh(np.array([[cxx, cxy], [cxy, cyy]]))
        b2, a2 = max(evals[0], 1e-6), evals[1]
        length = float(np.sqrt(length_factor * max(a2 - b2, 0.0)))
        if np.sqrt(a2 / b2) < min_elongation or length < min_length_fwhm * psf_fwhm:
            continue
        ux, uy = evecs[:, 1]
        speed = length / duration
        rows.append({
            "integration": 1, "x": xc, "y": yc, "t_int": 0.5 * (t_start + t_end),
            "vx": speed * ux, "vy": speed * uy, "flux": float(flux), "snr": float(flux / flux_err),
            "n_groups": 0, "n_pixels": int(seg.sum()), "length": length,
            "direction_ambiguous": True,
        })
    return _table(rows)


def _smooth_background(image, good, block):
    """Sky: medians of ``block``-px blocks of good pixels, median-filtered and interpolated."""
    ny, nx = image.shape
    block = int(max(4, min(block, ny // 2, nx // 2)))
    by, bx = -(-ny // block), -(-nx // block)
    padded = np.full((by * block, bx * block), np.nan)
    padded[:ny, :nx] = np.where(good, image, np.nan)
    blocks = padded.reshape(by, block, bx, block).transpose(0, 2, 1, 3).reshape(by, bx, -1)
    with np.errstate(invalid="ignore"):
        counts = np.isfinite(blocks).sum(axis=2)
        med = np.full((by, bx), np.nan)
        for j in range(by):
            for i in range(bx):
                if counts[j, i] > 0.25 * block * block:
                    med[j, i] = _clipped_median(blocks[j, i][np.isfinite(blocks[j, i])])
    fill = np.nanmedian(med) if np.isfinite(med).any() else 0.0
    med = np.where(np.isfinite(med), med, fill)
    med = ndimage.median_filter(med, size=3, mode="nearest")
    return ndimage.zoom(med, (by * block / by, bx * block / bx), order=1, mode="nearest",
                        grid_mode=True)[:ny, :nx]


def _clipped_median(values, nsigma=3.0, iters=3):
    for _ in range(iters):
        med = np.median(values)
        mad = 1.4826 * np.median(np.abs(values - med))
        keep = np.abs(values - med) <= nsigma * max(mad, 1e-12)
        if keep.all() or keep.sum() < 10:
            break
        values = values[keep]
    return float(np.median(values))


def rate_baseline_exposure(rateints, dqints, errints, groupdq, group_time, psf_fwhm, **kwargs):
    """:func:`rate_baseline` on every integration of a rateints product.

    Parameters
    ----------
    rateints, dqints, errints : ndarray, shape (nints, ny, nx)
        ``data``, ``dq`` and ``err`` of ramp_fit's rateints product.
    groupdq : ndarray, shape (nints, ngroups, ny, nx)
        GROUPDQ of the jump-flagged ramp (for the fitted reads' time span).
    group_time, psf_fwhm : float
    **kwargs
        Passed to :func:`rate_baseline`.

    Returns
    -------
    astropy.table.Table
    """
    tables = []
    for i in range(rateints.shape[0]):
        t0, t1 = fitted_read_span(groupdq[i], group_time)
        tab = rate_baseline(rateints[i], errints[i], dqints[i], psf_fwhm, t0, t1, **kwargs)
        tab["integration"] = i + 1
        tables.append(tab)
    from astropy.table import vstack

    return vstack(tables) if tables else _table([])
