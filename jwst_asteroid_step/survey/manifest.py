"""The resumable record of a survey run: one SQLite row per input file.

Status of a file: ``pending`` (to do), ``running`` (handed to a worker),
``done`` (its catalog exists on disk), ``failed`` (the error is recorded).
Only the driver process writes the manifest (workers return results), so one
connection with short transactions suffices; WAL journaling lets other
processes (a progress monitor, a test) read while it writes.

Resume rules (:meth:`Manifest.prepare_resume`): a ``running`` row belongs to a run
that was killed and goes back to ``pending``; a ``done`` row whose catalog has
disappeared goes back to ``pending``; ``failed`` rows stay failed unless a retry
is asked for.  A ``done`` row is written only after the catalog file exists, and
catalogs are written atomically, so a kill at any moment loses no finished work.
"""

import json
import sqlite3
import time
from pathlib import Path

__all__ = ["STATUSES", "Manifest", "read_counts"]

STATUSES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    root TEXT NOT NULL,
    fitopt TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    submitted REAL,
    started REAL,
    finished REAL,
    wall_s REAL,
    step_s REAL,
    peak_rss_mb REAL,
    worker TEXT,
    n_detections INTEGER,
    output TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,
    config TEXT
);
"""


class Manifest:
    """Per-file status of a survey run, in an SQLite file.

    Parameters
    ----------
    path : str or Path
        The database file (created with its tables if missing).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def close(self):
        """Close the database connection."""
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- writing

    def add(self, exposures):
        """Register exposures as ``pending``; files already known keep their status.

        Parameters
        ----------
        exposures : iterable of Exposure

        Returns
        -------
        int
            Number of files newly added.
        """
        with self._db:
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO files (path, kind, root, fitopt) VALUES (?, ?, ?, ?)",
                [(e.path, e.kind, e.root, e.fitopt) for e in exposures],
            )
            return self._db.total_changes - before

    def prepare_resume(self, retry_failed=False):
        """Reset rows left behind by an interrupted run; see the module docstring.

        Parameters
        ----------
        retry_failed : bool
            Also put ``failed`` rows back to ``pending``.

        Returns
        -------
        dict
            Counts of rows reset: ``{"running": n, "missing_output": n, "failed": n}``.
        """
        counts = {"running": 0, "missing_output": 0, "failed": 0}
        with self._db:
            cur = self._db.execute(
                "UPDATE files SET status='pending', worker=NULL WHERE status='running'")
            counts["running"] = cur.rowcount
            lost = [r["path"] for r in self._db.execute(
                "SELECT path, output FROM files WHERE status='done'")
                if not r["output"] or not Path(r["output"]).exists()]
            for path in lost:
                self._db.execute("UPDATE files SET status='pending' WHERE path=?", (path,))
            counts["missing_output"] = len(lost)
            if retry_failed:
                cur = self._db.execute("UPDATE files SET status='pending' WHERE status='failed'")
                counts["failed"] = cur.rowcount
        return counts

    def mark_running(self, path):
        """The file has been handed to the cluster."""
        with self._db:
            self._db.execute(
                "UPDATE files SET status='running', attempts=attempts+1, submitted=?, "
                "error=NULL WHERE path=?", (time.time(), path))

    def mark_done(self, path, output, *, started=None, finished=None, step_s=None,
                  peak_rss_mb=None, worker=None, n_detections=None):
        """Record a finished file.

        Raises
        ------
        FileNotFoundError
            If ``output`` does not exist: ``done`` always means "catalog on disk".
        """
        if not Path(output).exists():
            raise FileNotFoundError(f"catalog {output} not found; not marking {path} done")
        finished = time.time() if finished is None else finished
        wall = None if started is None else finished - started
        with self._db:
            self._db.execute(
                "UPDATE files SET status='done', output=?, started=?, finished=?, wall_s=?, "
                "step_s=?, peak_rss_mb=?, worker=?, n_detections=?, error=NULL WHERE path=?",
                (str(output), started, finished, wall, step_s, peak_rss_mb, worker,
                 n_detections, path))

    def mark_failed(self, path, error, *, started=None, finished=None, worker=None):
        """Record a failed file and its error message."""
        finished = time.time() if finished is None else finished
        wall = None if started is None else finished - started
        with self._db:
            self._db.execute(
                "UPDATE files SET status='failed', error=?, started=?, finished=?, wall_s=?, "
                "worker=? WHERE path=?", (str(error)[:4000], started, finished, wall, worker, path))

    def start_run(self, config):
        """Record the start of a (re)run with its configuration; returns the run id."""
        with self._db:
            cur = self._db.execute("INSERT INTO runs (started, config) VALUES (?, ?)",
                                   (time.time(), json.dumps(config, sort_keys=True, default=str)))
            return cur.lastrowid

    def finish_run(self, run):
        """Record the end of a run."""
        with self._db:
            self._db.execute("UPDATE runs SET finished=? WHERE run=?", (time.time(), run))

    def previous_config(self):
        """Configuration of the latest earlier run (dict), or None."""
        row = self._db.execute("SELECT config FROM runs ORDER BY run DESC LIMIT 1").fetchone()
        return None if row is None or row["config"] is None else json.loads(row["config"])

    # ---- reading

    def rows(self, status=None):
        """Rows as dicts (all, or those with ``status``), ordered by path."""
        if status is None:
            cur = self._db.execute("SELECT * FROM files ORDER BY path")
        else:
            cur = self._db.execute("SELECT * FROM files WHERE status=? ORDER BY path", (status,))
        return [dict(r) for r in cur]

    def counts(self):
        """``{status: n}`` for every status (zeros included)."""
        counts = dict.fromkeys(STATUSES, 0)
        for r in self._db.execute("SELECT status, COUNT(*) AS n FROM files GROUP BY status"):
            counts[r["status"]] = r["n"]
        return counts


def read_counts(path):
    """Status counts of a manifest file, opened read-only (safe while a run writes it)."""
    db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=30.0)
    try:
        counts = dict.fromkeys(STATUSES, 0)
        # A run that has just created the file may not have made its table yet.
        if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='files'").fetchone() is None:
            return counts
        for status, n in db.execute("SELECT status, COUNT(*) FROM files GROUP BY status"):
            counts[status] = n
        return counts
    finally:
        db.close()
