"""Tracklets: linking detections across the exposures of a visit (survey/tracklets.py)."""

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable

from jwst_asteroid_step.export.ades import read_ades_psv, to_tracklet_ades_psv, validate_ades_psv
from jwst_asteroid_step.survey.tracklets import (
    LinkConfig,
    fit_linear_motion,
    from_tangent_plane,
    link_tracklets,
    tangent_plane,
)


def _mover(ra0, dec0, ra_rate, dec_rate, mjds, rng, pos_err=0.02, rate_err=1.0):
    """Detections of one uniformly moving object at the given epochs (rates in arcsec/h)."""
    dt_h = (np.asarray(mjds) - mjds[0]) * 24.0
    xi = ra_rate * dt_h + rng.normal(0, pos_err, len(mjds))
    eta = dec_rate * dt_h + rng.normal(0, pos_err, len(mjds))
    ra, dec = from_tangent_plane(xi, eta, ra0, dec0)
    return {
        "ra": ra, "dec": dec, "mjd": np.asarray(mjds),
        "ra_err": np.full(len(mjds), pos_err), "dec_err": np.full(len(mjds), pos_err),
        "ra_dec_corr": np.zeros(len(mjds)),
        "ra_rate": ra_rate + rng.normal(0, rate_err, len(mjds)),
        "dec_rate": dec_rate + rng.normal(0, rate_err, len(mjds)),
        "ra_rate_err": np.full(len(mjds), rate_err), "dec_rate_err": np.full(len(mjds), rate_err),
    }


def _table(objects, exposures, visit="01234001001"):
    """A survey table from per-object dicts; object k's i-th row is in exposures[i]."""
    cols = {k: [] for k in objects[0]}
    meta = {"exposure": [], "integration": [], "id": [], "det_key": [], "visit_id": []}
    for k, obj in enumerate(objects):
        for i in range(len(obj["ra"])):
            for name, values in cols.items():
                values.append(obj[name][i])
            meta["exposure"].append(exposures[i])
            meta["integration"].append(1)
            meta["id"].append(k + 1)
            meta["det_key"].append(f"{exposures[i]}#{k + 1}")
            meta["visit_id"].append(visit)
    table = QTable({**{k: np.array(v) for k, v in cols.items()},
                    **{k: np.array(v) for k, v in meta.items()}})
    units = {"ra": u.deg, "dec": u.deg, "mjd": u.d, "ra_err": u.arcsec, "dec_err": u.arcsec,
             "ra_rate": u.arcsec / u.h, "dec_rate": u.arcsec / u.h,
             "ra_rate_err": u.arcsec / u.h, "dec_rate_err": u.arcsec / u.h}
    for name, unit in units.items():
        table[name] = table[name] * unit
    return table


# Four dithers, 6 minutes apart (a typical MIRI imaging visit: 4-point dither).
MJDS = 60400.1 + np.arange(4) * 6.0 / 1440.0
EXPOSURES = [f"jw01234001001_0210{i + 1}_00001_mirimage" for i in range(4)]


def test_tangent_plane_round_trip():
    ra, dec = np.array([10.0, 10.01, 359.99]), np.array([-30.0, -29.99, -30.02])
    xi, eta = tangent_plane(ra, dec, 10.0, -30.0)
    back = from_tangent_plane(xi, eta, 10.0, -30.0)
    np.testing.assert_allclose(back[0], ra, atol=1e-10)
    np.testing.assert_allclose(back[1], dec, atol=1e-10)
    assert xi[1] > 0 and eta[1] > 0  # east and north are positive


def test_fit_linear_motion_recovers_rate_and_chi2_is_chi2():
    rng = np.random.default_rng(1)
    chi2 = []
    for _ in range(300):
        t = np.array([0.0, 0.1, 0.2, 0.3])
        pos = np.stack([20 * t, -5 * t], axis=1) + rng.normal(0, 0.05, (4, 2))
        rate = np.array([20.0, -5.0]) + rng.normal(0, 2.0, (4, 2))
        fit = fit_linear_motion(t, pos, np.tile(np.eye(2) * 0.05**2, (4, 1, 1)), rate,
                                np.tile(np.eye(2) * 4.0, (4, 1, 1)))
        chi2.append(fit["chi2"])
    assert fit["dof"] == 12
    # Mean chi-square equals the degrees of freedom for a correct model.
    assert np.mean(chi2) == pytest.approx(12, rel=0.1)


