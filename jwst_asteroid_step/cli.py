"""``jwst-asteroids``: command-line tools around the asteroid step.

Subcommands
-----------
demo
    Simulate a MIRI exposure with asteroids, run jwst's jump and ramp_fit offline,
    then ``asteroid_detect``; print the catalog and write every product.
simulate
    Write a simulated MIRI imager ramp (``_uncal.fits``) and its truth table.
export
    Write a catalog (``_asteroids.asdf``) as ECSV, an MPC ADES PSV report, or a
    DS9/CRTF region file.
plot
    Figures of every detection (rate cutout, (x, y, t) view, ramps, stacks) and a
    summary of the frame.
mine
    Run the search on many exposures (``_jump`` or ``_uncal`` files) as Dask tasks,
    with a resumable SQLite manifest and one merged catalog (parquet + ECSV).
link
    Link detections across the exposures and integrations of a visit into tracklets.
match
    Flag detections or tracklets that are known asteroids, from an ephemeris table.
"""

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["build_parser", "main"]


def _demo_movers(shape, group_time, rng, snr):
    """Three main-belt movers at ``snr`` and a bright fast one, spread over the frame.

    Returns (x, y, vx, vy, snr) tuples in px, px/s.  The main-belt movers sit
    well below what jump flags see and are found by the matched-filter search; the
    fast one (1.5 px/group, beyond the default search range) is found from its
    jump flags.
    """
    ny, nx = shape
    speeds_snr = [(0.08, snr), (0.2, snr), (0.35, snr), (1.5, 4 * snr)]  # px/group
    movers = []
    for i, (speed, s) in enumerate(speeds_snr):
        angle = rng.uniform(0, 2 * np.pi)
        x = nx * (0.2 + 0.6 * (i + 0.5) / len(speeds_snr))
        y = ny * rng.uniform(0.25, 0.75)
        v = speed / group_time
        movers.append((x, y, v * np.cos(angle), v * np.sin(angle), s))
    return movers


def _kernels_compiled():
    """How many numba specialisations the package has compiled (not loaded from its cache) so far."""
    import numba

    kernels = {id(obj): obj for name, module in list(sys.modules.items()) if name.startswith(__package__)
               for obj in vars(module).values() if isinstance(obj, numba.core.registry.CPUDispatcher)}
    return sum(sum(k.stats.cache_misses.values()) for k in kernels.values())  # once each, however imported


