"""The step on crowded full frames: saturating stars, galaxies, and movers crossing stars.

``python -m benchmarks.crowded [--ramps N] [--output FILE]`` (about 1.5 minutes a ramp on 2
cores; the default 12 ramps bound false positives below 0.2 per integration when there are
none) simulates FULL-frame F770W ramps (50 groups) whose sky holds what real fields hold, all
rendered with the PSF computed from JWST's optics (cruciform included), not the detector's
default model:

- ``N_STARS`` stars, log-uniform 3-30 000 DN/s: the brightest third saturate, their
  saturation fronts spreading outward through the ramp as pixel after pixel fills;
- ``N_GALAXIES`` Sérsic galaxies (index 0.5-4, effective radius 1.5-8 px, ellipticity up to
  0.6), 10-3000 DN/s, convolved with the PSF;
- ``N_MOVERS`` movers at yardstick SNR 10-100, 0.02-0.45 px/group; ``N_CROSSING`` of them
  cross a star brighter than 300 DN/s at mid-ramp.

Each ramp goes through the real jwst ``JumpStep`` and ``RampFitStep`` offline, then
:func:`jwst_asteroid_step.detect.find_movers` with the two-Gaussian model, with the computed
PSF, and with the step's default: its default model (the computed PSF) refined from the ramp's
stars where they disagree with it (``psf_refine=True``; its stars counted, the refinement's
time included).
One row per model: movers found (all, and those crossing a star), the median flux ratio minus
one at yardstick SNR >= 20, wrong velocities (a detection at a mover's place with its speed
off by more than 30 %: that mover, measured wrong), false positives (detections at no mover's
place: per integration, with the 90 % Poisson upper limit), and the time over jump + ramp_fit
on the same ramp.
"""

import argparse
import time
from pathlib import Path

import numpy as np
from astropy.modeling.models import Sersic2D
from scipy.signal import fftconvolve
from scipy.stats import chi2

from jwst_asteroid_step.config import DetectionConfig
from jwst_asteroid_step.detect import find_movers
from jwst_asteroid_step.offline import run_jump_and_ramp_fit
from jwst_asteroid_step.psf import instrument_psf
from jwst_asteroid_step.simulate import Mover, Star, simulate_ramp, snr_to_flux
from jwst_asteroid_step.simulate.metadata import group_time_for
from jwst_asteroid_step.simulate.scene import default_background, render_stars

from .psf_families import MODELS, detector_psf
from .recovery import GAIN, READ_NOISE, match, offline_references

FILTER, NGROUPS, SHAPE = "F770W", 50, (1024, 1032)
N_STARS, N_GALAXIES, N_MOVERS, N_CROSSING = 250, 50, 40, 10
STAR_FLUX = (3.0, 30000.0)
GALAXY_FLUX = (10.0, 3000.0)
SNR_RANGE = (10.0, 100.0)
SPEED_RANGE = (0.02, 0.45)  # px/group
BASE_SEED = 41000
X_RANGE = (8.0, 1020.0)  # the light-sensitive columns, clear of the reference pixels


def galaxy_image(rng, psf, n, shape=SHAPE, x_range=X_RANGE):
    """Count rate (DN/s) of ``n`` PSF-convolved Sérsic galaxies at random places."""
    image = np.zeros(shape)
    k = np.arange(-12, 13, dtype=float)
    kernel = psf.pixel_fraction(k[None, :], k[:, None])
    sub = 5  # samples per pixel for the profile's cusp
    for _ in range(n):
        r_eff = rng.uniform(1.5, 8.0)
        half = int(np.ceil(6 * r_eff)) + 12
        x0, y0 = rng.uniform(x_range[0] + half, x_range[1] - half), rng.uniform(half, shape[0] - half)
        ix, iy = round(x0), round(y0)
        grid = (np.arange((2 * half + 1) * sub) + 0.5) / sub - half - 0.5
        model = Sersic2D(amplitude=1.0, r_eff=r_eff, n=rng.uniform(0.5, 4.0), x_0=x0 - ix, y_0=y0 - iy,
                         ellip=rng.uniform(0.0, 0.6), theta=rng.uniform(0, np.pi))
        fine = model(grid[None, :], grid[:, None])
        stamp = fine.reshape(2 * half + 1, sub, 2 * half + 1, sub).mean(axis=(1, 3))
        flux = np.exp(rng.uniform(*np.log(GALAXY_FLUX)))
        stamp = fftconvolve(stamp * flux / stamp.sum(), kernel, mode="same")
        image[iy - half:iy + half + 1, ix - half:ix + half + 1] += stamp
    return image


