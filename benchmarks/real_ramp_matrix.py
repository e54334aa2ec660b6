"""The real ground-test ramp under the preparations a user may choose: detections per setting.

The ramp (SUB64, F770W, 5 integrations of 50 groups, real cosmic rays and no asteroid; see
``../shared/data/real/README.md``) is prepared as calwebb_detector1 would, over a matrix:

- dq_init with the CDP7 mask, with and without firstframe + lastframe;
- a flat gain of 4 e/DN and a flat read-noise reference of 7.8 DN scaled by 0.8, 1.0 and 1.2
  (issue 24's preparation), given to jump and to the step alike;
- jwst jump with ``rejection_threshold`` 3, 4, 5 and 6 (the others at their defaults).

Each prepared ramp goes through ``AsteroidDetectStep`` with its defaults and the same
references. Every detection is false: the ramp holds no mover. The table gives the catalog's
rows per setting, and each detection's integration, position, speed and SNR.

Run from the repository root (about 30 s a setting with a core to itself, ~12 minutes)::

    python -m benchmarks.real_ramp_matrix [--output FILE]
"""

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from jwst_asteroid_step.offline import build_references

from .recovery import _detector1_front, offline_references, open_real

GAIN = 4.0
READ_NOISE = 7.8
NOISE_SCALES = (0.8, 1.0, 1.2)
THRESHOLDS = (3.0, 4.0, 5.0, 6.0)


def prepare(raw, refs, first_last, rejection_threshold):
    """dq_init (+ firstframe + lastframe, as the recovery bench) + jump on a fresh copy of the real ramp."""
    from jwst.dq_init import DQInitStep
    from jwst.jump import JumpStep

    ramp = _detector1_front(raw, refs) if first_last else DQInitStep.call(raw, **refs.overrides("mask"))
    return JumpStep.call(ramp, rejection_threshold=rejection_threshold, **refs.overrides("gain", "readnoise"))


def main(argv=None):
    """Run the matrix; print and optionally write the table."""
    from jwst_asteroid_step import AsteroidDetectStep

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="/tmp/jwst_asteroid_real_matrix", help="scratch folder")
    parser.add_argument("--output", default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    work = Path(args.work)
    offline_references(work)  # offline CRDS, quiet jwst logs
    if open_real() is None:
        print("The real ground-test ramp is not available (../shared/data/real); nothing to do.")
        return 1
    lines, total, n_settings = [], 0, 0
    for scale in NOISE_SCALES:
        refs = build_references(work / f"refs_rn{scale:g}", read_noise_cds=READ_NOISE * scale, gain=GAIN)
        for first_last, threshold in itertools.product((True, False), THRESHOLDS):
            t0 = time.perf_counter()
            jump = prepare(open_real(), refs, first_last, threshold)
            catalog = AsteroidDetectStep.call(jump, **refs.overrides("gain", "readnoise"))
            rows = catalog.catalog
            n_settings += 1
            total += len(rows)
            where = "; ".join(
                f"int {r['integration']} ({r['x']:.0f}, {r['y']:.0f}) {np.hypot(r['vx'], r['vy']) * jump.meta.exposure.group_time:.2f} px/group SNR {r['snr']:.1f}"
                for r in rows)
            lines.append(f"| {READ_NOISE * scale:.2f} | {'yes' if first_last else 'no'} | {threshold:g} | "
                         f"{len(rows)} | {where or '-'} |")
            print(lines[-1], f"({time.perf_counter() - t0:.1f} s)", flush=True)
    text = "\n".join([
        (f"The real ground-test ramp (SUB64, 5 x 50 groups), {n_settings} preparations, {total} detections "
         "in all (every one false)."),
        "",
        "| read noise (DN) | firstframe + lastframe | jump rejection_threshold | detections | where |",
        "|---|---|---|---|---|",
        *lines,
    ])
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
