"""Injection-recovery bench: simulated and real ramps through the real jwst steps, then
four detectors, matched against the truth.

Every ramp goes through the real jwst ``JumpStep`` and ``RampFitStep`` offline
(:func:`jwst_asteroid_step.offline.run_jump_and_ramp_fit`), then through

- ``ours``: :func:`jwst_asteroid_step.detect.find_movers` with the default
  :class:`~jwst_asteroid_step.config.DetectionConfig` (what ``asteroid_detect`` runs);
- ``ours_deep``: the same with ``deep_search=True`` (search up to 3 px/group);
- ``seed``: :func:`benchmarks.baselines.seed_baseline` (JUMP_DET flags only);
- ``rate``: :func:`benchmarks.baselines.rate_baseline_exposure` (rateints only).

Ramps (all deterministic, seed ``BASE_SEED + index``):

- **grid**: 256 x 256 ramps (SUB256 geometry) with movers, cycling through filter x
  ngroups x timing; timing is either SUB256's own 0.300 s groups or full-frame FAST
  timing (2.775 s groups, i.e. a 256 x 256 cut-out of a full-frame exposure: full-frame
  sky per group, cosmic rays and showers per pixel).  Each ramp holds parallel movers of
  one velocity (tracks never cross), each with its own matched-filter SNR; SNR bins and
  speed bins are sampled evenly (log-uniform within a bin).  Cosmic rays at the L2 rate,
  showers, five random stars, the real CDP7 bad pixels.
- **empty**: the same ramps without movers, one per grid combination: false positives.
- **full_empty**: full-frame (1032 x 1024) ramps without movers: false positives where
  the whole array, its showers and its ~9,000 cosmic rays per 100 groups are present.
- **real**: the real ground-test ramp (SUB64, 5 integrations, 50 groups), dq_init (CDP7
  mask) + firstframe + lastframe + jump + ramp_fit: false positives on real noise and real cosmic rays;
  and **real_inject**: movers injected into it (:func:`jwst_asteroid_step.simulate.inject_movers`),
  one per integration.

Matching: a detection matches a truth mover of its integration when the truth's
position at the detection's ``t_int`` is within ``max(2 px, FWHM)`` and the speeds agree
within 30 %.  Each truth takes its closest matching detection; other matching
detections are duplicates; a detection that matches none is ``position_only`` if it is
within the distance of a truth (right place, wrong speed), ``on_track`` if it lies on a
truth's track at another time (a fragment), and ``false`` otherwise.
"""

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table

from jwst_asteroid_step.config import DetectionConfig
from jwst_asteroid_step.detect import find_movers
from jwst_asteroid_step.offline import (
    build_references,
    configure_offline_crds,
    run_jump_and_ramp_fit,
)
from jwst_asteroid_step.psf import psf_for_filter
from jwst_asteroid_step.psf.refine import refine_for_ramp
from jwst_asteroid_step.simulate import Mover, inject_movers, simulate_ramp, snr_to_flux
from jwst_asteroid_step.simulate.metadata import SUBARRAYS, group_time_for, reference_pixel_columns

from .baselines import rate_baseline_exposure, seed_baseline

__all__ = [
    "BASE_SEED", "DETECTORS", "SETTINGS", "SNR_BINS", "SPEED_BINS", "GridSettings", "match",
    "run_detectors", "run_recovery",
]

log = logging.getLogger(__name__)

BASE_SEED = 20260
DETECTORS = ("ours", "ours_deep", "seed", "rate")
DETECTOR_LABELS = {
    "ours": "asteroid_detect (default)",
    "ours_deep": "asteroid_detect (deep_search)",
    "seed": "seed-style (JUMP_DET only)",
    "rate": "rate-image streaks",
}
SNR_BINS = (3.0, 5.0, 7.0, 10.0, 15.0, 30.0, 100.0)
SPEED_BINS = (0.005, 0.05, 0.5, 3.0, 5.0)  # px/group
READ_NOISE, GAIN = 7.0, 4.0  # as in offline.build_references
FULL_FRAME_PIXELS = 1024 * 1024  # light-sensitive pixels of the full array
FULL_GROUP_TIME = group_time_for("FULL")
POSITION_TOLERANCE_PX = 2.0
SPEED_TOLERANCE = 0.3
#: Catalog columns whose reported errors the bench checks with pulls.
PULL_COLUMNS = ("x", "y", "vx", "vy", "flux")


