"""Tests of the ramp simulator (jwst_asteroid_step.simulate)."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

from jwst_asteroid_step.measure.moving_psf import fit_moving_psf
from jwst_asteroid_step.mover_model import mover_differences
from jwst_asteroid_step.offline import REAL_DATA_DIR
from jwst_asteroid_step.psf import FILTER_FWHM, psf_for_filter
from jwst_asteroid_step.ramp.differences import IntegrationDifferences, pixel_mean_rate
from jwst_asteroid_step.ramp.noise import (
    difference_variance,
    matched_filter_snr,
    matched_filter_snr_correlated,
)
from jwst_asteroid_step.simulate import (
    FILTER_BACKGROUND,
    SHOWER_RATE,
    SUBARRAYS,
    TRUTH_COLUMNS,
    Mover,
    ShowerModel,
    Star,
    cdp7_pixel_dq,
    draw_cosmic_rays,
    draw_showers,
    group_time_for,
    save_simulation,
    simulate_ramp,
    snr_to_flux,
)
from jwst_asteroid_step.simulate.cosmic_rays import PIXEL_AREA_CM2
from jwst_asteroid_step.simulate.group_flags import valid_differences
from jwst_asteroid_step.simulate.metadata import reference_pixel_columns, v1_pointing
from jwst_asteroid_step.simulate.ramps import mover_patches
from jwst_asteroid_step.search.tracks import Track
from jwst_asteroid_step.timebase import difference_intervals

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
DNU = dqflags.group["DO_NOT_USE"]
SAT = dqflags.group["SATURATED"]

# A noise-free, event-free detector, for exact bookkeeping tests.
# The two Gaussians hold all their light in the rendered box, so charge is flux x time exactly
# (the computed PSF's grid holds 93 % of it).
GAUSSIANS = psf_for_filter("F770W", model="gaussian")
QUIET = dict(read_noise_cds=0.0, poisson=False, cosmic_ray_rate=0.0, background=0.0, stars=0,
             psf=GAUSSIANS)


def sensitive_mask(subarray):
    mask = np.ones(SUBARRAYS[subarray]["xsize"], dtype=bool)
    mask[reference_pixel_columns(subarray)] = False
    return mask


def test_group_times_and_subarrays():
    assert group_time_for("FULL", "FAST") == pytest.approx(2.775, abs=1e-3)
    assert group_time_for("FULL", "SLOWR1") == pytest.approx(23.89, abs=1e-2)
    assert group_time_for("SUB64") == pytest.approx(0.085, abs=1e-3)
    with pytest.raises(ValueError):
        group_time_for("SUB64", "SLOW")
    # The real SUB64 ground-test ramp sits at COLSTART 1, ROWSTART 779.
    assert (SUBARRAYS["SUB64"]["xstart"], SUBARRAYS["SUB64"]["ystart"]) == (1, 779)
    np.testing.assert_array_equal(reference_pixel_columns("FULL"), np.r_[0:4, 1028:1032])
    np.testing.assert_array_equal(reference_pixel_columns("SUB64"), np.arange(4))
    assert reference_pixel_columns("BRIGHTSKY").size == 0


def test_background_slope_matches_rate():
    rate = 20.0
    model, _ = simulate_ramp(subarray="SUB64", ngroups=30, nints=2, background=rate,
                             cosmic_ray_rate=0.0, seed=1)
    assert model.data.dtype == np.float32
    gt = model.meta.exposure.group_time
    good = sensitive_mask("SUB64")
    # Use reads 1 .. ngroups-2, the ones not flagged DO_NOT_USE.
    slope = (model.data[:, -2] - model.data[:, 1]) / ((model.data.shape[1] - 3) * gt)
    assert np.mean(slope[:, :, good]) == pytest.approx(rate, rel=0.01)
    # Reference pixels collect no light.
    assert abs(np.mean(slope[:, :, ~good])) < 0.05 * rate


@pytest.mark.parametrize("read_noise, background", [(7.0, 50.0), (0.0, 500.0), (5.0, 300.0)])
def test_difference_variance_matches_noise_model(read_noise, background):
    gain = 4.0
    model, _ = simulate_ramp(subarray="SUB64", ngroups=40, background=background,
                             read_noise_cds=read_noise, gain=gain, cosmic_ray_rate=0.0,
                             saturation=1e9, seed=2)
    gt = model.meta.exposure.group_time
    diffs = np.diff(model.data[0].astype(float), axis=0)[:, :, sensitive_mask("SUB64")]
    expected = difference_variance(background * gt, read_noise, gain)
    assert np.var(diffs) == pytest.approx(expected, rel=0.03)
    assert np.mean(diffs) == pytest.approx(background * gt, rel=0.01)


def test_mover_total_charge_equals_flux_times_time():
    flux, ngroups = 80.0, 25
    gt = group_time_for("SUB128")
    mover = Mover(40.0, 60.0, vx=0.8 / gt, vy=0.3 / gt, flux=flux, t_ref=0.0)
    model, truth = simulate_ramp(subarray="SUB128", ngroups=ngroups, movers=[mover],
                                 flag_edges=False, saturation=1e9, **QUIET)
    collected = float(np.sum(model.data[0, -1].astype(float) - model.data[0, 0]))
    # The PSF box holds ~99.9 % of the flux.
    assert collected == pytest.approx(flux * (ngroups - 1) * gt, rel=3e-3)
    assert truth["n_groups_on_detector"][0] == ngroups


def test_mover_leaving_the_array_deposits_flux_times_time_on_array():
    flux, ngroups = 100.0, 60
    gt = group_time_for("SUB128")
    vx = 2.0 / gt
    mover = Mover(70.0, 60.0, vx=vx, vy=0.0, flux=flux, t_ref=0.0)
    model, truth = simulate_ramp(subarray="SUB128", ngroups=ngroups, movers=[mover],
                                 flag_edges=False, saturation=1e9, **QUIET)
    t_on = (135.5 - 70.0) / vx  # the centre crosses the last column's outer edge
    collected = float(np.sum(model.data[0, -1].astype(float) - model.data[0, 0]))
    # For a symmetric PSF crossing a straight edge, what spills out before the
    # centre crosses equals what still falls in after.
    assert collected == pytest.approx(flux * t_on, rel=0.01)
    assert truth["n_groups_on_detector"][0] == int(np.floor(t_on / gt)) + 1
    assert truth["x_end"][0] == pytest.approx(70.0 + vx * (ngroups - 1) * gt)


def test_fast_mover_is_rendered_in_small_boxes():
    psf = GAUSSIANS
    gt = group_time_for("FULL")
    t0, t1 = difference_intervals(100, gt)
    vx, vy = 8.0 / gt, 5.0 / gt  # ~9.4 px per group, across the array
    patches = mover_patches(20.0, 20.0, vx, vy, 50.0, 0.0, t0, t1, psf, (1024, 1032))
    box = 2 * psf.radius + 1
    assert max(p.data[0].size for p in patches) < 4 * box * box
    assert sum(p.k1 - p.k0 for p in patches) <= t0.size
    # Same charge as rendering each interval around its own stretch of track.
    for p in patches[::7]:
        xg = np.arange(p.x0, p.x1, dtype=float)
        yg = np.arange(p.y0, p.y1, dtype=float)
        ref = mover_differences(20.0, 20.0, vx, vy, 50.0, 0.0, t0[p.k0:p.k1], t1[p.k0:p.k1], psf,
                                xg, yg)
        np.testing.assert_allclose(p.data, ref)
        assert p.data.sum() == pytest.approx(50.0 * (p.k1 - p.k0) * gt, rel=5e-3)


def test_truth_snr_equals_independent_matched_filter():
    ngroups, background, rn, gain = 20, 15.0, 7.0, 4.0
    gt = group_time_for("SUB128")
    star = Star(50.0, 64.0, 200.0)
    mover = Mover(45.0, 60.0, vx=0.4 / gt, vy=0.2 / gt, flux=30.0, t_ref=0.5)
    _, truth = simulate_ramp(subarray="SUB128", ngroups=ngroups, background=background,
                             stars=[star], movers=[mover], read_noise_cds=rn, gain=gain, seed=3)

    # Recompute over the whole array, without the simulator's boxes.
    psf = psf_for_filter("F770W")
    ny, nx = 128, 136
    xg, yg = np.arange(nx, dtype=float), np.arange(ny, dtype=float)
    t0, t1 = difference_intervals(ngroups, gt)
    signal = mover_differences(45.0, 60.0, mover.vx, mover.vy, 30.0, 0.5, t0, t1, psf, xg, yg)
    star_rate = 200.0 * psf.render(np.array([[50.0]]), np.array([[64.0]]), xg, yg)[0]
    rate = background + star_rate
    signal[:, :, :4] = 0.0  # reference pixels
    rate[:, :4] = 0.0
    valid = slice(1, ngroups - 2)  # differences not touching the DO_NOT_USE edge groups
    expected = matched_filter_snr(signal[valid], rate[None] * gt, rn, gain)
    assert truth["snr"][0] == pytest.approx(expected, rel=2e-3)


def test_snr_to_flux_round_trip():
    gt = group_time_for("SUB128")
    kw = dict(subarray="SUB128", ngroups=30, background=10.0, read_noise_cds=7.0, gain=4.0)
    vx, vy = 0.3 / gt, -0.1 / gt
    flux = snr_to_flux(8.0, vx, vy, x=60.0, y=64.0, t_ref=1.0, **kw)
    _, truth = simulate_ramp(movers=[Mover(60.0, 64.0, vx, vy, flux, t_ref=1.0)],
                             cosmic_ray_rate=0.0, seed=4, **kw)
    assert truth["snr"][0] == pytest.approx(8.0, rel=1e-6)
    # Brighter means higher SNR.
    assert snr_to_flux(16.0, vx, vy, x=60.0, y=64.0, t_ref=1.0, **kw) > 2 * flux


def test_truth_table_rows_per_integration():
    gt = group_time_for("SUB64")
    movers = [
        Mover(10.0, 20.0, 0.2 / gt, 0.1 / gt, 50.0),  # in every integration, moving on
        Mover(40.0, 30.0, -0.1 / gt, 0.0, 20.0, t_ref=0.3, integration=2),
    ]
    model, truth = simulate_ramp(subarray="SUB64", ngroups=10, nints=3, movers=movers,
                                 cosmic_ray_rate=0.0, seed=5)
    assert tuple(truth.colnames) == TRUTH_COLUMNS
    assert list(truth["id"]) == [1, 1, 2, 1]
    assert list(truth["integration"]) == [1, 2, 2, 3]
    period = truth.meta["integration_period"]
    row2 = truth[(truth["id"] == 1) & (truth["integration"] == 2)][0]
    assert row2["x"] == pytest.approx(10.0 + movers[0].vx * period)
    assert row2["speed_px_per_group"] == pytest.approx(np.hypot(0.2, 0.1))
    assert np.all(truth["snr"] > 0)


def test_cosmic_ray_count_matches_rate():
    rate, ngroups, nints = 400.0, 10, 150
    model, truth = simulate_ramp(subarray="SUB64", ngroups=ngroups, nints=nints,
                                 cosmic_ray_rate=rate,
                                 background=0.0, read_noise_cds=0.0, poisson=False, seed=6)
    gt = model.meta.exposure.group_time
    n_pix = 64 * 68  # light-sensitive pixels of SUB64
    mu = rate * n_pix * PIXEL_AREA_CM2 * (ngroups - 1) * gt * nints
    n = sum(truth.meta["n_cosmic_rays"])
    assert abs(n - mu) < 4 * np.sqrt(mu)
    events = truth.meta["cosmic_rays"]
    assert len(events) == n
    # Each hit is a step in the ramp at its pixel and group, at least half its DN.
    ev = events[:200]
    step = (model.data[ev["integration"] - 1, ev["group"], ev["y"], ev["x"]]
            - model.data[ev["integration"] - 1, ev["group"] - 1, ev["y"], ev["x"]])
    assert np.all(step >= 0.5 * ev["amplitude"] - 1e-2)
    assert np.all(np.isin(events["x"], reference_pixel_columns("SUB64"), invert=True))
    assert set(np.unique(events["n_pixels"])) <= set(range(1, 7))


def test_cosmic_ray_deposits_conserve_charge_inside_array():
    rng = np.random.default_rng(7)
    events, dep = draw_cosmic_rays(rng, (200, 200), 50, 2.775, rate=50.0)
    assert len(events) > 100
    # Nothing is created; only charge spilling off the array is lost.
    assert dep["dn"].sum() <= events["amplitude"].sum() * (1 + 1e-12)
    assert dep["dn"].sum() > 0.97 * events["amplitude"].sum()
    assert np.all((dep["k"] >= 0) & (dep["k"] < 49))


def test_saturation_of_a_bright_star():
    saturation, bias = 50000.0, 10000.0
    model, _ = simulate_ramp(subarray="SUB64", ngroups=30, stars=[Star(36.0, 32.0, 3e5)],
                             saturation=saturation, bias=bias, cosmic_ray_rate=0.0, seed=8)
    sat = (model.groupdq[0] & SAT) > 0
    assert sat[:, 32, 36].any() and not sat[0, 32, 36]
    # Once saturated, always saturated; saturated reads are clipped.
    first = np.argmax(sat[:, 32, 36])
    assert sat[first:, 32, 36].all()
    np.testing.assert_array_equal(model.data[0][sat], saturation)
    assert model.data[0].max() <= saturation
    # Far from the star nothing saturates.
    assert not sat[:, :10, 60:].any()


def test_dq_edges_and_reference_pixels():
    model, _ = simulate_ramp(subarray="SUB64", ngroups=6, nints=2, cosmic_ray_rate=0.0, seed=9)
    assert np.all(model.groupdq[:, 0] & DNU)
    assert np.all(model.groupdq[:, -1] & DNU)
    assert not np.any(model.groupdq[:, 1:-1] & DNU)
    ref = dqflags.pixel["REFERENCE_PIXEL"]
    assert np.all(model.pixeldq[:, :4] & ref) and not np.any(model.pixeldq[:, 4:] & ref)
    model2, _ = simulate_ramp(subarray="SUB64", ngroups=6, flag_edges=False, cosmic_ray_rate=0.0,
                              seed=9)
    assert not np.any(model2.groupdq & DNU)


def test_same_seed_same_ramp():
    kw = dict(subarray="SUB64", ngroups=8, stars=3, movers=[Mover(30, 30, 5.0, 1.0, 100.0)],
              seed=11)
    a, ta = simulate_ramp(**kw)
    b, tb = simulate_ramp(**kw)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(ta["snr"], tb["snr"])


def test_metadata_validates_and_round_trips(tmp_path):
    model, truth = simulate_ramp(subarray="SUB128", ngroups=8, nints=2, filter="F1500W",
                                 readpatt="FASTR1", stars=2, cosmic_ray_rate=50.0,
                                 movers=[Mover(60, 60, 2.0, 1.0, 100.0)], seed=12)
    model.validate()
    meta = model.meta
    assert (meta.instrument.name, meta.instrument.detector, meta.instrument.filter) == (
        "MIRI", "MIRIMAGE", "F1500W")
    assert (meta.exposure.type, meta.exposure.readpatt) == ("MIR_IMAGE", "FASTR1")
    assert meta.exposure.nframes == 1 and meta.exposure.groupgap == 0
    gt = meta.exposure.group_time
    elapsed = (2 * 8 + 1) * gt  # FASTR1: one reset frame between the integrations
    assert meta.exposure.end_time == pytest.approx(meta.exposure.start_time + elapsed / 86400)
    assert meta.aperture.name == "MIRIM_SUB128"
    sub = meta.subarray
    assert (sub.xstart, sub.ystart, sub.xsize, sub.ysize) == (1, 891, 136, 128)
    assert meta.wcsinfo.vparity == -1
    assert len(model.int_times) == 2
    assert model.int_times["int_start_MJD_UTC"][1] - model.int_times["int_start_MJD_UTC"][0] == (
        pytest.approx(9 * gt / 86400))

    paths = save_simulation(model, truth, tmp_path / "sim")
    assert paths["ramp"].name == "sim_uncal.fits"
    with fits.open(paths["ramp"]) as hdul:
        assert hdul["SCI"].data.dtype.kind == "f" and hdul["SCI"].data.itemsize == 4
        assert hdul[0].header["EXP_TYPE"] == "MIR_IMAGE"
        assert hdul[0].header["SUBARRAY"] == "SUB128"
    back = datamodels.RampModel(paths["ramp"])
    back.validate()
    np.testing.assert_array_equal(back.data, model.data)
    np.testing.assert_array_equal(back.groupdq, model.groupdq)
    np.testing.assert_array_equal(back.pixeldq, model.pixeldq)
    assert back.meta.wcsinfo.v2_ref == pytest.approx(model.meta.wcsinfo.v2_ref)
    assert back.meta.exposure.group_time == pytest.approx(gt)
    np.testing.assert_allclose(back.int_times["int_mid_MJD_UTC"],
                               model.int_times["int_mid_MJD_UTC"])

    t = Table.read(paths["truth"])
    assert tuple(t.colnames) == TRUTH_COLUMNS
    np.testing.assert_allclose(t["snr"], truth["snr"])
    assert t.meta["group_time"] == pytest.approx(gt)
    assert len(Table.read(paths["cosmic_rays"])) == sum(truth.meta["n_cosmic_rays"])
    assert len(Table.read(paths["stars"])) == 2


def test_pointing_matches_real_mirim_full_header():
    header = fits.getheader(REAL / "mirim_full_pointing_header.fits", "SCI")
    ra_v1, dec_v1, pa_v3 = v1_pointing(header["RA_REF"], header["DEC_REF"], header["ROLL_REF"],
                                       header["V2_REF"], header["V3_REF"])
    # The header was made with the jwst pointing code; agree to < 1 arcsec.
    assert ra_v1 == pytest.approx(header["RA_V1"], abs=3e-4)
    assert dec_v1 == pytest.approx(header["DEC_V1"], abs=3e-4)
    assert pa_v3 == pytest.approx(header["PA_V3"], abs=3e-4)
    assert SUBARRAYS["FULL"]["v2_ref"] == pytest.approx(header["V2_REF"])
    assert SUBARRAYS["FULL"]["v3_ref"] == pytest.approx(header["V3_REF"])


def test_pointing_and_subarrays_match_pysiaf():
    pysiaf = pytest.importorskip("pysiaf")
    from pysiaf.utils import rotations

    siaf = pysiaf.Siaf("MIRI")
    for name, sub in SUBARRAYS.items():
        ap = siaf[sub["aperture"]]
        assert (sub["xstart"], sub["ystart"]) == tuple(int(v) for v in ap.dms_corner())
        assert (sub["xsize"], sub["ysize"]) == (ap.XSciSize, ap.YSciSize)
        assert (sub["v2_ref"], sub["v3_ref"]) == pytest.approx((ap.V2Ref, ap.V3Ref))
    att = rotations.attitude(-453.34829, -373.667949, 80.0, -69.5, 250.0)
    ra, dec = rotations.pointing(att, 0.0, 0.0)
    pa = rotations.posangle(att, 0.0, 0.0)
    got = v1_pointing(80.0, -69.5, 250.0, -453.34829, -373.667949)
    assert got[0] == pytest.approx(ra % 360, abs=1e-8)
    assert got[1] == pytest.approx(dec, abs=1e-8)
    assert got[2] == pytest.approx(pa % 360, abs=1e-6)


# --- Realism and physics checks (issue 3, "The measuring bench") ----------------------

CDP7 = REAL_DATA_DIR / "MIRI_FM_MIRIMAGE_MASK_07.02.01.fits.gz"
REAL_RAMP = REAL_DATA_DIR / "MIRI_5582_89_S_20180308-010230_SCE1_pipe.fits"
# The same, with no showers either.
SILENT = dict(QUIET, shower_rate=0.0)


def test_every_filter_has_a_background_rising_with_wavelength():
    assert set(FILTER_BACKGROUND) == set(FILTER_FWHM)
    broad = [f for f in sorted(FILTER_BACKGROUND, key=lambda f: int(f[1:-1])) if f != "F1130W"]
    levels = [FILTER_BACKGROUND[f] for f in broad]
    assert levels == sorted(levels)
    assert FILTER_BACKGROUND["F560W"] < 3 and FILTER_BACKGROUND["F2550W"] > 100


@pytest.mark.parametrize("filt", ["F560W", "F2550W"])
def test_default_background_is_the_filters(filt):
    model, truth = simulate_ramp(subarray="SUB64", ngroups=12, filter=filt, cosmic_ray_rate=0.0,
                                 shower_rate=0.0, saturation=1e9, seed=21)
    gt = model.meta.exposure.group_time
    reads = model.data[0][:, :, sensitive_mask("SUB64")].astype(float)
    slope = (reads[-2] - reads[1]) / ((reads.shape[0] - 3) * gt)
    assert truth.meta["background_mean"] == FILTER_BACKGROUND[filt]
    # Mean slope = rate; its error is read noise of two reads plus shot noise.
    n = slope.size
    sigma = np.sqrt((7.0**2 + FILTER_BACKGROUND[filt] * 9 * gt / 4.0) / n) / (9 * gt)
    assert abs(np.mean(slope) - FILTER_BACKGROUND[filt]) < 5 * sigma


def test_adjacent_differences_share_a_read():
    """Read noise is per read: adjacent differences have covariance -rn**2/2."""
    rn, background, gain = 7.0, 100.0, 4.0
    model, _ = simulate_ramp(subarray="SUB64", ngroups=40, background=background, read_noise_cds=rn,
                             gain=gain, cosmic_ray_rate=0.0, shower_rate=0.0, saturation=1e9, seed=22)
    d = np.diff(model.data[0].astype(float), axis=0)[:, :, sensitive_mask("SUB64")]
    d -= d.mean(axis=0)
    cov1 = np.mean(d[1:] * d[:-1])
    cov2 = np.mean(d[2:] * d[:-2])
    assert cov1 == pytest.approx(-rn**2 / 2, rel=0.05)
    assert abs(cov2) < 0.05 * rn**2


def test_real_ramp_differences_are_anticorrelated_too():
    """The real ground-test ramp shows the same per-read structure (corr near -1/2)."""
    if not REAL_RAMP.exists():
        pytest.skip("real MIRI data not found")
    d = fits.getdata(REAL_RAMP, "SCI").astype(float)[:, :, :, 4:]
    d = np.diff(d, axis=1)[:, 5:-1]  # past the reset anomaly, before the last frame
    d -= np.median(d, axis=1, keepdims=True)
    ok = np.abs(d) < 40  # leave out cosmic rays
    both = ok[:, 1:] & ok[:, :-1]
    corr = np.mean((d[:, 1:] * d[:, :-1])[both]) / np.var(d[ok])
    assert -0.5 <= corr <= -0.3


@pytest.mark.parametrize("speed", [0.005, 5.0])
def test_slowest_and_fastest_movers_deposit_flux_times_time(speed):
    flux, ngroups = 60.0, 40
    gt = group_time_for("SUB256")
    x0 = 128.0 if speed < 1 else 20.0
    mover = Mover(x0, 100.0, vx=speed / gt, vy=0.2 * speed / gt, flux=flux)
    model, truth = simulate_ramp(subarray="SUB256", ngroups=ngroups, movers=[mover],
                                 flag_edges=False, saturation=1e9, **SILENT)
    collected = float(np.sum(model.data[0, -1].astype(float) - model.data[0, 0]))
    assert collected == pytest.approx(flux * (ngroups - 1) * gt, rel=3e-3)
    assert truth["speed_px_per_group"][0] == pytest.approx(speed * np.hypot(1, 0.2))
    assert truth["n_groups_on_detector"][0] == ngroups


def test_mover_entering_mid_ramp():
    """A mover entering through the left edge: on-detector reads and on-array charge."""
    flux, ngroups = 100.0, 60
    gt = group_time_for("SUB256")
    vx = 1.5 / gt
    mover = Mover(-20.0, 128.0, vx=vx, vy=0.0, flux=flux)  # BRIGHTSKY-like: SUB256 has no ref cols
    model, truth = simulate_ramp(subarray="SUB256", ngroups=ngroups, movers=[mover],
                                 flag_edges=False, saturation=1e9, **SILENT)
    t_in = (-0.5 - -20.0) / vx  # centre crosses the first column's outer edge
    t_end = (ngroups - 1) * gt
    collected = float(np.sum(model.data[0, -1].astype(float) - model.data[0, 0]))
    assert collected == pytest.approx(flux * (t_end - t_in), rel=0.01)
    k_in = int(np.ceil(t_in / gt))
    assert truth["n_groups_on_detector"][0] == ngroups - k_in
    assert truth["x_start"][0] == pytest.approx(-20.0)
    # Its SNR counts only on-array cells: the same as a mover starting at the edge
    # and moving for the same time.
    inside = Mover(-0.5, 128.0, vx=vx, vy=0.0, flux=flux, t_ref=t_in)
    _, t2 = simulate_ramp(subarray="SUB256", ngroups=ngroups, movers=[inside], flag_edges=False,
                          background=5.0, cosmic_ray_rate=0.0, shower_rate=0.0, seed=1)
    _, t1 = simulate_ramp(subarray="SUB256", ngroups=ngroups, movers=[mover], flag_edges=False,
                          background=5.0, cosmic_ray_rate=0.0, shower_rate=0.0, seed=1)
    assert t1["snr"][0] == pytest.approx(t2["snr"][0], rel=1e-9)


def test_mover_crossing_a_star():
    """Charge adds up over the star; the star's shot noise lowers the mover's SNR."""
    flux, ngroups = 40.0, 30
    gt = group_time_for("SUB128")
    star = Star(70.0, 64.0, 2000.0)
    mover = Mover(70.0, 64.0, vx=0.5 / gt, vy=0.0, flux=flux, t_ref=(ngroups - 1) * gt / 2)
    kw = dict(subarray="SUB128", ngroups=ngroups, flag_edges=False, saturation=1e9, **SILENT)
    with_star, _ = simulate_ramp(movers=[mover], **{**kw, "stars": [star]})
    star_only, _ = simulate_ramp(**{**kw, "stars": [star]})
    mover_charge = float(np.sum(with_star.data[0, -1].astype(float) - star_only.data[0, -1]))
    assert mover_charge == pytest.approx(flux * (ngroups - 1) * gt, rel=3e-3)
    noisy = dict(subarray="SUB128", ngroups=ngroups, movers=[mover], background=5.0,
                 cosmic_ray_rate=0.0, shower_rate=0.0, seed=2)
    _, t_star = simulate_ramp(stars=[Star(70.0, 64.0, 2e4)], **noisy)
    _, t_free = simulate_ramp(stars=[], **noisy)
    assert t_star["snr"][0] < 0.97 * t_free["snr"][0]


def _monte_carlo_snr(speed, background, read_noise, n_real=400, ngroups=16):
    """Truth SNRs, and mean/std of two matched filters over many noise realisations.

    Each integration of one simulated exposure holds the same mover at the same place
    and time, so the integrations are independent realisations of one template.
    """
    gain, gt = 4.0, group_time_for("SUB64")
    t_ref, vx, vy = ngroups * gt / 2, 0.8 * speed / gt, 0.6 * speed / gt
    flux = snr_to_flux(8.0, vx, vy, x=36.2, y=31.7, t_ref=t_ref, ngroups=ngroups, subarray="SUB64",
                       background=background, read_noise_cds=read_noise, gain=gain)
    movers = [Mover(36.2, 31.7, vx, vy, flux, t_ref, i) for i in range(1, n_real + 1)]
    model, truth = simulate_ramp(subarray="SUB64", ngroups=ngroups, nints=n_real, movers=movers,
                                 background=background, read_noise_cds=read_noise, gain=gain,
                                 cosmic_ray_rate=0.0, shower_rate=0.0, saturation=1e9, seed=23)
    # The known template, over the valid differences of the pixels it touches.
    t0, t1 = difference_intervals(ngroups, gt)
    s = mover_differences(36.2, 31.7, vx, vy, flux, t_ref, t0, t1, psf_for_filter("F770W"),
                          np.arange(72.0), np.arange(64.0))
    s[:, :, :4] = 0.0
    valid = valid_differences(ngroups)
    s = s[valid].reshape(valid.sum(), -1)
    keep = s.max(axis=0) > 1e-6 * s.max()
    s = s[:, keep]
    b = background * gt
    d = np.diff(model.data.astype(float), axis=1)[:, valid].reshape(n_real, valid.sum(), -1)
    d = d[:, :, keep] - b
    var = difference_variance(s + b, read_noise, gain)
    # Filter 1: DESIGN.md §3 weights s / var.  Filter 2: the ideal C^-1 s with the
    # true per-pixel covariance (dense solve, independent of the package's code).
    out_diag = np.einsum("nkp,kp->n", d, s / var)
    k = s.shape[0]
    ideal = np.empty_like(s)
    off = np.full(k - 1, -read_noise**2 / 2)
    for p in range(s.shape[1]):
        cov = np.diag(var[:, p]) + np.diag(off, 1) + np.diag(off, -1)
        ideal[:, p] = np.linalg.solve(cov, s[:, p])
    out_ideal = np.einsum("nkp,kp->n", d, ideal)
    analytic = matched_filter_snr_correlated(s, b, np.ones_like(s, bool), read_noise, gain)
    return (truth[0], out_diag.mean() / out_diag.std(), out_ideal.mean() / out_ideal.std(),
            analytic)


def test_matched_filter_snr_matches_monte_carlo_when_shot_noise_dominates():
    """Truth ``snr`` (DESIGN.md §3) = mean/std of the s/var matched filter over realisations.

    Shot noise dominates (3000 DN/s on SUB64: 255 DN per difference), so the
    differences are nearly independent and the DESIGN formula holds.
    """
    row, mc_diag, mc_ideal, _ = _monte_carlo_snr(0.3, 3000.0, 3.0)
    assert row["snr"] == pytest.approx(8.0, rel=1e-6)
    assert mc_diag == pytest.approx(row["snr"], rel=0.10)
    assert mc_ideal == pytest.approx(row["snr_optimal"], rel=0.10)


def test_optimal_snr_matches_monte_carlo_when_read_noise_dominates():
    """With read noise dominant, ``snr_optimal`` (correlated reads) matches the ideal
    filter's Monte-Carlo SNR, and the DESIGN formula underestimates what even its own
    s/var filter achieves, because a slow mover's read noise cancels along the ramp."""
    row, mc_diag, mc_ideal, (opt, diag) = _monte_carlo_snr(0.3, 5.0, 7.0)
    assert opt == pytest.approx(row["snr_optimal"], rel=1e-6)
    assert mc_ideal == pytest.approx(row["snr_optimal"], rel=0.10)
    assert mc_diag == pytest.approx(diag, rel=0.10)
    assert mc_diag > 2 * row["snr"]


