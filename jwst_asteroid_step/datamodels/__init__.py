"""Data models of jwst_asteroid_step: the asteroid catalog and its schema."""

from .catalog import (
    CATALOG_COLUMNS,
    CATALOG_DTYPE,
    CATALOG_SCHEMA_URI,
    AsteroidCatalogModel,
    catalog_from_table,
    empty_catalog,
)

__all__ = [
    "CATALOG_COLUMNS",
    "CATALOG_DTYPE",
    "CATALOG_SCHEMA_URI",
    "AsteroidCatalogModel",
    "catalog_from_table",
    "empty_catalog",
]
