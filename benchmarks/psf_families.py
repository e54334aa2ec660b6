"""The step on ramps rendered with PSFs its model does not assume, matched and mismatched.

``python -m benchmarks.psf_families [--ramps N] [--output FILE]`` (about 20 minutes on 2 cores
with the defaults) simulates SUB256 ramps whose movers and stars are rendered with each PSF
family below, runs them through the real jwst ``JumpStep`` and ``RampFitStep`` offline, then
:func:`jwst_asteroid_step.detect.find_movers` with each detector PSF model, and writes one
table row per (family, filter, model):

Families (what the sky is rendered with):

- ``gaussian``: two Gaussians at the flight FWHM (the package's analytic model);
- ``instrument``: the PSF computed from JWST's optics with the cruciform
  (:func:`jwst_asteroid_step.psf.instrument_psf`), the detector's default model: matched;
- ``moffat``: circular Moffat profiles, beta 2 and 4 alternating by ramp, at the flight FWHM;
- ``fwhm+10%``, ``fwhm-10%``: the two Gaussians with their FWHM off by 10 %;
- ``brighter-fatter``: the computed PSF, broadened as charge collects in a pixel and pushes
  later charge to its neighbours (Argyriou et al. 2023): each group's light from a bright
  star lands with a FWHM grown by ``BFE_GROWTH`` (20 %) per 40 000 DN its brightest pixel has
  collected so far, so the PSF widens up the ramp (an assumption of the bench, linear in the
  FWHM). The bench's bright stars end their ramps 5-10 % broader and are 2.5-5 % broader in
  the rate image; movers, whose charge spreads along their track, stay nominal.

Detector models: ``gaussian`` (the two Gaussians), ``instrument`` (the computed PSF, the default
model), and ``refined``: the default model refined from the ramp's own stars where they disagree
with it, the computed PSF's wing beyond their box (``psf_refine=True``, the step's default:
:func:`jwst_asteroid_step.psf.refine.refine_for_ramp`). ``--without-stars`` leaves the bright
stars out of every ramp: the exposure without a star to refine from, where ``refined`` is the
model.
Each ramp holds three bright isolated stars for it (peak 10 000-20 000 DN over the ramp)
besides five faint random ones.

Columns: movers found (bench match: ``max(2 px, FWHM)`` and speed within 30 %); at truth
yardstick SNR >= 20 the median flux ratio minus one, the robust width (1.4826 MAD) of the
flux pulls, the median position error and the median relative speed error; ``ghosts``,
detections matching no truth within 3 FWHM of the track of a brighter mover that was found
(per 100 movers of yardstick SNR >= 50); ``wrong velocity``, a mover that was not found,
detected at its place with its speed off by more than 30 %; ``false``, other detections
matching no truth.
"""

import argparse
import time
from pathlib import Path

import numpy as np
from astropy.table import Table
from scipy.ndimage import gaussian_filter

from jwst_asteroid_step.config import DetectionConfig
from jwst_asteroid_step.detect import find_movers
from jwst_asteroid_step.offline import run_jump_and_ramp_fit
from jwst_asteroid_step.psf import (
    FILTER_FWHM,
    PSFModel,
    SeparablePSF,
    instrument_psf,
    psf_for_filter,
)
from jwst_asteroid_step.psf.refine import refine_for_ramp
from jwst_asteroid_step.simulate import Mover, Star, simulate_ramp, snr_to_flux
from jwst_asteroid_step.simulate.metadata import group_time_for
from jwst_asteroid_step.simulate.scene import default_background, render_stars

from .recovery import GAIN, READ_NOISE, _track_distance, match, offline_references

