"""Run the whole bench and write RESULTS.md, its plots and the raw tables.

    python benchmarks/run_all.py            # full run (~30-40 min on 2 cores), writes benchmarks/
    python benchmarks/run_all.py --quick    # reduced grid (~5-10 min)
    python benchmarks/run_all.py --smoke    # < 60 s; writes benchmarks/_smoke/ (CI runs this)
    python benchmarks/run_all.py --report-only [--output DIR]   # tables and plots from DIR/data

See benchmarks/README.md for what each number means.
"""

import argparse
import datetime
import json
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["main"]


def _snapshot_package():
    """Copy the package's sources to a temporary folder and import them from there.

    A full run takes half an hour while the package may be edited: a run must use one
    version of it throughout (lazy imports and the shipped parameter files are read
    from disk mid-run).  The copy goes first on ``sys.path``, before any import of
    the package; ``crds_params`` is placed inside it, where the editable install maps
    ``jwst_asteroid_step.crds_params``.  Removed at exit.
    """
    import atexit
    import shutil

    if "jwst_asteroid_step" in sys.modules:
        raise RuntimeError("the package was imported before the snapshot")
    dest = Path(tempfile.mkdtemp(prefix="asteroid_bench_pkg_"))
    atexit.register(shutil.rmtree, dest, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    shutil.copytree(ROOT / "jwst_asteroid_step", dest / "jwst_asteroid_step", ignore=ignore)
    if (ROOT / "crds_params").is_dir():
        shutil.copytree(ROOT / "crds_params", dest / "jwst_asteroid_step" / "crds_params",
                        ignore=ignore, dirs_exist_ok=True)
    # The package finds the real data relative to its own folder; keep pointing at the original.
    os.environ.setdefault("JWST_ASTEROID_REAL_DATA", str(ROOT.parent / "shared" / "data" / "real"))
    sys.path.insert(0, str(dest))
    return dest


def _machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    ram = psutil.virtual_memory().total / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GB RAM, {platform.system()} {platform.release()}"


def _software():
    import jwst
    import numpy
    import stcal

    import jwst_asteroid_step

    return (f"jwst_asteroid_step {jwst_asteroid_step.__version__}, jwst {jwst.__version__}, "
            f"stcal {stcal.__version__}, numpy {numpy.__version__}, Python {platform.python_version()}")


def _package_digest():
    """SHA-1 (12 hex digits) of the package's Python sources as imported by this run."""
    import hashlib

    import jwst_asteroid_step

    digest = hashlib.sha1()
    pkg = Path(jwst_asteroid_step.__file__).parent
    for path in sorted(pkg.rglob("*.py")):
        digest.update(str(path.relative_to(pkg)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _deep_subset(settings):
    timings = " and ".join("full-frame" if t == "full" else "subarray" for t in settings.deep_timings)
    return (f"grid ramps with movers of ≥ {settings.deep_min_speed:g} px/group, ngroups "
            f"{', '.join(map(str, settings.deep_ngroups))}, {timings} timing, and the empty ramps of "
            "those lengths and timings")


def _notes(mode):
    notes = [
        ("Grid ramps are 256 × 256 (SUB256 geometry, no reference columns); 'full-frame timing' ramps use "
        "the full-frame FAST group time (2.775 s) on that geometry, so sky per group, saturation, cosmic "
        "rays and showers per pixel are those of a full-frame exposure."),
        "Parallel movers share one velocity per ramp (tracks never cross); directions are random per ramp.",
        ("Fast movers leave a 256-px array early: their truth SNR counts only the part of the track on the "
        "array, and all detectors see the same part."),
        ("SNR bins and speed bins are sampled evenly (log-uniform inside each bin), so 'all movers' "
        "completeness is an average over that design, not over a sky population."),
        ("The rate baseline reports mid-exposure positions and its speed from the streak length; a streak "
        "cut by the array edge therefore gives a low speed and fails the 30 % rule."),
        ("Movers slower than ~0.05 px/group move less than a PSF width in short ramps; at 10 groups even "
        "0.5 px/group is only 4.5 px of motion.  The 30 % speed rule is hard to meet there for anyone."),
    ]
    notes.append("Grid density: four mover ramps per (filter, ngroups, timing) combination, but one for "
                 "200 groups (those ramps cost ~50 s each, up to 2.5 min with fast movers), to keep the full "
                 "run near 40 minutes on 2 cores; the deep search at 100 groups full frame alone takes ~9 min.")
    if mode != "full":
        notes.insert(0, f"This is a **{mode}** run: a reduced grid; numbers are indicative only.")
    return notes


def _save(out_dir, movers, ramps, perf, meta):
    data = out_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    movers.write(data / "recovery_movers.ecsv", overwrite=True)
    ramps.write(data / "recovery_ramps.ecsv", overwrite=True)
    if not (data / "performance.json").exists() or perf.get("main"):
        (data / "performance.json").write_text(json.dumps(perf, indent=1, default=float))
    (data / "meta.json").write_text(json.dumps(meta, indent=1, default=str))


def _stage_done(data, stage, key):
    """The saved record of a finished stage of this mode, or None.

    The record carries the SHA-1 of the package sources the stage ran on; RESULTS.md
    states it per stage, so a resumed run that spans two versions says so.
    """
    path = data / f"stage_{stage}.json"
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return record if record.get("mode") == key["mode"] else None


def _stage_save(data, stage, key, minutes):
    (data / f"stage_{stage}.json").write_text(json.dumps({**key, "minutes": minutes}))


def _load(out_dir):
    from astropy.table import Table

    data = out_dir / "data"
    movers = Table.read(data / "recovery_movers.ecsv")
    ramps = Table.read(data / "recovery_ramps.ecsv")
    perf = json.loads((data / "performance.json").read_text())
    meta = json.loads((data / "meta.json").read_text())
    return movers, ramps, perf, meta


def _write_report(out_dir, movers, ramps, perf, meta):
    from benchmarks import report

    meta = {**meta, "notes": _notes(meta["mode"])}  # static text: always the current wording
    plots = report.make_plots(movers, out_dir)
    (out_dir / "RESULTS.md").write_text(report.results_markdown(movers, ramps, perf, meta))
    return plots


def main(argv=None):
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="reduced grid (~5-10 min)")
    mode.add_argument("--smoke", action="store_true", help="tiny run (< 60 s) for CI")
    parser.add_argument("--output", type=Path, default=None,
                        help="output folder (default: benchmarks/, or benchmarks/_smoke/ for --smoke)")
    parser.add_argument("--report-only", action="store_true", help="rebuild RESULTS.md and plots from DIR/data")
    parser.add_argument("--no-performance", action="store_true", help="skip the performance cases")
    parser.add_argument("--verbose", action="store_true", help="keep jwst's log messages")
    parser.add_argument("--resume", action="store_true",
                        help="reuse stages (recovery, performance) already saved in DIR/data by a run of "
                             "the same mode (RESULTS.md then names each stage's package sources)")
    parser.add_argument("--no-snapshot", action="store_true",
                        help="import the package in place (default for --smoke) instead of from a copy")
    args = parser.parse_args(argv)
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    out_dir = args.output or (HERE / "_smoke" if args.smoke else HERE)
    out_dir.mkdir(parents=True, exist_ok=True)
    snapshot = not (args.no_snapshot or args.smoke or args.report_only)
    if snapshot:
        _snapshot_package()

    from benchmarks import performance, recovery, report  # after the snapshot

    if args.report_only:
        movers, ramps, perf, meta = _load(out_dir)
        for p in _write_report(out_dir, movers, ramps, perf, meta):
            print(f"wrote {p}")
        print(f"wrote {out_dir / 'RESULTS.md'}")
        return 0

    if not args.verbose:
        logging.disable(logging.WARNING)  # jwst and stpipe log every step at INFO
        warnings.filterwarnings("ignore", category=RuntimeWarning)

    from jwst_asteroid_step.offline import build_references, configure_offline_crds

    started = time.perf_counter()
    import jwst_asteroid_step.step  # noqa: F401  (import everything the run uses now)

    digest = _package_digest()  # the sources this process imports, before anyone edits them

    def progress(msg):
        print(f"[{time.perf_counter() - started:7.1f} s] {msg}", flush=True)

    data = out_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    stage_key = {"mode": name, "digest": digest}
    minutes = {}
    with tempfile.TemporaryDirectory(prefix="asteroid_bench_") as tmp:
        configure_offline_crds(Path(tmp) / "crds")
        refs = build_references(Path(tmp) / "refs")
        # Each stage is saved as soon as it ends; --resume reuses a saved stage of the
        # same mode made from the same package sources.
        done = _stage_done(data, "recovery", stage_key) if args.resume else None
        if done is not None:
            from astropy.table import Table

            movers = Table.read(data / "recovery_movers.ecsv")
            ramps = Table.read(data / "recovery_ramps.ecsv")
            minutes["recovery"] = done["minutes"]
            progress(f"recovery: reusing the saved stage ({done['minutes']:.1f} min)")
        else:
            t0 = time.perf_counter()
            movers, ramps = recovery.run_recovery(recovery.SETTINGS[name], refs, progress)
            minutes["recovery"] = (time.perf_counter() - t0) / 60
            movers.write(data / "recovery_movers.ecsv", overwrite=True)
            ramps.write(data / "recovery_ramps.ecsv", overwrite=True)
            _stage_save(data, "recovery", stage_key, minutes["recovery"])
        done = _stage_done(data, "performance", stage_key) if args.resume else None
        if args.no_performance:
            perf = {"subarray": "-", "main": [], "deep": None, "scaling": [], "skipped": ["not run"]}
        elif done is not None:
            perf = json.loads((data / "performance.json").read_text())
            minutes["performance"] = done["minutes"]
            progress(f"performance: reusing the saved stage ({done['minutes']:.1f} min)")
        else:
            t0 = time.perf_counter()
            perf = performance.run_performance(performance.PERF_SETTINGS[name], refs, progress)
            minutes["performance"] = (time.perf_counter() - t0) / 60
            (data / "performance.json").write_text(json.dumps(perf, indent=1, default=float))
            _stage_save(data, "performance", stage_key, minutes["performance"])

    runtime = sum(minutes.values())  # the stages' own run times, reused ones included
    command = "python benchmarks/run_all.py" + {"full": "", "quick": " --quick", "smoke": " --smoke"}[name]
    meta = {
        "mode": name, "command": command, "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": _machine(), "software": f"{_software()} (package sources sha1 {digest})",
        "base_seed": recovery.BASE_SEED,
        "package_source": ("a copy of jwst_asteroid_step/ and crds_params/ taken at the start"
                           if snapshot else "the working tree, in place"),
        "runtime_min": runtime, "stage_minutes": minutes,
        "stage_digests": {st: (_stage_done(data, st, stage_key) or {}).get("digest", digest)
                          for st in ("recovery", "performance")},
        "settings": repr(recovery.SETTINGS[name]),
        "perf_settings": repr(performance.PERF_SETTINGS[name]),
        "notes": _notes(name),
        "deep_subset": _deep_subset(recovery.SETTINGS[name]),
    }
    _save(out_dir, movers, ramps, perf, meta)
    plots = _write_report(out_dir, movers, ramps, perf, meta)
    key = report.key_numbers(movers, ramps, perf)
    progress("key numbers: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in key.items()))
    for p in plots:
        progress(f"wrote {p}")
    progress(f"wrote {out_dir / 'RESULTS.md'} ({runtime:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