def test_shower_rate_matches_parameter():
    rng = np.random.default_rng(24)
    shape, ngroups, gt = (128, 136), 50, 0.11904
    sensitive = sensitive_mask("SUB128")
    rate = 2000 * SHOWER_RATE
    n_pix = shape[0] * sensitive.sum()
    mu_one = rate * n_pix * PIXEL_AREA_CM2 * (ngroups - 1) * gt
    counts = [len(draw_showers(rng, shape, ngroups, gt, rate, None, sensitive)[0])
              for _ in range(300)]
    mu = 300 * mu_one
    assert abs(sum(counts) - mu) < 4 * np.sqrt(mu)
    # The default is one per 160 s on the full array's 1024 x 1024 sensitive pixels.
    assert SHOWER_RATE * 1024 * 1024 * PIXEL_AREA_CM2 * 160.0 == pytest.approx(1.0)
    assert len(draw_showers(rng, shape, ngroups, gt, 0.0)[0]) == 0


def test_shower_shape_and_leak():
    """A shower: hundreds of pixels, low prompt charge, then a slow leak (analytic)."""
    rng = np.random.default_rng(25)
    model = ShowerModel(amplitude_range=(10.0, 10.0), area_range=(400.0, 400.0),
                        leak_fraction=0.5, leak_time=6.0)
    shape, ngroups, gt = (1024, 1032), 60, 2.77504
    events, dep = draw_showers(rng, shape, ngroups, gt, 50 * SHOWER_RATE, model)
    assert len(events) > 5
    for ev in events[:5]:
        if not (30 < ev["x"] < 1000 and 30 < ev["y"] < 990):
            continue
        # Paraboloid of peak 10 DN over 400 px: 2000 DN prompt, ~400 pixels.
        assert ev["n_pixels"] == pytest.approx(400, rel=0.05)
        assert ev["prompt"] == pytest.approx(0.5 * 10.0 * 400, rel=0.05)
        t_left = (ngroups - 1) * gt - ev["t_int"]
        assert ev["leak"] == pytest.approx(0.5 * ev["prompt"] * (1 - np.exp(-t_left / 6.0)),
                                           rel=1e-3 + np.exp(-t_left / 6.0) + 2e-3)
    assert dep["dn"].max() <= 10.0 + 1e-9
    assert dep["dn"].sum() == pytest.approx(events["prompt"].sum() + events["leak"].sum())


