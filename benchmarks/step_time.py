"""The whole step's time against jwst's jump + ramp_fit, repeated, with and without the fast search.

The performance bench (:mod:`benchmarks.performance`, part of ``run_all.py``) times
each case once, and on a shared 2-core machine one run's ratio moves by ~0.1.  This
times the same ramps (``performance._ramp``: F770W, 80 stars, 4 movers, L2 cosmic
rays, the same seeds) several times in one process: jwst ``RampFitStep.call`` and
``AsteroidDetectStep.call`` with its defaults and with ``fast_search=False``, all on
the one jump product (``JumpStep.call`` is timed once), after a warm-up call that
compiles or loads the numba kernels.  One line per repeat, then the medians.

Run from the repository root (about 5 minutes on 2 cores at 100 groups, 3 repeats)::

    python -m benchmarks.step_time --ngroups 100 --repeats 3
"""

import argparse
import dataclasses
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .performance import PERF_SETTINGS, _measure, _ramp, _step_overrides
from .recovery import BASE_SEED


def time_step(ngroups, repeats, subarray="FULL", progress=print, step_pars=None):
    """Time jwst's jump and ramp_fit and ``asteroid_detect`` (default and fast search) on one ramp.

    Returns
    -------
    list of dict
        One per repeat: seconds of ``jump`` (the same every repeat), ``ramp_fit``,
        ``default`` (with the fast search), ``no_fast`` (``fast_search=False``), and
        the ratios ``default_ratio`` and ``no_fast_ratio`` to jump + ramp_fit.
        ``step_pars`` (a dict) are passed to every step call, e.g. ``{"psf_model": "gaussian"}``.
    """
    from jwst.jump import JumpStep
    from jwst.ramp_fitting import RampFitStep

    from jwst_asteroid_step.offline import build_references, configure_offline_crds
    from jwst_asteroid_step.simulate import simulate_ramp
    from jwst_asteroid_step.step import AsteroidDetectStep

    rows = []
    with tempfile.TemporaryDirectory(prefix="asteroid_time_") as tmp:
        configure_offline_crds(Path(tmp) / "crds")
        refs = build_references(Path(tmp) / "refs")
        over, jwst_over = _step_overrides(AsteroidDetectStep, refs), refs.overrides("gain", "readnoise")
        over.update(step_pars or {})
        small, _ = simulate_ramp(subarray="SUB64", ngroups=10, stars=0, seed=1)
        small = JumpStep.call(small, **jwst_over)
        for fast in (False, True):
            AsteroidDetectStep.call(small, fast_search=fast, **over)
        settings = dataclasses.replace(PERF_SETTINGS["full"], subarray=subarray)
        ramp, _ = _ramp(settings, ngroups, settings.n_movers, 5.0, BASE_SEED + 90000 + ngroups)
        jump, t_jump, _, _ = _measure(JumpStep.call, ramp, **jwst_over)
        del ramp
        for rep in range(repeats):
            _, t_fit, _, _ = _measure(RampFitStep.call, jump, **jwst_over)
            row = {"ngroups": ngroups, "jump": t_jump, "ramp_fit": t_fit}
            for name, fast in (("default", True), ("no_fast", False)):
                cat, row[name], _, _ = _measure(AsteroidDetectStep.call, jump, fast_search=fast, **over)
                row[f"{name}_ratio"] = row[name] / (t_jump + t_fit)
                row[f"{name}_detections"] = len(cat.catalog)
            rows.append(row)
            progress(f"{ngroups} groups, repeat {rep}: jump {t_jump:.1f} s, ramp_fit {t_fit:.1f} s; "
                     f"default {row['default']:.1f} s ({row['default_ratio']:.2f}x, "
                     f"{row['default_detections']} detections); fast_search=False {row['no_fast']:.1f} s "
                     f"({row['no_fast_ratio']:.2f}x, {row['no_fast_detections']} detections)")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ngroups", type=int, nargs="+", default=[100])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--subarray", default="FULL")
    parser.add_argument("--set", nargs="*", default=[], metavar="PAR=VALUE",
                        help="step parameters for every call, e.g. psf_model=gaussian (the default before session 17)")
    args = parser.parse_args(argv)
    step_pars = dict(item.split("=", 1) for item in args.set)
    logging.disable(logging.WARNING)  # jwst and stpipe log every step at INFO
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    for ng in args.ngroups:
        rows = time_step(ng, args.repeats, args.subarray, step_pars=step_pars)
        med = {k: float(np.median([r[k] for r in rows])) for k in ("ramp_fit", "default", "no_fast",
                                                                     "default_ratio", "no_fast_ratio")}
        print(f"{ng} groups, median of {len(rows)}: ramp_fit {med['ramp_fit']:.1f} s, "
              f"default {med['default']:.1f} s ({med['default_ratio']:.2f}x), "
              f"fast_search=False {med['no_fast']:.1f} s ({med['no_fast_ratio']:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
