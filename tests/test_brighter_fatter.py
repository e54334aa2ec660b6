"""Bright stars broadening as their pixels fill (jwst_asteroid_step.psf.brighter_fatter)."""

import numpy as np
import pytest

from benchmarks.psf_families import brighter_fatter_reads, broadened, moffat_psf
from benchmarks.recovery import GAIN, READ_NOISE
from jwst_asteroid_step import detect
from jwst_asteroid_step.detect import find_movers
from jwst_asteroid_step.psf import FILTER_FWHM, instrument_psf
from jwst_asteroid_step.psf import refine as refine_module
from jwst_asteroid_step.psf.brighter_fatter import (
    broadening_trends,
    charge_broadening,
    charge_fractions,
    subtract_broadening_trends,
)
from jwst_asteroid_step.psf.refine import find_psf_stars, refine_psf
from jwst_asteroid_step.simulate import Mover, simulate_ramp
from jwst_asteroid_step.simulate.metadata import group_time_for
from jwst_asteroid_step.simulate.scene import Star, render_stars

from .test_psf_refine import _flux_ratio

STARS = ((100.2, 110.7), (310.6, 120.1), (200.4, 305.3))


def _halves(psf, growth, flux=2000.0, shape=(420, 420), sky=20.0, read_noise=0.3, electrons=100.0, seed=0):
    """Rate halves of three stars whose FWHM grows linearly with the charge collected: by
    ``growth`` over the whole ramp, so by a quarter and three quarters of it in the halves."""
    rng = np.random.default_rng(seed)
    halves = np.full((2,) + shape, sky)
    for x, y in STARS:
        for h, q in enumerate(charge_fractions(61)):
            halves[h] += render_stars([Star(x, y, flux)], shape, broadened(psf, growth * q) if growth else psf)
    sigma = np.sqrt(read_noise**2 + halves / electrons)
    return halves + sigma * rng.normal(size=halves.shape)


def test_charge_fractions_are_the_halves_mean_collected_charge():
    assert charge_fractions(61) == (0.25, 0.75)
    q1, q2 = charge_fractions(40)  # 39 differences: 19 and 20
    assert q1 == pytest.approx(19 / 78) and q2 == pytest.approx(58 / 78)


@pytest.mark.parametrize("filter_name", ["F770W", "F2100W"])
def test_each_stars_broadening_is_measured_from_the_ramps_halves(filter_name):
    """Stars 8 % broader at the end of their ramp are 4 % broader in the rate image: each
    star's measured growth is that within a fifth; stars that do not broaden show none."""
    psf = instrument_psf(filter_name)
    stars = find_psf_stars(_halves(psf, 0.0), psf, 24)
    assert len(stars) == 3
    flat = charge_broadening(psf, _halves(psf, 0.0), stars)
    assert abs(flat.z) < 3 and np.all(np.abs(flat.fwhm_growth) < 0.004)
    fat = charge_broadening(psf, _halves(psf, 0.08), stars)
    assert fat.z > 8
    np.testing.assert_allclose(fat.fwhm_growth, 0.04, rtol=0.2)


def test_the_model_is_kept_where_the_stars_differ_from_it_only_by_their_charge():
    prior = instrument_psf("F770W")
    psf, info = refine_psf(prior, _halves(prior, 0.16))
    assert psf is prior and not info.refined and info.misfit < 1.5
    assert info.charge_broadening == pytest.approx(0.08, rel=0.2) and info.charge_z > 10
    assert "brighter-fatter broadening (+" in info.describe(prior.name)
    _, plain = refine_psf(prior, _halves(prior, 0.0))
    assert plain.charge_broadening == 0.0 and "brighter-fatter" not in plain.describe(prior.name)


def test_the_ePSF_is_stacked_from_the_stars_as_an_empty_pixel_sees_them(monkeypatch):
    """Moffat stars (beta 2), 16 % broader at their ramp's end: the refined PSF reads a
    nominal Moffat mover within 2.5 %; stacked as the rate image shows them, 4 % high."""
    truth = moffat_psf(FILTER_FWHM["F770W"], 2.0)
    prior = instrument_psf("F770W")
    halves = _halves(truth, 0.16)
    psf, info = refine_psf(prior, halves)
    assert info.refined and info.charge_broadening > 0.04
    assert abs(_flux_ratio(psf, truth) - 1) < 0.025
    monkeypatch.setattr(refine_module, "BROADENING_Z", np.inf)
    as_seen, _ = refine_psf(prior, halves)
    assert _flux_ratio(as_seen, truth) - 1 > 0.04


