"""Find movers in a jump-flagged ramp: the algorithm behind ``asteroid_detect``.

Data flow, one integration at a time:

1. :mod:`.ramp.differences` — group differences, usable cells, per-pixel rate;
2. :mod:`.ramp.events` — JUMP_DET cells grouped into events and labelled;
   :mod:`.ramp.showers` — showers the jump flags missed, and their afterglow;
3. :mod:`.ramp.systematics` — edge transients set aside, the noise's excess measured;
4. :mod:`.search.tracks` — a straight (x, y, t) track through each mover candidate;
5. :mod:`.search.matched_filter` — shift-and-stack below the jump threshold;
6. :mod:`.measure.moving_psf` — a moving-PSF fit that measures and vets each
   candidate; accepted objects are subtracted before the next is fitted.

With three or more integrations, :mod:`.search.multi_int` then follows movers too
slow to show within one integration across the per-integration rate images.

Everything here takes numpy arrays and plain values; nothing imports stpipe.
"""

import logging
import warnings
from dataclasses import dataclass, replace

import numpy as np
from astropy.table import Table

from .config import DetectionConfig
from .measure.moving_psf import MAX_BOX_RADIUS, fit_moving_psf
from .psf.brighter_fatter import broadening_trends, subtract_broadening_trends
from .ramp.differences import IntegrationDifferences, group_differences, jump_cells, pixel_mean_rate
from .ramp.events import (
    COSMIC_RAY, EVENT_KINDS, MOVER, PIXEL_NOISE, SHOWER, classify_events, cluster_cells, link_instants,
)
from .ramp.noise import difference_variance
from .ramp.showers import find_showers
from .ramp.systematics import drift_excess, edge_transients, noise_scale
from .search.backends import gpu_unavailable_reason
from .search.matched_filter import matched_filter_search
from .search.multi_int import find_multi_int_movers, integration_rates
from .search.tracks import Track, fit_track, offsets_from_line
from .timebase import integration_offsets, integration_start_mjd, t_int_to_mjd

__all__ = ["DETECTION_COLUMNS", "detections_to_catalog", "find_movers", "find_movers_in_integration"]

log = logging.getLogger(__name__)

#: Columns and dtypes of the detection table returned by :func:`find_movers`.
DETECTION_COLUMNS = {
    "integration": "i4", "x": "f8", "y": "f8", "x_err": "f8", "y_err": "f8", "t_int": "f8",
    "vx": "f8", "vy": "f8", "vx_err": "f8", "vy_err": "f8", "flux": "f8", "flux_err": "f8",
    "snr": "f8", "n_groups": "i4", "n_pixels": "i4", "n_jumps": "i4", "chi2_dof": "f8",
    "trail_in_group": "?", "method": "U16",
}


#: Events whose cells the search and the fits leave out.
_SET_ASIDE_KINDS = (COSMIC_RAY, SHOWER, PIXEL_NOISE)

#: Per-integration measurements in the counts (not summed over integrations).
_MEASURES = ("noise_scale_x1000", "drift_excess_x1000", "trend_order", "fast_noise_excess_x1000")


def _count_key(kind):
    return f"n_{kind}" if kind.endswith("noise") else f"n_{kind}s"


