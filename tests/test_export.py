"""Catalog exports: ECSV, MPC ADES PSV, DS9/CRTF regions (jwst_asteroid_step.export)."""

import importlib
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.time import Time
from stdatamodels.jwst import datamodels

from jwst_asteroid_step.cli import main
from jwst_asteroid_step.datamodels import AsteroidCatalogModel, empty_catalog
from jwst_asteroid_step.export import (
    catalog_table,
    read_ades_psv,
    read_ecsv,
    read_tracks,
    to_ades_psv,
    track_regions,
    validate_ades_psv,
    write_ades,
    write_ecsv,
    write_regions,
)
from jwst_asteroid_step.export.ades import (
    ADES_VERSION,
    REQUIRED_CONTEXT,
    REQUIRED_ID_ONE_OF,
    REQUIRED_LOCATION,
    REQUIRED_OPTICAL,
)
from jwst_asteroid_step.simulate.metadata import fill_miri_imager_meta
from jwst_asteroid_step.sky import add_sky_columns, observer_metadata

DATA = Path(__file__).parent / "data"
ADES_FIXTURE = DATA / "jw_bright_mover_ades.psv"

# The ADES 2022 submission rules, from the MPC's schema ``xsd/submit.xsd`` of the
# IAU ADES repository (github.com/IAU-ADES/ADES-Master; described in
# ADES_Description_v07Sep2022.pdf): <ades version="2022">; ObsContextType requires
# observatory (mpcCode), submitter (name), measurers (name+) and telescope (design,
# aperture, detector); OpticalType requires an OpticalID (permID, provID, artSat or
# trkSub), mode, stn, obsTime, ra, dec and astCat, and the Location group
# (sys, ctr, pos1, pos2, pos3) is all-or-nothing.
SPEC_VERSION = "2022"
SPEC_REQUIRED_CONTEXT = {
    "observatory": ["mpcCode"],
    "submitter": ["name"],
    "measurers": ["name"],
    "telescope": ["design", "aperture", "detector"],
}
SPEC_REQUIRED_OPTICAL = ["mode", "stn", "obsTime", "ra", "dec", "astCat"]
SPEC_ID_ONE_OF = ["permID", "provID", "artSat", "trkSub"]
SPEC_LOCATION = ["sys", "ctr", "pos1", "pos2", "pos3"]


@pytest.fixture(scope="module")
def catalog_model():
    """Three detections on a SUB256 exposure with JWST's ephemeris; #3 has no WCS."""
    ramp = datamodels.RampModel()
    fill_miri_imager_meta(ramp, subarray="SUB256", ngroups=40, ra_ref=10.0, dec_ref=-5.0,
                          roll_ref=70.0)
    eph = ramp.meta.ephemeris
    eph.spatial_x_geo, eph.spatial_y_geo, eph.spatial_z_geo = -1.21e9, -0.72e9, -0.39e9
    eph.velocity_x_geo, eph.velocity_y_geo, eph.velocity_z_geo = 310.0, -520.0, -180.0
    cat = empty_catalog(3)
    cat["id"] = [1, 2, 3]
    cat["integration"] = 1
    cat["x"], cat["y"] = [100.3, 30.0, 200.0], [150.7, 40.0, 20.0]
    cat["x_err"], cat["y_err"] = [0.01, 0.05, 0.2], [0.012, 0.04, 0.2]
    cat["t_int"] = [5.8, 6.0, 5.5]
    cat["mjd"] = ramp.meta.exposure.start_time + cat["t_int"] / 86400.0
    cat["vx"], cat["vy"] = [0.8, -0.5, 0.1], [-0.4, 0.7, 0.0]
    cat["vx_err"] = cat["vy_err"] = [0.002, 0.01, 0.02]
    cat["flux"], cat["flux_err"] = [4000.0, 300.0, 100.0], [10.0, 20.0, 15.0]
    cat["snr"] = [330.0, 15.0, 7.5]
    cat["n_groups"], cat["n_pixels"], cat["n_jumps"] = 37, 80, [400, 5, 0]
    cat["method"] = [b"both", b"search", b"search"]
    cat, sky = add_sky_columns(cat, ramp)
    for name in ("ra", "dec", "ra_err", "dec_err", "ra_rate", "dec_rate"):
        cat[name][2] = np.nan
    model = AsteroidCatalogModel()
    model.update(ramp)
    model.meta.filename = "jw_export_test_asteroids.asdf"
    model.catalog = cat
    model.meta.asteroid_detect.wcs_source = sky["wcs_source"]
    model.meta.asteroid_detect.wcs = sky["wcs"]
    model.meta.asteroid_detect.observer = observer_metadata(ramp)
    model.meta.asteroid_detect.software = {"jwst_asteroid_step": "0.1.0", "jwst": "3.0.0"}
    return model


