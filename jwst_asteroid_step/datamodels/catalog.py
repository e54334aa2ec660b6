"""The asteroid catalog data model and helpers to build and read its table.

``CATALOG_COLUMNS`` is the one authoritative list of catalog columns; the schema
``schemas/asteroid_catalog-1.0.0.yaml`` must agree with it (a test checks this).
Users' scripts read these names (DESIGN.md §5): add columns, never rename them.
"""

import errno
import warnings
from pathlib import PurePath

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import QTable
from asdf.tags.core import ndarray
from stdatamodels import fits_support, properties, util, validate
from stdatamodels.jwst.datamodels import JwstDataModel

__all__ = [
    "CATALOG_COLUMNS",
    "CATALOG_DTYPE",
    "CATALOG_SCHEMA_URI",
    "AsteroidCatalogModel",
    "catalog_from_table",
    "empty_catalog",
]

CATALOG_SCHEMA_URI = "asdf://jwst-asteroid-step/schemas/asteroid_catalog-1.0.0"

METHOD_LEN = 16

#: (name, numpy dtype string, unit string or "", description), in table order.
#: Unit strings are astropy-parseable.
CATALOG_COLUMNS = (
    ("id", "i4", "", "Detection identifier, unique within the file"),
    ("integration", "i4", "", "1-based integration index"),
    ("x", "f8", "pix", "Column (0-based SCI pixel index) at t_int"),
    ("y", "f8", "pix", "Row (0-based SCI pixel index) at t_int"),
    ("x_err", "f8", "pix", "1-sigma uncertainty of x"),
    ("y_err", "f8", "pix", "1-sigma uncertainty of y"),
    ("t_int", "f8", "s", "Reference time, seconds since the integration's first read"),
    ("mjd", "f8", "d", "Reference time as UTC MJD"),
    ("vx", "f8", "pix/s", "Apparent motion along x on the detector"),
    ("vy", "f8", "pix/s", "Apparent motion along y on the detector"),
    ("vx_err", "f8", "pix/s", "1-sigma uncertainty of vx"),
    ("vy_err", "f8", "pix/s", "1-sigma uncertainty of vy"),
    ("flux", "f8", "DN/s", "Total source count rate"),
    ("flux_err", "f8", "DN/s", "1-sigma uncertainty of flux, the PSF normalisation's included"),
    ("snr", "f8", "", "Matched-filter SNR of the detection"),
    ("ra", "f8", "deg", "Right ascension at mjd (NaN when no WCS)"),
    ("dec", "f8", "deg", "Declination at mjd (NaN when no WCS)"),
    ("ra_err", "f8", "arcsec", "1-sigma uncertainty of ra (on the sky, includes cos dec)"),
    ("dec_err", "f8", "arcsec", "1-sigma uncertainty of dec"),
    ("ra_rate", "f8", "arcsec/h", "Sky motion in right ascension, includes cos dec"),
    ("dec_rate", "f8", "arcsec/h", "Sky motion in declination"),
    ("ra_rate_err", "f8", "arcsec/h", "1-sigma uncertainty of ra_rate"),
    ("dec_rate_err", "f8", "arcsec/h", "1-sigma uncertainty of dec_rate"),
    ("ra_dec_corr", "f8", "", "Correlation of the ra and dec errors"),
    ("flux_mjy", "f8", "mJy", "Total flux density: flux x PHOTMJSR x PIXAR_SR (NaN if uncalibrated)"),
    ("flux_mjy_err", "f8", "mJy", "1-sigma uncertainty of flux_mjy (measurement only)"),
    ("abmag", "f8", "mag", "AB magnitude, -2.5 log10(flux_mjy / 3631e3)"),
    ("abmag_err", "f8", "mag", "1-sigma uncertainty of abmag"),
    ("n_groups", "i4", "", "Number of groups on the track"),
    ("n_pixels", "i4", "", "Number of pixels touched by the track"),
    ("n_jumps", "i4", "", "Number of JUMP_DET cells on the track"),
    ("chi2_dof", "f8", "", "Reduced chi-square of the moving-PSF fit"),
    ("trail_in_group", "?", "", "Object moves more than a PSF FWHM within one group"),
    ("method", f"S{METHOD_LEN}", "", "How it was found: jump, search, both, multi-int"),
)

CATALOG_DTYPE = np.dtype([(name, dtype) for name, dtype, _, _ in CATALOG_COLUMNS])

_UNITS = {name: (u.Unit(unit) if unit else None) for name, _, unit, _ in CATALOG_COLUMNS}


def _default(dtype):
    """Fill value of a column: NaN marks "not measured" for floats."""
    kind = np.dtype(dtype).kind
    return np.nan if kind == "f" else (b"" if kind == "S" else 0)


def _plain_table(table):
    """Copy a FITS_rec into a plain structured array; pass others through."""
    if not isinstance(table, fits.FITS_rec):
        return np.asanyarray(table)
    # Field access decodes FITS logicals and scaled columns; the raw record does not.
    dtype = [(n, table[n].dtype.newbyteorder("="), table[n].shape[1:]) for n in table.names]
    out = np.empty(len(table), dtype=dtype)
    for name in table.names:
        out[name] = table[name]
    return out