def test_shower_in_a_ramp_is_a_step_then_a_leak():
    model = ShowerModel(amplitude_range=(20.0, 20.0), area_range=(600.0, 600.0),
                        leak_fraction=0.5, leak_time=6.0)
    ramp, truth = simulate_ramp(subarray="FULL", ngroups=12, shower_rate=30 * SHOWER_RATE,
                                shower_model=model, seed=26, flag_edges=False, **QUIET)
    showers = truth.meta["showers"]
    assert len(showers) == sum(truth.meta["n_showers"]) > 0
    ev = showers[0]
    d = np.diff(ramp.data[0].astype(float), axis=0)
    k = ev["group"] - 1
    y, x = round(ev["y"]), round(ev["x"])
    # Prompt at the centre (~peak) plus the leak released in the rest of that difference.
    after = (k + 1) * 2.77504 - ev["t_int"]
    expected = 20.0 * (1 + 0.5 * (1 - np.exp(-after / 6.0)))
    assert d[k, y, x] == pytest.approx(expected, rel=0.05)
    if k + 1 < d.shape[0]:
        nxt = 10.0 * (np.exp(-after / 6.0) - np.exp(-(after + 2.77504) / 6.0))
        assert d[k + 1, y, x] == pytest.approx(nxt, rel=0.05)