def find_movers(sci, groupdq, pixeldq, group_time, psf, read_noise, gain, config=None,
                integration_starts=None):
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
    integration_starts : ndarray, shape (nints,), optional
        Seconds from the exposure's first read to each integration's first read
        (:func:`~jwst_asteroid_step.timebase.integration_offsets`), for movers
        followed across integrations; by default integrations follow each other
        with no gap.

    Returns
    -------
    detections : astropy.table.Table
        One row per detection, columns :data:`DETECTION_COLUMNS`; positions in
        px, times in s since the integration's first read, velocities in px/s,
        fluxes in DN/s. ``flux_err`` carries the PSF's ``flux_uncertainty``.
    counts : dict
        Number of JUMP_DET cells and of events of each kind, over all integrations;
        the noise measurements (``noise_scale_x1000``, ``drift_excess_x1000``, and
        with the fast search ``fast_noise_excess_x1000``) and the ``trend_order``
        profiled, at their largest over the integrations.
    """
    config = config or DetectionConfig()
    if config.search_backend != "cpu" and (reason := gpu_unavailable_reason()):
        warnings.warn(f"search_backend={config.search_backend!r}: {reason}; the search runs on the CPU",
                      RuntimeWarning, stacklevel=2)
        config = replace(config, search_backend="cpu")
    nints, ngroups = sci.shape[:2]
    rows = []
    counts = dict.fromkeys([_count_key(k) for k in EVENT_KINDS] + ["n_jump_cells"], 0)
    across = config.multi_int and nints >= 3
    per_int = []
    for i in range(nints):
        det, c, rates = find_movers_in_integration(
            sci[i], groupdq[i], pixeldq, group_time, psf, read_noise, gain, config, keep_rates=across
        )
        for row in det:
            row["integration"] = i + 1
        rows.extend(det)
        per_int.append(rates)
        for key, value in c.items():
            # Measurements of an integration's noise keep their worst value; counts add up.
            counts[key] = max(counts.get(key, value), value) if key in _MEASURES else counts.get(key, 0) + value
    if across:
        starts = (integration_offsets(nints, ngroups * group_time) if integration_starts is None
                  else np.asarray(integration_starts, dtype=float))
        slow = find_multi_int_movers(
            np.concatenate([r.rates for r in per_int]), np.concatenate([r.errors for r in per_int]),
            np.concatenate([r.usable for r in per_int]), starts,
            np.concatenate([r.time_weights for r in per_int]), group_time, psf,
            snr_threshold=config.snr_threshold, min_motion_sigma=config.multi_int_min_motion_sigma,
        )
        counts["n_multi_int"] = len(slow)
        rows = _merge_multi_int(rows, slow, starts, psf.fwhm, (ngroups - 1) * group_time)
    table = Table({c: np.array([r[c] for r in rows], dtype=dt) for c, dt in DETECTION_COLUMNS.items()})
    # The PSF's own normalisation is as uncertain for every flux measured with it.
    table["flux_err"] = np.hypot(table["flux_err"], psf.flux_uncertainty * table["flux"])
    return table, counts


def _merge_multi_int(rows, slow, starts, fwhm, duration, tolerance_px=2.0):
    """Single-integration rows plus multi-integration ones, each object once.

    A single-integration detection of an object the multi-integration fit also
    found is kept only when it moved at least a FWHM in its integration (the
    single-integration measurement of a slower one is the weaker of the two).
    """
    drop = set()
    for m in slow:
        t_m = starts[m["integration"] - 1] + m["t_int"]
        for j, r in enumerate(rows):
            dt = starts[r["integration"] - 1] + r["t_int"] - t_m
            near = np.hypot(m["x"] + m["vx"] * dt - r["x"], m["y"] + m["vy"] * dt - r["y"]) < tolerance_px
            if near and _within_psf(r["vx"], r["vy"], duration, fwhm):
                drop.add(j)
    return [r for j, r in enumerate(rows) if j not in drop] + [
        {c: m[c] for c in DETECTION_COLUMNS} for m in slow]


def find_movers_in_integration(sci, groupdq, pixeldq, group_time, psf, read_noise, gain, config,
                               keep_rates=False):
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
    keep_rates : bool
        Also return the integration's rate image for the multi-integration search,
        made after this integration's cosmic rays, showers and the movers that
        cross more than a FWHM in it are set aside.

    Returns
    -------
    detections : list of dict
        Keys :data:`DETECTION_COLUMNS` except ``integration``.
    counts : dict
        JUMP_DET cells and events of each kind.
    rates : IntegrationRates or None
    """
    diffs = IntegrationDifferences(sci, groupdq, pixeldq)
    # Each pixel's static level is profiled out of the search and the fit; its
    # mean difference only sets the shot noise and weights the jump cells.
    background = np.nan_to_num(pixel_mean_rate(diffs.diff, diffs.jump))
    sigma = _difference_sigma(background, read_noise, gain)

    cells = jump_cells(diffs.jump)
    diffs.jump = None  # from here on the cells say it all; frees a cube of flags for the search
    labels = cluster_cells(cells, config.link_px, config.link_groups)
    events = classify_events(cells, labels, config.shower_min_pixels, config.min_groups)
    # A mover faster than link_px per difference left a row of one-instant events.
    events = link_instants(events, min_speed=config.link_px)
    counts = {_count_key(k): v for k, v in events.counts().items()}
    counts["n_jump_cells"] = int(len(cells))
    duration = diffs.n_diffs * group_time
    exclude = events.mask_of_kinds(diffs.diff.shape, _SET_ASIDE_KINDS)
    # Showers too faint per pixel for the jump step, and their afterglow.
    showers, n_unflagged = find_showers(diffs.diff, exclude, background, sigma, group_time,
                                        sources=events.cells[events.kind[events.label] == MOVER])
    _set_aside(exclude, showers)
    counts["n_showers"] += n_unflagged
    counts["n_showers_unflagged"] = n_unflagged
    # Real ramps: set aside early/late transients, and scale SNRs by how much
    # the slow noise exceeds the model (1 for ramps the model describes).
    n_lead, n_trail = edge_transients(diffs.diff, exclude, sigma)
    _set_aside(exclude, (), n_lead, n_trail)
    # Bright stars broaden as their pixels fill: their cores fade and their rings brighten,
    # light changing in time that the search would take for slow movers beside them.
    broadening = broadening_trends(diffs.diff, exclude, background, sigma, psf)
    subtract_broadening_trends(diffs.diff, broadening, psf)
    counts["n_broadening_stars"] = len(broadening)
    trend_order, drift = _trend_order(diffs.diff, exclude, background, read_noise, gain, config)
    scale = np.maximum(*(noise_scale(diffs.diff, exclude, background, read_noise, gain, length=n,
                                     trend_order=trend_order) for n in (5, 20)))
    counts.update(n_transient_diffs=n_lead + n_trail,
                  noise_scale_x1000=int(round(1000 * float(np.median(scale)))),
                  trend_order=trend_order,
                  drift_excess_x1000=int(round(1000 * drift)) if np.isfinite(drift) else -1)

    def fit_and_vet(track, excess_noise=1.0, **options):
        fit = fit_moving_psf(diffs.diff, exclude, background, read_noise, gain, group_time, psf, track,
                             trend_order=trend_order, **options)
        if fit is None:
            return None
        along = _scale_along(scale, fit, group_time, diffs.n_diffs, psf.fwhm)
        fit = fit.with_noise_scale(excess_noise * along)
        return fit if _accepted(fit, config, background.shape) else None

    def measure(track, method, max_speed=np.inf, excess_noise=1.0, flux_from_mean_image=False, **precheck):
        fit = fit_and_vet(track, excess_noise, flux_from_mean_image=flux_from_mean_image, **precheck)
        if fit is None:
            return None
        if np.hypot(fit.vx, fit.vy) * group_time > max_speed:
            return fit  # a search candidate that ran off to speeds it was not found at: the caller decides
        fits.append((fit, method))
        # Later candidates must not explain this object's light again.
        subtracted.append(_Subtracted({"excess_noise": excess_noise, "flux_from_mean_image": flux_from_mean_image},
                                      *_remove_track(diffs.diff, exclude, fit, psf, group_time, sigma)))
        return None

    fits, subtracted, ran_off_core = [], [], np.zeros(0, dtype=np.intp)
    for ev in _largest(np.flatnonzero(events.kind == MOVER), np.bincount(events.label), config.max_candidates):
        c = events.cells_of(ev)
        k, y, x = c.T
        track = fit_track(c, np.clip((diffs.diff[k, y, x] - background[y, x]) / sigma[y, x], 0, None), group_time)
        if track is not None:
            measure(track, "jump")

    if config.search:
        v_max = config.deep_search_max_speed if config.deep_search else config.search_max_speed
        fast_max = config.deep_search_max_speed if config.fast_search and not config.deep_search else 0.0
        sigma = None  # rebuilt after the search: at a few groups each per-pixel map counts
        candidates, stats = matched_filter_search(
            diffs.diff, exclude, background, read_noise, gain, psf, v_max=v_max,
            snr_threshold=config.search_snr_threshold, grid_loss=config.grid_loss, noise_scale=scale,
            max_candidates=config.search_max_candidates, trend_order=trend_order, overwrite=True,
            backend=config.search_backend, fast_max_speed=fast_max, fast_window=config.fast_search_window,
            fast_snr_threshold=config.fast_search_snr_threshold, fast_confirm_snr=config.snr_threshold,
        )
        # The search built its planes in the differences' memory: take them again
        # from the ramp, with the objects measured so far taken out.
        diffs.diff = None  # the spent planes go before the differences come back
        diffs.diff = group_differences(sci, groupdq, pixeldq)
        subtract_broadening_trends(diffs.diff, broadening, psf)
        sigma = _difference_sigma(background, read_noise, gain)
        for fit, _ in fits:
            _remove_track(diffs.diff, exclude, fit, psf, group_time, sigma)
        counts["n_search_trials"] = stats["n_trials"]
        counts["n_search_candidates"] = len(candidates)
        counts["n_fast_search_candidates"] = stats["n_fast_candidates"]
        counts["n_slow_motion_candidates"] = stats["n_slow_candidates"]
        counts["fast_noise_excess_x1000"] = int(round(1000 * stats["fast_noise_excess"]))
        for i_cand, cand in enumerate(candidates):
            known = [i for i, (fit, _) in enumerate(fits)
                     if _same_object(fit, cand.x, cand.y, cand.t_ref * group_time, cand.vx / group_time,
                                     cand.vy / group_time, duration, tolerance_px=3.0)]
            for i in known:  # already measured from its jump flags; the search found it too
                fits[i] = (fits[i][0], "both" if fits[i][1] == "jump" else fits[i][1])
            if known or (config.fast_search and any(
                    _along_path(fit, cand.x, cand.y, cand.vx, cand.vy, duration, psf.fwhm) for fit, _ in fits)):
                continue
            ran_off = measure(Track.from_search(cand, group_time), "search", max_speed=cand.max_fit_speed,
                              excess_noise=cand.noise_scale, flux_from_mean_image=cand.sub_psf,
                              min_start_snr=0.5 * config.snr_threshold,
                              min_start_consistency=0.5 * config.min_consistency)
            # A fit that ran off is not reported.  Unless a candidate still to
            # come lies on its path and may reach its speed, its light goes all
            # the same: a bright mover faster than the search reaches came back
            # as slow pieces of its streak (bench ramp 86: nine, at 3.8 px/group).
            if ran_off is None:
                continue
            speed = np.hypot(ran_off.vx, ran_off.vy) * group_time
            if not any(c.max_fit_speed >= speed and _on_path(ran_off, c.x, c.y, c.t_ref * group_time, tolerance_px=3.0)
                       for c in candidates[i_cand + 1:]):
                core, _ = _remove_track(diffs.diff, exclude, ran_off, psf, group_time, sigma)
                ran_off_core = np.concatenate([ran_off_core, core])

    fits, n_dropped = remeasure_beside_others(fits, subtracted, ran_off_core, diffs.diff, exclude, fit_and_vet, psf,
                                              group_time, sigma)
    counts["n_remeasured_dropped"] = n_dropped

    rates = None
    if keep_rates:
        # A mover that stays within a FWHM here is measured better across the
        # integrations: its light goes back into the rate image, and find_movers
        # reports it once (_merge_multi_int).
        back = [_within_psf(fit.vx, fit.vy, duration, psf.fwhm) for fit, _ in fits]
        if any(back):
            exclude = _set_aside(events.mask_of_kinds(diffs.diff.shape, _SET_ASIDE_KINDS), showers,
                                 n_lead, n_trail)
            for (fit, _), restore in zip(fits, back):
                for k, yy, xx, charge in _track_charge(fit, psf, group_time, diffs.diff.shape):
                    if restore:
                        diffs.diff[k, yy, xx] += charge.astype(diffs.diff.dtype)
                    else:
                        core = charge > _MASK_LEVEL * sigma[yy, xx]
                        exclude[k, yy[core], xx[core]] = True
        rates = integration_rates([diffs.diff], [exclude], group_time, read_noise, gain)
    kept = _deduplicate(fits, duration)
    real = _drop_residual_light(kept, duration, psf.fwhm, config.residual_flux_ratio, config.residual_radius_fwhm)
    counts["n_residual_light"] = len(kept) - len(real)
    return [_row(fit, method, cells, psf, group_time, diffs.n_diffs, sci.shape[1:])
            for fit, method in real], counts, rates


