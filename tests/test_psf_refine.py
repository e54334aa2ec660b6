"""The PSF refined from the exposure's own stars (jwst_asteroid_step.psf.refine)."""

import numpy as np
import pytest
from stdatamodels.jwst.datamodels import dqflags

from benchmarks.psf_families import moffat_psf
from benchmarks.recovery import GAIN, READ_NOISE
from jwst_asteroid_step import AsteroidDetectStep
from jwst_asteroid_step.detect import find_movers
from jwst_asteroid_step.offline import run_jump_and_ramp_fit
from jwst_asteroid_step.psf import FILTER_FWHM, PSFModel, SeparablePSF, instrument_psf
from jwst_asteroid_step.psf.refine import (
    BOX_HALF,
    find_psf_stars,
    rate_halves,
    refine_psf,
    without_neighbours,
)
from jwst_asteroid_step.simulate import Mover, simulate_ramp
from jwst_asteroid_step.simulate.scene import Star, render_stars

FWHM = FILTER_FWHM["F770W"]


def _halves(sources, shape=(420, 420), sky=20.0, read_noise=0.3, electrons=100.0, seed=0):
    """Rate halves (DN/group) of ``(psf, x, y, flux[, shift])`` sources; ``shift`` moves a
    source by that many pixels in x between the halves, as a mover does. Each half has read
    noise and the shot noise of ``electrons`` per DN per group collected."""
    rng = np.random.default_rng(seed)
    halves = np.full((2,) + shape, sky)
    for psf, x, y, flux, *shift in sources:
        dx = shift[0] if shift else 0.0
        for h, offset in enumerate((-dx / 2, dx / 2)):
            halves[h] += render_stars([Star(x + offset, y, flux)], shape, psf)
    sigma = np.sqrt(read_noise**2 + halves / electrons)
    return halves + sigma * rng.normal(size=halves.shape)


def _flux_ratio(model, truth, half=4):
    """What a least-squares PSF fit with ``model`` reads, over the truth, for point sources at
    a few sub-pixel positions (the moving-PSF fit's box, uniform weights)."""
    g = np.arange(-half, half + 1)
    ratios = []
    for fx, fy in ((0.0, 0.0), (0.31, -0.22), (-0.45, 0.4), (0.12, 0.48)):
        m = model.pixel_fraction(g[None, :] - fx, g[:, None] - fy)
        t = truth.pixel_fraction(g[None, :] - fx, g[:, None] - fy)
        ratios.append(np.sum(m * t) / np.sum(m * m))
    return float(np.mean(ratios))


def test_rate_halves_leave_out_flagged_differences():
    ngroups, rate = 12, 5.0
    sci = np.broadcast_to(10000.0 + rate * np.arange(ngroups)[:, None, None], (ngroups, 6, 6)).copy()[None]
    groupdq = np.zeros(sci.shape, dtype=np.uint8)
    sci[0, 3:, 2, 2] += 1000.0  # a cosmic ray, flagged by jump
    groupdq[0, 3, 2, 2] = dqflags.group["JUMP_DET"]
    sci[0, 7:, 4, 4] = 60000.0  # saturated from group 7 on
    groupdq[0, 7:, 4, 4] = dqflags.group["SATURATED"]
    pixeldq = np.zeros((6, 6), dtype=np.uint32)
    pixeldq[1, 1] = dqflags.pixel["DO_NOT_USE"]
    halves = rate_halves(sci, groupdq, pixeldq)
    assert halves.shape == (2, 6, 6)
    usable = np.ones((6, 6), dtype=bool)
    usable[1, 1] = False
    np.testing.assert_allclose(halves[:, usable], rate, rtol=1e-6)
    assert np.all(np.isnan(halves[:, 1, 1]))


def test_find_psf_stars_keeps_only_isolated_static_point_sources():
    psf = instrument_psf("F770W")
    bright = 3000.0  # DN per group: SNR ~ 10^4 within 1.5 FWHM
    sources = [
        (psf, 100.3, 100.6, bright),  # isolated: kept
        (psf, 300.0, 100.0, bright), (psf, 318.0, 100.0, 0.3 * bright),  # a pair: neither
        (psf, 20.0, 210.0, bright),  # too near the edge for its box
        (psf, 100.0, 300.0, bright, 0.5),  # moves 0.5 px between the halves: a mover
        (PSFModel(4 * FWHM, 0.0), 300.0, 300.0, bright),  # a galaxy, four times the PSF's width
        (psf, 210.0, 210.0, 0.5),  # too faint
    ]
    halves = _halves(sources)
    stars = find_psf_stars(halves, psf, BOX_HALF)
    assert len(stars) == 1
    assert np.hypot(stars[0, 0] - 100.3, stars[0, 1] - 100.6) < 0.15  # a first moment: EPSFBuilder recentres
    # A bad pixel (NaN: saturated, DO_NOT_USE) in its core disqualifies a star; farther out
    # in its box the ePSF builder leaves it out.
    halves[:, 110, 104] = np.nan
    assert len(find_psf_stars(halves, psf, BOX_HALF)) == 1
    halves[:, 102, 98] = np.nan
    assert len(find_psf_stars(halves, psf, BOX_HALF)) == 0