def test_bad_pixels_from_cdp7():
    if not CDP7.exists():
        pytest.skip("CDP7 mask not found")
    raw = fits.getdata(CDP7, "DQ").astype(np.uint32)
    full = cdp7_pixel_dq("FULL")
    pix = dqflags.pixel
    for bit, name in [(1, "DO_NOT_USE"), (2, "DEAD"), (4, "HOT"), (8, "UNRELIABLE_SLOPE"),
                      (16, "RC"), (32, "REFERENCE_PIXEL")]:
        np.testing.assert_array_equal((raw & bit) != 0, (full & pix[name]) != 0)
    # Subarrays are cut at their 1-based corner.
    sub = SUBARRAYS["SUB128"]
    np.testing.assert_array_equal(
        cdp7_pixel_dq("SUB128"),
        full[sub["ystart"] - 1 : sub["ystart"] - 1 + 128, sub["xstart"] - 1 : sub["xstart"] - 1 + 136])

    # Only the full array has dead pixels (42 of them).
    model, truth = simulate_ramp(subarray="FULL", ngroups=5, background=50.0,
                                 bad_pixels="cdp7", cosmic_ray_rate=0.0, shower_rate=0.0,
                                 hot_pixel_rate_range=(500.0, 500.0), saturation=1e9, seed=27)
    assert np.all((model.pixeldq & full) == full)
    slope = (model.data[0, -2] - model.data[0, 1]).astype(float) / (2 * model.meta.exposure.group_time)
    dead = (model.pixeldq & pix["DEAD"]) != 0
    hot = ((model.pixeldq & pix["HOT"]) != 0) & ~dead
    good = model.pixeldq == 0
    assert dead.any() and hot.any()
    assert truth.meta["n_dead_pixels"] == dead.sum()
    # Dead: no charge at all (read noise only); hot: background plus 500 DN/s.
    assert abs(np.mean(slope[dead])) < 1.0
    assert np.mean(slope[hot]) == pytest.approx(550.0, rel=0.05)
    assert np.mean(slope[good]) == pytest.approx(50.0, rel=0.02)