def empty_catalog(n=0):
    """Make a catalog array of ``n`` rows holding "no value" defaults.

    Parameters
    ----------
    n : int, optional
        Number of rows.

    Returns
    -------
    numpy.ndarray
        Structured array, shape (n,), dtype `CATALOG_DTYPE`: float columns NaN,
        integer columns 0, ``trail_in_group`` False, ``method`` ``b""``.
    """
    cat = np.zeros(n, dtype=CATALOG_DTYPE)
    for name, dtype, _, _ in CATALOG_COLUMNS:
        cat[name] = _default(dtype)
    return cat


def _column_values(name, values, unit):
    """Turn one input column into a plain 1-D array in the catalog's unit."""
    if isinstance(values, u.Quantity):
        if unit is None:
            unit = u.dimensionless_unscaled
        try:
            values = values.to_value(unit)
        except u.UnitConversionError as err:
            raise ValueError(f"column {name!r}: unit {values.unit} is not {unit}") from err
    values = np.asanyarray(values)
    if values.ndim != 1:
        raise ValueError(f"column {name!r}: expected a 1-D column, got shape {values.shape}")
    return values


def catalog_from_table(table):
    """Build a catalog array from a table of detections.

    Parameters
    ----------
    table : astropy.table.Table, QTable, dict of array-like, or numpy structured array
        Columns named as in `CATALOG_COLUMNS`, all of the same length. Quantity
        columns are converted to the catalog units; masked entries and missing
        columns take the `empty_catalog` defaults; columns not in
        `CATALOG_COLUMNS` are ignored. ``method`` may be str or bytes.

    Returns
    -------
    numpy.ndarray
        Structured array, shape (n_rows,), dtype `CATALOG_DTYPE`.

    Raises
    ------
    ValueError
        If a column has the wrong length, dimensionality, unit or a dtype that
        cannot be cast to the catalog dtype without changing kind (e.g. float to
        int, text to number, or a ``method`` longer than 16 ASCII characters).
        The message names the column.
    """
    if isinstance(table, np.ndarray) and table.dtype.names:
        # Field access (not a whole-array view) so FITS_rec logical columns read as bool.
        table = {name: table[name] for name in table.dtype.names}
    present = [c for c in CATALOG_COLUMNS if c[0] in table.keys()]
    columns = {name: _column_values(name, table[name], _UNITS[name]) for name, *_ in present}

    n = len(next(iter(columns.values()), ()))
    for name, values in columns.items():
        if len(values) != n:
            raise ValueError(f"column {name!r} has {len(values)} rows, expected {n}")

    cat = empty_catalog(n)
    for name, dtype, _, _ in present:
        values, target = columns[name], np.dtype(dtype)
        # Covers both MaskedColumn (numpy.ma) and astropy's Masked quantities.
        if np.any(getattr(values, "mask", False)):
            values = values.filled(_default(dtype))
        if target.kind == "S":
            if values.dtype.kind not in "SUO":
                raise ValueError(f"column {name!r}: expected text, got {values.dtype}")
            try:
                values = np.char.encode(values.astype(str), "ascii")
            except UnicodeEncodeError as err:
                raise ValueError(f"column {name!r}: values must be ASCII") from err
            if values.dtype.itemsize > target.itemsize:
                raise ValueError(f"column {name!r}: values longer than {target.itemsize} chars")
        elif not np.can_cast(values.dtype, target, "same_kind"):
            raise ValueError(f"column {name!r}: cannot store {values.dtype} as {target}")
        cat[name] = values
    return cat


def _write_error(target, err):
    """Message for a failed catalog write: the file, the problem, the remedy."""
    problem = err.strerror or str(err) or type(err).__name__
    if err.errno == errno.ENOSPC or err.errno == errno.EDQUOT:
        remedy = "free space on that file system or choose another output_dir"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        remedy = "choose a writable output_dir"
    elif err.errno == errno.ENOENT:
        remedy = "create the output directory first"
    else:
        remedy = "check the output directory"
    return (f"could not write the asteroid catalog {target}: {problem}; nothing was written under "
            f"that name; {remedy}")