def demo(args):
    """Run the demo (see module docstring)."""
    from .offline import build_references, configure_offline_crds, run_jump_and_ramp_fit
    from .simulate import Mover, save_truth, simulate_ramp, snr_to_flux
    from .simulate.metadata import SUBARRAYS, group_time_for
    from .step import AsteroidDetectStep

    out = Path(args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    configure_offline_crds(out / "crds_cache")
    refs = build_references(out / "references")
    rng = np.random.default_rng(args.seed)
    shape = SUBARRAYS[args.subarray]["ysize"], SUBARRAYS[args.subarray]["xsize"]
    group_time = group_time_for(args.subarray, "FAST")
    sim_kw = dict(subarray=args.subarray, ngroups=args.ngroups, filter=args.filter,
                  background=args.background)
    movers = []
    for x, y, vx, vy, snr in _demo_movers(shape, group_time, rng, args.snr):
        flux = snr_to_flux(snr, vx, vy, x=x, y=y, t_ref=0.0, **sim_kw)
        movers.append(Mover(x0=x, y0=y, vx=vx, vy=vy, flux=flux, t_ref=0.0))

    timings = {}
    t0 = time.perf_counter()
    ramp, truth = simulate_ramp(**sim_kw, movers=movers, stars=args.stars, seed=args.seed,
                                filename=f"{args.root}_uncal.fits")
    timings["simulate"] = time.perf_counter() - t0
    save_truth(truth, out / args.root)

    t0 = time.perf_counter()
    jump, _, _, fitopt = run_jump_and_ramp_fit(ramp, refs, output_dir=out, save=True)
    timings["jwst jump + ramp_fit"] = time.perf_counter() - t0
    del ramp

    compiled = _kernels_compiled()
    t0 = time.perf_counter()
    catalog = AsteroidDetectStep.call(jump, fitopt, output_dir=str(out), save_results=True,
                                      **refs.step_overrides())
    timings["asteroid_detect"] = time.perf_counter() - t0
    compiled = _kernels_compiled() - compiled

    # Digits the measurements carry: hundredths of a pixel, a tenth of a per cent of a speed.
    digits = {"x": ".2f", "y": ".2f", "t_ref": ".1f", "t_int": ".1f", "vx": ".4f", "vy": ".4f",
              "speed_px_per_group": ".3f", "flux": ".1f", "flux_err": ".1f", "snr": ".1f"}
    truth = truth["x", "y", "t_ref", "vx", "vy", "speed_px_per_group", "flux", "snr"]
    table = catalog.to_table()["id", "integration", "x", "y", "t_int", "vx", "vy", "flux", "flux_err", "snr",
                               "n_jumps", "method"]
    for t in (truth, table):
        for name in set(digits) & set(t.colnames):
            t[name].info.format = digits[name]
    print("\nTruth:")
    truth.pprint(max_width=200)
    print(f"\nCatalog ({len(table)} detection(s)):")
    table.pprint(max_width=200)
    print("\nWall time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    ratio = timings["asteroid_detect"] / timings["jwst jump + ramp_fit"]
    print(f"asteroid_detect / (jump + ramp_fit) = {ratio:.2f}, " + (
        f"{compiled} numba kernel specialisation(s) compiled in this run (once per environment; "
        "later runs load them from numba's cache)" if compiled else "numba kernels loaded from the cache"))
    print(f"Products in {out}: " + ", ".join(sorted(p.name for p in out.glob(f"{args.root}_*"))))
    return 0


def simulate(args):
    """Write a simulated ramp and its truth table."""
    from .simulate import Mover, save_simulation, simulate_ramp, snr_to_flux
    from .simulate.metadata import SUBARRAYS, group_time_for

    rng = np.random.default_rng(args.seed)
    shape = SUBARRAYS[args.subarray]["ysize"], SUBARRAYS[args.subarray]["xsize"]
    group_time = group_time_for(args.subarray, args.readpatt)
    sim_kw = dict(subarray=args.subarray, ngroups=args.ngroups, filter=args.filter,
                  readpatt=args.readpatt, background=args.background)
    movers = []
    for _ in range(args.movers):
        speed = rng.uniform(*args.speed) / group_time
        angle = rng.uniform(0, 2 * np.pi)
        x, y = rng.uniform(0.2, 0.8) * shape[1], rng.uniform(0.2, 0.8) * shape[0]
        vx, vy = speed * np.cos(angle), speed * np.sin(angle)
        flux = snr_to_flux(args.snr, vx, vy, x=x, y=y, t_ref=0.0, **sim_kw)
        movers.append(Mover(x0=x, y0=y, vx=vx, vy=vy, flux=flux, t_ref=0.0))
    model, truth = simulate_ramp(**sim_kw, nints=args.nints, movers=movers, stars=args.stars,
                                 flag_edges=not args.raw, seed=args.seed,
                                 filename=f"{Path(args.output_root).name}_uncal.fits")
    paths = save_simulation(model, truth, args.output_root)
    print("Wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def inject(args):
    """Add synthetic movers to an existing ramp; write it and its truth table."""
    from stdatamodels.jwst import datamodels

    from .simulate import Mover, inject_movers, save_truth, shift_inject

    def numbers(text, n_min, n_max, what):
        values = [float(v) for v in text.split(",")]
        if not n_min <= len(values) <= n_max:
            raise SystemExit(f"{what} needs {n_min}-{n_max} comma-separated numbers, got {text!r}")
        return values

    specs = [numbers(m, 4, 5, "--mover") for m in args.mover]
    model = datamodels.RampModel(args.input)
    if args.filter:
        model.meta.instrument.filter = args.filter
    noise = dict(read_noise_cds=args.read_noise, gain=args.gain, saturation=args.saturation)
    if args.method == "charge":
        if args.snr is None and any(len(s) < 5 for s in specs):
            raise SystemExit("Give each --mover a flux (x,y,vx,vy,flux) or use --snr")
        movers = [Mover(x, y, vx, vy, rest[0] if rest else 0.0, t_ref=args.t_ref)
                  for x, y, vx, vy, *rest in specs]
        new, truth = inject_movers(model, movers, snr=args.snr, seed=args.seed, **noise)
    else:
        if len(specs) != 1 or len(specs[0]) != 4:
            raise SystemExit("--method shift takes exactly one --mover x,y,vx,vy (the star and "
                             "its new velocity)")
        x, y, vx, vy = specs[0]
        to = numbers(args.to, 2, 2, "--to") if args.to else None
        new, truth = shift_inject(model, (x, y), (vx, vy), to=to, t_ref=args.t_ref,
                                  interpolation=args.interpolation, **noise)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    new.meta.filename = output.name
    new.save(output, overwrite=True)
    root = output.with_name(output.name.removesuffix(".fits"))
    paths = save_truth(truth, root)
    print(f"Wrote {output}, {paths['truth']}")
    truth["id", "integration", "x", "y", "vx", "vy", "flux", "snr", "snr_optimal"].pprint(
        max_width=200)
    return 0


def export(args):
    """Write a catalog as ECSV, ADES PSV or a region file."""
    from .export import write_ades, write_ecsv, write_regions

    source = Path(args.catalog)
    root = source.with_name(source.name.removesuffix(".asdf").removesuffix(".fits"))
    if args.format == "ecsv":
        out = write_ecsv(source, args.output or f"{root}.ecsv")
    elif args.format == "ades":
        if args.submitter == "Unknown" or not args.measurer:
            print("warning: give --submitter and --measurer names before sending this to the MPC",
                  file=sys.stderr)
        out, skipped = write_ades(
            source, args.output or f"{root}_ades.psv", submitter=args.submitter,
            measurers=args.measurer or ["Unknown"], observers=args.observer or (),
            ast_cat=args.ast_cat, mode=args.mode, trk_sub_prefix=args.trksub_prefix,
        )
        if skipped:
            print(f"left out {len(skipped)} detection(s) without sky coordinates: {skipped}",
                  file=sys.stderr)
    else:
        suffix = ".reg" if args.regions_format == "ds9" else ".crtf"
        out = write_regions(source, args.output or f"{root}{suffix}", format=args.regions_format)
    print(f"Wrote {out}")
    return 0


def plot(args):
    """Write the detection figures and the summary figure."""
    from .plotting import plot_detections

    paths = plot_detections(args.catalog, ramp_model=args.ramp, rate_image=args.rate,
                            output_dir=args.output_dir, dpi=args.dpi)
    print("Wrote " + ", ".join(str(p) for p in paths))
    return 0


def _progress_printer(stream=sys.stderr):
    """A progress callback for run_mine: one line per finished exposure."""
    counts = {"done": 0, "failed": 0}

    def show(n, total, res):
        counts["done" if res.get("ok") else "failed"] += 1
        took = res.get("finished", 0) - res.get("started", 0) if res.get("started") else 0
        what = (f"{res.get('n_detections', 0)} detection(s)" if res.get("ok")
                else "FAILED: " + str(res.get("error", "")).splitlines()[0][:120])
        print(f"[{n}/{total}] done {counts['done']} failed {counts['failed']}  "
              f"{Path(res['path']).name}  {took:.1f} s  {what}", file=stream, flush=True)

    return show


def mine(args):
    """Process many exposures with Dask; resumable; merge the catalogs."""
    import os

    from .survey.mine import parse_options, run_mine

    # Dask's INFO chatter (its own and its LocalCluster workers') hides the progress lines.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    options = parse_options(args.set)
    result = run_mine(
        args.inputs, args.output_dir, pars=args.pars, options=options, workers=args.workers,
        scheduler=args.scheduler, memory_limit=args.memory_per_worker and args.memory_per_worker * 1e9,
        retry_failed=args.retry_failed, name=args.name, progress=_progress_printer(),
    )
    counts = result.counts
    print(f"{result.processed} exposure(s) processed in {result.wall_s:.1f} s; manifest "
          f"{result.manifest}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for path, error in result.failed:
        print(f"  failed: {path}: {error.splitlines()[0] if error else ''}", file=sys.stderr)
    if result.merged:
        print(f"Merged catalog ({result.n_detections} detection(s)): "
              + ", ".join(str(p) for p in result.merged.values()))
    return 0 if not counts["failed"] else 3


def _read_detections(paths):
    """Detections from catalogs, merged tables or mine output directories."""
    from .survey.tracklets import read_detections

    return read_detections(paths)


def link(args):
    """Link detections into tracklets; write tracklets, members, optionally ADES."""
    from .survey.tracklets import LinkConfig, link_tracklets, write_tracklets

    detections = _read_detections(args.catalogs)
    config = LinkConfig(max_hours=args.max_hours, p_min=args.p_min,
                        pos_floor=args.pos_floor, rate_floor=args.rate_floor,
                        min_members=args.min_members, by_visit=not args.across_visits)
    result = link_tracklets(detections, config)
    paths = write_tracklets(result, args.output)
    print(f"{len(result.tracklets)} tracklet(s) from {len(detections)} detection(s); "
          f"wrote " + ", ".join(str(p) for p in paths.values()))
    if args.ades:
        from .export.ades import write_tracklet_ades

        if not len(result.tracklets) and not args.include_unlinked:
            print(f"No ADES report written to {args.ades}: no tracklet to report "
                  "(--include-unlinked reports each unlinked detection as its own trkSub).")
            return 0
        try:
            out, skipped = write_tracklet_ades(
                result, args.ades, submitter=args.submitter, measurers=args.measurer or ["Unknown"],
                include_unlinked=args.include_unlinked)
        except ValueError as err:
            print(f"jwst-asteroids link: no ADES report written to {args.ades}: {err}", file=sys.stderr)
            return 2
        print(f"Wrote {out}" + (f" ({len(skipped)} detection(s) without sky position left out)"
                                if skipped else ""))
    return 0


def match(args):
    """Match detections or tracklets against known objects."""
    from astropy.table import QTable

    from .survey.known import match_known, read_ephemeris

    source = Path(args.table)
    if source.suffix == ".ecsv" and source.is_file():  # tracklets or merged detections
        table = QTable.read(str(source), format="ascii.ecsv")
    else:  # catalogs, parquet, a mine output directory
        table = _read_detections([args.table])
    if args.ephemeris:
        ephemeris = read_ephemeris(args.ephemeris)
    else:
        from .survey.known import query_skybot_for

        ephemeris = query_skybot_for(table, radius_arcmin=args.query_radius)
    matched = match_known(table, ephemeris, radius=args.radius, rate_tolerance=args.rate_tolerance,
                          max_extrapolation_hours=args.max_extrapolation)
    out = Path(args.output or f"{source.with_suffix('')}_known.ecsv")
    matched.write(str(out), format="ascii.ecsv", overwrite=True)
    n = int((matched["known_designation"] != "").sum())
    print(f"{n} of {len(matched)} row(s) match a known object; wrote {out}")
    return 0


def build_parser():
    """The ``jwst-asteroids`` argument parser, with every subcommand.

    Returns
    -------
    argparse.ArgumentParser
    """
    from .psf import FILTER_FWHM
    from .simulate.metadata import SUBARRAYS

    parser = argparse.ArgumentParser(prog="jwst-asteroids", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="simulate, run jump + ramp_fit + asteroid_detect, print the catalog")
    p.add_argument("--output-dir", default="demo_output", help="where products go (default %(default)s)")
    p.add_argument("--root", default="jw_asteroid_demo", help="file name root")
    p.add_argument("--subarray", default="FULL", choices=sorted(SUBARRAYS))
    p.add_argument("--ngroups", type=int, default=50)
    p.add_argument("--filter", default="F770W", choices=sorted(FILTER_FWHM))
    p.add_argument("--background", type=float, default=5.0, help="sky rate, DN/s/px")
    p.add_argument("--stars", type=int, default=30, help="number of random stars")
    p.add_argument("--snr", type=float, default=15.0,
                   help="matched-filter SNR of the main-belt movers; the fast one gets 4x")
    p.add_argument("--seed", type=int, default=2026)
    p.set_defaults(func=demo)

    p = sub.add_parser("simulate", help="write a simulated MIRI ramp and its truth table")
    p.add_argument("output_root", help="writes <output_root>_uncal.fits and <output_root>_truth.ecsv")
    p.add_argument("--subarray", default="FULL", choices=sorted(SUBARRAYS))
    p.add_argument("--readpatt", default="FAST", choices=["FAST", "FASTR1", "SLOW", "SLOWR1"])
    p.add_argument("--ngroups", type=int, default=50)
    p.add_argument("--nints", type=int, default=1)
    p.add_argument("--filter", default="F770W", choices=sorted(FILTER_FWHM))
    p.add_argument("--background", type=float, default=5.0, help="sky rate, DN/s/px")
    p.add_argument("--stars", type=int, default=20)
    p.add_argument("--movers", type=int, default=3)
    p.add_argument("--snr", type=float, default=30.0, help="matched-filter SNR of each mover")
    p.add_argument("--speed", type=float, nargs=2, default=(0.05, 0.5), metavar=("MIN", "MAX"),
                   help="range of speeds, px/group")
    p.add_argument("--raw", action="store_true",
                   help="leave GROUPDQ empty (an uncal ramp for calwebb_detector1) instead of "
                        "flagging the first and last groups as firstframe/lastframe do")
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=simulate)

    p = sub.add_parser("inject", help="add synthetic movers to an existing ramp (uncal/ramp file)")
    p.add_argument("input", help="a RampModel file, e.g. <root>_uncal.fits")
    p.add_argument("output", help="the new ramp; its truth goes to <output stem>_truth.ecsv")
    p.add_argument("--mover", action="append", required=True, metavar="X,Y,VX,VY[,FLUX]",
                   help="position (px) at --t-ref, velocity (px/s) and flux (DN/s); repeat for "
                        "more movers.  With --method shift: the star to move and its velocity")
    p.add_argument("--snr", type=float, default=None,
                   help="matched-filter SNR for every mover instead of a flux (charge method)")
    p.add_argument("--method", choices=["charge", "shift"], default="charge",
                   help="add rendered charge, or shift a real star's group differences")
    p.add_argument("--t-ref", type=float, default=0.0,
                   help="s since the integration's first read at which the mover is at X,Y")
    p.add_argument("--to", default=None, metavar="X,Y",
                   help="shift method: put the moving copy here (leaving the star); default in place")
    p.add_argument("--interpolation", choices=["fourier", "bilinear", "integer"], default="fourier",
                   help="shift method: sub-pixel shifts")
    p.add_argument("--filter", default=None, choices=sorted(FILTER_FWHM),
                   help="PSF filter when the file has no FILTER keyword")
    p.add_argument("--read-noise", type=float, default=7.0, help="CDS read noise, DN")
    p.add_argument("--gain", type=float, default=4.0, help="e/DN")
    p.add_argument("--saturation", type=float, default=50000.0, help="raw DN")
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=inject)

    p = sub.add_parser("export", help="write a catalog as ECSV, MPC ADES (PSV) or DS9/CRTF regions")
    p.add_argument("catalog", help="<root>_asteroids.asdf")
    p.add_argument("--format", required=True, choices=["ecsv", "ades", "regions"])
    p.add_argument("-o", "--output", default=None,
                   help="output file (default <root>.ecsv, <root>_ades.psv, <root>.reg/.crtf)")
    p.add_argument("--regions-format", default="ds9", choices=["ds9", "crtf"])
    p.add_argument("--submitter", default="Unknown", help="ADES submitter name")
    p.add_argument("--measurer", action="append", default=[], help="ADES measurer name (repeat)")
    p.add_argument("--observer", action="append", default=[], help="ADES observer name (repeat)")
    p.add_argument("--ast-cat", default="Gaia2",
                   help="ADES astCat: catalogue the astrometry is tied to (default %(default)s, "
                        "JWST guide stars); Gaia3 after aligning to Gaia DR3")
    p.add_argument("--mode", default="CCD", help="ADES mode (MPC list; default %(default)s)")
    p.add_argument("--trksub-prefix", default="J", help="trkSub = prefix + detection id")
    p.set_defaults(func=export)

    p = sub.add_parser("plot", help="figures of every detection and a summary of the frame")
    p.add_argument("catalog", help="<root>_asteroids.asdf")
    p.add_argument("--ramp", default=None, help="the jump-flagged ramp (<root>_jump.fits)")
    p.add_argument("--rate", default=None, help="<root>_rate.fits or _rateints.fits")
    p.add_argument("-o", "--output-dir", default=".", help="where the PNGs go (default %(default)s)")
    p.add_argument("--dpi", type=int, default=72)
    p.set_defaults(func=plot)

    p = sub.add_parser(
        "mine", help="run the search on many exposures with Dask (resumable) and merge catalogs",
        description="Run asteroid_detect on _jump files (with _fitopt beside them) or "
                    "calwebb_detector1_asteroid on _uncal files, one Dask task per exposure. "
                    "A killed run resumes from its manifest without redoing finished files.")
    p.add_argument("inputs", nargs="+",
                   help="directories, globs, association .json files, files, or text file lists")
    p.add_argument("-o", "--output-dir", default="mine_output",
                   help="catalogs, manifest and merged catalog (default %(default)s)")
    p.add_argument("--pars", action="append", default=[],
                   help="parameter file (.asdf) for asteroid_detect (_jump inputs) or "
                        "calwebb_detector1_asteroid (_uncal inputs), as for strun, e.g. one with "
                        "override_<reftype> reference files; repeat for both kinds")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="step parameter (snr_threshold=7, override_gain=g.fits) or pipeline "
                        "sub-step parameter (steps.jump.rejection_threshold=5); repeat")
    p.add_argument("--workers", type=int, default=None,
                   help="LocalCluster workers (default: cores, fewer if memory is short)")
    p.add_argument("--memory-per-worker", type=float, default=None, metavar="GB",
                   help="memory limit of each LocalCluster worker (default: its share)")
    p.add_argument("--scheduler", default=None, metavar="tcp://host:port",
                   help="use a running Dask scheduler instead of a LocalCluster")
    p.add_argument("--retry-failed", action="store_true", help="run failed files again")
    p.add_argument("--name", default="survey",
                   help="prefix of <name>_manifest.sqlite and <name>_detections.parquet/.ecsv")
    p.set_defaults(func=mine)

    p = sub.add_parser("link", help="link detections across exposures of a visit into tracklets")
    p.add_argument("catalogs", nargs="+",
                   help="_asteroids.asdf files, a merged _detections.parquet/.ecsv, or a mine "
                        "output directory")
    p.add_argument("-o", "--output", default="tracklets",
                   help="output root: <root>_tracklets.ecsv and <root>_members.ecsv")
    p.add_argument("--max-hours", type=float, default=12.0,
                   help="longest time span of a tracklet (default %(default)s h)")
    p.add_argument("--p-min", type=float, default=1e-3,
                   help="smallest chi-square p-value of an accepted tracklet (default %(default)s)")
    p.add_argument("--pos-floor", type=float, default=0.03,
                   help="astrometric error floor added in quadrature, arcsec (default %(default)s)")
    p.add_argument("--rate-floor", type=float, default=0.5,
                   help="sky-rate error floor added in quadrature, arcsec/h (default %(default)s)")
    p.add_argument("--min-members", type=int, default=2)
    p.add_argument("--across-visits", action="store_true",
                   help="link across visits too (default: within each visit_id)")
    p.add_argument("--ades", default=None, metavar="PSV",
                   help="also write the tracklets as an ADES 2022 PSV report")
    p.add_argument("--include-unlinked", action="store_true",
                   help="ADES: report unlinked detections too, one trkSub each")
    p.add_argument("--submitter", default="Unknown", help="ADES submitter name")
    p.add_argument("--measurer", action="append", default=[], help="ADES measurer name (repeat)")
    p.set_defaults(func=link)

    p = sub.add_parser("match", help="flag known asteroids among detections or tracklets")
    p.add_argument("table", help="a catalog, merged detections, or a _tracklets.ecsv")
    p.add_argument("--ephemeris", default=None,
                   help="ECSV/CSV ephemeris (JPL Horizons or SkyBoT style, observer JWST); "
                        "without it, query SkyBoT online (needs the [online] extra)")
    p.add_argument("--radius", type=float, default=5.0,
                   help="match radius, arcsec (default %(default)s)")
    p.add_argument("--rate-tolerance", type=float, default=10.0,
                   help="largest sky-rate difference of a match, arcsec/h (default %(default)s)")
    p.add_argument("--max-extrapolation", type=float, default=6.0,
                   help="hours an ephemeris may be extrapolated beyond its epochs")
    p.add_argument("--query-radius", type=float, default=5.0,
                   help="online: SkyBoT cone radius, arcmin")
    p.add_argument("-o", "--output", default=None, help="output ECSV (default <table>_known.ecsv)")
    p.set_defaults(func=match)
    return parser


def main(argv=None):
    """Entry point of the ``jwst-asteroids`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
