"""Long bright trails: movers of 1-3 px/group whose trails run 40-290 px, some off the array.

Issue 24's new-user test missed 5 of 27 such movers (F1500W and F2100W, yardstick SNR
72-98, anyone sees them in the rate image). This bench renders them where the detector's
assumptions do not hold: a BRIGHTSKY (512 x 512) field with 40 stars, L2 cosmic rays and
showers, the CDP7 bad pixels, and a PSF the detector does not assume by default (circular
Moffat, beta 2.5, at the flight FWHM), or the computed PSF (``--psf instrument``, matched).
Each ramp holds four movers at 1-3 px/group and yardstick SNR 40-100 in random directions,
the fourth starting within 40 px of a corner so that its trail enters or leaves the array.
The real jwst jump step flags the ramp offline; ``find_movers`` runs with the step's default
PSF (the computed one, refined from the ramp's stars) and configuration.

Movers are matched as in the recovery bench (position within max(2 px, FWHM) at the
detection's ``t_int``, speed within 30 %). Besides found and missed it counts, per filter:
fragments (a detection elsewhere on a found mover's trail, ``on_track``), wrong velocity (at
a mover's place, speed or direction off, ``position_only``), and false detections.

Run from the repository root (8 ramps a filter took 29 minutes while four other benches shared
the machine's 2 cores)::

    python -m benchmarks.long_trails --ramps 8 [--psf moffat|instrument] [--output FILE]
"""

import argparse
import time
from pathlib import Path

import numpy as np
from astropy.table import Table

from jwst_asteroid_step.config import DetectionConfig
from jwst_asteroid_step.detect import find_movers
from jwst_asteroid_step.offline import run_jump_and_ramp_fit
from jwst_asteroid_step.psf import FILTER_FWHM, instrument_psf
from jwst_asteroid_step.simulate import Mover, simulate_ramp, snr_to_flux
from jwst_asteroid_step.simulate.metadata import group_time_for

from .psf_families import detector_psf, moffat_psf
from .recovery import match as match_movers
from .recovery import offline_references

#: Filters and their ramps' groups (the issue's failures were F1500W at 100 and F2100W at 40).
FILTERS = {"F770W": 60, "F1500W": 100, "F2100W": 40}
SUBARRAY, SIZE = "BRIGHTSKY", 512
SPEEDS = (1.0, 3.0)  # px/group
SNRS = (40.0, 100.0)  # yardstick
READ_NOISE, GAIN = 7.8, 4.0
BASE_SEED = 24_000


def render_psf(kind, filter_name):
    """The PSF the sky is rendered with."""
    if kind == "instrument":
        return instrument_psf(filter_name)
    fwhm = FILTER_FWHM[filter_name]
    return moffat_psf(fwhm, 2.5, half_px=max(24, int(np.ceil(8 * fwhm))))


def bench_ramp(kind, filter_name, index):
    """One ramp: the model, its truth and the rendered PSF."""
    ngroups = FILTERS[filter_name]
    gt = group_time_for(SUBARRAY)
    seed = BASE_SEED + 100 * list(FILTERS).index(filter_name) + index
    rng = np.random.default_rng(seed)
    psf = render_psf(kind, filter_name)
    t_ref = 0.5 * (ngroups - 1) * gt
    movers = []
    for j in range(4):
        speed = rng.uniform(*SPEEDS) / gt
        angle = rng.uniform(0, 2 * np.pi)
        x, y = rng.uniform(60, SIZE - 60, 2) if j < 3 else rng.uniform(10, 40, 2)
        vx, vy = speed * np.cos(angle), speed * np.sin(angle)
        flux = snr_to_flux(rng.uniform(*SNRS), vx, vy, x=x, y=y, t_ref=t_ref, ngroups=ngroups,
                           subarray=SUBARRAY, group_time=gt, filter=filter_name, psf=psf,
                           read_noise_cds=READ_NOISE, gain=GAIN)
        movers.append(Mover(x, y, vx, vy, flux, t_ref=t_ref))
    ramp, truth = simulate_ramp(subarray=SUBARRAY, ngroups=ngroups, filter=filter_name, movers=movers,
                                stars=40, psf=psf, bad_pixels="cdp7", read_noise_cds=READ_NOISE, gain=GAIN,
                                seed=seed)
    return ramp, truth, psf