FAMILIES = ("gaussian", "instrument", "moffat", "fwhm+10%", "fwhm-10%", "brighter-fatter")
MODELS = ("gaussian", "instrument", "refined")
FILTERS = {"F770W": 60, "F2100W": 40}  # filter: ngroups
N_MOVERS = 6
SNR_RANGE = (15.0, 150.0)
SPEED_RANGE = (0.05, 0.45)  # px/group, within the default search
# Isolated, for the refinement: their boxes (6 FWHM at F2100W) and a margin fit in SUB256.
BRIGHT_STARS = ((53.0, 53.0), (203.0, 203.0), (53.0, 203.0))
STAR_PEAK_DN = (10000.0, 20000.0)  # their brightest pixel's charge over the ramp
BFE_GROWTH = 0.20  # brighter-fatter family: FWHM growth per 40 000 DN collected in the brightest pixel
BASE_SEED = 23000


def moffat_psf(fwhm, beta, oversample=4, half_px=24, subsamples=8):
    """A circular Moffat PSF of the given FWHM as an effective-PSF grid.

    Each sample is the mean of the profile over the pixel centred there (``subsamples``
    squared points), normalised to the profile's total flux to infinite radius.
    """
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    n = 2 * half_px * oversample + 1
    d = (np.arange(n) - (n - 1) / 2) / oversample
    sub = (np.arange(subsamples) + 0.5) / subsamples - 0.5
    xs = d[:, None] + sub[None, :]  # (n, subsamples): points inside each pixel
    r2 = xs[:, None, :, None] ** 2 + xs[None, :, None, :] ** 2
    intensity = (beta - 1.0) / (np.pi * alpha**2) * (1.0 + r2 / alpha**2) ** (-beta)
    grid = intensity.mean(axis=(2, 3))
    return SeparablePSF(grid, oversample, name=f"Moffat beta {beta:g}, FWHM {fwhm:g} px")


def render_psf(family, filter_name, ramp_index):
    """The PSF a ramp of a family is rendered with."""
    fwhm = FILTER_FWHM[filter_name]
    if family == "gaussian":
        return PSFModel(fwhm)
    if family in ("instrument", "brighter-fatter"):
        return instrument_psf(filter_name)
    if family == "moffat":  # out to 8 FWHM, as the computed grids
        return moffat_psf(fwhm, 2.0 if ramp_index % 2 == 0 else 4.0, half_px=max(24, int(np.ceil(8 * fwhm))))
    if family in ("fwhm+10%", "fwhm-10%"):
        return PSFModel(fwhm * (1.1 if family == "fwhm+10%" else 0.9))
    raise ValueError(f"unknown family {family!r}")


def detector_psf(model, filter_name, jump=None):
    """The PSF the detector assumes, and the refinement's record; ``refined`` needs the ramp."""
    if model == "instrument":
        return instrument_psf(filter_name), None
    if model == "gaussian":
        return PSFModel(FILTER_FWHM[filter_name]), None
    return refine_for_ramp(psf_for_filter(filter_name), jump.data, jump.groupdq, jump.pixeldq, filter_name)


def broadened(psf, growth):
    """A PSF grid convolved with the Gaussian that widens its FWHM by ``growth``."""
    sigma = psf.fwhm * np.sqrt((1.0 + growth) ** 2 - 1.0) / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    grid = gaussian_filter(psf.grid, sigma * psf.oversample, mode="constant")
    return SeparablePSF(grid, psf.oversample, name=f"{psf.name} broadened {growth:.1%}")


def bright_stars(psf, rng, ramp_seconds):
    """The isolated stars the refinement uses, and the charge of their brightest pixel (DN)."""
    peak = float(psf.pixel_fraction(0.0, 0.0))
    stars = []
    for x, y in BRIGHT_STARS:
        peak_dn = rng.uniform(*STAR_PEAK_DN)
        stars.append((Star(x + rng.uniform(-0.5, 0.5), y + rng.uniform(-0.5, 0.5), peak_dn / (peak * ramp_seconds)),
                      peak_dn))
    return stars