def remeasure_beside_others(fits, subtracted, held_elsewhere, diff, exclude, fit_and_vet, psf, group_time, sigma):
    """Measure again each fit whose path meets another's, with every other fit's light out.

    Each fit took the light its predecessors left. A bright mover's jump flags fitted
    first to a wrong path beside its own take part of its light, and the search then
    measures the rest right: one object, two entries (a ghost of the psf_families bench,
    FWHM -10 % at F2100W). Faintest first, a fit whose path comes within 3 FWHM of
    another's (or of one that went) has its light put back and is fitted again from
    where it was, the others' light out; what no longer passes was another's light, and
    goes. ``diff`` and ``exclude`` are left with the kept fits' light out.

    Parameters
    ----------
    fits : list of (MovingFit, str)
        Accepted fits and their methods, in the order they were subtracted.
    subtracted : list of _Subtracted
        For each fit, its options and the cells :func:`_remove_track` masked.
    held_elsewhere : ndarray of int
        Cells masked for other sources' light (flat indices into ``exclude``).
    diff, exclude : ndarray, shape (ndiff, ny, nx)
        Group differences with every fit's light removed, and the cells left out.
    fit_and_vet : callable
        ``fit_and_vet(track, **options)``: the accepted fit from a starting track, or None.
    psf : PSFModel or SeparablePSF
    group_time : float
    sigma : ndarray, shape (ny, nx)
        Per-difference noise (DN), for the cores to mask.

    Returns
    -------
    fits : list of (MovingFit, str)
    n_dropped : int
    """
    duration = diff.shape[0] * group_time
    meet = 3.0 * psf.fwhm
    fits, gone = list(fits), set()
    for i in sorted(range(len(fits)), key=lambda i: fits[i][0].snr):
        # A fit beside one that went was measured with that one's light taken: again too.
        if not any(_paths_meet(fits[i][0], fits[j][0], duration, meet) for j in range(len(fits)) if j != i):
            continue
        fit, method = fits[i]
        held = np.concatenate([subtracted[j].core for j in range(len(fits)) if j != i and j not in gone]
                              + [held_elsewhere])
        _restore_track(diff, exclude, fit, psf, group_time, np.setdiff1d(subtracted[i].masked, held))
        track = Track(fit.x, fit.y, fit.vx, fit.vy, fit.t_ref, 0.0, duration, np.zeros(0, dtype=bool))
        refit = fit_and_vet(track, **subtracted[i].options)
        if refit is None:
            gone.add(i)
            continue
        fits[i] = (refit, method)
        subtracted[i] = _Subtracted(subtracted[i].options, *_remove_track(diff, exclude, refit, psf, group_time, sigma))
    return [f for i, f in enumerate(fits) if i not in gone], len(gone)


