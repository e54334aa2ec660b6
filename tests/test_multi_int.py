"""Tests of the slow-mover search across integrations (jwst_asteroid_step.search.multi_int).

Ramps come from the package simulator (SUB64, FAST, five integrations, stars and
cosmic rays on; no jump step runs, so unflagged cosmic rays are left to the rate
helper's clipping).  Movers shift 0.01-0.02 px per group: under one PSF FWHM in an
integration, several px over the exposure.
"""

import numpy as np
import pytest

from jwst_asteroid_step.config import DetectionConfig
from jwst_asteroid_step.detect import DETECTION_COLUMNS, find_movers
from jwst_asteroid_step.psf import psf_for_filter
from jwst_asteroid_step.ramp.differences import IntegrationDifferences
from jwst_asteroid_step.search.multi_int import find_multi_int_movers, integration_rates
from jwst_asteroid_step.simulate import Mover, simulate_ramp

SUBARRAY, NGROUPS, NINTS = "SUB64", 60, 5
GT = 0.08512  # SUB64 FAST group time (s)
PSF = psf_for_filter("F770W")
RN, GAIN = 7.0, 4.0


def simulate_rates(movers=(), nints=NINTS, stars=5, cosmic_ray_rate=20.0, seed=0, **kwargs):
    """Simulated exposure turned into per-integration rate images, the caller's way."""
    model, truth = simulate_ramp(subarray=SUBARRAY, ngroups=NGROUPS, nints=nints, stars=stars,
                                 movers=list(movers), cosmic_ray_rate=cosmic_ray_rate,
                                 read_noise_cds=RN, gain=GAIN, seed=seed, **kwargs)
    diffs = [IntegrationDifferences(model.data[i], model.groupdq[i], model.pixeldq)
             for i in range(nints)]
    rates = integration_rates([d.diff for d in diffs], [d.jump for d in diffs], GT, RN, GAIN)
    starts = np.arange(nints) * truth.meta["integration_period"]
    return rates, starts, truth


def search(rates, starts, **kwargs):
    return find_multi_int_movers(rates.rates, rates.errors, rates.usable, starts,
                                 rates.time_weights, GT, PSF, **kwargs)


def truth_at(mover, row, starts):
    """True position of a mover (present in every integration) at a row's reference time."""
    t = starts[row["integration"] - 1] + row["t_int"]
    return mover.x0 + mover.vx * t, mover.y0 + mover.vy * t


def match(rows, mover, starts, tol=2.0):
    return [r for r in rows
            if np.hypot(*np.subtract(truth_at(mover, r, starts), (r["x"], r["y"]))) < tol]


def pulls(row, mover, starts):
    xt, yt = truth_at(mover, row, starts)
    return np.array([(row["x"] - xt) / row["x_err"], (row["y"] - yt) / row["y_err"],
                     (row["vx"] - mover.vx) / row["vx_err"], (row["vy"] - mover.vy) / row["vy_err"],
                     (row["flux"] - mover.flux) / row["flux_err"]])


# --- the per-integration rate images -------------------------------------------------


def test_integration_rates_errors_match_the_scatter():
    rates, _, _ = simulate_rates(stars=3, cosmic_ray_rate=0.0, seed=3)
    u = rates.usable.all(axis=0)
    w = 1.0 / rates.errors[:, u] ** 2
    mean = (w * rates.rates[:, u]).sum(axis=0) / w.sum(axis=0)
    chi2_dof = np.sum(w * (rates.rates[:, u] - mean) ** 2) / (u.sum() * (NINTS - 1))
    assert chi2_dof == pytest.approx(1.0, abs=0.08)
    # Reference columns and nothing else are unusable; the DO_NOT_USE edge
    # differences carry no weight; each integration's weights sum to 1.
    assert not rates.usable[:, :, :4].any() and rates.usable[:, :, 4:].all()
    assert rates.time_weights.shape == (NINTS, NGROUPS - 1)
    assert np.allclose(rates.time_weights.sum(axis=1), 1.0)
    assert np.all(rates.time_weights[:, [0, -1]] == 0)
    # Weights peak mid-ramp: read noise dominates, so the fit is close to OLS on reads.
    mid = (NGROUPS - 1) // 2
    assert rates.time_weights[0, mid] > 5 * rates.time_weights[0, 1]


