"""The catalog as an ECSV table (astropy), with units and provenance."""

import numpy as np
from astropy import units as u
from astropy.table import QTable

from ._common import catalog_and_meta, plain

__all__ = ["catalog_table", "read_ecsv", "write_ecsv"]

#: Metadata groups copied into the table's header.
_META_KEYS = ("filename", "asteroid_detect", "instrument", "exposure", "subarray", "observation",
              "aperture", "target", "cal_step", "ephemeris", "velocity_aberration")


def _column_info():
    from ..datamodels import CATALOG_COLUMNS
    from ..sky.photometry import FLUX_COLUMNS

    columns = CATALOG_COLUMNS + FLUX_COLUMNS
    return {name: (unit, description) for name, _, unit, description in columns}


def catalog_table(catalog):
    """The catalog as an astropy table with units, descriptions and metadata.

    Parameters
    ----------
    catalog : AsteroidCatalogModel, path, or numpy structured array

    Returns
    -------
    astropy.table.QTable
        One row per detection; ``method`` as str; ``meta`` holds the provenance
        (``asteroid_detect``: wcs_source, software, parameters, observer, ...) and
        the exposure's identifying metadata.
    """
    array, meta = catalog_and_meta(catalog)
    info = _column_info()
    table = QTable()
    for name in array.dtype.names:
        values = np.asarray(array[name])
        if values.dtype.kind == "S":
            values = np.char.decode(values, "ascii")
        unit, description = info.get(name, ("", ""))
        table[name] = values * u.Unit(unit) if unit else values
        if description:
            table[name].info.description = description
    table.meta.update({k: plain(meta[k]) for k in _META_KEYS if k in meta})
    return table


def write_ecsv(catalog, path, overwrite=True):
    """Write the catalog as ECSV.

    Parameters
    ----------
    catalog : AsteroidCatalogModel, path, or numpy structured array
    path : str or Path
        Output ``.ecsv`` file.
    overwrite : bool

    Returns
    -------
    Path
    """
    from pathlib import Path

    table = catalog_table(catalog)
    table.write(str(path), format="ascii.ecsv", overwrite=overwrite)
    return Path(path)


def read_ecsv(path):
    """Read a catalog ECSV file back (QTable with units and metadata)."""
    return QTable.read(str(path), format="ascii.ecsv")
