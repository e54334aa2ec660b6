"""Run a chosen subset of the recovery bench's grid ramps through ``find_movers``.

For checking a change of the detector on the ramps it concerns, in minutes instead of
the full bench's hour.  The ramps are those of :mod:`benchmarks.recovery` (full
settings, the same seeds), through the real jwst ``JumpStep`` offline, then
:func:`~jwst_asteroid_step.detect.find_movers` with its defaults; movers are matched as
in the recovery bench.  One line per ramp (found / movers, false detections, seconds,
the search's candidate counts, and each mover's yardstick SNR with ``+`` when found),
then the totals.  ``--select`` is a Python expression in the ramp specification ``s``
(:class:`benchmarks.recovery.RampSpec`)::

    python -m benchmarks.subset --select 's.kind == "grid" and s.speed < 0.05 and s.ngroups <= 100'

``--set NAME=VALUE`` (repeatable) changes a :class:`DetectionConfig` field, e.g.
``--set fast_search=False``.

To compare with another version of the package, copy this file into a ``git
worktree`` of that version and run the same command from there (``python -m`` puts
the working folder first on the path, so the worktree's package is the one imported).
Jump-step outputs are cached in ``--cache`` (default: a temporary folder).
"""

import argparse
import ast
import tempfile
import time
from pathlib import Path

import numpy as np

from jwst_asteroid_step.config import DetectionConfig
from jwst_asteroid_step.detect import find_movers
from jwst_asteroid_step.offline import build_references, configure_offline_crds
from jwst_asteroid_step.psf import psf_for_filter

from .recovery import (
    GAIN,
    POSITION_TOLERANCE_PX,
    READ_NOISE,
    SETTINGS,
    _simulate,
    grid_specs,
    match,
    step_psf,
)


def main(argv=None):
    """Run the selected ramps and print one line per ramp and the totals."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--select", required=True, help="Python expression in the ramp spec `s`")
    parser.add_argument("--cache", type=Path, default=None, help="folder for the jump-step outputs")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a DetectionConfig field to change (a Python literal)")
    args = parser.parse_args(argv)
    config = DetectionConfig(**{k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in args.set)})
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp) / "jump"
        cache.mkdir(parents=True, exist_ok=True)
        configure_offline_crds(Path(tmp) / "crds")
        from jwst.jump import JumpStep
        from stdatamodels.jwst.datamodels import RampModel

        refs = build_references(Path(tmp) / "refs")
        settings = SETTINGS["full"]
        specs = [s for s in grid_specs(settings) if eval(args.select, {}, {"s": s})]  # noqa: S307
        print(f"{len(specs)} ramps", flush=True)
        found_all, movers, false, seconds = 0, 0, 0, 0.0
        for spec in specs:
            ramp, truth = _simulate(spec, settings)
            path = cache / f"jump_{spec.index}.fits"
            if path.exists():
                jump = RampModel(str(path))
            else:
                jump = JumpStep.call(ramp, **refs.overrides("gain", "readnoise"))
                jump.save(str(path))
            psf = psf_for_filter(spec.filter)
            t0 = time.perf_counter()
            det, counts = find_movers(jump.data, jump.groupdq, jump.pixeldq, float(jump.meta.exposure.group_time),
                                      step_psf(psf, jump), READ_NOISE, GAIN, config)
            dt = time.perf_counter() - t0
            if len(truth):
                matched, _, status = match(det, truth, max(POSITION_TOLERANCE_PX, psf.fwhm))
                found, n_false = matched >= 0, int(np.sum(status == "false"))
            else:
                found, n_false = np.zeros(0, dtype=bool), len(det)
            found_all, movers, false, seconds = (found_all + int(found.sum()), movers + len(truth),
                                                 false + n_false, seconds + dt)
            snrs = " ".join(f"{s:.0f}{'+' if f else '-'}" for s, f in zip(truth["snr"] if len(truth) else [], found))
            print(f"{spec.index} {spec.kind} {spec.filter} ngroups={spec.ngroups} {spec.timing} "
                  f"v={spec.speed:.3f}: {int(found.sum())}/{len(truth)} found, {n_false} false, {dt:.1f} s; "
                  f"candidates: search {counts.get('n_search_candidates')}, "
                  f"sub-PSF {counts.get('n_slow_motion_candidates')}; [{snrs}]", flush=True)
    print(f"total: {found_all}/{movers} movers found, {false} false detections, {seconds:.0f} s of find_movers")


if __name__ == "__main__":
    main()