def _difference_sigma(background, read_noise, gain):
    """Each pixel's noise (DN) in one group difference, float32."""
    var = np.broadcast_to(difference_variance(background, read_noise, gain), background.shape)
    return np.sqrt(var, dtype=np.float32)


def _trend_order(diff, exclude, background, read_noise, gain, config):
    """The trend order to profile, and the measured drift spread (NaN if not measured).

    ``"auto"``: a constant level alone where the pixels' drifts are what the noise
    model predicts, so slow movers keep their signal; a drift too where
    calibration left one in every pixel.  Too few clean pixels to tell: a drift.
    """
    if config.trend_order != "auto":
        return int(config.trend_order), float("nan")
    drift = drift_excess(diff, exclude, background, read_noise, gain)
    return (0 if drift <= config.drift_threshold else 1), drift


def _set_aside(exclude, showers, n_lead=0, n_trail=0):
    """Mark showers (``(k_first, k_stop, area)``) and edge transients in ``exclude``; return it."""
    for k_first, k_stop, area in showers:
        exclude[k_first:k_stop] |= area
    exclude[:n_lead] = True
    exclude[exclude.shape[0] - n_trail:] = True
    return exclude


def _within_psf(vx, vy, duration, fwhm):
    """Whether a mover (px/s) moves less than a FWHM in ``duration`` seconds."""
    return np.hypot(vx, vy) * duration < fwhm