def test_integration_rates_excludes_and_clips():
    rng = np.random.default_rng(1)
    # Read noise per read, so adjacent differences share it, as in a MIRI ramp.
    diffs = RN / np.sqrt(2) * np.diff(rng.standard_normal((3, 21, 8, 9)), axis=1) + 2.0  # DN/group
    exclude = np.zeros(diffs.shape, bool)
    diffs[0, 5, 2, 3] += 1000.0  # flagged jump
    exclude[0, 5, 2, 3] = True
    diffs[1, 7, 4, 4] += 500.0  # unflagged cosmic ray: clipped
    gain = 1e6  # read noise only, as drawn
    out = integration_rates(diffs, exclude, 1.0, RN, gain)
    assert out.n_clipped >= 1
    z = (out.rates - 2.0) / out.errors
    assert np.abs(z).max() < 5
    assert abs(np.std(z) - 1.0) < 0.15
    kept = integration_rates(diffs, exclude, 1.0, RN, gain, clip_sigma=None)
    assert (kept.rates[1, 4, 4] - 2.0) / kept.errors[1, 4, 4] > 10


# --- the search ---------------------------------------------------------------------


def test_recovers_slow_movers_with_their_sense():
    # 0.02 and 0.01 px/group: 1.2 and 0.6 px within an integration (FWHM 2.45 px),
    # 6 and 3 px over the exposure.
    movers = [Mover(22.0, 18.0, 0.02 / GT, 0.012 / GT, 40.0),
              Mover(52.0, 46.0, -0.006 / GT, -0.01 / GT, 60.0)]
    rates, starts, _ = simulate_rates(movers, stars=5, cosmic_ray_rate=50.0, seed=11)
    rows = search(rates, starts)
    assert len(rows) == 2
    duration = (NGROUPS - 1) * GT
    for m in movers:
        (row,) = match(rows, m, starts)
        assert set(DETECTION_COLUMNS) - {"integration"} <= set(row)
        assert row["method"] == "multi-int" and row["n_jumps"] == 0 and not row["trail_in_group"]
        assert 1 <= row["integration"] <= NINTS and 0 <= row["t_int"] <= duration
        assert row["n_integrations"] == NINTS
        assert row["snr"] >= 8 and row["chi2_dof"] < 1.5
        # Sense of motion from the order of the integrations.
        assert np.sign(row["vx"]) == np.sign(m.vx) and np.sign(row["vy"]) == np.sign(m.vy)
        assert np.all(np.abs(pulls(row, m, starts)) < 4), pulls(row, m, starts)


def test_velocity_pulls_are_roughly_unit():
    p = []
    for seed in range(6):
        movers = [Mover(22.0, 18.0, 0.015 / GT, 0.009 / GT, 40.0),
                  Mover(52.0, 46.0, -0.0075 / GT, -0.015 / GT, 40.0)]
        rates, starts, _ = simulate_rates(movers, seed=200 + seed)
        rows = search(rates, starts)
        for m in movers:
            hits = match(rows, m, starts)
            assert len(hits) == 1
            p.append(pulls(hits[0], m, starts))
    v = np.array(p)[:, 2:4].ravel()
    assert abs(np.mean(v)) < 0.8
    assert 0.5 < np.sqrt(np.mean(v**2)) < 1.6


@pytest.mark.parametrize("seed", [0, 1])
def test_static_stars_and_cosmic_rays_give_nothing(seed):
    rates, starts, _ = simulate_rates(stars=10, cosmic_ray_rate=100.0, seed=seed,
                                      star_flux_range=(10.0, 5000.0))
    assert search(rates, starts) == []


def test_pure_noise_gives_nothing():
    rates, starts, _ = simulate_rates(stars=0, cosmic_ray_rate=0.0, seed=5)
    assert search(rates, starts) == []


def test_fewer_than_three_integrations_give_nothing():
    movers = [Mover(30.0, 30.0, 0.02 / GT, 0.0, 200.0)]
    for nints in (1, 2):
        rates, starts, _ = simulate_rates(movers, nints=nints, seed=7)
        assert search(rates, starts) == []
    assert find_multi_int_movers(np.zeros((0, 8, 8)), np.ones((0, 8, 8)), np.ones((0, 8, 8), bool),
                                 np.zeros(0), np.ones((0, 5)), GT, PSF) == []