def brighter_fatter_reads(psf, stars, ngroups, group_time, shape, gain, rng):
    """Reads (DN, shot noise included) of stars whose PSF widens as their pixels fill.

    The light of group difference ``k`` lands with the FWHM grown by :data:`BFE_GROWTH` per
    40 000 DN that the star's brightest pixel has collected by the middle of that difference.

    Returns
    -------
    ndarray, shape (ngroups, ny, nx)
        Read 0 is zero.
    """
    reads = np.zeros((ngroups,) + shape)
    ramp_seconds = ngroups * group_time
    for star, peak_dn in stars:
        for k in range(1, ngroups):
            collected = peak_dn * (k - 0.5) * group_time / ramp_seconds
            light = render_stars([Star(star.x, star.y, star.flux * group_time)], shape,
                                 broadened(psf, BFE_GROWTH * collected / 40000.0))
            reads[k] += np.maximum(light, 0.0)
    reads = rng.poisson(reads * gain) / gain  # each difference's shot noise
    return np.cumsum(reads, axis=0)


def bench_ramp(family, filter_name, index, with_stars=True):
    """One bench ramp of a family: ramp, truth and the PSF its movers were rendered with.

    Without its bright stars (``with_stars=False``) a ramp holds the same movers and faint stars.
    """
    ngroups = FILTERS[filter_name]
    gt = group_time_for("SUB256")
    seed = BASE_SEED + 1000 * FAMILIES.index(family) + 100 * list(FILTERS).index(filter_name) + index
    rng = np.random.default_rng(seed)
    psf = render_psf(family, filter_name, index)
    movers = _movers(rng, psf, filter_name, ngroups, gt)
    stars = bright_stars(psf, rng, ngroups * gt)  # drawn either way: the same movers and faint stars
    if not with_stars:
        stars = []
    shape = (256, 256)
    sky = default_background(filter_name)
    if family != "brighter-fatter" and stars:
        sky = sky + render_stars([star for star, _ in stars], shape, psf)
    ramp, truth = simulate_ramp(subarray="SUB256", ngroups=ngroups, filter=filter_name, movers=movers,
                                stars=5, background=sky, psf=psf, bad_pixels="cdp7", read_noise_cds=READ_NOISE,
                                gain=GAIN, seed=seed)
    if family == "brighter-fatter" and stars:
        ramp.data[0] += brighter_fatter_reads(psf, stars, ngroups, gt, shape, GAIN,
                                              np.random.default_rng(seed + 1)).astype(np.float32)
    return ramp, truth, psf


def _movers(rng, psf, filter_name, ngroups, gt):
    """Movers spread over the array, well apart, each with its yardstick SNR."""
    movers, placed = [], []
    t_ref = 0.5 * (ngroups - 1) * gt
    while len(movers) < N_MOVERS:
        x, y = rng.uniform(40, 216, 2)
        if any(np.hypot(x - a, y - b) < 40 for a, b in placed) or any(
                np.hypot(x - a, y - b) < 70 for a, b in BRIGHT_STARS):
            continue
        placed.append((x, y))
        speed = rng.uniform(*SPEED_RANGE) / gt
        angle = rng.uniform(0, 2 * np.pi)
        vx, vy = speed * np.cos(angle), speed * np.sin(angle)
        snr = float(np.exp(rng.uniform(*np.log(SNR_RANGE))))
        flux = snr_to_flux(snr, vx, vy, x=x, y=y, t_ref=t_ref, ngroups=ngroups, subarray="SUB256",
                           group_time=gt, filter=filter_name, psf=psf, read_noise_cds=READ_NOISE, gain=GAIN)
        movers.append(Mover(x, y, vx, vy, flux, t_ref=t_ref))
    return movers


def run_ramp(family, filter_name, index, refs, models=MODELS, with_stars=True):
    """Simulate one ramp, run jump + ramp_fit and each detector model; rows of results."""
    gt = group_time_for("SUB256")
    ramp, truth, psf = bench_ramp(family, filter_name, index, with_stars)
    jump, *_ = run_jump_and_ramp_fit(ramp, refs)
    out = []
    for model in models:
        t0 = time.perf_counter()
        detector, refinement = detector_psf(model, filter_name, jump)
        det, _ = find_movers(jump.data, jump.groupdq, jump.pixeldq, gt, detector,
                             READ_NOISE, GAIN, DetectionConfig())
        seconds = time.perf_counter() - t0
        out.append(_score(family, filter_name, model, index, det, truth, psf.fwhm, seconds))
        out[-1]["stars"] = refinement.n_stars if refinement and refinement.refined else 0
    return out