def test_rscd_flags_match_jwst():
    """rscd=(skip1, skip) flags exactly what jwst 3.0's RSCD step flags, back-off included."""
    correction_skip_groups = pytest.importorskip("jwst.rscd.rscd_sub").correction_skip_groups
    bright = [Star(36.0, 32.0, 3e6)]  # saturates in the first few groups: back-off
    for ngroups, nints, skip in [(12, 3, (2, 4)), (5, 2, (1, 3)), (7, 2, (1, 6))]:
        kw = dict(subarray="SUB64", ngroups=ngroups, nints=nints, stars=bright,
                  cosmic_ray_rate=0.0, seed=28)
        plain, _ = simulate_ramp(**kw)
        ref = correction_skip_groups(plain.copy(), *skip)
        mine, _ = simulate_ramp(rscd=skip, **kw)
        np.testing.assert_array_equal(mine.groupdq, ref.groupdq)
        np.testing.assert_array_equal(mine.pixeldq, ref.pixeldq)
    assert np.any(mine.pixeldq & dqflags.pixel["FLUX_ESTIMATED"])
    # The truth SNR leaves out the RSCD groups of integrations 2+.
    gt = group_time_for("SUB64")
    m = Mover(20.0, 20.0, 0.2 / gt, 0.0, 200.0)
    _, t_plain = simulate_ramp(subarray="SUB64", ngroups=20, nints=2, movers=[m], seed=1)
    _, t_rscd = simulate_ramp(subarray="SUB64", ngroups=20, nints=2, movers=[m], rscd=(1, 5),
                              seed=1)
    assert t_rscd["snr"][0] == pytest.approx(t_plain["snr"][0])
    assert t_rscd["snr"][1] < t_plain["snr"][1]