@pytest.fixture(scope="module")
def catalog_path(catalog_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "jw_export_test_asteroids.asdf"
    catalog_model.save(path)
    return path


# ---------------------------------------------------------------- ECSV


def test_ecsv_round_trip(catalog_path, tmp_path):
    path = write_ecsv(catalog_path, tmp_path / "cat.ecsv")
    table = read_ecsv(path)
    original = AsteroidCatalogModel(catalog_path).to_table()
    assert table.colnames == original.colnames
    for name in original.colnames:
        if name == "method":
            assert list(table[name]) == list(original[name])
            continue
        assert getattr(table[name], "unit", None) == getattr(original[name], "unit", None), name
        np.testing.assert_array_equal(u.Quantity(table[name]).value,
                                      u.Quantity(original[name]).value)
    assert table["ra_rate"].unit == u.arcsec / u.h
    assert table.meta["asteroid_detect"]["wcs_source"] == "pysiaf"
    assert table.meta["asteroid_detect"]["observer"]["mpc_code"] == "274"
    assert table.meta["instrument"]["filter"] == "F770W"
    assert "includes cos dec" in table["ra_err"].info.description


def test_ecsv_keeps_extra_columns_with_units(catalog_model):
    from jwst_asteroid_step.sky import add_flux_columns

    cat, _ = add_flux_columns(catalog_model.catalog, conversion=7e-14)
    table = catalog_table(cat)
    assert table["flux_mjy"].unit == u.mJy and table["abmag"].unit == u.mag


# ---------------------------------------------------------------- ADES


def test_required_field_lists_follow_the_spec():
    assert ADES_VERSION == SPEC_VERSION
    assert {k: list(v) for k, v in REQUIRED_CONTEXT.items()} == SPEC_REQUIRED_CONTEXT
    assert list(REQUIRED_OPTICAL) == SPEC_REQUIRED_OPTICAL
    assert list(REQUIRED_ID_ONE_OF) == SPEC_ID_ONE_OF
    assert list(REQUIRED_LOCATION) == SPEC_LOCATION


def _check_required(header, records):
    assert header["version"] == SPEC_VERSION
    for group, elements in SPEC_REQUIRED_CONTEXT.items():
        for element in elements:
            assert header[group][element] and all(header[group][element]), (group, element)
    assert header["observatory"]["mpcCode"] == ["274"]
    for rec in records:
        assert any(rec.get(k) for k in SPEC_ID_ONE_OF)
        for name in SPEC_REQUIRED_OPTICAL + SPEC_LOCATION:
            assert rec.get(name), name
        assert rec["stn"] == "274"


def test_ades_round_trip(catalog_model):
    text, skipped = to_ades_psv(catalog_model, submitter="J. Doe",
                                measurers=["J. Doe", "A. N. Other"])
    assert skipped == [3]
    assert validate_ades_psv(text) == []
    header, records = read_ades_psv(text)
    _check_required(header, records)
    assert header["measurers"]["name"] == ["J. Doe", "A. N. Other"]
    cat = catalog_model.catalog[:2]
    assert [r["trkSub"] for r in records] == ["J1", "J2"]
    ra = np.array([float(r["ra"]) for r in records])
    dec = np.array([float(r["dec"]) for r in records])
    sep = SkyCoord(ra, dec, unit="deg").separation(SkyCoord(cat["ra"], cat["dec"], unit="deg"))
    assert np.all(sep.to_value(u.mas) < 0.4)  # 7 decimals of a degree
    times = Time([r["obsTime"][:-1] for r in records], format="isot", scale="utc").mjd
    np.testing.assert_allclose((times - cat["mjd"]) * 86400, 0, atol=6e-4)
    np.testing.assert_allclose([float(r["rmsRA"]) for r in records], cat["ra_err"], atol=6e-5)
    np.testing.assert_allclose([float(r["logSNR"]) for r in records], np.log10(cat["snr"]),
                               atol=0.006)
    # JWST geocentric position (km) propagated to obsTime.
    pos = np.array([[float(r[f"pos{k}"]) for k in (1, 2, 3)] for r in records])
    np.testing.assert_allclose(pos, [[-1.21e6, -0.72e6, -0.39e6]] * 2, atol=50.0)
    assert all(r["sys"] == "ICRF_KM" and r["ctr"] == "399" for r in records)
    assert "arcsec/h" in records[0]["remarks"]


def test_ades_without_ephemeris_has_no_location(catalog_model):
    text, _ = to_ades_psv(catalog_model, submitter="J. Doe", measurers=["J. Doe"],
                          observer={"mpc_code": "274"})
    _, records = read_ades_psv(text)
    assert not any(records[0].get(k) for k in SPEC_LOCATION)
    assert validate_ades_psv(text) == []


def test_ades_refuses_empty_reports(catalog_model):
    cat = catalog_model.catalog.copy()
    cat["ra"] = np.nan
    with pytest.raises(ValueError, match="no detection has a sky position"):
        to_ades_psv(cat, submitter="J. Doe", measurers=["J. Doe"])
    with pytest.raises(ValueError, match="submitter"):
        to_ades_psv(catalog_model, submitter="", measurers=["J. Doe"])


def test_ades_validator_catches_problems(catalog_model):
    text, _ = to_ades_psv(catalog_model, submitter="J. Doe", measurers=["J. Doe"], pad=False)
    assert validate_ades_psv(text) == []
    bad = text.replace("|274|", "|27|").replace("! mpcCode 274\n", "")
    problems = validate_ades_psv(bad.replace("Gaia2", ""))
    assert any("observatory/mpcCode" in p for p in problems)
    assert any("stn=" in p for p in problems)
    assert any("astCat missing" in p for p in problems)


def test_ades_fixture_has_every_required_field():
    text = ADES_FIXTURE.read_text()
    assert validate_ades_psv(text) == []
    header, records = read_ades_psv(text)
    assert len(records) == 1
    _check_required(header, records)


@pytest.mark.parametrize("source", ["fixture", "fresh"])
def test_ades_passes_the_official_submit_schema(source, catalog_model, tmp_path):
    """Convert with the IAU's own psvtoxml and validate against its submit.xsd."""
    ades = pytest.importorskip("ades", reason="iau-ades (the official ADES tools) not installed")
    from lxml import etree

    psv = tmp_path / "report.psv"
    if source == "fixture":
        psv.write_text(ADES_FIXTURE.read_text())
    else:
        write_ades(catalog_model, psv, submitter="J. Doe", measurers=["J. Doe"])
    psvtoxml = importlib.reload(importlib.import_module("ades.psvtoxml"))  # module-level state
    psvtoxml.psvtoxml(str(psv), str(tmp_path / "report.xml"))
    schema = etree.XMLSchema(etree.parse(str(Path(ades.__file__).parent / "data/xsd/submit.xsd")))
    document = etree.parse(str(tmp_path / "report.xml"))
    assert schema.validate(document), schema.error_log


# ---------------------------------------------------------------- regions


def _expected_ends(model):
    cat = model.catalog[:2]
    t_end = (model.meta.exposure.ngroups - 1) * model.meta.exposure.group_time
    ends = {}
    for row in cat:
        centre = SkyCoord(row["ra"], row["dec"], unit="deg")
        ends[int(row["id"])] = [
            centre.spherical_offsets_by(row["ra_rate"] * (t - row["t_int"]) / 3600 * u.arcsec,
                                        row["dec_rate"] * (t - row["t_int"]) / 3600 * u.arcsec)
            for t in (0.0, t_end)
        ]
    return ends


@pytest.mark.parametrize("fmt, suffix", [("ds9", ".reg"), ("crtf", ".crtf")])
def test_regions_round_trip(catalog_model, tmp_path, fmt, suffix):
    cat = catalog_model.catalog[:2]
    model = catalog_model.copy()
    model.catalog = cat
    path = write_regions(model, tmp_path / f"tracks{suffix}", format=fmt)
    tracks = read_tracks(path, format=fmt)
    assert sorted(tracks) == [1, 2]
    for det_id, (start, end) in _expected_ends(model).items():
        got_start, got_end = tracks[det_id]
        assert got_start.separation(start).to_value(u.mas) < 1.0
        assert got_end.separation(end).to_value(u.mas) < 1.0
    # The sense: the track starts where the object was at the first read.
    row = cat[0]
    first = SkyCoord(row["ra"], row["dec"], unit="deg").spherical_offsets_by(
        -row["ra_rate"] * row["t_int"] / 3600 * u.arcsec,
        -row["dec_rate"] * row["t_int"] / 3600 * u.arcsec)
    assert tracks[1][0].separation(first).to_value(u.mas) < 1.0
    regions = track_regions(model, format=fmt)
    assert len(regions) == 2 * 4  # track, start point, two arrowhead lines
    if fmt == "ds9":
        text = path.read_text()
        assert "tag={track}" in text and "tag={start}" in text and text.count("tag={head}") == 4


def test_regions_in_pixels_without_wcs(catalog_model, tmp_path):
    cat = catalog_model.catalog.copy()
    cat["ra"] = np.nan
    path = write_regions(cat, tmp_path / "pix.reg")
    assert "image" in path.read_text()
    tracks = read_tracks(path)
    row = cat[0]
    t_end = 2 * row["t_int"]  # no exposure metadata with a bare array
    start, end = tracks[1]
    np.testing.assert_allclose([start.x, start.y], [row["x"] - row["vx"] * row["t_int"],
                                                    row["y"] - row["vy"] * row["t_int"]], atol=1e-6)
    np.testing.assert_allclose([end.x, end.y], [row["x"] + row["vx"] * (t_end - row["t_int"]),
                                                row["y"] + row["vy"] * (t_end - row["t_int"])],
                               atol=1e-6)


# ---------------------------------------------------------------- command line


def test_cli_export(catalog_path, tmp_path, capsys):
    out = tmp_path / "c.ecsv"
    assert main(["export", str(catalog_path), "--format", "ecsv", "-o", str(out)]) == 0
    assert len(read_ecsv(tmp_path / "c.ecsv")) == 3
    out = tmp_path / "c.psv"
    assert main(["export", str(catalog_path), "--format", "ades", "-o", str(out),
                 "--submitter", "J. Doe", "--measurer", "J. Doe", "--ast-cat", "Gaia3"]) == 0
    assert "without sky coordinates: [3]" in capsys.readouterr().err
    assert validate_ades_psv(out.read_text()) == []
    assert read_ades_psv(out.read_text())[1][0]["astCat"] == "Gaia3"
    assert main(["export", str(catalog_path), "--format", "regions", "--regions-format", "crtf",
                 "-o", str(tmp_path / "c.crtf")]) == 0
    assert (tmp_path / "c.crtf").read_text().startswith("#CRTF")


def test_crtf_needs_sky_coordinates(catalog_model, tmp_path):
    cat = catalog_model.catalog.copy()
    cat["ra"] = np.nan
    with pytest.raises(ValueError, match="CRTF regions need sky coordinates"):
        write_regions(cat, tmp_path / "x.crtf", format="crtf")


def test_ades_observer_from_the_catalog_ephemeris(catalog_model):
    """Without a recorded observer, the ephemeris keywords the catalog copied are used."""
    model = catalog_model.copy()
    del model.meta.asteroid_detect.observer
    _, records = read_ades_psv(to_ades_psv(model, submitter="J. Doe", measurers=["J. Doe"])[0])
    assert float(records[0]["pos1"]) == pytest.approx(-1.21e6, abs=50.0)