def _score(family, filter_name, model, index, det, truth, fwhm, seconds):
    tol = max(2.0, fwhm)
    truth_det, _, status = match(det, truth, tol)
    rows = []
    for j, k in enumerate(truth_det):
        t = truth[j]
        row = {"family": family, "filter": filter_name, "model": model, "ramp": index,
               "snr": float(t["snr"]), "found": bool(k >= 0), "dflux": np.nan, "pull_flux": np.nan,
               "dpos": np.nan, "dspeed": np.nan}
        if k >= 0:
            d = det[k]
            dt = d["t_int"] - t["t_ref"]
            row["dflux"] = float(d["flux"] / t["flux"] - 1)
            row["pull_flux"] = float((d["flux"] - t["flux"]) / d["flux_err"]) if d["flux_err"] > 0 else np.nan
            row["dpos"] = float(np.hypot(t["x"] + t["vx"] * dt - d["x"], t["y"] + t["vy"] * dt - d["y"]))
            row["dspeed"] = float(np.hypot(d["vx"], d["vy"]) / np.hypot(t["vx"], t["vy"]) - 1)
        rows.append(row)
    unmatched = [i for i, s in enumerate(status) if s in ("false", "on_track", "position_only")]
    ghosts = wrong_velocity = false = 0
    if unmatched:
        x = np.asarray(det["x"], dtype=float)[unmatched, None]
        y = np.asarray(det["y"], dtype=float)[unmatched, None]
        near = _track_distance(x, y, truth) <= 3 * fwhm
        brighter = np.asarray(truth["flux"], dtype=float)[None, :] > np.asarray(det["flux"], dtype=float)[unmatched, None]
        found = (truth_det >= 0)[None, :]
        # Beside a mover that was found: light its model left.  At a mover that was not
        # found, in its place: that mover measured with the wrong velocity.
        is_ghost = np.any(near & brighter & found, axis=1)
        is_wrong = ~is_ghost & (status[unmatched] == "position_only")
        is_ghost |= ~is_wrong & np.any(near & brighter, axis=1)
        ghosts, wrong_velocity = int(is_ghost.sum()), int(is_wrong.sum())
        false = len(unmatched) - ghosts - wrong_velocity
    return {"movers": rows, "ghosts": ghosts, "wrong_velocity": wrong_velocity, "false": false,
            "bright": int(np.sum(np.asarray(truth["snr"]) >= 50)), "seconds": seconds,
            "family": family, "filter": filter_name, "model": model}


def _bootstrap_se(values, statistic, n_draws=2000, seed=0):
    """Standard error of ``statistic(values)`` over bootstrap resamples (NaN for < 3 values)."""
    values = np.asarray(values, dtype=float)
    if values.size < 3:
        return np.nan
    draws = np.random.default_rng(seed).choice(values, (n_draws, values.size))
    return float(np.std([statistic(d) for d in draws], ddof=1))


def _pull_width(pulls):
    return float(1.4826 * np.median(np.abs(pulls - np.median(pulls))))


