"""Shared helpers of the exporters: open a catalog, plain-Python metadata."""

from pathlib import Path

import numpy as np

__all__ = ["catalog_and_meta", "plain", "track_times"]


def plain(value):
    """Recursively turn numpy / stdatamodels values into plain Python types."""
    if hasattr(value, "instance"):
        value = value.instance
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return value


def catalog_and_meta(catalog):
    """The catalog array and its metadata (plain dict) from a model, path or array.

    Parameters
    ----------
    catalog : AsteroidCatalogModel, str, Path, or numpy structured array
        A catalog model, an ``_asteroids.asdf`` file, or a bare array (then the
        metadata is empty).

    Returns
    -------
    table : numpy structured array
    meta : dict
        The model's ``meta`` tree as plain Python (``{}`` for a bare array).
    """
    if isinstance(catalog, (str, Path)):
        from ..datamodels import AsteroidCatalogModel

        with AsteroidCatalogModel(str(catalog)) as model:
            return np.array(model.catalog), plain(model.meta.instance)
    if hasattr(catalog, "catalog") and hasattr(catalog, "meta"):
        return np.asarray(catalog.catalog), plain(catalog.meta.instance)
    return np.asarray(catalog), {}


def track_times(meta, table):
    """Start and end (s, integration time base) of each detection's track.

    The track spans the integration: from its first read (t = 0) to its last
    read, ``(ngroups - 1) * group_time``; without exposure metadata, from 0 to
    ``2 * t_int``.
    """
    exposure = meta.get("exposure", {})
    ngroups, group_time = exposure.get("ngroups"), exposure.get("group_time")
    t_int = np.asarray(table["t_int"], dtype=float)
    if ngroups and group_time:
        t_end = np.full(t_int.shape, (int(ngroups) - 1) * float(group_time))
    else:
        t_end = 2.0 * t_int
    return np.zeros_like(t_int), t_end
