"""Tests of AsteroidCatalogModel, its schema and the catalog helpers."""

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import asdf
import numpy as np
import pytest
from asdf.tags.core import ndarray
from astropy import units as u
from astropy.io import fits
from astropy.table import MaskedColumn, QTable, Table
from stdatamodels.exceptions import ValidationWarning

from jwst_asteroid_step.datamodels import (
    CATALOG_COLUMNS,
    AsteroidCatalogModel,
    catalog_from_table,
    empty_catalog,
)
from jwst_asteroid_step.datamodels.catalog import CATALOG_DTYPE, CATALOG_SCHEMA_URI

# DESIGN.md §5: names users' scripts rely on. Never renamed.
DESIGN_COLUMNS = {
    "id": "", "integration": "", "x": "pix", "y": "pix", "x_err": "pix", "y_err": "pix",
    "t_int": "s", "mjd": "d", "vx": "pix/s", "vy": "pix/s", "vx_err": "pix/s",
    "vy_err": "pix/s", "flux": "DN/s", "flux_err": "DN/s", "snr": "", "ra": "deg",
    "dec": "deg", "ra_rate": "arcsec/h", "dec_rate": "arcsec/h", "n_groups": "",
    "n_pixels": "", "n_jumps": "", "method": "",
}  # fmt: skip

PROVENANCE = {
    "input_file": "jw01234001001_01101_00001_mirimage_jump.fits",
    "fitopt_file": "N/A",
    "parameters": json.dumps({"snr_threshold": 6.5, "use_jumps": True}),
    "software": {
        "jwst_asteroid_step": "0.1.0",
        "jwst": "3.0.0",
        "stcal": "1.19.1",
        "stpipe": "1.0.0",
        "numpy": "2.2.0",
    },
    "counts": {
        "n_detections": 3,
        "n_cosmic_rays": 8123,
        "n_showers": 2,
        "n_mover_candidates": 17,
        "n_pixel_noise": 410,
        "n_jump_cells": 52011,
    },
    "random_seed": 12345,
    "wcs_source": "none",
    "psf_fwhm": 2.45,
    "notes": "unit test",
}


def schema_columns():
    """The catalog column list of the installed schema, through the resource mapping."""
    schema = asdf.schema.load_schema(CATALOG_SCHEMA_URI, resolve_references=False)
    props = next(s["properties"] for s in schema["allOf"] if "properties" in s)
    return props["catalog"]["datatype"], props["meta"]["properties"]["asteroid_detect"]


def three_rows():
    cat = empty_catalog(3)
    cat["id"] = [1, 2, 3]
    cat["integration"] = [1, 1, 2]
    cat["x"] = [512.25, 10.0, 1000.5]
    cat["y"] = [300.75, np.nan, 20.125]
    cat["t_int"] = [13.875, 0.0, 277.5]
    cat["mjd"] = [60310.123456789, 60310.1, np.nan]
    cat["vx"] = [0.01, -0.125, np.nan]
    cat["flux"] = [35.5, 1.25e4, 0.5]
    cat["snr"] = [7.1, 250.0, 6.5]
    cat["ra"] = [80.48, np.nan, 80.49]
    cat["ra_rate"] = [12.5, np.nan, -3.0]
    cat["n_groups"] = [40, 3, 100]
    cat["n_jumps"] = [0, 12, 2]
    cat["chi2_dof"] = [1.02, 3.5, np.nan]
    cat["trail_in_group"] = [False, True, False]
    cat["method"] = [b"search", b"jump", b"multi-int"]
    return cat


def make_model(cat):
    model = AsteroidCatalogModel()
    model.catalog = cat
    model.meta.asteroid_detect = PROVENANCE
    model.meta.instrument.name = "MIRI"
    model.meta.cal_step.asteroid_detect = "COMPLETE"
    return model


def assert_catalog_equal(actual, expected):
    actual = np.asarray(actual)
    assert actual.dtype.names == expected.dtype.names
    for name in expected.dtype.names:
        # assert_array_equal treats NaN == NaN, so NaN positions are checked too.
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
        assert actual[name].dtype == expected[name].dtype, name


def test_schema_matches_catalog_columns():
    datatype, _ = schema_columns()
    assert [c["name"] for c in datatype] == [c[0] for c in CATALOG_COLUMNS]
    schema_dtype = ndarray.asdf_datatype_to_numpy_dtype(datatype)
    for (name, dtype, unit, _), column in zip(CATALOG_COLUMNS, datatype, strict=True):
        assert schema_dtype[name] == np.dtype(dtype), name
        assert column.get("unit", "") == unit, name
        if unit:
            assert f"[{unit}]" in column["title"], name
    assert schema_dtype == CATALOG_DTYPE