@pytest.mark.parametrize("truth", [moffat_psf(FWHM, 4.0), PSFModel(0.9 * FWHM)], ids=["Moffat beta 4", "FWHM -10 %"])
def test_stars_with_faint_neighbours_refine_the_psf(truth, monkeypatch):
    """Each star has a neighbour with a tenth of its light 6 FWHM away, in its box: the stars
    are used, the neighbours fitted and taken out of the stack, and the fluxes read right."""
    prior = instrument_psf("F770W")
    centres = ((100.2, 110.7), (310.6, 120.1), (200.4, 305.3))
    sources = [(truth, x, y, 2000.0) for x, y in centres]
    sources += [(truth, x + 6 * FWHM * np.cos(a), y + 6 * FWHM * np.sin(a), 200.0)
                for (x, y), a in zip(centres, (0.3, 2.0, 4.1), strict=True)]
    halves = _halves(sources)
    assert len(find_psf_stars(halves, prior, BOX_HALF)) == 3
    rate = np.mean(halves, axis=0) - 20.0
    cleaned, n_neighbours = without_neighbours(rate, find_psf_stars(halves, prior, BOX_HALF), prior, BOX_HALF)
    assert n_neighbours == 3 and np.isnan(cleaned).sum() > 0
    psf, info = refine_psf(prior, halves)
    assert info.refined and info.n_stars == 3
    assert abs(_flux_ratio(psf, truth) - 1) < 0.02


def test_a_bright_neighbour_just_beyond_a_stars_core_is_subtracted_there_not_masked():
    # A fifth as bright, 4.3 FWHM away: where its model is above the noise reaches the star's
    # centre. Masking there left NaN values in the ePSF builder's star fits, which raised
    # (a psf_families FWHM +10 % F770W ramp).
    truth = PSFModel(1.1 * FWHM)
    prior = instrument_psf("F770W")
    centres = ((100.2, 110.7), (310.6, 120.1), (200.4, 305.3))
    sources = [(truth, x, y, 2000.0) for x, y in centres] + [(truth, 100.2 + 4.3 * FWHM, 110.7, 400.0)]
    halves = _halves(sources, read_noise=0.001, electrons=1e6)  # its wing above the noise out to the star
    stars = find_psf_stars(halves, prior, BOX_HALF)
    assert len(stars) == 3
    cleaned, n_neighbours = without_neighbours(np.mean(halves, axis=0) - 20.0, stars, prior, BOX_HALF)
    assert n_neighbours == 1 and not np.isnan(cleaned[108:114, 97:104]).any()
    psf, info = refine_psf(prior, halves)
    assert info.refined and info.n_stars == 3
    assert abs(_flux_ratio(psf, truth) - 1) < 0.02


def test_the_model_is_kept_where_its_stars_agree_with_it():
    prior = instrument_psf("F770W")
    halves = _halves([(prior, x, y, 2000.0) for x, y in ((100.2, 110.7), (310.6, 120.1), (200.4, 305.3))])
    psf, info = refine_psf(prior, halves)
    assert psf is prior and not info.refined and info.misfit < 1.5
    assert "the model fits its 3 star(s) to the noise" in info.describe(prior.name)


@pytest.mark.parametrize("family, truth", [
    ("Moffat beta 2", moffat_psf(FWHM, 2.0)),
    ("Moffat beta 4", moffat_psf(FWHM, 4.0)),
    ("two Gaussians, FWHM -10 %", PSFModel(0.9 * FWHM)),
    ("two Gaussians", PSFModel(FWHM)),
])
def test_refined_psf_reads_total_fluxes_whatever_the_stars_profile(family, truth):
    """Three stars rendered with a profile the computed model does not assume: fluxes read with
    the refined PSF are within 2 % of the totals, where the model alone is 5-21 % off."""
    prior = instrument_psf("F770W")
    halves = _halves([(truth, x, y, 2000.0) for x, y in ((100.2, 110.7), (310.6, 120.1), (200.4, 305.3))])
    psf, info = refine_psf(prior, halves)
    assert info.refined and info.n_stars == 3 and info.misfit > 10
    assert abs(_flux_ratio(prior, truth) - 1) > 0.05
    assert abs(_flux_ratio(psf, truth) - 1) < 0.02, family
    assert f"box +/-{BOX_HALF} px" in info.describe(prior.name)


