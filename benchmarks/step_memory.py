"""Peak extra memory of one ``asteroid_detect`` call, in a fresh process.

The performance bench (:mod:`benchmarks.performance`, part of ``run_all.py``) runs
its cases one after another in one process and reports each call's peak RSS above
the level before it.  With glibc's default allocator that level includes memory
that earlier calls freed but the allocator kept, so a row depends on what ran
before it.  This measures one call on the bench's ramp (``performance._ramp``:
FULL unless ``--subarray``, F770W, 80 stars, 4 movers, L2 cosmic rays, the same
seeds) after the bench's warm-up, and nothing else, with the memory
freed before it handed back to the system as in the bench
(:func:`benchmarks.performance.release_freed_memory`); one process per ramp length
(about 2 minutes at 100 groups, with the warm-up)::

    python -m benchmarks.step_memory --ngroups 10
"""

import argparse
import dataclasses
import logging
import tempfile
import warnings
from pathlib import Path

from .performance import PERF_SETTINGS, _measure, _ramp, _step_overrides, _warm_up
from .recovery import BASE_SEED


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ngroups", type=int, default=100)
    parser.add_argument("--subarray", default="FULL")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # jwst and stpipe log every step at INFO
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    from jwst.jump import JumpStep

    from jwst_asteroid_step.offline import build_references, configure_offline_crds
    from jwst_asteroid_step.step import AsteroidDetectStep

    with tempfile.TemporaryDirectory(prefix="asteroid_memory_") as tmp:
        configure_offline_crds(Path(tmp) / "crds")
        refs = build_references(Path(tmp) / "refs")
        over, jwst_over = _step_overrides(AsteroidDetectStep, refs), refs.overrides("gain", "readnoise")
        settings = dataclasses.replace(PERF_SETTINGS["full"], subarray=args.subarray)
        _warm_up(settings, over, jwst_over)
        ramp, _ = _ramp(settings, args.ngroups, settings.n_movers, 5.0, BASE_SEED + 90000 + args.ngroups)
        jump = JumpStep.call(ramp, **jwst_over)
        del ramp
        cat, seconds, extra, _ = _measure(AsteroidDetectStep.call, jump, **over)
        cube = jump.data.nbytes
        print(f"{args.ngroups} groups: +{extra / 2**20:.0f} MB = {extra / cube:.2f} cubes of "
              f"{cube / 2**20:.0f} MB, {seconds:.1f} s, {len(cat.catalog)} detections")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