def test_design_columns_present_with_units():
    units = {name: unit for name, _, unit, _ in CATALOG_COLUMNS}
    for name, unit in DESIGN_COLUMNS.items():
        assert name in units, name
        assert u.Unit(units[name] or "") == u.Unit(unit or ""), name


def test_schema_provenance_fields():
    _, provenance = schema_columns()
    assert set(PROVENANCE) <= set(provenance["properties"])
    assert set(PROVENANCE["counts"]) <= set(provenance["properties"]["counts"]["properties"])
    assert set(PROVENANCE["software"]) <= set(provenance["properties"]["software"]["properties"])
    assert provenance["additionalProperties"] is True


def test_resource_mapping_resolves_schema_uri():
    content = asdf.get_config().resource_manager[CATALOG_SCHEMA_URI]
    assert f"id: \"{CATALOG_SCHEMA_URI}\"".encode() in content
    assert AsteroidCatalogModel.schema_url == CATALOG_SCHEMA_URI


def test_empty_catalog_defaults():
    cat = empty_catalog(2)
    assert cat.dtype == CATALOG_DTYPE and cat.shape == (2,)
    assert np.isnan(cat["x"]).all() and np.isnan(cat["ra_rate_err"]).all()
    assert (cat["id"] == 0).all() and (cat["n_jumps"] == 0).all()
    assert not cat["trail_in_group"].any()
    assert (cat["method"] == b"").all()
    assert empty_catalog().shape == (0,)


def test_asdf_round_trip(tmp_path):
    cat = three_rows()
    path = tmp_path / "jw01234001001_01101_00001_mirimage_asteroids.asdf"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any ValidationWarning fails the test
        make_model(cat).save(path)
        with AsteroidCatalogModel(path, strict_validation=True) as model:
            assert isinstance(model.catalog, np.ndarray)
            assert_catalog_equal(model.catalog, cat)
            assert model.meta.asteroid_detect.instance == PROVENANCE
            assert model.meta.cal_step.asteroid_detect == "COMPLETE"
            assert model.meta.instrument.name == "MIRI"
            assert model.meta.filename == path.name
            assert model.meta.model_type == "AsteroidCatalogModel"


def test_bool_column_survives_assignment():
    # Regression: stdatamodels' FITS_rec cast turned every bool True (astropy 8).
    model = AsteroidCatalogModel()
    model.catalog = three_rows()
    assert model.catalog["trail_in_group"].tolist() == [False, True, False]
    assert isinstance(model.catalog, np.ndarray)


def test_empty_catalog_round_trip(tmp_path):
    path = tmp_path / "empty_asteroids.asdf"
    model = AsteroidCatalogModel()
    assert model.catalog.shape == (0,) and model.catalog.dtype == CATALOG_DTYPE
    model.meta.asteroid_detect = {**PROVENANCE, "counts": {"n_detections": 0}}
    model.save(path)
    with AsteroidCatalogModel(path, strict_validation=True) as read:
        assert read.catalog.shape == (0,)
        assert np.asarray(read.catalog).dtype == CATALOG_DTYPE
        assert len(read.to_table()) == 0
        assert read.meta.asteroid_detect.counts.n_detections == 0


def test_fits_round_trip(tmp_path):
    cat = three_rows()
    path = tmp_path / "x_asteroids.fits"
    make_model(cat).save(path)
    with fits.open(path) as hdul:
        assert hdul["CATALOG"].data["trail_in_group"].tolist() == [False, True, False]
    with AsteroidCatalogModel(path, strict_validation=True) as model:
        assert_catalog_equal(model.catalog, cat)
        assert model.meta.asteroid_detect.instance == PROVENANCE