def scene(index):
    """Stars, galaxies and movers of one ramp; the static sky as a count-rate image."""
    rng = np.random.default_rng(BASE_SEED + index)
    psf = instrument_psf(FILTER)
    gt = group_time_for("FULL")
    stars = [Star(rng.uniform(*X_RANGE), rng.uniform(8, SHAPE[0] - 8), float(np.exp(rng.uniform(*np.log(STAR_FLUX)))))
             for _ in range(N_STARS)]
    sky = default_background(FILTER) + render_stars(stars, SHAPE, psf) + galaxy_image(rng, psf, N_GALAXIES)
    t_ref = 0.5 * (NGROUPS - 1) * gt
    bright = [s for s in stars if s.flux > 300 and 60 < s.x < 970 and 60 < s.y < 960]
    movers = []
    for i in range(N_MOVERS):
        speed = rng.uniform(*SPEED_RANGE) / gt
        angle = rng.uniform(0, 2 * np.pi)
        vx, vy = speed * np.cos(angle), speed * np.sin(angle)
        if i < N_CROSSING:  # through a bright star at mid-ramp, a little off its centre
            star = bright[rng.integers(len(bright))]
            x, y = star.x + rng.uniform(-1, 1), star.y + rng.uniform(-1, 1)
        else:
            x, y = rng.uniform(60, 970), rng.uniform(60, 960)
        snr = float(np.exp(rng.uniform(*np.log(SNR_RANGE))))
        flux = snr_to_flux(snr, vx, vy, x=x, y=y, t_ref=t_ref, ngroups=NGROUPS, subarray="FULL", group_time=gt,
                           filter=FILTER, psf=psf, background=sky, read_noise_cds=READ_NOISE, gain=GAIN)
        movers.append(Mover(x, y, vx, vy, flux, t_ref=t_ref))
    return sky, movers, psf


def run_ramp(index, refs, models=MODELS):
    """Simulate, run jump + ramp_fit and each model; one result per model."""
    sky, movers, psf = scene(index)
    ramp, truth = simulate_ramp(subarray="FULL", ngroups=NGROUPS, filter=FILTER, movers=movers, background=sky,
                                stars=0, psf=psf, bad_pixels="cdp7", read_noise_cds=READ_NOISE, gain=GAIN,
                                seed=BASE_SEED + index)
    del sky
    t0 = time.perf_counter()
    jump, *_ = run_jump_and_ramp_fit(ramp, refs)
    jwst_seconds = time.perf_counter() - t0
    del ramp
    crossing = np.arange(len(truth)) < N_CROSSING
    gt = group_time_for("FULL")
    out = []
    for model in models:
        t0 = time.perf_counter()
        # The refinement's own cost is in the time; its stars are counted, used or not.
        detector, info = detector_psf(model, FILTER, jump)
        n_stars = info.n_stars if info else 0
        det, _ = find_movers(jump.data, jump.groupdq, jump.pixeldq, gt, detector, READ_NOISE, GAIN, DetectionConfig())
        seconds = time.perf_counter() - t0
        truth_det, _, status = match(det, truth, max(2.0, psf.fwhm))
        found = truth_det >= 0
        bright = found & (np.asarray(truth["snr"]) >= 20)
        ratios = [float(det["flux"][truth_det[j]] / truth["flux"][j]) for j in np.flatnonzero(bright)]
        out.append({"model": model, "flux_ratios": ratios, "refinement_stars": n_stars, "found": int(found.sum()), "movers": len(truth),
                    "found_crossing": int(found[crossing].sum()), "crossing": int(crossing.sum()),
                    # At a mover's place with its speed off by > 30 %: that mover measured wrong.
                    "wrong_velocity": int(np.sum(status == "position_only")),
                    "false": int(np.sum(~np.isin(status, ("match", "position_only")))),
                    "seconds": seconds, "jwst_seconds": jwst_seconds,
                    "saturated_pixels": int(np.count_nonzero(np.any(jump.groupdq[0] & 2, axis=0)))})
    return out


