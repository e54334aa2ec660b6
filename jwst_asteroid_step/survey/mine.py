"""Mine many exposures for asteroids with Dask: one task per exposure.

The driver (this module, run by ``jwst-asteroids mine``) discovers the inputs
(:mod:`.inputs`), registers them in the manifest (:mod:`.manifest`), submits one
:func:`process_exposure` task per pending file to a ``dask.distributed`` cluster,
records each result as it arrives, and finally merges all catalogs into one table
(:func:`merge_catalogs`).  The cluster is either a ``LocalCluster`` sized to this
machine or any running scheduler (``--scheduler tcp://host:port``: dask-jobqueue,
dask-kubernetes, ``dask scheduler`` by hand); the code path is the same, only the
``Client`` differs.

Each worker runs one task at a time (one thread per worker), so it holds one ramp
at a time; :func:`local_cluster_shape` chooses how many workers fit in memory.
"""

import ast
import logging
import os
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .inputs import Exposure, catalog_path, discover_exposures
from .manifest import Manifest

__all__ = [
    "MineResult",
    "estimate_task_memory",
    "local_cluster_shape",
    "merge_catalogs",
    "pars_by_kind",
    "parse_options",
    "process_exposure",
    "run_mine",
]

log = logging.getLogger(__name__)

#: Memory of a worker process with jwst imported, before any ramp (bytes).
_BASE_MEMORY = 600e6
#: Peak task memory per byte of input file.  asteroid_detect on a full-frame
#: 100-group _jump file (533 MB) peaked at 2.95 GB of worker RSS (benchmarks/SCALE.md):
#: ~4.4x beyond the base; Detector1 on a uint16 _uncal file holds float32 data and
#: error cubes plus ramp_fit's work arrays: ~10x.  Rounded up, as an over-estimate
#: only costs parallelism.
_MEMORY_PER_FILE_BYTE = {"jump": 5.0, "uncal": 10.0}


# ---------------------------------------------------------------- parameters


