"""Tests of mover injection into existing ramps (jwst_asteroid_step.simulate.inject)."""

import numpy as np
import pytest
from astropy.table import Table
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

from jwst_asteroid_step.cli import main
from jwst_asteroid_step.mover_model import mover_differences
from jwst_asteroid_step.psf import psf_for_filter
from jwst_asteroid_step.ramp.noise import matched_filter_snr
from jwst_asteroid_step.simulate import Mover, Star, inject_movers, shift_inject, simulate_ramp
from jwst_asteroid_step.simulate.metadata import group_time_for
from jwst_asteroid_step.timebase import difference_intervals

from .conftest import open_real_ramp

SAT = dqflags.group["SATURATED"]
# The two Gaussians hold all their light in the rendered box, so charge is flux x time exactly
# (the computed PSF's grid holds 93 % of it).
GAUSSIANS = psf_for_filter("F770W", model="gaussian")
QUIET = dict(read_noise_cds=0.0, poisson=False, cosmic_ray_rate=0.0, shower_rate=0.0,
             background=0.0, stars=0, psf=GAUSSIANS)


def _snapshot(model):
    return [np.array(a, copy=True) for a in (model.data, model.groupdq, model.pixeldq)]


def _assert_unchanged(model, snapshot):
    for now, before in zip((model.data, model.groupdq, model.pixeldq), snapshot):
        np.testing.assert_array_equal(now, before)


@pytest.mark.parametrize("poisson", [False, True])
def test_charge_injection_adds_flux_times_time(poisson):
    ngroups, flux = 30, 300.0
    gt = group_time_for("SUB128")
    base, _ = simulate_ramp(subarray="SUB128", ngroups=ngroups, saturation=1e9, **QUIET)
    before = _snapshot(base)
    vx = 1.0 / gt  # leaves the array through the right edge mid-ramp
    movers = [Mover(60.0, 64.0, 0.3 / gt, -0.2 / gt, flux), Mover(120.0, 30.0, vx, 0.0, flux)]
    new, truth = inject_movers(base, movers, poisson=poisson, seed=1, psf=GAUSSIANS)
    _assert_unchanged(base, before)
    added = new.data[0].astype(float) - base.data[0]
    assert np.all(added[0] == 0)  # read 0 holds no charge
    t_on = [(ngroups - 1) * gt, (135.5 - 120.0) / vx]  # the second crosses the last column
    expected = flux * np.array(t_on)
    assert truth["charge"] == pytest.approx(expected, rel=0.01)
    total = float(added[-1].sum())
    tol = 1e-3 * expected.sum() + (4 * np.sqrt(expected.sum() / 4.0) if poisson else 0.0)
    assert abs(total - truth["charge"].sum()) < tol
    assert list(truth["n_groups_on_detector"]) == [ngroups, int(np.floor(t_on[1] / gt)) + 1]


def test_snr_targeting_uses_the_ramps_own_noise():
    """The requested SNR, recomputed with the *true* background of the input, within 3 %."""
    background, rn, gain, ngroups = 40.0, 7.0, 4.0, 40
    gt = group_time_for("SUB128")
    base, _ = simulate_ramp(subarray="SUB128", ngroups=ngroups, background=background,
                            read_noise_cds=rn, gain=gain, cosmic_ray_rate=5.0, seed=2)
    mover = Mover(50.0, 60.0, 0.25 / gt, 0.1 / gt, 1.0, t_ref=1.0)
    _, truth = inject_movers(base, [mover], snr=10.0, read_noise_cds=rn, gain=gain, seed=3)
    assert truth["snr"][0] == pytest.approx(10.0, rel=1e-6)
    assert truth["snr_optimal"][0] > truth["snr"][0]
    # Independent: template over the whole array, true background, edges dropped.
    t0, t1 = difference_intervals(ngroups, gt)
    s = mover_differences(50.0, 60.0, mover.vx, mover.vy, truth["flux"][0], 1.0, t0, t1,
                          psf_for_filter("F770W"), np.arange(136.0), np.arange(128.0))
    s[:, :, :4] = 0.0
    snr = matched_filter_snr(s[1:-1], background * gt, rn, gain)
    assert snr == pytest.approx(10.0, rel=0.03)


def test_injection_into_the_real_ramp():
    real = open_real_ramp()
    before = _snapshot(real)
    gt = real.meta.exposure.group_time
    movers = [Mover(30.0, 30.0, 0.3 / gt, 0.1 / gt, 1.0, t_ref=0.0, integration=2),
              Mover(50.0, 10.0, -0.05 / gt, 0.2 / gt, 1.0, t_ref=0.0)]
    new, truth = inject_movers(real, movers, snr=8.0, seed=4)
    _assert_unchanged(real, before)
    assert isinstance(new, datamodels.RampModel) and new.data.shape == real.data.shape
    first = truth[truth["integration"] == truth["integration"].min()]
    assert truth[(truth["id"] == 1)]["integration"].tolist() == [2]
    assert truth[(truth["id"] == 1)]["snr"][0] == pytest.approx(8.0, rel=1e-6)
    assert truth[(truth["id"] == 2) & (truth["integration"] == 1)]["snr"][0] == pytest.approx(8.0)
    assert len(first) >= 1
    # All added charge is on the light-sensitive columns (SUB64 starts at column 1).
    added = new.data.astype(float) - real.data
    assert np.all(added[:, :, :, :4] == 0)
    per_int = added[:, -1].sum(axis=(1, 2))
    for i in range(real.data.shape[0]):
        expected = truth["charge"][truth["integration"] == i + 1].sum()
        assert abs(per_int[i] - expected) < 5 * np.sqrt(expected / 4.0) + 1e-3 * expected + 1