#: Cells where a subtracted source's expected charge exceeds this many sigma are masked.
_MASK_LEVEL = 2.0


def _track_charge(fit, psf, group_time, shape):
    """Yield ``(k, yy, xx, charge)``: a fitted source's expected charge (DN) in each difference."""
    n_k, ny, nx = shape
    r = min(psf.radius, MAX_BOX_RADIUS)
    oy, ox = np.mgrid[-r:r + 1, -r:r + 1]
    for k in range(n_k):
        t = (k + 0.5) * group_time - fit.t_ref
        px, py = fit.x + fit.vx * t, fit.y + fit.vy * t
        yy, xx = int(round(py)) + oy, int(round(px)) + ox
        ok = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
        yy, xx = yy[ok], xx[ok]
        yield k, yy, xx, fit.flux * group_time * psf.pixel_fraction(xx - px, yy - py)


def _remove_track(diff, exclude, fit, psf, group_time, sigma):
    """Subtract a fitted source's expected charge; mask its core.

    A bright source's light reaches far into its wings, where it is faint per
    pixel but adds up over a track; left in, it lets later candidates explain
    part of the source again as ghosts beside or across it.  Where the expected
    charge exceeds :data:`_MASK_LEVEL` sigma, the fit's small errors would still
    leave a usable residual, so those cells are masked instead.

    Returns
    -------
    core, masked : ndarray of int
        Flat indices (into ``exclude``) of the core's cells, and of those that were
        usable before: what :func:`_restore_track` may give back.
    """
    core_cells, masked = [], []
    for k, yy, xx, charge in _track_charge(fit, psf, group_time, diff.shape):
        diff[k, yy, xx] -= charge.astype(diff.dtype)
        core = charge > _MASK_LEVEL * sigma[yy, xx]
        cells = np.ravel_multi_index((np.full(np.count_nonzero(core), k), yy[core], xx[core]), exclude.shape)
        masked.append(cells[~exclude.flat[cells]])
        exclude.flat[cells] = True
        core_cells.append(cells)
    return (np.concatenate(core_cells), np.concatenate(masked)) if core_cells else (np.zeros(0, np.intp),) * 2