def synthetic_rates(blobs, nints=5, shape=(48, 52), sigma=1.0, seed=0):
    """Rate images with unit noise and PSF blobs ``(integration, x, y, flux)``."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    rates = 3.0 + sigma * rng.standard_normal((nints, ny, nx))
    for i, x, y, flux in blobs:
        rates[i] += flux * PSF.render(np.array([[x]]), np.array([[y]]), np.arange(nx, dtype=float),
                                      np.arange(ny, dtype=float))[0]
    n_diff = NGROUPS - 1
    return (rates, np.full(rates.shape, sigma), np.ones(rates.shape, bool),
            np.arange(nints) * NGROUPS * GT, np.ones((nints, n_diff)))


def test_transients_in_one_or_two_integrations_do_not_link():
    # Bright remnants in integrations 2 and 3, a plausible slow step apart, and a
    # lone one in integration 5: each looks like a mover position, none is constant.
    blobs = [(1, 20.0, 20.0, 80.0), (2, 21.0, 20.5, 80.0), (4, 35.0, 30.0, 120.0)]
    assert find_multi_int_movers(*synthetic_rates(blobs), GT, PSF) == []
    # The same blobs in every integration, along a line, are a mover.
    line = [(i, 18.0 + 1.0 * i, 19.0 + 0.5 * i, 60.0) for i in range(5)]
    rows = find_multi_int_movers(*synthetic_rates(line), GT, PSF)
    assert len(rows) == 1
    vx = 1.0 / (NGROUPS * GT)
    assert rows[0]["vx"] == pytest.approx(vx, abs=4 * rows[0]["vx_err"])
    assert rows[0]["flux"] == pytest.approx(60.0, abs=4 * rows[0]["flux_err"])


def test_movers_faster_than_the_psf_per_integration_are_left_alone():
    # 0.1 px/group: 6 px in one integration, the single-integration search's job.
    movers = [Mover(20.0, 32.0, 0.1 / GT, 0.0, 300.0, t_ref=0.0, integration=None)]
    rates, starts, _ = simulate_rates(movers, nints=3, seed=9)
    rows = search(rates, starts)
    v_max = PSF.fwhm / ((NGROUPS - 1) * GT)
    assert all(np.hypot(r["vx"], r["vy"]) <= 1.5 * v_max for r in rows)
    assert not match(rows, movers[0], starts, tol=3.0)


def slow_mover_exposure(flux):
    """A 0.018 px/group mover through the five integrations: the mover, the
    integration starts, and ``find_movers``' positional arguments."""
    mover = Mover(30.0, 32.0, 0.015 / GT, -0.01 / GT, flux)
    model, truth = simulate_ramp(subarray=SUBARRAY, ngroups=NGROUPS, nints=NINTS, stars=3,
                                 movers=[mover], cosmic_ray_rate=0.0, read_noise_cds=RN, gain=GAIN,
                                 seed=11)
    starts = np.arange(NINTS) * truth.meta["integration_period"]
    args = (np.array(model.data), np.array(model.groupdq), np.array(model.pixeldq), GT, PSF, RN, GAIN)
    return mover, starts, args


def test_find_movers_reports_slow_mover_across_integrations():
    """Through ``detect.find_movers``: a mover too slow for any one integration is found
    across them, once, with ``method="multi-int"``; without ``multi_int`` it is not."""
    mover, starts, args = slow_mover_exposure(60.0)
    table, counts = find_movers(*args, DetectionConfig(), integration_starts=starts)
    slow = table[table["method"] == "multi-int"]
    assert len(slow) == 1 and counts["n_multi_int"] == 1
    row = slow[0]
    t = starts[row["integration"] - 1] + row["t_int"]
    assert row["x"] == pytest.approx(mover.x0 + mover.vx * t, abs=4 * row["x_err"] + 0.05)
    assert row["vx"] == pytest.approx(mover.vx, abs=4 * row["vx_err"])
    assert row["vy"] == pytest.approx(mover.vy, abs=4 * row["vy_err"])
    table, counts = find_movers(*args, DetectionConfig(multi_int=False), integration_starts=starts)
    assert "multi-int" not in set(table["method"]) and "n_multi_int" not in counts


def test_slow_mover_seen_in_each_integration_is_reported_once_across_them():
    """A slow mover bright enough for the sub-PSF search of every integration stays in
    the rate images: one multi-integration row, not one row per integration."""
    mover, starts, args = slow_mover_exposure(1000.0)
    alone, _ = find_movers(*args, DetectionConfig(multi_int=False), integration_starts=starts)
    assert sorted(alone["integration"]) == list(range(1, NINTS + 1))
    table, counts = find_movers(*args, DetectionConfig(), integration_starts=starts)
    assert list(table["method"]) == ["multi-int"] and counts["n_multi_int"] == 1
    row = table[0]
    assert row["vx"] == pytest.approx(mover.vx, abs=4 * row["vx_err"])
    assert row["vy"] == pytest.approx(mover.vy, abs=4 * row["vy_err"])
