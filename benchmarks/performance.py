"""Wall time and memory of ``asteroid_detect`` next to jwst's JumpStep and RampFitStep.

For full-frame ramps of several lengths, in one process:

- ``JumpStep.call`` and ``RampFitStep.call`` (jwst's own, default parameters,
  ``maximum_cores='1'``), and ``AsteroidDetectStep.call`` on the jump product, each
  timed with ``time.perf_counter``;
- peak memory of each call: the process RSS is sampled every 5 ms in a thread, and
  the peak *above the RSS before the call* is reported, also as a multiple of the
  ramp cube (``ngroups x 1024 x 1032 x 4`` bytes); before each call the memory
  freed so far goes back to the system (:func:`release_freed_memory`), so that the
  level before it holds nothing an earlier call left with the allocator;
- the deep search (``deep_search=True``) at one length, with the number of
  (velocity, starting pixel) trials it scans (``counts["n_search_trials"]``), and
  on the same ramp the default search with other top speeds (``top_speeds``);
- at one length, how our time grows with the number of movers and with the cosmic-ray rate.

Before each case the free memory is checked; a case that would not fit is skipped
and said so.
"""

import ctypes
import gc
import threading
import time
from dataclasses import dataclass

import numpy as np
import psutil

from jwst_asteroid_step.simulate import Mover, simulate_ramp, snr_to_flux
from jwst_asteroid_step.simulate.metadata import SUBARRAYS, group_time_for

from .recovery import BASE_SEED, GAIN, READ_NOISE

__all__ = ["PERF_SETTINGS", "PeakRSS", "PerfSettings", "release_freed_memory", "run_performance"]

#: Peak memory of the whole chain (simulation, jump, ramp_fit, search) measured at
#: 100 groups is ~5 ramp cubes; a case runs only with this many cubes free.
_CUBES_NEEDED = 7.0


@dataclass(frozen=True)
class PerfSettings:
    """Which performance cases to run."""

    subarray: str = "FULL"
    ngroups: tuple = (10, 50, 100, 200)
    deep_ngroups: int = 100
    top_speeds: tuple = (1.0,)
    scaling_ngroups: int = 50
    mover_counts: tuple = (0, 20, 100)
    cosmic_ray_rates: tuple = (0.0, 5.0, 20.0)
    n_movers: int = 4
    stars: int = 80


PERF_SETTINGS = {
    "full": PerfSettings(),
    "quick": PerfSettings(ngroups=(10, 50, 100), deep_ngroups=50, mover_counts=(0, 20),
                          cosmic_ray_rates=(0.0, 20.0)),
    "smoke": PerfSettings(subarray="SUB256", ngroups=(10, 30), deep_ngroups=30, scaling_ngroups=10,
                          mover_counts=(0, 10), cosmic_ray_rates=(0.0, 5.0), stars=5),
}


class PeakRSS:
    """Peak resident memory above the level at entry, sampled in a thread.

    Attributes
    ----------
    start, peak : int
        RSS (bytes) at entry and the highest sample.
    """

    def __init__(self, interval=0.005):
        self.interval = interval
        self.process = psutil.Process()

    def __enter__(self):
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        return False

    @property
    def extra(self):
        """Peak above the entry level (bytes)."""
        return self.peak - self.start


def release_freed_memory():
    """Hand the memory freed so far back to the system, so that the RSS is the memory in use.

    glibc keeps freed memory for reuse: the RSS before a call can hold what earlier
    calls freed, and a peak measured above it undercounts the call's own.
    ``malloc_trim(0)`` returns every free page of the heap (a no-op off glibc).
    Setting a low mmap threshold instead (``MALLOC_MMAP_THRESHOLD_=65536``) would
    do the same for each call's own temporaries, but makes jwst's steps and ours
    ~20 % slower at 200 groups: the calls run with the default allocator.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _measure(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, its wall time (s), peak extra RSS and peak RSS (bytes)."""
    release_freed_memory()
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds = time.perf_counter() - t0
    return result, seconds, mem.extra, mem.peak