def _restore_track(diff, exclude, fit, psf, group_time, unmask):
    """Undo :func:`_remove_track`: the source's charge back, the cells ``unmask`` usable again."""
    for k, yy, xx, charge in _track_charge(fit, psf, group_time, diff.shape):
        diff[k, yy, xx] += charge.astype(diff.dtype)
    exclude.flat[unmask] = False


@dataclass
class _Subtracted:
    """How an accepted fit was measured, and the cells its subtraction masked (:func:`_remove_track`)."""

    options: dict
    core: np.ndarray
    masked: np.ndarray


def _paths_meet(a, b, duration, distance):
    """Whether two fits' sources come within ``distance`` (px) of each other during the integration."""
    # Their separation is linear in time: its closest approach within [0, duration].
    t = np.array([0.0, duration])
    dx0, dy0 = a.x - a.vx * a.t_ref - (b.x - b.vx * b.t_ref), a.y - a.vy * a.t_ref - (b.y - b.vy * b.t_ref)
    dvx, dvy = a.vx - b.vx, a.vy - b.vy
    dv2 = dvx * dvx + dvy * dvy
    if dv2 > 0:
        t = np.append(t, np.clip(-(dx0 * dvx + dy0 * dvy) / dv2, 0.0, duration))
    return bool(np.min(np.hypot(dx0 + dvx * t, dy0 + dvy * t)) < distance)