@dataclass(frozen=True)
class GridSettings:
    """How dense a run is.

    Attributes
    ----------
    filters, ngroups, timings : tuple
        Grid axes; ``timings`` holds ``"native"`` (the subarray's own group time)
        and/or ``"full"`` (full-frame FAST group time on the subarray's geometry).
    ramps_per_combo : int
        Mover ramps per (filter, ngroups, timing) combination.
    rounds_by_ngroups : tuple of (ngroups, rounds)
        Fewer mover ramps for these lengths (200-group ramps cost ~50 s each).
    movers_per_ramp : int
        Parallel movers in each ramp.
    empty_per_combo : int
        Ramps without movers per combination.
    full_empty : tuple of (filter, ngroups)
        Full-frame ramps without movers.
    real_inject_runs : int
        Injection runs into the real ramp (one mover per integration each).
    real_nints : int or None
        Integrations of the real ramp used (None: all five).
    deep_min_speed, deep_ngroups, deep_timings :
        The deep search costs up to a minute per 256² ramp with fast movers (it refines
        up to ``search_max_candidates`` candidates with the moving-PSF fit), so it runs
        only on grid ramps with movers at least this fast (px/group), of these lengths
        and timings, and on the empty ramps of those lengths and timings.
    subarray : str
        Geometry of the grid ramps.
    spacing : float
        Distance (px) between parallel movers.
    stars : int
        Random stars per grid ramp.
    """

    filters: tuple = ("F560W", "F770W", "F1280W", "F2100W")
    ngroups: tuple = (10, 25, 50, 100, 200)
    timings: tuple = ("native", "full")
    ramps_per_combo: int = 4
    rounds_by_ngroups: tuple = ((200, 1),)
    movers_per_ramp: int = 5
    empty_per_combo: int = 1
    # 11 full frames with the 20 full-timing 256² empties: 12.3 full-frame integrations, so
    # that no false positive bounds the rate below the 0.2 target (90 % upper limit 2.30 / 12.3).
    full_empty: tuple = (("F770W", 50), ("F770W", 100), ("F1500W", 100), ("F560W", 100), ("F1000W", 100),
                         ("F1130W", 100), ("F1280W", 100), ("F1800W", 100), ("F2100W", 100), ("F2550W", 100),
                         ("F770W", 100))
    real_inject_runs: int = 6
    real_nints: int = None
    deep_min_speed: float = 0.5
    deep_ngroups: tuple = (50,)
    deep_timings: tuple = ("full",)
    subarray: str = "SUB256"
    spacing: float = 40.0
    stars: int = 5


SETTINGS = {
    "full": GridSettings(),
    "quick": GridSettings(filters=("F770W", "F2100W"), ngroups=(25, 50, 100), ramps_per_combo=2,
                          full_empty=(("F770W", 50),), real_inject_runs=3),
    "smoke": GridSettings(filters=("F770W",), ngroups=(20,), timings=("native",), ramps_per_combo=2,
                          deep_min_speed=0.0, deep_ngroups=(20,), deep_timings=("native",),
                          movers_per_ramp=3, full_empty=(), real_inject_runs=1, real_nints=2, subarray="SUB128",
                          spacing=30.0, stars=2),
}


@dataclass
class RampSpec:
    """One simulated ramp of the grid."""

    index: int
    kind: str
    subarray: str
    timing: str
    filter: str
    ngroups: int
    seed: int
    speed: float = 0.0  # px/group
    angle: float = 0.0  # rad
    snrs: list = field(default_factory=list)

    def detectors(self, settings):
        """The detectors this ramp is run through (the deep search only on a subset)."""
        deep = (self.ngroups in settings.deep_ngroups and self.timing in settings.deep_timings
                and (self.kind != "grid" or self.speed >= settings.deep_min_speed)
                and self.subarray != "FULL")
        return tuple(d for d in DETECTORS if d != "ours_deep" or deep)

    @property
    def group_time(self):
        return FULL_GROUP_TIME if self.timing == "full" else group_time_for(self.subarray)