def _ramp(settings, ngroups, n_movers, cosmic_ray_rate, seed):
    sub = SUBARRAYS[settings.subarray]
    ny, nx = sub["ysize"], sub["xsize"]
    gt = group_time_for(settings.subarray)
    rng = np.random.default_rng(seed)
    t_ref = 0.5 * (ngroups - 1) * gt
    movers = []
    for _ in range(n_movers):
        speed, ang = np.exp(rng.uniform(np.log(0.05), np.log(1.0))), rng.uniform(0, 2 * np.pi)
        vx, vy = speed * np.cos(ang) / gt, speed * np.sin(ang) / gt
        x, y = rng.uniform(0.15, 0.85) * nx, rng.uniform(0.15, 0.85) * ny
        flux = snr_to_flux(20.0, vx, vy, x=x, y=y, t_ref=t_ref, ngroups=ngroups,
                           subarray=settings.subarray, read_noise_cds=READ_NOISE, gain=GAIN)
        movers.append(Mover(x, y, vx, vy, flux, t_ref=t_ref))
    return simulate_ramp(subarray=settings.subarray, ngroups=ngroups, filter="F770W", movers=movers,
                         stars=settings.stars, bad_pixels="cdp7", cosmic_ray_rate=cosmic_ray_rate,
                         read_noise_cds=READ_NOISE, gain=GAIN, seed=seed,
                         filename=f"perf_{ngroups}_uncal.fits")


def _warm_up(settings, over, jwst_over):
    """Untimed calls of the step on the bench's two shortest ramps; their seconds.

    Those ramps, not a tiny one, so that every kernel a case takes (fast windows,
    short and long stacks, shower boxes, the array's shapes) is compiled or loaded
    from numba's cache before the timed calls: after a SUB64 warm-up the 10- and
    50-group calls still compiled (19.1 s against 2.9 s at 10 groups).
    """
    from jwst.jump import JumpStep

    from jwst_asteroid_step.step import AsteroidDetectStep

    seconds = 0.0
    for ng in sorted(settings.ngroups)[:2]:
        warm, _ = _ramp(settings, ng, settings.n_movers, 5.0, BASE_SEED + 89000 + ng)
        jump = JumpStep.call(warm, **jwst_over)
        del warm
        seconds += _measure(AsteroidDetectStep.call, jump, **over)[1]
    return seconds


def _step_overrides(step_class, refs):
    """``override_<reftype>`` for every reference file the step asks for, offline.

    Gain and read noise are the offline files; the imager distortion and filter offset
    the real flight files in the real-data folder when present; anything else "N/A"
    (which the step accepts for its optional sky and flux columns), so no time goes to
    failed CRDS look-ups.
    """
    from jwst_asteroid_step.offline import REAL_DATA_DIR

    real = {"distortion": REAL_DATA_DIR / "jwst_miri_imager_distortion_flt9.asdf",
            "filteroffset": REAL_DATA_DIR / "jwst_miri_filteroffset_full_flt9.asdf"}
    over = {}
    for reftype in step_class.reference_file_types:
        if reftype in refs:
            over[f"override_{reftype}"] = str(refs[reftype])
        elif reftype in real and real[reftype].exists():
            over[f"override_{reftype}"] = str(real[reftype])
        else:
            over[f"override_{reftype}"] = "N/A"
    return over


def _fits_in_memory(cube_bytes):
    return psutil.virtual_memory().available > _CUBES_NEEDED * cube_bytes