class AsteroidCatalogModel(JwstDataModel):
    """Asteroid detections from one exposure, with their provenance.

    Saved as ``<root>_asteroids.asdf`` and validated against
    ``asdf://jwst-asteroid-step/schemas/asteroid_catalog-1.0.0``.

    Attributes
    ----------
    catalog : numpy structured array, shape (n_detections,)
        One row per detection, columns and units as in `CATALOG_COLUMNS`.
    meta.asteroid_detect : object
        Provenance: input_file, fitopt_file, parameters (JSON string), software
        versions, counts of classified events, random_seed, wcs_source,
        psf_fwhm (pix) and notes.
    """

    schema_url = CATALOG_SCHEMA_URI

    def __init__(self, init=None, validate_arrays=True, **kwargs):
        # validate_arrays: check the catalog's columns and dtypes, not only meta.
        super().__init__(init=init, validate_arrays=validate_arrays, **kwargs)
        fits_catalog = self.__dict__.pop("_fits_catalog", None)
        if fits_catalog is not None:
            self.catalog = fits_catalog
        elif self.catalog is None:
            # stdatamodels leaves unset tables as None; a run with no
            # detections must still write a valid (zero-row) table.
            self.catalog = empty_catalog(0)
        elif isinstance(self.catalog, ndarray.NDArrayType):
            # asdf's lazy array wrapper: give users a real numpy array.
            self._instance["catalog"] = np.asarray(self.catalog)
        if isinstance(init, (str, PurePath)):
            # stdatamodels validates only on save: catch a bad file on read
            # (a ValidationWarning, or an error with strict_validation).
            self.validate()

    # stdatamodels 6.0 converts tables to FITS_rec on assignment and on FITS
    # read, and with astropy 8 that turns every bool cell True (the raw
    # b"T"/b"F" bytes are both non-zero). The three overrides below keep the
    # catalog a plain structured array and encode bools only at FITS I/O.

    def __setattr__(self, attr, value):
        if attr != "catalog" or value is None:
            return super().__setattr__(attr, value)
        # Same cast and validation as stdatamodels' ObjectNode.__setattr__,
        # minus the conversion to FITS_rec.
        schema = properties._get_schema_for_property(self._schema, attr)
        dtype = ndarray.asdf_datatype_to_numpy_dtype(schema["datatype"])
        value = util.gentle_asarray(_plain_table(value), dtype)
        if validate.value_change(attr, value, schema, self):
            self._instance[attr] = value
        return None

    def _migrate_hdulist(self, hdulist):
        # Stash the correctly decoded table before stdatamodels casts it.
        if "CATALOG" in hdulist:
            self._fits_catalog = _plain_table(hdulist["CATALOG"].data)
        return hdulist

    def to_fits(self, init, *args, **kwargs):
        """Write the model to a FITS file, the catalog as the CATALOG table.

        Parameters
        ----------
        init : str or file-like
            Output path or file.
        *args, **kwargs
            Passed to `astropy.io.fits.HDUList.writeto`.
        """
        # Mirrors DataModel.to_fits, but re-sets the table through
        # FITS_rec.from_columns, which encodes bools as FITS logicals: astropy 8
        # rejects the raw 0x01 bytes of a plain bool field set as hdu.data.
        self.on_save(init)
        hdulist = fits_support.to_fits(self._instance, self._schema)
        if "CATALOG" in hdulist:
            hdulist["CATALOG"].data = fits.FITS_rec.from_columns(np.asarray(self.catalog))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Card is too long")
            hdulist.writeto(init, *args, **kwargs)

    def save(self, path, dir_path=None, *args, **kwargs):
        """Save atomically: write a temporary file beside the target, then rename.

        An interrupted run (a kill, a full disk) never leaves a half-written
        catalog under the final name; the temporary file is removed on failure
        (a process killed outright can leave a hidden ``.<name>.*`` folder, never
        a partial ``<name>``).

        Parameters
        ----------
        path : str or path-like
            Output file name (``.asdf``, or ``.fits``).
        dir_path : str, optional
            Directory, as for :meth:`stdatamodels.DataModel.save`.

        Returns
        -------
        str
            The path written.

        Raises
        ------
        OSError
            When the file cannot be written (read-only directory, full disk);
            the message names the file, the problem and the remedy, and the
            errno is the original one.
        """
        import os
        import shutil
        import tempfile

        target = os.path.join(dir_path, os.fspath(path)) if dir_path else os.fspath(path)
        folder, name = os.path.split(os.path.abspath(target))
        tmp_dir = None
        try:
            # A private folder beside the target keeps the file's own name (it is
            # recorded inside) and the rename on one file system.
            tmp_dir = tempfile.mkdtemp(prefix=f".{name}.", dir=folder)
            super().save(os.path.join(tmp_dir, name), *args, **kwargs)
            os.replace(os.path.join(tmp_dir, name), target)
        except OSError as err:
            raise OSError(err.errno, _write_error(target, err)) from err
        finally:
            if tmp_dir is not None:
                shutil.rmtree(tmp_dir, ignore_errors=True)
        return target

    def to_table(self):
        """Return the catalog as a table with units.

        Returns
        -------
        astropy.table.QTable
            One row per detection; columns with a unit in `CATALOG_COLUMNS` are
            Quantities, ``method`` is decoded to str. Columns beyond
            `CATALOG_COLUMNS` (from newer files) are kept as plain columns.
        """
        cat = np.asarray(self.catalog)
        table = QTable()
        for name in cat.dtype.names:
            values = np.asarray(cat[name])
            unit = _UNITS.get(name)
            if unit is not None:
                values = values * unit
            elif values.dtype.kind == "S":
                values = np.char.decode(values, "ascii")
            table[name] = values
        for name, _, _, description in CATALOG_COLUMNS:
            if name in table.colnames:
                table[name].info.description = description
        return table