def _ramp_with_broadening_star(flux_peak_dn=20000.0, movers=()):
    """A SUB256 F2100W ramp, 40 groups, no cosmic rays, one bright star at its centre that
    broadens by 10 % of its FWHM as its brightest pixel collects ``flux_peak_dn``."""
    psf = instrument_psf("F2100W")
    gt = group_time_for("SUB256")
    ngroups = 40
    ramp, truth = simulate_ramp(subarray="SUB256", ngroups=ngroups, filter="F2100W", movers=movers, stars=0,
                                psf=psf, cosmic_ray_rate=0.0, shower_rate=0.0, read_noise_cds=READ_NOISE,
                                gain=GAIN, seed=11)
    peak = float(psf.pixel_fraction(0.0, 0.0))
    star = Star(128.3, 127.6, flux_peak_dn / (peak * ngroups * gt))
    ramp.data[0] += brighter_fatter_reads(psf, [(star, flux_peak_dn)], ngroups, gt, (256, 256), GAIN,
                                          np.random.default_rng(12)).astype(np.float32)
    return ramp, truth, psf, gt


def test_a_broadening_stars_drift_is_found_and_taken_out_of_the_differences():
    ramp, _, psf, _ = _ramp_with_broadening_star()
    diff = np.diff(ramp.data[0].astype(float), axis=0)
    exclude = np.zeros(diff.shape, dtype=bool)
    background = diff.mean(axis=0)
    sigma = np.sqrt(READ_NOISE**2 + np.maximum(background, 0) / GAIN)
    trends = broadening_trends(diff, exclude, background, sigma, psf)
    assert len(trends) == 1 and trends[0].z > 10
    assert np.hypot(trends[0].x - 128.3, trends[0].y - 127.6) < 0.2
    subtract_broadening_trends(diff, trends, psf)
    assert broadening_trends(diff, exclude, background, sigma, psf) == []


def test_a_mover_is_not_taken_for_a_broadening_star():
    """A bright slow mover changes its pixels as the PSF's gradient does: left alone."""
    gt = group_time_for("SUB256")
    mover = Mover(x0=128.0, y0=128.0, vx=0.05 / gt, vy=0.02 / gt, flux=2000.0, t_ref=20 * gt)
    ramp, _ = simulate_ramp(subarray="SUB256", ngroups=40, filter="F2100W", movers=[mover], stars=0,
                            cosmic_ray_rate=0.0, shower_rate=0.0, read_noise_cds=READ_NOISE, gain=GAIN, seed=4)
    diff = np.diff(ramp.data[0].astype(float), axis=0)
    background = diff.mean(axis=0)
    sigma = np.sqrt(READ_NOISE**2 + np.maximum(background, 0) / GAIN)
    assert broadening_trends(diff, np.zeros(diff.shape, dtype=bool), background, sigma, instrument_psf("F2100W")) == []


def test_no_slow_movers_are_reported_beside_a_broadening_star(monkeypatch):
    """Its fading core and brightening ring were light changing in time: without the
    correction the search reported slow 'movers' beside the star; with it, only the mover."""
    gt = group_time_for("SUB256")
    mover = Mover(x0=60.0, y0=190.0, vx=0.2 / gt, vy=0.1 / gt, flux=1000.0, t_ref=20 * gt)  # SNR 20
    ramp, _, psf, gt = _ramp_with_broadening_star(movers=[mover])
    det, counts = find_movers(ramp.data, ramp.groupdq, ramp.pixeldq, gt, psf, READ_NOISE, GAIN)
    assert counts["n_broadening_stars"] == 1
    assert len(det) == 1 and np.hypot(det["x"][0] - 60.0 - det["vx"][0] * (det["t_int"][0] - 20 * gt),
                                      det["y"][0] - 190.0 - det["vy"][0] * (det["t_int"][0] - 20 * gt)) < 0.5
    monkeypatch.setattr(detect, "broadening_trends", lambda *args: [])
    uncorrected, _ = find_movers(ramp.data, ramp.groupdq, ramp.pixeldq, gt, psf, READ_NOISE, GAIN)
    near_star = np.hypot(uncorrected["x"] - 128.3, uncorrected["y"] - 127.6) < 15
    assert near_star.sum() >= 1