def _scale_along(scale, fit, group_time, n_diffs, radius):
    """Largest noise scale within ``radius`` of the fitted path while on the detector."""
    ny, nx = scale.shape
    t = (np.arange(n_diffs) + 0.5) * group_time - fit.t_ref
    px, py = fit.x + fit.vx * t, fit.y + fit.vy * t
    on = (px > -radius) & (px < nx - 1 + radius) & (py > -radius) & (py < ny - 1 + radius)
    if not on.any():
        return float(np.max(scale))
    r = int(np.ceil(radius))
    ys = np.clip(np.rint(py[on]).astype(int)[:, None] + np.arange(-r, r + 1), 0, ny - 1)
    xs = np.clip(np.rint(px[on]).astype(int)[:, None] + np.arange(-r, r + 1), 0, nx - 1)
    return float(max(scale[ys[:, :, None], xs[:, None, :]].max(), 1.0))


def _largest(events, sizes, limit):
    """The ``limit`` largest events, with a warning when some are dropped."""
    if events.size <= limit:
        return events
    warnings.warn(
        f"{events.size} mover candidates from jump flags in one integration; only the {limit} "
        "largest are measured (max_candidates).", RuntimeWarning, stacklevel=3,
    )
    return events[np.argsort(sizes[events])[::-1][:limit]]


def _accepted(fit, config, shape, edge_px=2.0):
    """Whether a fit is a mover: significant, moving, steady, well fitted, on the array.

    The reference position (the information-weighted centre of the track) must
    lie ``edge_px`` inside the array: with half its PSF off the detector a
    track's edge pixels decide it, and the array's outer rows are the noisiest.
    """
    ny, nx = shape
    inside = edge_px - 0.5 <= fit.x <= nx - 0.5 - edge_px and edge_px - 0.5 <= fit.y <= ny - 0.5 - edge_px
    err = fit.errors
    speed = np.hypot(fit.vx, fit.vy)
    speed_err = np.hypot(fit.vx * err[2], fit.vy * err[3]) / max(speed, 1e-30)
    return (
        inside
        and fit.success
        and fit.flux > 0
        and fit.snr >= config.snr_threshold
        and speed >= config.min_motion_sigma * speed_err
        and fit.consistency >= config.min_consistency
        and fit.chi2_dof <= config.max_chi2_dof
        and np.all(np.isfinite(err))
    )


def _on_path(fit, x, y, t, tolerance_px):
    """Whether ``(x, y)`` lies within ``tolerance_px`` of where the fit puts its source at time ``t`` (s)."""
    return np.hypot(fit.x + fit.vx * (t - fit.t_ref) - x, fit.y + fit.vy * (t - fit.t_ref) - y) < tolerance_px


def _same_object(fit, x, y, t, vx, vy, duration, tolerance_px=2.0):
    """Whether a track (x, y at t; vx, vy in px/s) stays within ``tolerance_px`` of a fit.

    The two paths are compared at ``t`` and half an integration (``duration``)
    either side.
    """
    dv = np.hypot(fit.vx - vx, fit.vy - vy)
    return _on_path(fit, x, y, t, tolerance_px) and dv * duration / 2 < tolerance_px


def _along_path(fit, x, y, vx, vy, duration, fwhm, max_angle=0.2):
    """Whether a track lies along a fit's path on the array, whatever its timing.

    A fast mover's streak, subtracted once measured, still draws search
    candidates along it (the ramp places a streak far better than it times it);
    their fits would only cost time.  The track's point ``x, y`` must lie within
    ``fwhm`` of the path, and its direction within ``max_angle`` of it, either
    sense.  A fit that moves less than ``fwhm`` in the integration has no path
    to speak of: :func:`_same_object` decides there.
    """
    speed_fit = np.hypot(fit.vx, fit.vy)
    if speed_fit * duration < fwhm or np.hypot(vx, vy) == 0:
        return False
    across, along, cos_angle = offsets_from_line(fit.x, fit.y, fit.vx, fit.vy, x, y, vx, vy)
    on_path = -speed_fit * fit.t_ref - fwhm <= along <= speed_fit * (duration - fit.t_ref) + fwhm
    return bool(abs(across) < fwhm and on_path and cos_angle >= np.cos(max_angle))