def test_slow_readout_and_multiple_integrations():
    model, truth = simulate_ramp(subarray="FULL", readpatt="SLOWR1", ngroups=3, nints=2,
                                 background=2.0, cosmic_ray_rate=0.0, shower_rate=0.0, seed=29)
    gt = model.meta.exposure.group_time
    assert gt == pytest.approx(23.88992)
    assert model.data.shape == (2, 3, 1024, 1032)
    assert truth.meta["integration_period"] == pytest.approx(4 * gt)  # one reset frame
    slope = (model.data[:, 2] - model.data[:, 0])[:, :, 4:1028].astype(float) / (2 * gt)
    assert np.mean(slope) == pytest.approx(2.0, rel=0.01)


def test_snr_counts_only_differences_before_the_sky_saturates():
    """F2550W sky (400 DN/s) fills the 40000 DN headroom at read 37 of a 2.775 s ramp."""
    gt, ngroups, rate = group_time_for("FULL"), 60, FILTER_BACKGROUND["F2550W"]
    first = int(np.ceil(40000.0 / (rate * gt)))
    vx, vy = 0.2 / gt, 0.1 / gt
    kw = dict(subarray="SUB64", group_time=gt, ngroups=ngroups, filter="F2550W")
    flux = snr_to_flux(10.0, vx, vy, x=30.0, y=30.0, t_ref=0.0, **kw)
    model, truth = simulate_ramp(movers=[Mover(30.0, 30.0, vx, vy, flux)], cosmic_ray_rate=0.0,
                                 shower_rate=0.0, seed=30, **kw)
    assert truth["snr"][0] == pytest.approx(10.0, rel=1e-6)
    t0, t1 = difference_intervals(ngroups, gt)
    s = mover_differences(30.0, 30.0, vx, vy, flux, 0.0, t0, t1, psf_for_filter("F2550W"),
                          np.arange(72.0), np.arange(64.0))
    s[:, :, :4] = 0.0
    expected = matched_filter_snr(s[1 : first - 1], rate * gt, 7.0, 4.0)  # reads 1 .. first-1
    assert truth["snr"][0] == pytest.approx(expected, rel=2e-3)
    # The simulated sky does saturate there (give or take a read for the noise).
    sat = (model.groupdq[0][:, 5:60, 10:70] & SAT) != 0
    assert np.all(np.abs(np.argmax(sat, axis=0) - first) <= 1)