def test_real_ramp_saturation_is_clipped_and_flagged():
    real = open_real_ramp()
    gt = real.meta.exposure.group_time
    level = float(np.percentile(real.data[0, -1], 50)) + 200.0
    mover = Mover(36.0, 32.0, 0.01 / gt, 0.0, 5e4, integration=1)
    new, truth = inject_movers(real, [mover], saturation=level, seed=5)
    sat = (new.groupdq[0] & SAT) != 0
    assert truth.meta["n_saturated"] > 0 and sat.any()
    # Once saturated, always saturated; clipped exactly to the level.
    first = np.argmax(sat, axis=0)
    ever = sat.any(axis=0)
    for y, x in zip(*np.nonzero(ever)):
        assert sat[first[y, x]:, y, x].all()
    fresh = sat & (np.maximum.accumulate(real.data[0], axis=0) < level)
    assert fresh.any()
    np.testing.assert_allclose(new.data[0][fresh], level)
    assert not np.any(real.groupdq & SAT)


def test_charge_injection_keeps_input_saturation():
    base, _ = simulate_ramp(subarray="SUB64", ngroups=20, stars=[Star(36.0, 32.0, 3e6)],
                            cosmic_ray_rate=0.0, shower_rate=0.0, seed=6)
    gt = base.meta.exposure.group_time
    new, _ = inject_movers(base, [Mover(36.0, 32.0, 0.01 / gt, 0.0, 1e5)], seed=7)
    was = (base.groupdq & SAT) != 0
    np.testing.assert_array_equal(new.data[was], base.data[was])
    assert np.all((new.groupdq & base.groupdq) == base.groupdq)


@pytest.mark.parametrize("interpolation", ["fourier", "bilinear"])
def test_shift_method_conserves_flux_and_moves_the_centroid(interpolation):
    ngroups = 30
    base, _ = simulate_ramp(subarray="SUB64", ngroups=ngroups, flag_edges=False,
                            **{**QUIET, "stars": [Star(36.3, 30.6, 800.0)]})
    before = _snapshot(base)
    gt = base.meta.exposure.group_time
    vx, vy = 0.2 / gt, -0.1 / gt
    new, truth = shift_inject(base, (36.3, 30.6), (vx, vy), t_ref=0.0,
                              interpolation=interpolation, psf=GAUSSIANS)
    _assert_unchanged(base, before)
    total_before = float(np.sum(base.data[0, -1].astype(float) - base.data[0, 0]))
    total_after = float(np.sum(new.data[0, -1].astype(float) - new.data[0, 0]))
    assert total_after == pytest.approx(total_before, rel=1e-4)
    assert truth["flux"][0] == pytest.approx(800.0, rel=0.01)  # box holds > 99 %
    d = np.diff(new.data[0].astype(float), axis=0)
    yy, xx = np.mgrid[0:64, 0:72]
    cx = (d * xx).sum(axis=(1, 2)) / d.sum(axis=(1, 2))
    cy = (d * yy).sum(axis=(1, 2)) / d.sum(axis=(1, 2))
    t_mid = (np.arange(ngroups - 1) + 0.5) * gt
    slope_x, x0 = np.polyfit(t_mid, cx, 1)
    slope_y, y0 = np.polyfit(t_mid, cy, 1)
    assert slope_x == pytest.approx(vx, rel=0.01)
    assert slope_y == pytest.approx(vy, rel=0.01)
    assert (x0, y0) == pytest.approx((36.3, 30.6), abs=0.02)


def test_shift_method_inserts_a_copy_elsewhere():
    base, _ = simulate_ramp(subarray="SUB64", ngroups=20, stars=[Star(20.0, 20.0, 2e4)],
                            read_noise_cds=7.0, background=5.0, cosmic_ray_rate=0.0,
                            shower_rate=0.0, seed=8, psf=GAUSSIANS)
    gt = base.meta.exposure.group_time
    new, truth = shift_inject(base, (20.0, 20.0), (0.1 / gt, 0.0), to=(50.0, 40.0), t_ref=0.0,
                              interpolation="integer", psf=GAUSSIANS)
    assert not truth.meta["remove_source"]
    # The star stays; its moving copy adds its charge near (50, 40).
    np.testing.assert_array_equal(new.data[0, :, 10:30, 10:30], base.data[0, :, 10:30, 10:30])
    added = new.data[0, -1].astype(float) - base.data[0, -1]
    assert added[25:56, 35:70].sum() == pytest.approx(truth["charge"][0], rel=1e-4)
    # The box carries its own noise (~160 DN) and the ring background's (~250 DN).
    assert truth["charge"][0] == pytest.approx(2e4 * 19 * gt, abs=1000.0)
    assert truth["snr"][0] > 0


def test_cli_inject(tmp_path):
    base, _ = simulate_ramp(subarray="SUB64", ngroups=10, cosmic_ray_rate=0.0, seed=9)
    path = tmp_path / "in_uncal.fits"
    base.save(path)
    out = tmp_path / "out" / "injected_uncal.fits"
    assert main(["inject", str(path), str(out), "--mover", "30,30,2,1", "--mover",
                 "40,20,-1,3,500", "--snr", "12", "--seed", "1"]) == 0
    truth = Table.read(tmp_path / "out" / "injected_uncal_truth.ecsv")
    assert truth["snr"] == pytest.approx([12.0, 12.0], rel=1e-6)
    new = datamodels.RampModel(out)
    assert new.data.shape == base.data.shape
    assert float(np.sum(new.data[0, -1] - base.data[0, -1])) > 0