def upper_limit(n, confidence=0.9):
    """One-sided Poisson upper limit on the mean of a count ``n``."""
    return 0.5 * chi2.ppf(confidence, 2 * (n + 1))


def markdown(results, ramps):
    """One row per model."""
    intro = (f"{ramps} FULL-frame F770W ramps of {NGROUPS} groups, each with {N_STARS} stars "
             f"({STAR_FLUX[0]:g}-{STAR_FLUX[1]:g} DN/s, the brightest saturating: "
             f"{np.mean([r['saturated_pixels'] for r in results]):.0f} saturated pixels a ramp), "
             f"{N_GALAXIES} Sérsic galaxies and {N_MOVERS} movers ({N_CROSSING} crossing a star) at yardstick SNR "
             f"{SNR_RANGE[0]:g}-{SNR_RANGE[1]:g}, all rendered with the computed PSF; CDP7 bad pixels, L2 cosmic rays.")
    header = ("| detector model | found | crossing a star, found | flux bias (SNR >= 20) | wrong velocity "
              "| false positives | per integration (90 % upper limit) | find_movers / (jump + ramp_fit) "
              "| refinement stars a ramp |")
    lines = [intro, "", header, "|---|---|---|---|---|---|---|---|---|"]
    for model in [m for m in MODELS if any(r["model"] == m for r in results)]:
        rs = [r for r in results if r["model"] == model]
        n_false = sum(r["false"] for r in rs)
        stars = f"{np.mean([r['refinement_stars'] for r in rs]):.1f}" if model == "refined" else ""
        lines.append(
            f"| {model} | {sum(r['found'] for r in rs)}/{sum(r['movers'] for r in rs)} | "
            f"{sum(r['found_crossing'] for r in rs)}/{sum(r['crossing'] for r in rs)} | "
            f"{np.median([x for r in rs for x in r['flux_ratios']]) - 1:+.1%} | "
            f"{sum(r['wrong_velocity'] for r in rs)} | {n_false} | "
            f"{n_false / len(rs):.2f} (< {upper_limit(n_false) / len(rs):.2f}) | "
            f"{sum(r['seconds'] for r in rs) / sum(r['jwst_seconds'] for r in rs):.2f} | "
            f"{stars} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Run the crowded ramps; print and optionally write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ramps", type=int, default=12, help="ramps (one integration each)")
    parser.add_argument("--work", default="/tmp/jwst_asteroid_crowded", help="scratch folder")
    parser.add_argument("--output", default=None, help="write the Markdown table here")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS,
                        help="detector models (default: all; 'refined' is the step's default)")
    args = parser.parse_args(argv)
    refs = offline_references(Path(args.work))
    results = []
    t0 = time.perf_counter()
    for index in range(args.ramps):
        results += run_ramp(index, refs, args.models)
        summary = ", ".join(f"{r['model']} {r['found']}/{r['movers']} found, {r['wrong_velocity']} wrong velocity, "
                            f"{r['false']} false"
                            for r in results[-len(args.models):])
        print(f"ramp {index} done ({time.perf_counter() - t0:.0f} s): {summary}", flush=True)
    text = markdown(results, args.ramps)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
