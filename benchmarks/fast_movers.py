"""The fast search on the bench's fast movers: ``asteroid_detect`` with and without it.

The grid ramps of :mod:`benchmarks.recovery` (full settings, the same seeds) whose
movers run at 0.5-3 px/group with 25-100 groups go through the real jwst
``JumpStep`` offline, then through :func:`~jwst_asteroid_step.detect.find_movers`
twice: the default configuration (with the fast search), and the same with
``fast_search=False``.  Movers are matched as in the recovery
bench (position within max(2 px, FWHM) at the detection's ``t_int``, speed within
30 %); detections matching no mover and lying on no mover's track are false.  The
grid's empty ramps with full-frame timing and the same lengths then give both
configurations' false positives per full-frame integration (area-scaled).

Run from the repository root (about 30 minutes on 2 cores)::

    python -m benchmarks.fast_movers
"""

import tempfile
import time
from pathlib import Path

import numpy as np

from jwst_asteroid_step.config import DetectionConfig
from jwst_asteroid_step.detect import find_movers
from jwst_asteroid_step.offline import build_references, configure_offline_crds
from jwst_asteroid_step.psf import psf_for_filter

from .recovery import (FULL_FRAME_PIXELS, GAIN, POSITION_TOLERANCE_PX, READ_NOISE, SETTINGS, SNR_BINS,
                       _light_sensitive_pixels, _simulate, grid_specs, match)

CONFIGS = {"default": DetectionConfig(), "fast_search=False": DetectionConfig(fast_search=False)}


def main():
    """Run every fast-mover ramp through both configurations and print the tables."""
    with tempfile.TemporaryDirectory() as tmp:
        configure_offline_crds(Path(tmp) / "crds")
        from jwst.jump import JumpStep

        refs = build_references(Path(tmp) / "refs")
        settings = SETTINGS["full"]
        specs = [s for s in grid_specs(settings)
                 if s.kind == "grid" and 0.5 <= s.speed < 3.0 and s.ngroups in (25, 50, 100)]
        empty = [s for s in grid_specs(settings)
                 if s.kind == "empty" and s.timing == "full" and s.ngroups in (25, 50, 100)]
        found = {name: [] for name in CONFIGS}
        snr, false, seconds = [], dict.fromkeys(CONFIGS, 0), dict.fromkeys(CONFIGS, 0.0)
        empty_false, empty_pixels = dict.fromkeys(CONFIGS, 0), 0
        for spec in specs + empty:
            ramp, truth = _simulate(spec, settings)
            jump = JumpStep.call(ramp, **refs.overrides("gain", "readnoise"))
            psf = psf_for_filter(spec.filter)
            snr.extend(truth["snr"])
            empty_pixels += _light_sensitive_pixels(spec.subarray) if spec.kind == "empty" else 0
            for name, config in CONFIGS.items():
                t0 = time.perf_counter()
                det, _ = find_movers(jump.data, jump.groupdq, jump.pixeldq, float(jump.meta.exposure.group_time),
                                     psf, READ_NOISE, GAIN, config)
                if spec.kind == "empty":
                    empty_false[name] += len(det)
                    continue
                seconds[name] += time.perf_counter() - t0
                matched, _, status = match(det, truth, max(POSITION_TOLERANCE_PX, psf.fwhm))
                found[name].extend(matched >= 0)
                false[name] += int(np.sum(status == "false"))
            if spec.kind == "empty":
                print(f"empty ramp {spec.index} {spec.filter} ngroups={spec.ngroups}: "
                      + ", ".join(f"{n} {empty_false[n]} false so far" for n in CONFIGS), flush=True)
                continue
            print(f"ramp {spec.index} {spec.filter} ngroups={spec.ngroups} {spec.timing} v={spec.speed:.2f}: "
                  + ", ".join(f"{n} {int(np.sum(found[n][-len(truth):]))}/{len(truth)}" for n in CONFIGS),
                  flush=True)
    snr = np.asarray(snr)
    print(f"\n{len(specs)} ramps, {snr.size} movers of 0.5-3 px/group\n")
    print("| yardstick SNR | " + " | ".join(CONFIGS) + " |")
    print("|---" * (len(CONFIGS) + 1) + "|")
    for lo, hi in zip(SNR_BINS[:-1], SNR_BINS[1:]):
        sel = (snr >= lo) & (snr < hi)
        cells = [f"{int(np.sum(np.asarray(found[n])[sel]))}/{int(sel.sum())}" for n in CONFIGS]
        print(f"| {lo:g}-{hi:g} | " + " | ".join(cells) + " |")
    print("| false detections | " + " | ".join(str(false[n]) for n in CONFIGS) + " |")
    print("| seconds (find_movers, all ramps) | " + " | ".join(f"{seconds[n]:.0f}" for n in CONFIGS) + " |")
    scale = FULL_FRAME_PIXELS / max(empty_pixels, 1)
    print(f"\n{len(empty)} empty ramps (full-frame timing, 25-100 groups), false detections per full-frame "
          "integration (area-scaled): " + ", ".join(f"{n} {empty_false[n]} ({empty_false[n] * scale:.2f})"
                                                   for n in CONFIGS))


if __name__ == "__main__":
    main()
