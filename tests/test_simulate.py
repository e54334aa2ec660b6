"""Tests of the ramp simulator (jwst_asteroid_step.simulate)."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

from jwst_asteroid_step.mover_model import mover_differences
from jwst_asteroid_step.psf import psf_for_filter
from jwst_asteroid_step.ramp.noise import difference_variance, matched_filter_snr
from jwst_asteroid_step.simulate import (
    SUBARRAYS,
    TRUTH_COLUMNS,
    Mover,
    Star,
    draw_cosmic_rays,
    group_time_for,
    save_simulation,
    simulate_ramp,
    snr_to_flux,
)
from jwst_asteroid_step.simulate.cosmic_rays import PIXEL_AREA_CM2
from jwst_asteroid_step.simulate.metadata import reference_pixel_columns, v1_pointing
from jwst_asteroid_step.simulate.ramps import mover_patches
from jwst_asteroid_step.timebase import difference_intervals

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
DNU = dqflags.group["DO_NOT_USE"]
SAT = dqflags.group["SATURATED"]

# A noise-free, event-free detector, for exact bookkeeping tests.
QUIET = dict(read_noise_cds=0.0, poisson=False, cosmic_ray_rate=0.0, background=0.0, stars=0)


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
    psf = psf_for_filter("F770W")
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