def run_ramp(kind, filter_name, index, refs):
    """Simulate, flag with jwst's jump, search; one row per mover and the ramp's counts."""
    gt = group_time_for(SUBARRAY)
    ramp, truth, psf = bench_ramp(kind, filter_name, index)
    jump, *_ = run_jump_and_ramp_fit(ramp, refs)
    detector, _ = detector_psf("refined", filter_name, jump)
    t0 = time.perf_counter()
    det, _ = find_movers(jump.data, jump.groupdq, jump.pixeldq, gt, detector, READ_NOISE, GAIN,
                         DetectionConfig())
    seconds = time.perf_counter() - t0
    truth_det, _, status = match_movers(det, truth, max(2.0, psf.fwhm))
    rows = []
    for j, k in enumerate(truth_det):
        t = truth[j]
        row = {"filter": filter_name, "ramp": index, "speed": float(t["speed_px_per_group"]),
               "snr": float(t["snr"]), "snr_moving": float(t["snr_moving"]),
               "trail_px": float(np.hypot(t["x_end"] - t["x_start"], t["y_end"] - t["y_start"])),
               "found": bool(k >= 0), "flux_ratio": np.nan, "dspeed": np.nan}
        if k >= 0:
            d = det[k]
            row["flux_ratio"] = float(d["flux"] / t["flux"])
            row["dspeed"] = float(np.hypot(d["vx"] - t["vx"], d["vy"] - t["vy"]) / np.hypot(t["vx"], t["vy"]))
        rows.append(row)
    counts = {name: int(np.sum(status == key)) for name, key in
              (("fragments", "on_track"), ("wrong_velocity", "position_only"), ("false", "false"))}
    return rows, counts, seconds


def main(argv=None):
    """Run every filter's ramps; print and optionally write the table (and its per-mover rows)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ramps", type=int, default=12, help="ramps per filter")
    parser.add_argument("--filters", nargs="*", default=list(FILTERS), choices=list(FILTERS))
    parser.add_argument("--psf", default="moffat", choices=("moffat", "instrument"),
                        help="the PSF the sky is rendered with")
    parser.add_argument("--work", default="/tmp/jwst_asteroid_long_trails", help="scratch folder")
    parser.add_argument("--output", default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    refs = offline_references(Path(args.work))
    movers, lines = [], []
    for filt in args.filters:
        totals, seconds = dict.fromkeys(("fragments", "wrong_velocity", "false"), 0), 0.0
        for index in range(args.ramps):
            rows, counts, sec = run_ramp(args.psf, filt, index, refs)
            movers += rows
            seconds += sec
            for key, value in counts.items():
                totals[key] += value
            print(f"{filt} ramp {index}: {sum(r['found'] for r in rows)}/{len(rows)} found, {counts} "
                  f"({sec:.1f} s)", flush=True)
        mine = [r for r in movers if r["filter"] == filt]
        found = [r for r in mine if r["found"]]
        lines.append(f"| {filt} | {FILTERS[filt]} | {len(found)}/{len(mine)} | "
                     f"{min(r['snr_moving'] for r in mine):.0f}-{max(r['snr_moving'] for r in mine):.0f} | "
                     f"{min(r['trail_px'] for r in mine):.0f}-{max(r['trail_px'] for r in mine):.0f} | "
                     f"{totals['fragments']} | {totals['wrong_velocity']} | {totals['false']} | "
                     f"{np.median([r['flux_ratio'] for r in found]):.3f} | "
                     f"{100 * np.median([r['dspeed'] for r in found]):.2f} % | {seconds / args.ramps:.1f} |")
    text = "\n".join([
        (f"{args.ramps} BRIGHTSKY ramps a filter, rendered with the {args.psf} PSF; 4 movers each at "
         f"{SPEEDS[0]:g}-{SPEEDS[1]:g} px/group, yardstick SNR {SNRS[0]:g}-{SNRS[1]:g}, one from near a corner."),
        "",
        ("| filter | groups | found | snr_moving | trail (px) | fragments | wrong velocity | false "
         "| median flux ratio | median velocity error | find_movers (s a ramp) |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *lines,
    ])
    print(text)
    if args.output:
        Path(args.output).write_text(text)
        Table(rows=movers).write(Path(args.output).with_suffix(".ecsv"), overwrite=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