# ---------------------------------------------------------------------------
# Detectors
# ---------------------------------------------------------------------------

def offline_references(work):
    """Quiet the jwst steps' logs, configure CRDS offline under ``work`` and build references there."""
    logging.getLogger("stpipe").setLevel(logging.WARNING)
    logging.getLogger("jwst").setLevel(logging.WARNING)
    configure_offline_crds(work / "crds")
    return build_references(work / "refs")


def step_psf(psf, jump):
    """The PSF the step fits with by default (``psf_refine``): the model, or the ePSF of the ramp's stars."""
    refined, _ = refine_for_ramp(psf, jump.data, jump.groupdq, jump.pixeldq, jump.meta.instrument.filter)
    return refined


def run_detectors(jump, rateints, psf, detectors=DETECTORS):
    """Run the detectors on jwst's jump and ramp_fit products.

    Parameters
    ----------
    jump : RampModel
        Jump-flagged ramp.
    rateints : CubeModel
        ramp_fit's per-integration rates.
    psf : PSFModel
    detectors : sequence of str

    Returns
    -------
    dict
        ``name -> (Table, seconds, counts)`` for every name in :data:`DETECTORS`; one that
        was not run (not asked for) maps to None.
    """
    gt = float(jump.meta.exposure.group_time)
    out = dict.fromkeys(DETECTORS)
    for name in detectors:
        t0 = time.perf_counter()
        counts = {}
        if name in ("ours", "ours_deep"):
            deep = name == "ours_deep"
            tab, counts = find_movers(jump.data, jump.groupdq, jump.pixeldq, gt, step_psf(psf, jump), READ_NOISE,
                                      GAIN, DetectionConfig(deep_search=deep))
        elif name == "seed":
            tab = seed_baseline(jump.data, jump.groupdq, jump.pixeldq, gt, READ_NOISE, GAIN)
        elif name == "rate":
            tab = rate_baseline_exposure(rateints.data, rateints.dq, rateints.err, jump.groupdq, gt,
                                         psf.fwhm)
        else:
            raise ValueError(f"unknown detector {name!r}")
        out[name] = (tab, time.perf_counter() - t0, counts)
    return out


# ---------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------

def match(det, truth, tolerance_px, speed_tolerance=SPEED_TOLERANCE):
    """Match detections to truth movers (see the module docstring).

    Parameters
    ----------
    det : Table
        Columns ``integration, x, y, t_int, vx, vy``.
    truth : Table
        Columns ``integration, x, y, t_ref, vx, vy``.
    tolerance_px : float
        Largest position difference at the detection's ``t_int``.
    speed_tolerance : float
        Largest relative speed difference.

    Returns
    -------
    truth_det : ndarray of int, shape (len(truth),)
        Index of the matched detection, -1 if none.
    truth_near : ndarray of bool, shape (len(truth),)
        Whether any detection is within the position tolerance (speed ignored).
    det_status : ndarray of str, shape (len(det),)
        ``match``, ``duplicate``, ``position_only`` (at a truth's place at ``t_int``,
        speed off), ``on_track`` (elsewhere on a truth's track during the integration:
        a fragment, e.g. of a long streak) or ``false``.
    """
    nd, nt = len(det), len(truth)
    truth_det = np.full(nt, -1)
    truth_near = np.zeros(nt, dtype=bool)
    status = np.full(nd, "false", dtype="U13")
    if nd == 0 or nt == 0:
        return truth_det, truth_near, status
    d = {c: np.asarray(det[c], dtype=float)[:, None] for c in ("x", "y", "t_int", "vx", "vy")}
    t = {c: np.asarray(truth[c], dtype=float)[None, :] for c in ("x", "y", "t_ref", "vx", "vy")}
    same_int = np.asarray(det["integration"])[:, None] == np.asarray(truth["integration"])[None, :]
    dt = d["t_int"] - t["t_ref"]
    dist = np.hypot(t["x"] + t["vx"] * dt - d["x"], t["y"] + t["vy"] * dt - d["y"])
    s_true = np.hypot(t["vx"], t["vy"])
    s_det = np.hypot(d["vx"], d["vy"])
    near = same_int & (dist <= tolerance_px)
    ok = near & (np.abs(s_det - s_true) <= speed_tolerance * s_true)
    truth_near = near.any(axis=0)
    for i, j in sorted(zip(*np.nonzero(ok)), key=lambda p: dist[p]):
        if truth_det[j] < 0 and status[i] == "false":
            truth_det[j] = i
            status[i] = "match"
    on_track = same_int & (_track_distance(d["x"], d["y"], truth) <= tolerance_px)
    for i in range(nd):
        if status[i] == "false":
            if ok[i].any():
                status[i] = "duplicate"
            elif near[i].any():
                status[i] = "position_only"
            elif on_track[i].any():
                status[i] = "on_track"
    return truth_det, truth_near, status