def test_cosmic_ray_sizes_and_amplitudes():
    """Log-uniform total DN over 50-5000 (median 500) and 1-6 pixels, mostly compact."""
    rng = np.random.default_rng(31)
    events, _ = draw_cosmic_rays(rng, (1024, 1032), 100, 2.77504)
    n = len(events)
    mu = 5.0 * 1024 * 1032 * PIXEL_AREA_CM2 * 99 * 2.77504
    assert abs(n - mu) < 4 * np.sqrt(mu)
    assert np.median(events["amplitude"]) == pytest.approx(500.0, rel=0.05)
    assert events["amplitude"].min() >= 50.0 and events["amplitude"].max() <= 5000.0
    frac = np.bincount(events["n_pixels"], minlength=7)[1:] / n
    np.testing.assert_allclose(frac, [0.35, 0.25, 0.15, 0.10, 0.08, 0.07], atol=0.02)


SUB128_GT = group_time_for("SUB128")


@pytest.mark.parametrize("speed, ratio_range", [(0.01, (0.0, 0.2)), (1.0, (0.5, 1.0))])
def test_moving_snr_is_what_tells_a_mover_from_a_star(speed, ratio_range):
    """``snr_moving`` drops each pixel's constant level: a mover crossing a small part
    of its PSF keeps little of its SNR, one crossing many PSF widths most of it (in
    this read-noise dominated ramp a step in a pixel's ramp partly looks like a rate,
    so even a fast mover keeps only ~70 %)."""
    _, truth = simulate_ramp(subarray="SUB128", ngroups=40, filter="F770W", stars=0,
                             cosmic_ray_rate=0.0, seed=5,
                             movers=[Mover(64.0, 64.0, speed / SUB128_GT, 0.0, 20.0, t_ref=2.4)])
    row = truth[0]
    assert ratio_range[0] <= row["snr_moving"] / row["snr_optimal"] <= ratio_range[1]