def _deduplicate(fits, duration):
    """Merge fits of one object found several times; keep the best SNR, note both methods."""
    kept = []
    for fit, method in sorted(fits, key=lambda f: -f[0].snr):
        for i, (best, best_method) in enumerate(kept):
            if _same_object(best, fit.x, fit.y, fit.t_ref, fit.vx, fit.vy, duration):
                if best_method != method:
                    kept[i] = (best, "both")
                break
        else:
            kept.append((fit, method))
    return kept


def _drop_residual_light(kept, duration, fwhm, flux_ratio, radius_fwhm):
    """Leave out detections that are a brighter detection's unexplained light.

    A PSF model never fits a bright source perfectly; what it misses (a few to 20 %
    of the light, in wings, rings or the cruciform) stays in the differences after
    the source is subtracted, and the search and the fit measure it as faint movers
    beside the bright one, at about its place and rarely at its velocity.  A
    detection with at most ``flux_ratio`` of a brighter one's flux whose position at
    its reference time lies within ``radius_fwhm`` FWHMs of the brighter one's path
    during the integration is such light.
    """
    if flux_ratio <= 0 or radius_fwhm <= 0:
        return kept
    out = []
    for fit, method in sorted(kept, key=lambda f: -f[0].flux):
        if not any(fit.flux <= flux_ratio * bright.flux
                   and _distance_to_path(bright, fit.x, fit.y, duration) <= radius_fwhm * fwhm
                   for bright, _ in out):
            out.append((fit, method))
    return out


def _distance_to_path(fit, x, y, duration):
    """Distance (px) of ``(x, y)`` from a fit's path between the integration's first and last read."""
    ax, ay = fit.x - fit.vx * fit.t_ref, fit.y - fit.vy * fit.t_ref
    dx, dy = fit.vx * duration, fit.vy * duration
    u = np.clip(((x - ax) * dx + (y - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
    return float(np.hypot(ax + u * dx - x, ay + u * dy - y))


def _row(fit, method, jump, psf, group_time, n_diffs, shape):
    """Catalog row of a fit; evidence counted along its path."""
    err = fit.errors
    t_mid = (np.arange(n_diffs) + 0.5) * group_time
    px = fit.x + fit.vx * (t_mid - fit.t_ref)
    py = fit.y + fit.vy * (t_mid - fit.t_ref)
    on = (px > -0.5) & (px < shape[1] - 0.5) & (py > -0.5) & (py < shape[0] - 0.5)
    # Pixels within one FWHM of the path while it is on the detector.
    r = int(np.ceil(psf.fwhm))
    oy, ox = np.mgrid[-r:r + 1, -r:r + 1]
    disk = np.hypot(oy, ox) <= psf.fwhm
    touched = set()
    for cx, cy in zip(np.rint(px[on]).astype(int), np.rint(py[on]).astype(int)):
        for yy, xx in zip(cy + oy[disk], cx + ox[disk]):
            if 0 <= yy < shape[0] and 0 <= xx < shape[1]:
                touched.add((yy, xx))
    k, y, x = jump.T if len(jump) else (np.zeros(0, int),) * 3
    n_jumps = int(np.sum(np.hypot(x - px[k], y - py[k]) <= psf.fwhm)) if len(jump) else 0
    return {
        "x": fit.x, "y": fit.y, "x_err": err[0], "y_err": err[1], "t_int": fit.t_ref,
        "vx": fit.vx, "vy": fit.vy, "vx_err": err[2], "vy_err": err[3],
        "flux": fit.flux, "flux_err": err[4], "snr": fit.snr,
        "n_groups": fit.n_groups, "n_pixels": len(touched), "n_jumps": n_jumps,
        "chi2_dof": fit.chi2_dof,
        "trail_in_group": bool(np.hypot(fit.vx, fit.vy) * group_time > psf.fwhm),
        "method": method,
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