def _track_distance(x, y, truth):
    """Distance (px) of points ``x, y`` (shape (n, 1)) from each truth track's segment
    between its first and last read; infinite when the truth has no track ends."""
    if "x_start" not in truth.colnames:
        return np.full((x.shape[0], len(truth)), np.inf)
    ax, ay = (np.asarray(truth[c], dtype=float)[None, :] for c in ("x_start", "y_start"))
    bx, by = (np.asarray(truth[c], dtype=float)[None, :] for c in ("x_end", "y_end"))
    dx, dy = bx - ax, by - ay
    u = np.clip(((x - ax) * dx + (y - ay) * dy) / np.maximum(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
    return np.hypot(ax + u * dx - x, ay + u * dy - y)


def _mover_rows(truth, results, fwhm, base):
    """Per-mover result rows: truth plus, per detector, found / errors."""
    tol = max(POSITION_TOLERANCE_PX, fwhm)
    rows = [dict(base, id=int(r["id"]), integration=int(r["integration"]), snr=float(r["snr"]),
                 snr_optimal=float(r["snr_optimal"]), snr_moving=float(r["snr_moving"]),
                 speed=float(r["speed_px_per_group"]),
                 flux=float(r["flux"]), n_groups_on=int(r["n_groups_on_detector"]))
            for r in truth]
    statuses = {}
    for name in DETECTORS:
        res = results.get(name)
        if res is None:
            for row in rows:
                row.update({f"{name}_{k}": v for k, v in {**_empty_result(), "ran": False}.items()})
            statuses[name] = None
            continue
        det = res[0]
        truth_det, truth_near, status = match(det, truth, tol)
        statuses[name] = status
        for j, row in enumerate(rows):
            out = _empty_result()
            out["found"] = truth_det[j] >= 0
            out["near"] = bool(truth_near[j])
            if out["found"]:
                out.update(_errors(det[truth_det[j]], truth[j]))
            row.update({f"{name}_{k}": v for k, v in out.items()})
    return rows, statuses


def _empty_result():
    return {"found": False, "near": False, "dpos": np.nan, "dspeed": np.nan, "ddir": np.nan,
            "sense": False, "dflux": np.nan, "det_snr": np.nan, "ran": True,
            **{f"pull_{c}": np.nan for c in PULL_COLUMNS}}


def _errors(d, t):
    dt = d["t_int"] - t["t_ref"]
    dpos = np.hypot(t["x"] + t["vx"] * dt - d["x"], t["y"] + t["vy"] * dt - d["y"])
    s_true, s_det = np.hypot(t["vx"], t["vy"]), np.hypot(d["vx"], d["vy"])
    cosang = (d["vx"] * t["vx"] + d["vy"] * t["vy"]) / max(s_true * s_det, 1e-30)
    ang = np.degrees(np.arccos(np.clip(cosang, -1, 1)))
    ambiguous = "direction_ambiguous" in d.colnames and bool(d["direction_ambiguous"])
    # Pulls: (measured - true) / reported error, where the detector reports errors.
    truth_at = {"x": t["x"] + t["vx"] * dt, "y": t["y"] + t["vy"] * dt, "vx": t["vx"], "vy": t["vy"],
                "flux": t["flux"]}
    pulls = {f"pull_{c}": (float((d[c] - truth_at[c]) / d[f"{c}_err"])
                           if f"{c}_err" in d.colnames and d[f"{c}_err"] > 0 else np.nan)
             for c in PULL_COLUMNS}
    return {
        "dpos": float(dpos),
        "dspeed": float(s_det / s_true - 1.0),
        "ddir": float(min(ang, 180.0 - ang) if ambiguous else ang),
        "sense": bool(cosang > 0) and not ambiguous,
        "dflux": float(d["flux"] / t["flux"] - 1.0),
        "det_snr": float(d["snr"]),
        **pulls,
    }


def _ramp_row(base, results, statuses, n_pixels, nints):
    row = dict(base, n_pixels=int(n_pixels), nints=int(nints))
    for name in DETECTORS:
        res = results.get(name)
        if res is None:
            row.update({f"{name}_ran": False, f"{name}_n_det": 0, f"{name}_n_false": 0,
                        f"{name}_n_position_only": 0, f"{name}_n_duplicate": 0, f"{name}_n_on_track": 0,
                        f"{name}_seconds": np.nan})
            continue
        det, seconds, _ = res
        status = statuses.get(name) if statuses else None
        if status is None:
            status = np.full(len(det), "false")
        row.update({
            f"{name}_ran": True,
            f"{name}_n_det": len(det),
            f"{name}_n_false": int(np.sum(status == "false")),
            f"{name}_n_position_only": int(np.sum(status == "position_only")),
            f"{name}_n_duplicate": int(np.sum(status == "duplicate")),
            f"{name}_n_on_track": int(np.sum(status == "on_track")),
            f"{name}_seconds": float(seconds),
        })
    return row


# ---------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------

def _log_uniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def grid_specs(settings):
    """Mover and empty ramp specifications of a grid, in run order."""
    combos = [(t, f, n) for t in settings.timings for n in settings.ngroups for f in settings.filters]
    specs = []
    n_speed, n_snr = len(SPEED_BINS) - 1, len(SNR_BINS) - 1
    index = 0
    rounds = dict(settings.rounds_by_ngroups)
    for m in range(settings.ramps_per_combo):
        for timing, filt, ng in combos:
            if m >= rounds.get(ng, settings.ramps_per_combo):
                continue
            rng = np.random.default_rng(BASE_SEED + index)
            # Speed bin from every axis, so that no filter, length or timing keeps to a
            # subset of the speed bins when there are fewer rounds than bins.
            sb = (m + settings.filters.index(filt) + settings.ngroups.index(ng)
                  + settings.timings.index(timing)) % n_speed
            speed = _log_uniform(rng, SPEED_BINS[sb], SPEED_BINS[sb + 1])
            snrs = []
            for j in range(settings.movers_per_ramp):
                b = (index * settings.movers_per_ramp + j) % n_snr
                snrs.append(_log_uniform(rng, SNR_BINS[b], SNR_BINS[b + 1]))
            specs.append(RampSpec(index, "grid", settings.subarray, timing, filt, ng, BASE_SEED + index,
                                  speed, float(rng.uniform(0, 2 * np.pi)), snrs))
            index += 1
    for m in range(settings.empty_per_combo):
        for timing, filt, ng in combos:
            specs.append(RampSpec(index, "empty", settings.subarray, timing, filt, ng, BASE_SEED + index))
            index += 1
    for filt, ng in settings.full_empty:
        specs.append(RampSpec(index, "full_empty", "FULL", "native", filt, ng, BASE_SEED + index))
        index += 1
    return specs


def _movers_for(spec, settings):
    """Parallel movers across the array's centre, one velocity, fluxes for their SNRs."""
    sub = SUBARRAYS[spec.subarray]
    ny, nx = sub["ysize"], sub["xsize"]
    ref = reference_pixel_columns(spec.subarray)
    x_lo = (ref[ref < nx // 2].max() + 1) if np.any(ref < nx // 2) else 0
    x_hi = (ref[ref > nx // 2].min() - 1) if np.any(ref > nx // 2) else nx - 1
    xc, yc = 0.5 * (x_lo + x_hi), 0.5 * (ny - 1)
    gt = spec.group_time
    rng = np.random.default_rng(spec.seed + 7919)
    ux, uy = np.cos(spec.angle), np.sin(spec.angle)
    t_ref = 0.5 * (spec.ngroups - 1) * gt
    vx, vy = spec.speed * ux / gt, spec.speed * uy / gt
    movers = []
    n = len(spec.snrs)
    for j, snr in enumerate(spec.snrs):
        off = (j - 0.5 * (n - 1)) * settings.spacing + rng.uniform(-3, 3)
        along = rng.uniform(-10, 10)
        x = xc - off * uy + along * ux
        y = yc + off * ux + along * uy
        flux = snr_to_flux(snr, vx, vy, x=x, y=y, t_ref=t_ref, ngroups=spec.ngroups,
                           subarray=spec.subarray, group_time=gt, filter=spec.filter,
                           read_noise_cds=READ_NOISE, gain=GAIN)
        movers.append(Mover(x, y, vx, vy, flux, t_ref=t_ref))
    return movers


def _simulate(spec, settings):
    movers = _movers_for(spec, settings) if spec.kind == "grid" else []
    n_stars = settings.stars if spec.subarray != "FULL" else 80
    return simulate_ramp(
        subarray=spec.subarray, ngroups=spec.ngroups, filter=spec.filter, group_time=spec.group_time,
        movers=movers, stars=n_stars, bad_pixels="cdp7", read_noise_cds=READ_NOISE, gain=GAIN,
        seed=spec.seed, filename=f"bench_{spec.index:04d}_uncal.fits",
    )


def _light_sensitive_pixels(subarray):
    sub = SUBARRAYS[subarray]
    return sub["ysize"] * (sub["xsize"] - len(reference_pixel_columns(subarray)))


def run_grid(settings, refs, progress=None):
    """Simulate, process and match every grid ramp.

    Returns
    -------
    movers : Table
        One row per truth mover (see :func:`_mover_rows`).
    ramps : Table
        One row per ramp: detections, false positives and seconds per detector.
    """
    mover_rows, ramp_rows = [], []
    specs = grid_specs(settings)
    for n, spec in enumerate(specs):
        t0 = time.perf_counter()
        ramp, truth = _simulate(spec, settings)
        jump, _, rateints, _ = run_jump_and_ramp_fit(ramp, refs)
        del ramp
        psf = psf_for_filter(spec.filter)
        results = run_detectors(jump, rateints, psf, spec.detectors(settings))
        base = {"set": "grid", "ramp": spec.index, "kind": spec.kind, "subarray": spec.subarray,
                "timing": spec.timing, "filter": spec.filter, "ngroups": spec.ngroups,
                "group_time": spec.group_time, "fwhm": psf.fwhm}
        rows, statuses = _mover_rows(truth, results, psf.fwhm, base)
        mover_rows.extend(rows)
        ramp_rows.append(_ramp_row(dict(base, n_cosmic_rays=int(sum(truth.meta["n_cosmic_rays"])),
                                        n_showers=int(sum(truth.meta["n_showers"]))),
                                   results, statuses, _light_sensitive_pixels(spec.subarray), 1))
        if progress:
            progress(f"ramp {n + 1}/{len(specs)} {spec.kind} {spec.subarray}/{spec.timing} {spec.filter} "
                     f"ng={spec.ngroups} v={spec.speed:.3f} px/group: "
                     + ", ".join(f"{k}={'-' if v is None else len(v[0])}" for k, v in results.items())
                     + f" ({time.perf_counter() - t0:.1f} s)")
    return Table(rows=mover_rows) if mover_rows else Table(), Table(rows=ramp_rows)


# ---------------------------------------------------------------------------
# The real ground-test ramp
# ---------------------------------------------------------------------------

def open_real(nints=None):
    """The real ground-test ramp (its first ``nints`` integrations), or None when absent."""
    try:
        from tests.conftest import open_real_ramp
    except ImportError:  # benchmarks run outside the repository root
        return None
    try:
        model = open_real_ramp()
    except BaseException as exc:  # pytest.skip raises a BaseException subclass
        if type(exc).__name__ == "Skipped":
            return None
        raise
    if nints is not None and nints < model.data.shape[0]:
        model.data = model.data[:nints].copy()
        model.groupdq = model.groupdq[:nints].copy()
        model.meta.exposure.nints = nints
        model.meta.exposure.integration_end = nints
    return model


def _detector1_front(ramp, refs):
    """dq_init (the CDP7 mask: reference columns, bad pixels), firstframe, lastframe."""
    from jwst.dq_init import DQInitStep
    from jwst.firstframe import FirstFrameStep
    from jwst.lastframe import LastFrameStep

    ramp = DQInitStep.call(ramp, **refs.overrides("mask"))
    return LastFrameStep.call(FirstFrameStep.call(ramp))


def run_real(settings, refs, progress=None):
    """False positives on the real ramp, and recovery of movers injected into it.

    Returns
    -------
    movers, ramps : Table
        As :func:`run_grid` (``set`` = ``real``), or empty tables when the real ramp
        is not available.
    """
    raw = open_real(settings.real_nints)  # opened afresh for every use: the steps must not share one model
    if raw is None:
        return Table(), Table()
    psf = psf_for_filter("F770W")
    nints, ngroups, ny, nx = raw.data.shape
    gt = float(raw.meta.exposure.group_time)
    n_pix = ny * (nx - len(reference_pixel_columns("SUB64")))
    base = {"set": "real", "subarray": "SUB64", "timing": "native", "filter": "F770W",
            "ngroups": ngroups, "group_time": gt, "fwhm": psf.fwhm}
    jump, _, rateints, _ = run_jump_and_ramp_fit(_detector1_front(raw, refs), refs)
    results = run_detectors(jump, rateints, psf)
    ramp_rows = [_ramp_row(dict(base, ramp=-1, kind="real", n_cosmic_rays=-1, n_showers=-1), results,
                           None, n_pix, nints)]
    if progress:
        progress("real ramp, no injection: "
                 + ", ".join(f"{k}={'-' if v is None else len(v[0])}" for k, v in results.items()))
    mover_rows = []
    n_speed = 3  # the 72 x 64 subarray holds tracks up to ~1 px/group over 50 groups
    speed_edges = (0.005, 0.05, 0.5, 1.0)
    for run in range(settings.real_inject_runs):
        rng = np.random.default_rng(BASE_SEED + 50000 + run)
        movers, snrs = [], []
        for i in range(1, nints + 1):
            sb = (run + i) % n_speed
            speed = _log_uniform(rng, speed_edges[sb], speed_edges[sb + 1])
            ang = rng.uniform(0, 2 * np.pi)
            t_ref = 0.5 * (ngroups - 1) * gt
            x, y = 38.0 + rng.uniform(-4, 4), 32.0 + rng.uniform(-4, 4)
            movers.append(Mover(x, y, speed * np.cos(ang) / gt, speed * np.sin(ang) / gt, 1.0,
                                t_ref=t_ref, integration=i))
            b = (run * nints + i) % (len(SNR_BINS) - 2)  # 3 to 30
            snrs.append(_log_uniform(rng, SNR_BINS[b], SNR_BINS[b + 1]))
        injected, truth = inject_movers(open_real(settings.real_nints), movers, snr=snrs, read_noise_cds=READ_NOISE, gain=GAIN,
                                        seed=BASE_SEED + 60000 + run)
        jump, _, rateints, _ = run_jump_and_ramp_fit(_detector1_front(injected, refs), refs)
        results = run_detectors(jump, rateints, psf)
        rows, statuses = _mover_rows(truth, results, psf.fwhm, dict(base, ramp=run, kind="real_inject"))
        mover_rows.extend(rows)
        ramp_rows.append(_ramp_row(dict(base, ramp=run, kind="real_inject", n_cosmic_rays=-1,
                                        n_showers=-1), results, statuses, n_pix, nints))
        if progress:
            progress(f"real ramp, injection run {run + 1}/{settings.real_inject_runs}: "
                     + ", ".join(f"{k}={'-' if v is None else len(v[0])}" for k, v in results.items()))
    return Table(rows=mover_rows) if mover_rows else Table(), Table(rows=ramp_rows)


def run_recovery(settings, refs, progress=None):
    """The grid and the real ramp.

    Returns
    -------
    movers, ramps : Table
        Per-mover and per-ramp results of both (column ``set``: ``grid`` or ``real``).
    """
    from astropy.table import vstack

    gm, gr = run_grid(settings, refs, progress)
    rm, rr = run_real(settings, refs, progress)
    movers = vstack([t for t in (gm, rm) if len(t)], metadata_conflicts="silent")
    ramps = vstack([t for t in (gr, rr) if len(t)], metadata_conflicts="silent")
    return movers, ramps
