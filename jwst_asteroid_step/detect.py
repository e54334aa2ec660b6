"""Find movers in a jump-flagged ramp: the algorithm behind ``asteroid_detect``.

Data flow, one integration at a time:

1. :mod:`.ramp.differences` — group differences, usable cells, per-pixel background;
2. :mod:`.ramp.events` — JUMP_DET cells grouped into events and labelled;
3. :mod:`.search.tracks` — a straight (x, y, t) track through each mover candidate;
4. :mod:`.measure.moving_psf` — a moving-PSF fit that measures and vets it.

Everything here takes numpy arrays and plain values; nothing imports stpipe.
"""

import logging
import warnings

import numpy as np
from astropy.table import Table

from .config import DetectionConfig
from .measure.moving_psf import fit_moving_psf
from .ramp.differences import IntegrationDifferences, jump_cells, pixel_background
from .ramp.events import COSMIC_RAY, EVENT_KINDS, MOVER, SHOWER, classify_events, cluster_cells
from .ramp.noise import difference_variance
from .search.tracks import fit_track
from .timebase import integration_start_mjd, t_int_to_mjd

__all__ = ["DETECTION_COLUMNS", "detections_to_catalog", "find_movers", "find_movers_in_integration"]

log = logging.getLogger(__name__)

#: Columns and dtypes of the detection table returned by :func:`find_movers`.
DETECTION_COLUMNS = {
    "integration": "i4", "x": "f8", "y": "f8", "x_err": "f8", "y_err": "f8", "t_int": "f8",
    "vx": "f8", "vy": "f8", "vx_err": "f8", "vy_err": "f8", "flux": "f8", "flux_err": "f8",
    "snr": "f8", "n_groups": "i4", "n_pixels": "i4", "n_jumps": "i4", "chi2_dof": "f8",
    "trail_in_group": "?", "method": "U16",
}


def _count_key(kind):
    return f"n_{kind}" if kind.endswith("noise") else f"n_{kind}s"


def find_movers(sci, groupdq, pixeldq, group_time, psf, read_noise, gain, config=None):
    """Find moving sources in every integration of a jump-flagged ramp.

    Parameters
    ----------
    sci : ndarray, shape (nints, ngroups, ny, nx)
        Ramp (DN).
    groupdq : ndarray, shape (nints, ngroups, ny, nx)
        GROUPDQ after the jump step.
    pixeldq : ndarray, shape (ny, nx)
        PIXELDQ.
    group_time : float
        Seconds per group.
    psf : PSFModel
        PSF of the exposure's filter.
    read_noise, gain : float or ndarray, shape (ny, nx)
        CDS read noise (DN) and gain (e/DN).
    config : DetectionConfig, optional
        Algorithm parameters.

    Returns
    -------
    detections : astropy.table.Table
        One row per detection, columns :data:`DETECTION_COLUMNS`; positions in
        px, times in s since the integration's first read, velocities in px/s,
        fluxes in DN/s.
    counts : dict
        Number of JUMP_DET cells and of events of each kind, over all integrations.
    """
    config = config or DetectionConfig()
    rows = []
    counts = dict.fromkeys([_count_key(k) for k in EVENT_KINDS] + ["n_jump_cells"], 0)
    for i in range(sci.shape[0]):
        det, c = find_movers_in_integration(
            sci[i], groupdq[i], pixeldq, group_time, psf, read_noise, gain, config
        )
        for row in det:
            row["integration"] = i + 1
        rows.extend(det)
        for key, value in c.items():
            counts[key] += value
    table = Table({c: np.array([r[c] for r in rows], dtype=dt) for c, dt in DETECTION_COLUMNS.items()})
    return table, counts