def test_flux_errors_carry_the_refined_psfs_normalisation_uncertainty():
    """The two skies of a Moffat (beta 2) stack disagree: the ePSF's normalisation is that
    uncertain, it says so, and every flux measured with it carries it in quadrature."""
    prior = instrument_psf("F770W")
    halves = _halves([(moffat_psf(FWHM, 2.0), x, y, 2000.0) for x, y in ((100.2, 110.7), (310.6, 120.1), (200.4, 305.3))])
    psf, info = refine_psf(prior, halves)
    assert 0.001 < info.flux_uncertainty < 0.05 and psf.flux_uncertainty == info.flux_uncertainty
    assert f"normalisation uncertain by {info.flux_uncertainty:.1%}, carried by flux_err" in info.describe(prior.name)
    assert PSFModel(FWHM).flux_uncertainty == 0.0 and prior.flux_uncertainty == 0.0

    gt = 0.29952
    ramp, _ = simulate_ramp(movers=[Mover(x0=120.0, y0=128.0, vx=0.3 / gt, vy=0.1 / gt, flux=600.0)],
                            subarray="SUB256", ngroups=30, filter="F770W", seed=3, psf=prior,
                            read_noise_cds=READ_NOISE, gain=GAIN)
    uncertain = SeparablePSF(prior.grid, prior.oversample, flux_uncertainty=0.03)
    rows = [find_movers(ramp.data, ramp.groupdq, ramp.pixeldq, gt, p, READ_NOISE, GAIN)[0] for p in (prior, uncertain)]
    assert len(rows[0]) == len(rows[1]) == 1
    np.testing.assert_allclose(rows[1]["flux"], rows[0]["flux"])
    np.testing.assert_allclose(rows[1]["flux_err"], np.hypot(rows[0]["flux_err"], 0.03 * rows[0]["flux"]))


def test_without_stars_the_model_is_kept_and_the_reason_recorded():
    prior = instrument_psf("F770W")
    psf, info = refine_psf(prior, _halves([]))
    assert psf is prior and not info.refined
    assert info.describe(prior.name).startswith("not refined (0 bright, isolated, unsaturated static point")


@pytest.mark.slow
def test_step_refines_the_psf_from_the_exposures_stars(offline_refs):
    """Movers and stars rendered with a Moffat profile (beta 2): with psf_refine=False the
    default model reads the movers ~30 % faint; by default the step builds the ePSF of the
    exposure's stars and reads them within 5 %, and says so in its metadata."""
    truth_psf = moffat_psf(FWHM, 2.0)
    gt = 0.29952
    movers = [Mover(x0=128.0, y0=60.0 + 70 * i, vx=(0.15 + 0.1 * i) / gt, vy=0.05 / gt, flux=f)
              for i, f in enumerate((800.0, 2000.0))]
    stars = [Star(45.3, 45.6, 6000.0), Star(210.7, 211.2, 8000.0), Star(45.1, 210.4, 7000.0)]
    ramp, truth = simulate_ramp(movers=movers, subarray="SUB256", ngroups=50, filter="F770W", stars=stars,
                                seed=5, psf=truth_psf)
    jump, *_ = run_jump_and_ramp_fit(ramp, offline_refs)
    model_only = AsteroidDetectStep.call(jump, psf_refine=False, **offline_refs.step_overrides())
    assert model_only.meta.asteroid_detect.psf_refinement == "not asked (psf_refine=False)"
    refined = AsteroidDetectStep.call(jump, **offline_refs.step_overrides())
    meta = refined.meta.asteroid_detect
    assert meta.psf_refinement.startswith("ePSF of 3 stars in the exposure")
    assert meta.psf_model.startswith("ePSF from 3 stars in the exposure")
    for catalog, (lo, hi) in ((model_only, (0.55, 0.85)), (refined, (0.95, 1.05))):
        rows = catalog.catalog
        assert len(rows) == len(truth)
        for j in range(len(truth)):
            dt = rows["t_int"] - truth["t_ref"][j]
            d = np.hypot(rows["x"] - truth["x"][j] - truth["vx"][j] * dt, rows["y"] - truth["y"][j] - truth["vy"][j] * dt)
            assert lo < rows["flux"][np.argmin(d)] / truth["flux"][j] < hi


def test_light_beyond_the_box_comes_from_the_computed_psf():
    """Stars with the telescope's PSF refined from the two-Gaussian model: the stack holds the
    light within 24 px, and the computed PSF's wing supplies the 7 % beyond it; the two
    Gaussians, with next to no light there, would read fluxes more than that too low."""
    truth = instrument_psf("F770W")
    prior = PSFModel(FWHM)
    halves = _halves([(truth, x, y, 2000.0) for x, y in ((100.2, 110.7), (310.6, 120.1), (200.4, 305.3))])
    with_wing, info = refine_psf(prior, halves, wing=truth)
    assert info.refined and info.wing_ratio == pytest.approx(1.0, abs=0.15)
    assert info.box_fraction == pytest.approx(truth.pixel_fraction(*np.meshgrid(np.arange(-24, 25), np.arange(-24, 25))).sum(),
                                              abs=0.01)
    assert abs(_flux_ratio(with_wing, truth) - 1) < 0.02
    without, _ = refine_psf(prior, halves)
    assert _flux_ratio(without, truth) < 0.95


def test_a_skipped_exposure_says_the_refinement_was_not_reached(offline_refs):
    ramp, _ = simulate_ramp(subarray="SUB64", ngroups=6, filter="F770W", seed=1)
    skipped = AsteroidDetectStep.call(ramp, min_ngroups=10, **offline_refs.step_overrides())
    assert skipped.meta.cal_step.asteroid_detect == "SKIPPED"
    assert skipped.meta.asteroid_detect.psf_refinement == "not reached: the exposure was skipped"