def test_asdftool_info_reads_file(tmp_path):
    path = tmp_path / "x_asteroids.asdf"
    make_model(three_rows()).save(path)
    # The console script, as users run it (its module is private in asdf 5).
    asdftool = shutil.which("asdftool", path=Path(sys.executable).parent) or shutil.which(
        "asdftool"
    )
    assert asdftool, "asdftool (from the asdf package) is not installed"
    result = subprocess.run(
        [asdftool, "info", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "catalog" in result.stdout and "asteroid_detect" in result.stdout


def test_assignment_rejects_missing_column():
    bad = np.zeros(2, dtype=CATALOG_DTYPE.descr[:-1])
    model = AsteroidCatalogModel()
    with pytest.raises(ValueError, match="method"):
        model.catalog = bad


def test_schema_validation_rejects_bad_file(tmp_path):
    path = tmp_path / "bad_asteroids.asdf"
    bad = np.zeros(2, dtype=CATALOG_DTYPE.descr[:-1])
    asdf.AsdfFile({"catalog": bad, "meta": {"model_type": "AsteroidCatalogModel"}}).write_to(path)
    with pytest.warns(ValidationWarning, match="catalog"):
        AsteroidCatalogModel(path).close()
    with pytest.raises(asdf.ValidationError, match="number of fields"):
        AsteroidCatalogModel(path, strict_validation=True)


def test_schema_validation_rejects_bad_meta():
    model = AsteroidCatalogModel(strict_validation=True)
    with pytest.raises(asdf.ValidationError):
        model.meta.asteroid_detect = {**PROVENANCE, "wcs_source": "guess"}
    with pytest.raises(asdf.ValidationError):
        model.meta.asteroid_detect = {**PROVENANCE, "counts": {"n_detections": "three"}}


def test_to_table_units():
    model = make_model(three_rows())
    table = model.to_table()
    assert isinstance(table, QTable)
    assert table.colnames == [c[0] for c in CATALOG_COLUMNS]
    expected = {
        "x": u.pix, "x_err": u.pix, "t_int": u.s, "mjd": u.d, "vx": u.pix / u.s,
        "flux": u.DN / u.s, "ra": u.deg, "dec_err": u.arcsec,
        "ra_rate": u.arcsec / u.hour, "dec_rate_err": u.arcsec / u.hour,
    }  # fmt: skip
    for name, unit in expected.items():
        assert table[name].unit == unit, name
    assert table["ra_rate"][0] == 12.5 * u.arcsec / u.hour
    for name in ("id", "snr", "n_groups", "chi2_dof", "trail_in_group", "method"):
        assert not isinstance(table[name], u.Quantity), name
    assert table["method"].tolist() == ["search", "jump", "multi-int"]
    assert table["trail_in_group"].dtype == bool


def test_catalog_from_table_round_trips_to_table():
    cat = three_rows()
    assert_catalog_equal(catalog_from_table(make_model(cat).to_table()), cat)


def test_catalog_from_table_fills_and_converts():
    table = QTable()
    table["id"] = [7, 8]
    table["x"] = [1.0, 2.0] * u.pix
    table["ra_rate"] = [1.0, -2.0] * u.arcsec / u.s  # converted to arcsec/h
    table["method"] = ["search", "both"]
    table["scratch"] = [0, 0]  # not a catalog column: ignored
    cat = catalog_from_table(table)
    assert cat.dtype == CATALOG_DTYPE
    np.testing.assert_allclose(cat["ra_rate"], [3600.0, -7200.0])
    assert cat["method"].tolist() == [b"search", b"both"]
    assert np.isnan(cat["y"]).all() and (cat["n_groups"] == 0).all()

    masked = Table({"flux": MaskedColumn([1.0, 2.0], mask=[False, True])})
    np.testing.assert_array_equal(catalog_from_table(masked)["flux"], [1.0, np.nan])
    from_dict = catalog_from_table({"id": np.array([1], dtype=np.int64), "snr": [9.0]})
    assert from_dict["id"][0] == 1 and from_dict["snr"][0] == 9.0
    assert catalog_from_table({}).shape == (0,)


@pytest.mark.parametrize(
    ("columns", "bad"),
    [
        ({"id": [1, 2], "x": [1.0]}, "x"),  # length
        ({"id": [1.5, 2.0]}, "id"),  # float into int
        ({"x": ["a", "b"]}, "x"),  # text into float
        ({"trail_in_group": [1, 0]}, "trail_in_group"),  # int into bool
        ({"method": ["a-much-too-long-method"]}, "method"),  # > 16 chars
        ({"method": [1]}, "method"),
        ({"x": [[1.0, 2.0]]}, "x"),  # 2-D
        ({"x": [1.0] * u.s}, "x"),  # wrong unit
    ],
)
def test_catalog_from_table_rejects(columns, bad):
    with pytest.raises(ValueError, match=f"'{bad}'"):
        catalog_from_table(columns)


def test_save_is_atomic(tmp_path, monkeypatch):
    """A failed save leaves neither a partial file under the final name nor a temporary."""
    from stdatamodels.jwst.datamodels import JwstDataModel

    model = AsteroidCatalogModel()
    good = tmp_path / "x_asteroids.asdf"
    model.save(good)
    before = good.read_bytes()

    def broken(self, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(JwstDataModel, "save", broken)
    with pytest.raises(OSError, match="No space left"):
        model.save(good)
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_asteroids.asdf"]