def test_one_mover_in_four_dithers_is_one_tracklet_of_four():
    rng = np.random.default_rng(7)
    mover = _mover(150.0, 2.0, 25.0, -12.0, MJDS, rng)
    # A second object elsewhere with a different motion, and one with the same position
    # track but an inconsistent rate (must not be merged with the first).
    other = _mover(150.003, 2.002, -8.0, 30.0, MJDS, rng)
    table = _table([mover, other], EXPOSURES)
    result = link_tracklets(table)
    assert len(result.tracklets) == 2
    first = result.tracklets[result.tracklets["members"] == ",".join(
        f"{e}#1" for e in EXPOSURES)]
    assert len(first) == 1
    row = first[0]
    assert row["n_members"] == 4 and row["n_exposures"] == 4
    assert row["ra_rate"].to_value(u.arcsec / u.h) == pytest.approx(25.0, abs=1.0)
    assert row["dec_rate"].to_value(u.arcsec / u.h) == pytest.approx(-12.0, abs=1.0)
    assert row["p_value"] > 1e-3
    assert row["rms_residual"].to_value(u.arcsec) < 0.1
    assert np.all(result.detections["tracklet_id"] > 0)


def test_inconsistent_rate_or_position_is_not_linked():
    rng = np.random.default_rng(3)
    mover = _mover(150.0, 2.0, 25.0, -12.0, MJDS, rng)
    # Exposure 3's detection of the "same" object has a rate 20 sigma off, and exposure 4's
    # position is 1 arcsec off the line: neither may join.
    mover["ra_rate"][2] += 20.0
    xi, eta = tangent_plane(mover["ra"][3], mover["dec"][3], 150.0, 2.0)
    mover["ra"][3], mover["dec"][3] = from_tangent_plane(xi + 1.0, eta, 150.0, 2.0)
    result = link_tracklets(_table([mover], EXPOSURES))
    assert len(result.tracklets) == 1
    assert result.tracklets["n_members"][0] == 2
    assert sorted(result.detections["tracklet_id"]) == [-1, -1, 1, 1]


def test_nan_positions_are_left_out_gracefully():
    rng = np.random.default_rng(5)
    mover = _mover(150.0, 2.0, 25.0, -12.0, MJDS, rng)
    mover["ra"][1] = np.nan
    mover["dec"][1] = np.nan
    mover["ra_rate"][3] = np.nan  # no rate: linked on its position alone
    result = link_tracklets(_table([mover], EXPOSURES))
    assert len(result.tracklets) == 1 and result.tracklets["n_members"][0] == 3
    det = result.detections
    assert det["tracklet_id"][1] == -1 and det["link_note"][1] != ""
    assert np.isnan(det["resid_ra"][1])


def test_visits_are_kept_apart_and_time_window_applies():
    rng = np.random.default_rng(11)
    mover = _mover(150.0, 2.0, 25.0, -12.0, MJDS, rng)
    table = _table([mover], EXPOSURES)
    table["visit_id"] = ["a", "a", "b", "b"]
    result = link_tracklets(table)
    assert sorted(result.tracklets["n_members"]) == [2, 2]
    result = link_tracklets(table, LinkConfig(by_visit=False))
    assert list(result.tracklets["n_members"]) == [4]
    result = link_tracklets(table, LinkConfig(by_visit=False, max_hours=0.15))
    assert sorted(result.tracklets["n_members"]) == [2, 2]


def test_empty_and_single_tables():
    rng = np.random.default_rng(2)
    table = _table([_mover(150.0, 2.0, 25.0, -12.0, MJDS[:1], rng)], EXPOSURES[:1])
    assert len(link_tracklets(table).tracklets) == 0
    assert len(link_tracklets(table[:0]).tracklets) == 0


def test_tracklet_ades_is_one_observation_set_per_tracklet():
    rng = np.random.default_rng(7)
    table = _table([_mover(150.0, 2.0, 25.0, -12.0, MJDS, rng),
                    _mover(150.003, 2.002, -8.0, 30.0, MJDS, rng)], EXPOSURES)
    result = link_tracklets(table)
    text, skipped = to_tracklet_ades_psv(result, submitter="A. Tester", measurers=["A. Tester"])
    assert validate_ades_psv(text) == []
    _, records = read_ades_psv(text)
    assert len(records) == 8 and not skipped
    trk = {}
    for rec in records:
        trk.setdefault(rec["trkSub"], []).append(rec["obsTime"])
    assert sorted(len(v) for v in trk.values()) == [4, 4]
    assert all(v == sorted(v) for v in trk.values())
    assert all(rec["stn"] == "274" for rec in records)


def test_link_with_no_tracklet_says_so_and_writes_no_ades_report(tmp_path, capsys):
    """A visit with one detection gives no tracklet: a clear line, exit 0, no PSV file."""
    from jwst_asteroid_step.cli import main

    rng = np.random.default_rng(2)
    merged = tmp_path / "survey_detections.ecsv"
    _table([_mover(150.0, 2.0, 25.0, -12.0, MJDS[:1], rng)], EXPOSURES[:1]).write(merged)
    psv = tmp_path / "tracklets.psv"
    assert main(["link", str(merged), "-o", str(tmp_path / "visits"), "--ades", str(psv)]) == 0
    assert "No ADES report written" in capsys.readouterr().out
    assert not psv.exists()
    assert (tmp_path / "visits_tracklets.ecsv").exists()