def _literal(text):
    """A command-line value as Python: numbers, booleans, None, lists; else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_options(pairs):
    """``key=value`` strings as step or pipeline keyword arguments.

    Parameters
    ----------
    pairs : sequence of str
        ``name=value`` for a parameter of the step (or of the pipeline), and
        ``steps.<step>.<name>=value`` for a pipeline's sub-step, as with strun.
        Values are read as Python literals where they parse (``5``, ``True``,
        ``[1, 2]``) and as strings otherwise.

    Returns
    -------
    dict
        Keyword arguments; sub-step parameters nested under ``"steps"``.
    """
    options = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise ValueError(f"expected name=value, got {pair!r}")
        if key.startswith("steps."):
            parts = key.split(".")
            if len(parts) != 3:
                raise ValueError(f"expected steps.<step>.<name>=value, got {pair!r}")
            options.setdefault("steps", {}).setdefault(parts[1], {})[parts[2]] = _literal(value)
        else:
            options[key] = _literal(value)
    return options


def pars_by_kind(pars):
    """Assign parameter files to the kind of input they configure.

    Parameters
    ----------
    pars : str, sequence of str, dict or None
        Parameter files (``.asdf``).  A file whose ``class`` is a pipeline
        configures ``_uncal`` inputs (``calwebb_detector1_asteroid``); any other
        configures ``_jump`` inputs (``asteroid_detect``).  A dict
        ``{"jump": path, "uncal": path}`` is taken as given.

    Returns
    -------
    dict
        ``{"jump": path or None, "uncal": path or None}`` (absolute paths).

    Raises
    ------
    ValueError
        If two files configure the same kind.
    """
    if isinstance(pars, dict):
        return {k: (str(Path(v).absolute()) if v else None) for k, v in
                {"jump": None, "uncal": None, **pars}.items()}
    if isinstance(pars, (str, Path)):
        pars = [pars]
    out = {"jump": None, "uncal": None}
    for path in pars or ():
        import asdf

        with asdf.open(str(path), lazy_load=True) as af:
            cls = str(af.tree.get("class", ""))
        kind = "uncal" if ("Pipeline" in cls or "detector1" in cls.lower()) else "jump"
        if out[kind] is not None:
            raise ValueError(f"two parameter files for {kind} inputs: {out[kind]} and {path}")
        out[kind] = str(Path(path).absolute())
    return out


def _options_for(kind, options):
    """The options that apply to one kind of input (see :func:`parse_options`).

    ``steps.asteroid_detect.<name>`` also configures the bare step on ``_jump``
    files, so one command line serves a mixed batch; other ``steps.*`` entries
    concern only the pipeline.
    """
    options = dict(options or {})
    steps = options.pop("steps", {})
    if kind == "uncal":
        return {**options, **({"steps": steps} if steps else {})}
    return {**options, **steps.get("asteroid_detect", {})}


# ---------------------------------------------------------------- one task


def _peak_rss_mb():
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


#: Loggers of the steps a task runs; their records go to the exposure's log file.
_STEP_LOGGERS = ("stpipe", "jwst", "stcal", "jwst_asteroid_step")


class _exposure_log:
    """Send the step loggers' records to ``<output_dir>/logs/<root>.log`` for one task.

    Workers run many exposures; one log file each keeps the terminal quiet and
    makes a failed file's story easy to find.  Returns the log path.
    """

    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handler = logging.FileHandler(self.path, mode="w", encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - "
                                                    "%(message)s"))
        self.saved = []
        for name in _STEP_LOGGERS:
            logger = logging.getLogger(name)
            self.saved.append((logger, logger.level, logger.propagate))
            logger.addHandler(self.handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        return self.path

    def __exit__(self, *exc):
        for logger, level, propagate in self.saved:
            logger.removeHandler(self.handler)
            logger.setLevel(level)
            logger.propagate = propagate
        self.handler.close()


def process_exposure(exposure, output_dir, pars=None, options=None):
    """Run the search on one exposure and write its catalog (a Dask task).

    ``jump`` exposures run ``asteroid_detect`` (with their ``_fitopt`` when found);
    ``uncal`` exposures run ``calwebb_detector1_asteroid``, which writes
    ``_rate``, ``_rateints`` and ``_asteroids`` into ``output_dir``.  The catalog
    is written atomically by :class:`~jwst_asteroid_step.datamodels.AsteroidCatalogModel`.

    Parameters
    ----------
    exposure : Exposure
    output_dir : str
    pars : str or dict, optional
        Parameter file(s) (``.asdf``) for the step or pipeline, as for
        ``strun`` (:func:`pars_by_kind`).
    options : dict, optional
        Keyword arguments of the step or pipeline (:func:`parse_options`).

    Returns
    -------
    dict
        ``path``, ``ok``; when ok ``output``, ``n_detections``, ``status`` (the
        catalog's cal_step) and ``notes``; else ``error``; always ``started``,
        ``finished`` (epoch s), ``step_s`` (s inside the step), ``peak_rss_mb``
        and ``worker``.  Errors are returned, not raised, so one bad file never
        stops the batch.
    """
    started = time.time()
    out = {"path": exposure.path, "started": started,
           "worker": f"{socket.gethostname()}:{os.getpid()}"}
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        target = catalog_path(exposure, output_dir)
        kwargs = _options_for(exposure.kind, options)
        pars = pars_by_kind(pars)[exposure.kind]
        # stpipe would attach its own stderr handler; the exposure's log file replaces it.
        kwargs["configure_log"] = False
        if pars:
            kwargs["config_file"] = str(pars)
        log_file = Path(output_dir) / "logs" / f"{exposure.root}.log"
        with _exposure_log(log_file):
            _run_step(exposure, output_dir, target, kwargs, out)
        from ..datamodels import AsteroidCatalogModel

        with AsteroidCatalogModel(target) as written:
            out.update(n_detections=len(written.catalog),
                       status=str(written.meta.cal_step.asteroid_detect),
                       notes=str(written.meta.asteroid_detect.notes or ""))
        out.update(ok=True, output=target, log=str(log_file))
    except Exception as err:  # noqa: BLE001 - any failure is recorded, never fatal
        tb = traceback.format_exception(err)
        out.update(ok=False, error=f"{type(err).__name__}: {err}\n{''.join(tb[-3:])}")
    out["finished"] = time.time()
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _run_step(exposure, output_dir, target, kwargs, out):
    """Run the step or the pipeline on one exposure; the catalog ends at ``target``."""
    t0 = time.perf_counter()
    if exposure.kind == "jump":
        from ..step import AsteroidDetectStep

        args = [exposure.path] + ([exposure.fitopt] if exposure.fitopt else [])
        catalog = AsteroidDetectStep.call(*args, **kwargs)
        out["step_s"] = time.perf_counter() - t0
        catalog.save(target)  # atomic: a temporary file renamed into place
    else:
        from ..pipeline import AsteroidDetector1Pipeline

        kwargs.update(output_dir=str(output_dir), save_results=True)
        AsteroidDetector1Pipeline.call(exposure.path, **kwargs)
        out["step_s"] = time.perf_counter() - t0
        if not Path(target).exists():
            raise RuntimeError("calwebb_detector1_asteroid wrote no catalog "
                               f"({Path(target).name}); see the exposure's log")


# ---------------------------------------------------------------- cluster


def estimate_task_memory(exposures):
    """Peak memory (bytes) of the largest task among ``exposures`` (an over-estimate)."""
    sizes = [_BASE_MEMORY + _MEMORY_PER_FILE_BYTE[e.kind] * _file_bytes(e.path)
             for e in exposures]
    return max(sizes, default=_BASE_MEMORY)


def _file_bytes(path):
    size = os.path.getsize(path)
    # A gzipped ramp is worth several times its size once read.
    return size * 4 if str(path).endswith(".gz") else size


def _machine():
    import psutil

    return os.cpu_count() or 1, psutil.virtual_memory().available


def local_cluster_shape(task_memory, workers=None, cores=None, memory=None):
    """Workers and the per-worker memory limit of a LocalCluster.

    One thread per worker, so one ramp per worker at a time.  By default as many
    workers as cores, fewer when ``workers x task_memory`` would not fit in the
    available memory; each worker's limit is its share of the available memory
    (at least ``task_memory``), so the nanny stops a worker before the machine
    runs out.

    Parameters
    ----------
    task_memory : float
        Peak memory of one task, bytes (:func:`estimate_task_memory`).
    workers : int, optional
        Asked-for number of workers (``--workers``).
    cores, memory : optional
        Cores and available memory (bytes); by default this machine's.

    Returns
    -------
    n_workers : int
    memory_limit : int
        Bytes per worker.
    """
    if cores is None or memory is None:
        c, m = _machine()
        cores = cores or c
        memory = memory or m
    fit = max(1, int(memory // max(task_memory, 1)))
    n = workers if workers else min(cores, fit)
    limit = max(int(task_memory), int(memory // n))
    return int(n), limit


def _client(scheduler=None, workers=None, task_memory=None, memory_limit=None):
    """(client, cluster or None): an existing scheduler, or a new LocalCluster."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    n, limit = local_cluster_shape(task_memory or _BASE_MEMORY, workers)
    if memory_limit:
        limit = int(memory_limit)
    # The step's numba kernels are multi-threaded: give each worker its share of the
    # cores, or two workers on two cores fight over them (measured: 0.8x "speed-up").
    cores = max(1, (os.cpu_count() or 1) // n)
    env = {name: str(cores) for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                         "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           memory_limit=limit, dashboard_address=None, env=env)
    log.info("LocalCluster: %d worker(s), 1 task and %d kernel thread(s) each, memory limit "
             "%.2f GB each", n, cores, limit / 1e9)
    return Client(cluster), cluster


# ---------------------------------------------------------------- merging


def merge_catalogs(rows, output_dir, name="survey"):
    """One table of every detection of the run, with its source exposure.

    Parameters
    ----------
    rows : sequence of dict
        Manifest rows with status ``done`` (``path``, ``root``, ``output``).
    output_dir : str or Path
    name : str
        Files are ``<output_dir>/<name>_detections.parquet`` and ``.ecsv``.

    Returns
    -------
    table : astropy.table.QTable
        The catalog columns plus ``exposure`` (root name), ``source_file``
        (input ramp), ``catalog_file``, ``visit_id``, ``filter`` and ``det_key``
        (``<exposure>#<id>``, unique in the run), sorted by exposure,
        integration and id.
    paths : dict
        ``{"parquet": Path, "ecsv": Path}``.
    """
    from .tables import detections_from_catalog, stack_detections, write_table

    merged = stack_detections([
        detections_from_catalog(row["output"], source_file=row["path"], root=row["root"])
        for row in rows])
    merged.meta = {"n_exposures": len(rows), "n_detections": len(merged),
                   "description": "jwst-asteroids mine: merged asteroid catalogs"}
    out = Path(output_dir)
    paths = {"parquet": out / f"{name}_detections.parquet", "ecsv": out / f"{name}_detections.ecsv"}
    for path in paths.values():
        write_table(merged, path)
    return merged, paths


# ---------------------------------------------------------------- the run


@dataclass
class MineResult:
    """What :func:`run_mine` did.

    Attributes
    ----------
    counts : dict
        Manifest status counts at the end.
    processed : int
        Tasks run by this invocation (not counting files done earlier).
    failed : list of (path, error)
        Files that failed in this invocation.
    merged : dict
        Paths of the merged catalog (``parquet``, ``ecsv``); empty if not merged.
    n_detections : int
        Rows of the merged catalog.
    manifest : str
        Path of the manifest.
    wall_s : float
        Wall time of this invocation.
    """

    counts: dict
    processed: int = 0
    failed: list = field(default_factory=list)
    merged: dict = field(default_factory=dict)
    n_detections: int = 0
    manifest: str = ""
    wall_s: float = 0.0

    def as_dict(self):
        """Plain dict (paths as strings)."""
        d = asdict(self)
        d["merged"] = {k: str(v) for k, v in self.merged.items()}
        return d


def run_mine(inputs, output_dir, *, pars=None, options=None, workers=None, scheduler=None,
             client=None, memory_limit=None, retry_failed=False, manifest=None, name="survey",
             merge=True, progress=None):
    """Process every exposure named by ``inputs`` and merge the catalogs.

    Parameters
    ----------
    inputs : str or sequence of str
        Directories, globs, association ``.json`` files, ``_jump``/``_uncal``
        files or text file lists (:func:`~.inputs.discover_exposures`).
    output_dir : str or Path
        Catalogs, the manifest and the merged catalog go here.
    pars : str, sequence of str or dict, optional
        Parameter files (``.asdf``) for ``asteroid_detect`` (``_jump`` inputs)
        and/or ``calwebb_detector1_asteroid`` (``_uncal`` inputs); each goes to the
        kind its ``class`` configures (:func:`pars_by_kind`).
    options : dict, optional
        Step / pipeline keyword arguments (:func:`parse_options`).
    workers : int, optional
        LocalCluster workers (default: see :func:`local_cluster_shape`).
    scheduler : str, optional
        Address of a running Dask scheduler; no LocalCluster is started.
    client : dask.distributed.Client, optional
        Use this client (tests, notebooks); overrides ``scheduler``/``workers``.
    memory_limit : float, optional
        Bytes per LocalCluster worker instead of the automatic share.
    retry_failed : bool
        Run files that failed in an earlier run again.
    manifest : str or Path, optional
        Manifest file; default ``<output_dir>/<name>_manifest.sqlite``.
    name : str
        Prefix of the manifest and merged-catalog files.
    merge : bool
        Write the merged catalog at the end.
    progress : callable, optional
        Called as ``progress(n_finished, n_total, result_dict)`` after each task.

    Returns
    -------
    MineResult
    """
    t_start = time.perf_counter()
    output_dir = Path(output_dir).absolute()
    output_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = Path(manifest) if manifest else output_dir / f"{name}_manifest.sqlite"
    exposures = discover_exposures(inputs)
    pars = pars_by_kind(pars)
    with Manifest(manifest_path) as book:
        book.add(exposures)
        reset = book.prepare_resume(retry_failed=retry_failed)
        if reset["running"]:
            log.warning("%d file(s) were running when the last run stopped: redone",
                        reset["running"])
        config = {"pars": pars, "options": options or {}, "output_dir": str(output_dir)}
        previous = book.previous_config()
        if previous is not None and previous != config:
            log.warning("parameters differ from the previous run of this manifest: "
                        "files done then keep their catalogs (delete the manifest to redo)")
        run_id = book.start_run(config)
        todo = [Exposure(r["path"], r["kind"], r["root"], r["fitopt"])
                for r in book.rows("pending")]
        result = MineResult(counts=book.counts(), manifest=str(manifest_path))
        if todo:
            result.processed, result.failed = _run_tasks(
                book, todo, output_dir, pars, options, client=client, scheduler=scheduler,
                workers=workers, memory_limit=memory_limit, progress=progress)
        book.finish_run(run_id)
        result.counts = book.counts()
        if merge:
            table, paths = merge_catalogs(book.rows("done"), output_dir, name)
            result.merged, result.n_detections = paths, len(table)
    result.wall_s = time.perf_counter() - t_start
    return result


def _run_tasks(book, todo, output_dir, pars, options, *, client, scheduler, workers,
               memory_limit, progress):
    """Submit one task per exposure; record each result as it arrives."""
    from dask.distributed import as_completed

    own_client = client is None
    cluster = None
    if own_client:
        client, cluster = _client(scheduler, workers, estimate_task_memory(todo), memory_limit)
    failed, n_done = [], 0
    try:
        futures = {}
        for exposure in todo:
            book.mark_running(exposure.path)
            future = client.submit(process_exposure, exposure, str(output_dir), pars, options,
                                   key=f"asteroids-{exposure.root}-{time.time_ns()}", pure=False)
            futures[future] = exposure
        for future in as_completed(futures):
            exposure = futures[future]
            try:
                res = future.result()
            except Exception as err:  # noqa: BLE001 - e.g. KilledWorker (out of memory)
                res = {"path": exposure.path, "ok": False, "error": f"{type(err).__name__}: {err}"}
            n_done += 1
            _record(book, res, failed)
            if progress is not None:
                progress(n_done, len(todo), res)
            future.release()
    finally:
        if own_client:
            client.close()
            if cluster is not None:
                cluster.close()
    return n_done, failed


def _record(book, res, failed):
    path = res["path"]
    if res.get("ok"):
        try:
            book.mark_done(path, res["output"], started=res.get("started"),
                           finished=res.get("finished"), step_s=res.get("step_s"),
                           peak_rss_mb=res.get("peak_rss_mb"), worker=res.get("worker"),
                           n_detections=res.get("n_detections"))
            return
        except FileNotFoundError as err:  # the catalog vanished: never call that done
            res = {**res, "ok": False, "error": str(err)}
    book.mark_failed(path, res.get("error", "unknown error"), started=res.get("started"),
                     finished=res.get("finished"), worker=res.get("worker"))
    failed.append((path, res.get("error", "")))