def run_performance(settings, refs, progress=None):
    """Run the performance cases.

    Parameters
    ----------
    settings : PerfSettings
    refs : OfflineReferences
        From :func:`jwst_asteroid_step.offline.build_references`.
    progress : callable, optional
        Called with one line per case.

    Returns
    -------
    dict
        ``main`` (one dict per ngroups), ``deep`` (the opt-in deep search) and
        ``no_fast`` (``fast_search=False``), each a dict or None, ``top_speed`` (one
        dict per extra top speed of the main search, without the fast windows),
        ``scaling`` (list of dicts), ``skipped`` (list of str).
    """
    from jwst.jump import JumpStep
    from jwst.ramp_fitting import RampFitStep

    from jwst_asteroid_step.step import AsteroidDetectStep

    over = _step_overrides(AsteroidDetectStep, refs)
    jwst_over = refs.overrides("gain", "readnoise")
    sub = SUBARRAYS[settings.subarray]
    out = {"subarray": settings.subarray, "main": [], "deep": None, "no_fast": None, "top_speed": [], "scaling": [],
           "skipped": []}

    def say(msg):
        if progress:
            progress(msg)

    out["releases_freed_memory"] = True
    # Every timing below is warm: numba compiles (or loads from its cache) on the
    # first call, which would otherwise land on whichever case runs first.
    out["warmup_seconds"] = _warm_up(settings, over, jwst_over)
    say(f"performance: warm-up (first call, numba compile or cache load) {out['warmup_seconds']:.1f} s")

    for ng in settings.ngroups:
        cube = ng * sub["ysize"] * sub["xsize"] * 4
        if not _fits_in_memory(cube):
            out["skipped"].append(f"{ng} groups: {cube / 2**20:.0f} MB cube needs ~{_CUBES_NEEDED:.0f}x "
                                  f"free, {psutil.virtual_memory().available / 2**30:.1f} GB available")
            say("performance: skipped " + out["skipped"][-1])
            continue
        (ramp, truth), t_sim, _, _ = _measure(_ramp, settings, ng, settings.n_movers, 5.0,
                                              BASE_SEED + 90000 + ng)
        jump, t_jump, m_jump, _ = _measure(JumpStep.call, ramp, **jwst_over)
        del ramp
        cat, t_ours, m_ours, peak_ours = _measure(AsteroidDetectStep.call, jump, **over)
        counts = dict(cat.meta.asteroid_detect.counts.instance)
        _, t_fit, m_fit, _ = _measure(RampFitStep.call, jump, **jwst_over)
        row = {
            "ngroups": ng, "cube_mb": cube / 2**20, "seconds_simulate": t_sim,
            "seconds_jump": t_jump, "seconds_ramp_fit": t_fit, "seconds_ours": t_ours,
            "time_ratio": t_ours / (t_jump + t_fit),
            "mem_jump_mb": m_jump / 2**20, "mem_ramp_fit_mb": m_fit / 2**20, "mem_ours_mb": m_ours / 2**20,
            "mem_ratio": m_ours / cube, "peak_rss_ours_mb": peak_ours / 2**20,
            "n_detections": len(cat.catalog), "n_true_movers": len(truth),
            "n_cosmic_rays_sim": int(sum(truth.meta["n_cosmic_rays"])),
            "n_showers_sim": int(sum(truth.meta["n_showers"])),
            "n_jump_cells": int(counts.get("n_jump_cells", 0)),
            "n_search_trials": int(counts.get("n_search_trials", 0)),
        }
        out["main"].append(row)
        say(f"performance: {ng} groups: jump {t_jump:.1f} s, ramp_fit {t_fit:.1f} s, ours {t_ours:.1f} s "
            f"(x{row['time_ratio']:.2f}); ours +{row['mem_ours_mb']:.0f} MB = {row['mem_ratio']:.2f} cubes")
        del jump, cat
        gc.collect()

    ng = settings.scaling_ngroups
    cases = [("movers", n, 5.0) for n in settings.mover_counts]
    cases += [("cosmic_ray_rate", settings.n_movers, r) for r in settings.cosmic_ray_rates]
    for what, n_movers, cr in cases:
        (ramp, truth), _, _, _ = _measure(_ramp, settings, ng, n_movers, cr,
                                          BASE_SEED + 91000 + n_movers + int(cr * 10))
        jump, t_jump, _, _ = _measure(JumpStep.call, ramp, **jwst_over)
        del ramp
        cat, t_ours, m_ours, _ = _measure(AsteroidDetectStep.call, jump, **over)
        counts = dict(cat.meta.asteroid_detect.counts.instance)
        out["scaling"].append({
            "vary": what, "ngroups": ng, "n_movers": n_movers, "cosmic_ray_rate": cr,
            "n_cosmic_rays_sim": int(sum(truth.meta["n_cosmic_rays"])),
            "n_jump_cells": int(counts.get("n_jump_cells", 0)),
            "n_mover_candidates": int(counts.get("n_mover_candidates", 0)),
            "seconds_jump": t_jump, "seconds_ours": t_ours, "mem_ours_mb": m_ours / 2**20,
            "n_detections": len(cat.catalog),
        })
        say(f"performance: {ng} groups, {n_movers} movers, CR rate {cr}: ours {t_ours:.1f} s, "
            f"{len(cat.catalog)} detections")
        del jump, cat
        gc.collect()

    # The deep search last (it is by far the longest case), on the same ramp as the
    # main case of that length (same seed).
    ng = settings.deep_ngroups
    main = [r for r in out["main"] if r["ngroups"] == ng]
    if main:
        ramp, _ = _ramp(settings, ng, settings.n_movers, 5.0, BASE_SEED + 90000 + ng)
        jump = JumpStep.call(ramp, **jwst_over)
        del ramp
        row = main[0]
        for speed in settings.top_speeds:
            cat, t_s, m_s, _ = _measure(AsteroidDetectStep.call, jump, search_max_speed=speed, fast_search=False,
                                        **over)
            out["top_speed"].append({
                "ngroups": ng, "search_max_speed": speed, "seconds": t_s, "mem_mb": m_s / 2**20,
                "n_search_trials": int(dict(cat.meta.asteroid_detect.counts.instance).get("n_search_trials", 0)),
                "n_detections": len(cat.catalog),
                "time_ratio": t_s / (row["seconds_jump"] + row["seconds_ramp_fit"]),
            })
            say(f"performance: search to {speed} px/group at {ng} groups: {t_s:.1f} s")
            del cat
        fast, t_fast, m_fast, _ = _measure(AsteroidDetectStep.call, jump, fast_search=False, **over)
        fc = dict(fast.meta.asteroid_detect.counts.instance)
        out["no_fast"] = {
            "ngroups": ng, "seconds": t_fast, "mem_mb": m_fast / 2**20,
            "mem_ratio": m_fast / (row["cube_mb"] * 2**20),
            "n_search_trials": int(fc.get("n_search_trials", 0)), "n_detections": len(fast.catalog),
            "time_ratio": t_fast / (row["seconds_jump"] + row["seconds_ramp_fit"]),
        }
        say(f"performance: without the fast search at {ng} groups: {t_fast:.1f} s "
            f"(x{out['no_fast']['time_ratio']:.2f})")
        del fast
        deep, t_deep, m_deep, _ = _measure(AsteroidDetectStep.call, jump, deep_search=True, **over)
        dc = dict(deep.meta.asteroid_detect.counts.instance)
        out["deep"] = {
            "ngroups": ng, "seconds": t_deep, "mem_mb": m_deep / 2**20,
            "n_search_trials": int(dc.get("n_search_trials", 0)),
            "n_search_trials_default": row["n_search_trials"],
            "n_detections": len(deep.catalog),
            "time_ratio": t_deep / (row["seconds_jump"] + row["seconds_ramp_fit"]),
        }
        say(f"performance: deep search at {ng} groups: {t_deep:.1f} s, "
            f"{out['deep']['n_search_trials']:.3g} trials")
        del jump, deep
        gc.collect()
    return out
