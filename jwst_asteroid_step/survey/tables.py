"""Detection tables of a survey: one row per detection, with its exposure.

A survey table is the catalog columns (DESIGN.md §5) plus where each row came
from: ``exposure`` (file root), ``source_file`` (the ramp searched),
``catalog_file`` (its ``_asteroids.asdf``), ``visit_id``, ``filter`` and
``det_key`` (``<exposure>#<id>``, unique within a survey).  ``mine`` writes one
as parquet and ECSV; ``link`` and ``match`` read any of those or the catalogs.
"""

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import QTable, vstack

__all__ = ["PROVENANCE_COLUMNS", "detections_from_catalog", "read_detections", "read_parquet",
           "write_table"]

#: Columns a survey table adds to the catalog's.
PROVENANCE_COLUMNS = ("exposure", "source_file", "catalog_file", "visit_id", "filter", "det_key")


def _text_column(n, value):
    return np.array([str(value)] * n, dtype=str) if n else np.zeros(0, dtype="U1")


def _root_of(path):
    name = Path(path).name
    for suffix in ("_asteroids.asdf", "_asteroids.fits"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def detections_from_catalog(catalog_file, source_file=None, root=None):
    """A catalog file as a survey table.

    Parameters
    ----------
    catalog_file : str or Path
        ``<root>_asteroids.asdf``.
    source_file : str, optional
        The ramp it came from (default: the catalog's recorded input file).
    root : str, optional
        Exposure name (default: the catalog file name without ``_asteroids.asdf``).

    Returns
    -------
    astropy.table.QTable
        Catalog columns with units, plus :data:`PROVENANCE_COLUMNS`; empty ``meta``.
    """
    from ..export.ecsv import catalog_table

    table = catalog_table(str(catalog_file))
    meta, table.meta = table.meta, {}
    n = len(table)
    root = root or _root_of(catalog_file)
    source = source_file or meta.get("asteroid_detect", {}).get("input_file", "")
    table["exposure"] = _text_column(n, root)
    table["source_file"] = _text_column(n, source)
    table["catalog_file"] = _text_column(n, Path(catalog_file).absolute())
    table["visit_id"] = _text_column(n, meta.get("observation", {}).get("visit_id") or "")
    table["filter"] = _text_column(n, meta.get("instrument", {}).get("filter") or "")
    table["det_key"] = np.array([f"{root}#{int(i)}" for i in table["id"]], dtype=str) if n \
        else np.zeros(0, dtype="U1")
    return table


def empty_detections():
    """A zero-row survey table with every column."""
    from ..datamodels import empty_catalog
    from ..export.ecsv import catalog_table

    table = catalog_table(empty_catalog(0))
    for name in PROVENANCE_COLUMNS:
        table[name] = np.zeros(0, dtype="U1")
    return table


def stack_detections(tables):
    """Stack survey tables and sort them by exposure, integration and id."""
    tables = [t for t in tables if t is not None]
    if not tables:
        return empty_detections()
    merged = vstack(tables, metadata_conflicts="silent")
    if len(merged):
        merged.sort(["exposure", "integration", "id"])
    return merged


def _units():
    from ..datamodels import CATALOG_COLUMNS
    from ..sky.photometry import FLUX_COLUMNS

    return {name: unit for name, _, unit, _ in CATALOG_COLUMNS + FLUX_COLUMNS if unit}


def read_parquet(path):
    """A parquet table written by :func:`write_table`, with the catalog units restored.

    Read with pyarrow directly (astropy's parquet reader needs pandas).
    """
    import pyarrow.parquet as pq

    data = pq.read_table(str(path))
    table = QTable()
    units = _units()
    for name in data.column_names:
        values = data.column(name).to_numpy(zero_copy_only=False)
        if values.dtype == object:
            values = values.astype(str)
        table[name] = values * u.Unit(units[name]) if name in units else values
    return table


def write_table(table, path):
    """Write a table as parquet or ECSV (by extension), atomically (temporary + rename)."""
    import os

    path = Path(path)
    fmt = "parquet" if path.suffix == ".parquet" else "ascii.ecsv"
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    table.write(str(tmp), format=fmt, overwrite=True)
    os.replace(tmp, path)
    return path


def read_detections(specs):
    """Detections from catalogs, merged survey tables or ``mine`` output directories.

    Parameters
    ----------
    specs : str or sequence of str
        ``_asteroids.asdf`` files, ``.parquet`` / ``.ecsv`` survey tables, or a
        directory (its ``*_detections.parquet`` if there is one, else its
        ``*_asteroids.asdf`` catalogs).

    Returns
    -------
    astropy.table.QTable
        A survey table (see the module docstring).
    """
    if isinstance(specs, (str, Path)):
        specs = [specs]
    tables = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            merged = sorted(p.glob("*_detections.parquet"))
            files = merged[:1] if merged else sorted(p.glob("*_asteroids.asdf"))
        else:
            files = [p]
        for f in files:
            if f.suffix == ".parquet":
                tables.append(read_parquet(f))
            elif f.suffix == ".ecsv":
                t = QTable.read(str(f), format="ascii.ecsv")
                t.meta = {}
                tables.append(t)
            else:
                tables.append(detections_from_catalog(f))
    return stack_detections(tables)