def test_moving_snr_is_the_snr_the_moving_psf_fit_reaches():
    """One noise model: the fit's SNR (levels profiled, no drift) of the true track is
    the truth's ``snr_moving``."""

    mover = Mover(60.0, 64.0, 0.1 / SUB128_GT, 0.05 / SUB128_GT, 40.0, t_ref=2.4)
    ramp, truth = simulate_ramp(subarray="SUB128", ngroups=41, filter="F770W", stars=0, psf=GAUSSIANS,
                                cosmic_ray_rate=0.0, seed=6, movers=[mover], read_noise_cds=7.0)
    diffs = IntegrationDifferences(np.array(ramp.data[0]), np.array(ramp.groupdq[0]),
                                   np.array(ramp.pixeldq))
    background = np.nan_to_num(pixel_mean_rate(diffs.diff, diffs.jump))
    row = truth[0]
    guess = Track(row["x"], row["y"], row["vx"], row["vy"], row["t_ref"], 0.0, 2 * row["t_ref"],
                  np.zeros(0, bool))
    fit = fit_moving_psf(diffs.diff, diffs.jump, background, 7.0, 4.0, SUB128_GT,
                         GAUSSIANS, guess, trend_order=0)
    assert fit.snr == pytest.approx(row["snr_moving"], rel=0.15)