def summarise(results):
    """One row per (family, filter, model), then per (filter, model) over every family.

    With ~15 movers a row, a robust pull width scatters by ~0.3 and a median flux ratio by about
    a third of one mover's error: each carries its bootstrap standard error, and the pooled
    rows ("every family") measure what one row cannot.
    """
    groups = {}
    for r in results:
        groups.setdefault((r["family"], r["filter"], r["model"]), []).append(r)
    for (_, filt, model), rs in list(groups.items()):
        groups.setdefault(("every family", filt, model), []).extend(rs)
    order = list(FAMILIES) + ["every family"]
    table = []
    for fam, filt, model in sorted(groups, key=lambda k: (order.index(k[0]), k[1], MODELS.index(k[2]))):
        rs = groups[(fam, filt, model)]
        movers = Table(rows=[m for r in rs for m in r["movers"]])
        found = movers["found"]
        good = found & (movers["snr"] >= 20)
        dflux = np.asarray(movers["dflux"][good], dtype=float)
        pulls = np.asarray(movers["pull_flux"][good], dtype=float)
        pulls = pulls[np.isfinite(pulls)]
        bright = sum(r["bright"] for r in rs)
        table.append({
            "family": fam, "filter": filt, "model": model,
            "found": f"{int(found.sum())}/{len(movers)}",
            "flux bias": float(np.median(dflux)) if dflux.size else np.nan,
            "flux bias se": _bootstrap_se(dflux, np.median),
            "flux pull width": _pull_width(pulls) if pulls.size else np.nan,
            "flux pull width se": _bootstrap_se(pulls, _pull_width),
            "n": int(pulls.size),
            "position (px)": float(np.median(movers["dpos"][good])) if good.any() else np.nan,
            "speed": float(np.median(np.abs(movers["dspeed"][good]))) if good.any() else np.nan,
            "ghosts per 100 bright": 100.0 * sum(r["ghosts"] for r in rs) / max(bright, 1),
            "ghosts": sum(r["ghosts"] for r in rs), "bright": bright,
            "wrong velocity": sum(r["wrong_velocity"] for r in rs),
            "false": sum(r["false"] for r in rs),
            "seconds": sum(r["seconds"] for r in rs),
            "stars": sum(r.get("stars", 0) for r in rs),
        })
    return table


def markdown(table, ramps, with_stars=True):
    """The summary as a Markdown table."""
    stars = "3 bright isolated stars and 5 faint ones" if with_stars else "no bright star, 5 faint ones"
    intro = (f"{ramps} SUB256 ramps per family and filter (F770W 60 groups, F2100W 40 groups), "
             f"{N_MOVERS} movers each at yardstick SNR {SNR_RANGE[0]:g}-{SNR_RANGE[1]:g}, "
             f"{SPEED_RANGE[0]:g}-{SPEED_RANGE[1]:g} px/group, {stars}, "
             "L2 cosmic rays, CDP7 bad pixels. "
             "Flux, position and speed at yardstick SNR >= 20 (n movers); +- the bootstrap standard error.")
    header = ("| rendered with | filter | detector model | found | flux bias | flux pull width (n) | "
              "position (px) | speed | ghosts / 100 bright (n) | wrong velocity | false | find_movers (s) | refinement stars |")
    lines = [intro, "", header, "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append(
            f"| {r['family']} | {r['filter']} | {r['model']} | {r['found']} | "
            f"{r['flux bias']:+.1%} +- {r['flux bias se']:.1%} | "
            f"{r['flux pull width']:.2f} +- {r['flux pull width se']:.2f} ({r['n']}) | "
            f"{r['position (px)']:.3f} | {r['speed']:.1%} | "
            f"{r['ghosts per 100 bright']:.0f} ({r['ghosts']}/{r['bright']}) | {r['wrong velocity']} | "
            f"{r['false']} | {r['seconds']:.0f} | {r['stars'] if r['model'] == 'refined' else ''} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Run every family, filter and model; print and optionally write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ramps", type=int, default=3, help="ramps per family and filter")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--filters", nargs="*", default=list(FILTERS), choices=list(FILTERS))
    parser.add_argument("--without-stars", action="store_true",
                        help="leave the 3 bright stars out: the refinement has no star and keeps the model")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS,
                        help="detector models (default: all; 'refined' is the step's default)")
    parser.add_argument("--work", default="/tmp/jwst_asteroid_psf_families", help="scratch folder")
    parser.add_argument("--output", default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    refs = offline_references(Path(args.work))
    results = []
    t0 = time.perf_counter()
    for family in args.families:
        for filt in args.filters:
            for index in range(args.ramps):
                results += run_ramp(family, filt, index, refs, args.models, not args.without_stars)
                print(f"{family} {filt} ramp {index} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    text = markdown(summarise(results), args.ramps, not args.without_stars)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
        # The per-mover rows beside it, to re-derive any number of the table.
        Table(rows=[m for r in results for m in r["movers"]]).write(
            Path(args.output).with_suffix(".ecsv"), overwrite=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