def find_movers_in_integration(sci, groupdq, pixeldq, group_time, psf, read_noise, gain, config):
    """Find moving sources in one integration.

    Parameters
    ----------
    sci, groupdq : ndarray, shape (ngroups, ny, nx)
        One integration's ramp (DN) and GROUPDQ.
    pixeldq : ndarray, shape (ny, nx)
    group_time : float
    psf : PSFModel
    read_noise, gain : float or ndarray, shape (ny, nx)
    config : DetectionConfig

    Returns
    -------
    detections : list of dict
        Keys :data:`DETECTION_COLUMNS` except ``integration``.
    counts : dict
        JUMP_DET cells and events of each kind.
    """
    diffs = IntegrationDifferences(sci, groupdq, pixeldq)
    background, _ = pixel_background(diffs.diff, exclude=diffs.jump)
    resid = diffs.diff - background[None]
    sigma = np.sqrt(difference_variance(np.nan_to_num(background), read_noise, gain))

    cells = jump_cells(diffs.jump)
    labels = cluster_cells(cells, config.link_px, config.link_groups)
    events = classify_events(cells, labels, config.shower_min_pixels, config.min_groups)
    counts = {_count_key(k): v for k, v in events.counts().items()}
    counts["n_jump_cells"] = int(len(cells))

    candidates = np.flatnonzero(events.kind == MOVER)
    if candidates.size > config.max_candidates:
        sizes = np.bincount(events.label)[candidates]
        candidates = candidates[np.argsort(sizes)[::-1][: config.max_candidates]]
        warnings.warn(
            f"{np.sum(events.kind == MOVER)} mover candidates in one integration; "
            f"only the {config.max_candidates} largest are measured (max_candidates).",
            RuntimeWarning, stacklevel=2,
        )
    exclude = events.mask_of_kinds(diffs.diff.shape, (COSMIC_RAY, SHOWER))

    fits = []
    for ev in candidates:
        c = events.cells_of(ev)
        k, y, x = c.T
        weight = np.clip(resid[k, y, x] / np.broadcast_to(sigma, background.shape)[y, x], 0, None)
        track = fit_track(c, weight, group_time)
        if track is None:
            continue
        fit = fit_moving_psf(diffs.diff, exclude, np.nan_to_num(background), read_noise, gain,
                             group_time, psf, track)
        if fit is None or not _accepted(fit, config):
            continue
        on_track = c[track.inliers]
        fits.append((fit, on_track))

    return [_row(fit, on_track, psf, group_time) for fit, on_track in _deduplicate(fits)], counts


def _accepted(fit, config):
    err = fit.errors
    speed = np.hypot(fit.vx, fit.vy)
    speed_err = np.hypot(fit.vx * err[2], fit.vy * err[3]) / max(speed, 1e-30)
    return (
        fit.success
        and fit.flux > 0
        and fit.snr >= config.snr_threshold
        and speed >= config.min_motion_sigma * speed_err
        and fit.consistency >= config.min_consistency
        and fit.chi2_dof <= config.max_chi2_dof
        and np.all(np.isfinite(err))
    )


def _deduplicate(fits):
    """Merge fits of one object found from several events; keep the best SNR."""
    fits = sorted(fits, key=lambda f: -f[0].snr)
    kept = []
    for fit, cells in fits:
        for i, (best, best_cells) in enumerate(kept):
            dx = fit.x + fit.vx * (best.t_ref - fit.t_ref) - best.x
            dy = fit.y + fit.vy * (best.t_ref - fit.t_ref) - best.y
            dv = np.hypot(fit.vx - best.vx, fit.vy - best.vy)
            if np.hypot(dx, dy) < 2.0 and dv < 0.2 * np.hypot(best.vx, best.vy) + 1e-3:
                kept[i] = (best, np.concatenate([best_cells, cells]))
                break
        else:
            kept.append((fit, cells))
    return kept


def _row(fit, cells, psf, group_time):
    err = fit.errors
    n_pixels = np.unique(cells[:, 1] * 65536 + cells[:, 2]).size
    return {
        "x": fit.x, "y": fit.y, "x_err": err[0], "y_err": err[1], "t_int": fit.t_ref,
        "vx": fit.vx, "vy": fit.vy, "vx_err": err[2], "vy_err": err[3],
        "flux": fit.flux, "flux_err": err[4], "snr": fit.snr,
        "n_groups": fit.n_groups, "n_pixels": int(n_pixels), "n_jumps": int(len(cells)),
        "chi2_dof": fit.chi2_dof,
        "trail_in_group": bool(np.hypot(fit.vx, fit.vy) * group_time > psf.fwhm),
        "method": "jump",
    }


def detections_to_catalog(detections, exposure_start_mjd, integration_period, int_times=None):
    """Turn the detection table into catalog rows (DESIGN.md §5).

    Adds ``id`` (1-based, in order of integration then SNR) and ``mjd``; sky
    columns stay NaN here.

    Parameters
    ----------
    detections : astropy.table.Table
        From :func:`find_movers`.
    exposure_start_mjd : float or None
        ``meta.exposure.start_time`` (UTC MJD).
    integration_period : float
        Seconds between the starts of successive integrations.
    int_times : structured ndarray, optional
        The exposure's INT_TIMES table.

    Returns
    -------
    ndarray
        Structured array with the catalog's columns.
    """
    from .datamodels import catalog_from_table

    # Integration ascending, SNR descending within it.
    order = np.lexsort((-np.asarray(detections["snr"], float), np.asarray(detections["integration"])))
    table = detections[order]
    table["id"] = np.arange(1, len(table) + 1)
    starts = np.array([
        integration_start_mjd(int(i), exposure_start_mjd, integration_period, int_times)
        for i in table["integration"]
    ], dtype=float)
    table["mjd"] = t_int_to_mjd(np.asarray(table["t_int"], dtype=float), starts)
    return catalog_from_table(table)
