"""Catalog exports: ECSV tables, MPC ADES (PSV) reports, DS9/CRTF region files.

Each exporter takes an :class:`~jwst_asteroid_step.datamodels.AsteroidCatalogModel`,
an ``_asteroids.asdf`` path, or a bare catalog array.  The command line front-end is
``jwst-asteroids export <asteroids.asdf> --format {ecsv,ades,regions}``.
"""

from .ades import (
    read_ades_psv,
    to_ades_psv,
    to_tracklet_ades_psv,
    validate_ades_psv,
    write_ades,
    write_tracklet_ades,
)
from .ecsv import catalog_table, read_ecsv, write_ecsv
from .regions import read_tracks, track_regions, write_regions

__all__ = [
    "catalog_table",
    "read_ades_psv",
    "read_ecsv",
    "read_tracks",
    "to_ades_psv",
    "to_tracklet_ades_psv",
    "track_regions",
    "validate_ades_psv",
    "write_ades",
    "write_ecsv",
    "write_regions",
    "write_tracklet_ades",
]
