"""Known-object matching from a supplied ephemeris table (survey/known.py)."""

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable, Table

from jwst_asteroid_step.survey.known import (
    match_known,
    normalize_ephemeris,
    predict_positions,
    read_ephemeris,
)
from jwst_asteroid_step.survey.tracklets import from_tangent_plane, link_tracklets, tangent_plane

RA0, DEC0, MJD0 = 150.0, 2.0, 60400.1
RATE = (25.0, -12.0)  # arcsec/h


def _truth(mjd, rate=RATE, start=(0.0, 0.0)):
    dt = (np.asarray(mjd) - MJD0) * 24.0
    return from_tangent_plane(start[0] + rate[0] * dt, start[1] + rate[1] * dt, RA0, DEC0)


def _ephemeris_table(tmp_path):
    """A Horizons-style CSV: hourly rows of a known object and of a far-away one."""
    mjd = MJD0 - 2 / 24 + np.arange(6) / 24.0
    ra, dec = _truth(mjd)
    far_ra, far_dec = _truth(mjd, start=(300.0, 0.0))
    table = Table({
        "targetname": ["2001 AB (1234)"] * 6 + ["Far (99)"] * 6,
        "datetime_jd": np.r_[mjd, mjd] + 2400000.5,
        "RA": np.r_[ra, far_ra], "DEC": np.r_[dec, far_dec],
        "RA_rate": [RATE[0]] * 12, "DEC_rate": [RATE[1]] * 12,
    })
    path = tmp_path / "horizons.csv"
    table.write(path, format="ascii.csv")
    return path


def _detections(mjds, rate=RATE, start=(0.0, 0.0), offset=0.0):
    ra, dec = _truth(mjds, rate, start)
    xi, eta = tangent_plane(ra, dec, RA0, DEC0)
    ra, dec = from_tangent_plane(xi + offset, eta, RA0, DEC0)
    n = len(mjds)
    return QTable({
        "ra": ra * u.deg, "dec": dec * u.deg, "mjd": np.asarray(mjds) * u.d,
        "ra_err": np.full(n, 0.03) * u.arcsec, "dec_err": np.full(n, 0.03) * u.arcsec,
        "ra_rate": np.full(n, rate[0]) * u.arcsec / u.h,
        "dec_rate": np.full(n, rate[1]) * u.arcsec / u.h,
        "ra_rate_err": np.full(n, 1.0) * u.arcsec / u.h,
        "dec_rate_err": np.full(n, 1.0) * u.arcsec / u.h,
        "exposure": [f"e{i}" for i in range(n)], "integration": np.ones(n, int),
        "id": np.arange(1, n + 1), "visit_id": ["v"] * n,
    })


def test_read_horizons_style_csv_and_interpolate(tmp_path):
    eph = read_ephemeris(_ephemeris_table(tmp_path))
    assert set(eph["designation"]) == {"2001 AB (1234)", "Far (99)"}
    assert eph["mjd"][0].to_value(u.d) == pytest.approx(MJD0 - 2 / 24)
    mjd = MJD0 + np.array([0.013, 0.1, 0.25])  # inside, inside, 3.6 h past the last row: extrapolated
    ra, dec, rr, _ = predict_positions(eph, "2001 AB (1234)", mjd, max_extrapolation_hours=6)
    true_ra, true_dec = _truth(mjd)
    sep = np.hypot((ra - true_ra) * np.cos(np.radians(DEC0)), dec - true_dec) * 3600
    assert np.all(sep < 0.01)
    np.testing.assert_allclose(rr, RATE[0], atol=0.01)
    ra, *_ = predict_positions(eph, "2001 AB (1234)", [MJD0 + 2.0], max_extrapolation_hours=6)
    assert np.isnan(ra[0])


def test_match_flags_known_object_and_not_a_stranger(tmp_path):
    eph = read_ephemeris(_ephemeris_table(tmp_path))
    mjds = MJD0 + np.arange(4) * 6.0 / 1440.0
    known = _detections(mjds, offset=0.8)  # 0.8 arcsec off the prediction
    stranger = _detections(mjds, rate=(-8.0, 30.0), start=(20.0, 20.0))
    table = QTable(np.concatenate([known.as_array(), stranger.as_array()]))
    for name in ("ra", "dec", "mjd"):
        table[name] = known[name].unit * np.asarray(table[name])
    for name in ("ra_rate", "dec_rate"):
        table[name] = np.asarray(table[name]) * u.arcsec / u.h
    table["ra"][0] = np.nan  # no WCS: never matched
    out = match_known(table, eph, radius=2.0)
    names = list(out["known_designation"])
    assert names[:4] == ["", "2001 AB (1234)", "2001 AB (1234)", "2001 AB (1234)"]
    assert names[4:] == [""] * 4
    assert out["known_offset"][1].to_value(u.arcsec) == pytest.approx(0.8, abs=0.02)
    assert out["known_rate_diff"][1].to_value(u.arcsec / u.h) < 0.05
    assert np.isnan(out["known_offset"][5])
    # A matching position with a very different rate is not the known object.
    wrong_rate = _detections(mjds[:1], rate=(80.0, 0.0))
    wrong_rate["ra"], wrong_rate["dec"] = known["ra"][:1], known["dec"][:1]
    assert match_known(wrong_rate, eph, radius=2.0)["known_designation"][0] == ""


def test_tracklets_match_too(tmp_path):
    eph = read_ephemeris(_ephemeris_table(tmp_path))
    mjds = MJD0 + np.arange(4) * 6.0 / 1440.0
    result = link_tracklets(_detections(mjds))
    assert len(result.tracklets) == 1
    out = match_known(result.tracklets, eph)
    assert out["known_designation"][0] == "2001 AB (1234)"
    assert out["known_offset"][0].to_value(u.arcsec) < 0.1


def test_skybot_style_columns_and_single_epoch_extrapolation():
    ra, dec = _truth([MJD0])
    sky = Table({"Number": [1234], "Name": ["Someone"], "RA": [ra[0]] * u.deg,
                 "DEC": [dec[0]] * u.deg, "RA_rate": [RATE[0] * 24] * u.arcsec / u.day,
                 "DEC_rate": [RATE[1]] * u.arcsec / u.h, "posunc": [0.5] * u.arcsec,
                 "epoch": [MJD0 + 2400000.5] * u.d})
    eph = normalize_ephemeris(sky)
    assert eph["designation"][0] == "Someone"
    assert eph["ra_rate"][0].to_value(u.arcsec / u.h) == pytest.approx(RATE[0])
    out = match_known(_detections(MJD0 + np.array([0.02])), eph, radius=1.0)
    assert out["known_designation"][0] == "Someone"


def test_missing_columns_are_reported():
    with pytest.raises(ValueError, match="designation"):
        normalize_ephemeris(Table({"ra": [1.0], "dec": [1.0], "mjd": [6e4]}))
