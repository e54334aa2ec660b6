"""Sky coordinates, sky rates, observer metadata and flux calibration (jwst_asteroid_step.sky).

WCS tests use the real flight MIRI imager distortion and filter-offset reference
files (shared/data/real), the real MIRIM_FULL pointing header, and the simulator's
SIAF pointing keywords.
"""

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_asteroid_step.datamodels import empty_catalog
from jwst_asteroid_step.offline import REAL_DATA_DIR
from jwst_asteroid_step.simulate.metadata import fill_miri_imager_meta
from jwst_asteroid_step.sky import (
    JWST_MPC_CODE,
    add_flux_columns,
    add_sky_columns,
    build_sky_transform,
    flux_columns,
    observer_metadata,
    observer_position,
    photometric_conversion,
    sky_columns,
)

DISTORTION = REAL_DATA_DIR / "jwst_miri_imager_distortion_flt9.asdf"
FILTEROFFSET = REAL_DATA_DIR / "jwst_miri_filteroffset_full_flt9.asdf"
POINTING_HEADER = REAL_DATA_DIR / "mirim_full_pointing_header.fits"

pytestmark = pytest.mark.skipif(
    not DISTORTION.exists(), reason=f"real MIRI reference files not found in {REAL_DATA_DIR}"
)


def _mas(ra1, dec1, ra2, dec2):
    """Angular separation (mas) for small offsets."""
    dra = (np.asarray(ra1) - np.asarray(ra2) + 180.0) % 360.0 - 180.0
    return np.hypot(dra * np.cos(np.radians(dec2)), np.asarray(dec1) - dec2) * 3.6e6


def _ramp_meta(subarray="SUB256", filter="F770W", **pointing):
    """A RampModel with only metadata (simulator's real SIAF pointing keywords)."""
    model = datamodels.RampModel()
    pointing = {"ra_ref": 151.84, "dec_ref": -40.36, "roll_ref": 111.9, **pointing}
    fill_miri_imager_meta(model, subarray=subarray, filter=filter, ngroups=20, **pointing)
    return model


def _full_frame_from_real_header(filter="F770W"):
    """The real MIRIM_FULL pointing header as an ImageModel (plus the keys it lacks)."""
    with datamodels.open(POINTING_HEADER) as header:
        model = datamodels.ImageModel((1024, 1032))
        model.update(header)
        model.meta.wcsinfo = header.meta.wcsinfo.instance
    model.meta.instrument.name = "MIRI"
    model.meta.instrument.detector = "MIRIMAGE"
    model.meta.instrument.filter = filter
    model.meta.exposure.type = "MIR_IMAGE"
    sub = model.meta.subarray
    sub.name, sub.xstart, sub.ystart, sub.xsize, sub.ysize = "FULL", 1, 1, 1032, 1024
    return model


def _assign_wcs_step(model):
    """The WCS of jwst's AssignWcsStep run offline on an ImageModel (DESIGN.md §7)."""
    from jwst.assign_wcs import AssignWcsStep

    image = datamodels.ImageModel(tuple(int(v) for v in (model.meta.subarray.ysize,
                                                          model.meta.subarray.xsize)))
    image.update(model)
    overrides = {f"override_{r}": "N/A" for r in AssignWcsStep.reference_file_types}
    overrides["override_distortion"] = str(DISTORTION)
    overrides["override_filteroffset"] = str(FILTEROFFSET)
    result = AssignWcsStep.call(image, sip_approx=False, **overrides)
    assert result.meta.cal_step.assign_wcs == "COMPLETE"
    return result.meta.wcs


def _field_points(model):
    """Corners and centre of the SCI array (0-based pixel centres)."""
    nx, ny = int(model.meta.subarray.xsize), int(model.meta.subarray.ysize)
    x = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2, 17.3])
    y = np.array([0, 0, ny - 1, ny - 1, (ny - 1) / 2, 5.8])
    return x, y


def _catalog_at(x, y, vx=0.5, vy=-0.3, err=0.05, verr=0.01):
    cat = empty_catalog(len(x))
    cat["id"] = np.arange(1, len(x) + 1)
    cat["x"], cat["y"] = x, y
    cat["x_err"] = cat["y_err"] = err
    cat["vx"], cat["vy"] = vx, vy
    cat["vx_err"] = cat["vy_err"] = verr
    cat["flux"], cat["flux_err"] = 100.0, 5.0
    return cat


# ---------------------------------------------------------------- positions


@pytest.mark.parametrize("source", ["real_full_header", "sim_sub256"])
def test_positions_match_assign_wcs_step(offline_refs, source):
    model = _full_frame_from_real_header() if source == "real_full_header" else _ramp_meta()
    wcs = _assign_wcs_step(model)
    x, y = _field_points(model)
    columns, meta = sky_columns(_catalog_at(x, y), model, distortion=DISTORTION,
                                filteroffset=FILTEROFFSET)
    assert meta["wcs_source"] == "assign_wcs"
    assert meta["wcs"]["distortion"] == DISTORTION.name
    ra, dec = wcs(x, y, with_bounding_box=False)
    assert np.max(_mas(columns["ra"], columns["dec"], ra, dec)) < 1.0


def test_ramp_input_is_not_modified():
    ramp = _ramp_meta()
    before = ramp.meta.instance.copy()
    add_sky_columns(_catalog_at([10.0], [20.0]), ramp, distortion=DISTORTION,
                    filteroffset=FILTEROFFSET)
    assert ramp.meta.instance == before
    assert getattr(ramp.meta, "wcs", None) is None


def test_reference_point_maps_to_ra_dec_ref():
    # SIAF reference pixel (1-based science frame) -> 0-based SCI index - 1.
    for model in (_full_frame_from_real_header(), _ramp_meta("SUB64"), _ramp_meta("BRIGHTSKY")):
        w = model.meta.wcsinfo
        x = np.array([w.siaf_xref_sci - 1.0]) if w.siaf_xref_sci else np.array([692.5])
        y = np.array([w.siaf_yref_sci - 1.0]) if w.siaf_yref_sci else np.array([511.5])
        for kwargs in ({"distortion": DISTORTION, "filteroffset": FILTEROFFSET}, {}):
            ra, dec = build_sky_transform(model, **kwargs)(x, y)
            assert _mas(ra, dec, w.ra_ref, w.dec_ref)[0] < 1.0


@pytest.mark.parametrize(
    "subarray, aperture",
    [("FULL", None), ("SUB256", None), ("BRIGHTSKY", None), ("SUB64", "MIRIM_FULL")],
)
def test_pysiaf_fallback_agrees_with_assign_wcs(subarray, aperture):
    model = _full_frame_from_real_header() if subarray == "FULL" else _ramp_meta(subarray)
    if aperture:
        # The exposure's aperture is not the subarray's: MIRIM_FULL + subarray corner.
        model.meta.aperture.name = aperture
    model.meta.velocity_aberration.scale_factor = 1.00007
    x, y = _field_points(model)
    wcs = build_sky_transform(model, distortion=DISTORTION, filteroffset=FILTEROFFSET)
    siaf = build_sky_transform(model)
    assert (wcs.source, siaf.source) == ("assign_wcs", "pysiaf")
    assert siaf.info["siaf_aperture"] == (aperture or f"MIRIM_{subarray}")
    sep = _mas(*siaf(x, y), *wcs(x, y))
    assert np.max(sep) < 50.0, sep


def test_pysiaf_fallback_applies_filter_offset_when_given():
    model = _ramp_meta("SUB256", filter="F1500W")  # filter offset (-0.36, -0.74) px
    x, y = _field_points(model)
    wcs = build_sky_transform(model, distortion=DISTORTION, filteroffset=FILTEROFFSET)
    without = _mas(*build_sky_transform(model)(x, y), *wcs(x, y))
    with_offset = build_sky_transform(model, filteroffset=FILTEROFFSET)
    assert with_offset.source == "pysiaf"
    assert np.min(without) > 50.0  # ~0.8 px: why assign_wcs is preferred
    assert np.max(_mas(*with_offset(x, y), *wcs(x, y))) < 1.0


def test_meta_wcs_is_used_first(offline_refs):
    model = _ramp_meta()
    image = datamodels.ImageModel((256, 256))
    image.update(model)
    image.meta.wcs = _assign_wcs_step(model)
    transform = build_sky_transform(image)
    assert transform.source == "assign_wcs" and transform.info["from"] == "meta.wcs"


def test_no_pointing_means_no_sky_columns():
    model = datamodels.RampModel()
    fill_miri_imager_meta(model, subarray="SUB64", ngroups=5)
    model.meta.wcsinfo.ra_ref = None
    columns, meta = sky_columns(_catalog_at([1.0], [2.0]), model, distortion=DISTORTION,
                                filteroffset=FILTEROFFSET)
    assert meta["wcs_source"] == "none"
    assert all(np.isnan(v).all() for v in columns.values())


def test_unusable_reference_files_fall_back_to_pysiaf():
    model = _ramp_meta()
    transform = build_sky_transform(model, distortion="N/A", filteroffset="N/A")
    assert transform.source == "pysiaf"
    broken = build_sky_transform(model, distortion=FILTEROFFSET, filteroffset=FILTEROFFSET)
    assert broken.source == "pysiaf" and "assign_wcs failed" in broken.info["notes"]


# ---------------------------------------------------------------- rates and errors


def test_rates_equal_finite_difference_of_positions():
    model = _full_frame_from_real_header()
    rng = np.random.default_rng(3)
    x, y = rng.uniform(10, 1020, 20), rng.uniform(10, 1010, 20)
    vx, vy = rng.normal(0, 0.1, 20), rng.normal(0, 0.1, 20)  # px/s
    transform = build_sky_transform(model, distortion=DISTORTION, filteroffset=FILTEROFFSET)
    columns, _ = sky_columns(_catalog_at(x, y, vx, vy), transform=transform)
    dt = 5.0  # s
    ra_p, dec_p = transform(x + vx * dt, y + vy * dt)
    ra_m, dec_m = transform(x - vx * dt, y - vy * dt)
    dra = (ra_p - ra_m + 180.0) % 360.0 - 180.0
    ra_rate = dra * np.cos(np.radians(columns["dec"])) * 3600.0 / (2 * dt) * 3600.0  # arcsec/h
    dec_rate = (dec_p - dec_m) * 3600.0 / (2 * dt) * 3600.0
    np.testing.assert_allclose(columns["ra_rate"], ra_rate, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(columns["dec_rate"], dec_rate, rtol=1e-5, atol=1e-4)
    # The MIRI imager scale: 0.11 arcsec/px.
    speed = np.hypot(columns["ra_rate"], columns["dec_rate"]) / 3600.0
    np.testing.assert_allclose(speed / np.hypot(vx, vy), 0.11, rtol=0.03)


def test_errors_propagate_through_the_jacobian():
    model = _ramp_meta("SUB256")
    cat = _catalog_at(np.array([50.0, 200.0]), np.array([60.0, 180.0]))
    cat["x_err"], cat["y_err"] = 0.1, 0.1
    cat["vx_err"], cat["vy_err"] = 0.02, 0.02
    columns, _ = sky_columns(cat, model)
    # Isotropic pixel errors -> ~0.11 arcsec/px on the sky, rates x 3600 s/h.
    total = np.hypot(columns["ra_err"], columns["dec_err"]) / np.sqrt(2)
    np.testing.assert_allclose(total, 0.1 * 0.11, rtol=0.05)
    rate_total = np.hypot(columns["ra_rate_err"], columns["dec_rate_err"]) / np.sqrt(2)
    np.testing.assert_allclose(rate_total, 0.02 * 0.11 * 3600, rtol=0.05)
    assert np.all(np.abs(columns["ra_dec_corr"]) < 0.2)  # nearly square pixels
    # An error along x only.
    cat["y_err"] = 0.0
    columns, _ = sky_columns(cat, model)
    assert np.all(np.abs(columns["ra_dec_corr"]) > 0.1)


def test_add_sky_columns_keeps_other_columns():
    cat = _catalog_at(np.array([50.0]), np.array([60.0]))
    cat["snr"] = 12.0
    new, meta = add_sky_columns(cat, _ramp_meta())
    assert new.dtype == cat.dtype and new["snr"][0] == 12.0
    assert np.isfinite(new["ra"][0]) and np.isnan(cat["ra"][0])
    assert meta["wcs_source"] == "pysiaf" and "cos(Dec)" in meta["wcs"]["rate_convention"]


# ---------------------------------------------------------------- observer


def test_observer_metadata_from_ephemeris_keywords():
    model = _ramp_meta()
    bare = {"mpc_code": "274", "observatory": "James Webb Space Telescope"}
    assert observer_metadata(model) == bare
    eph = model.meta.ephemeris
    eph.spatial_x_geo, eph.spatial_y_geo, eph.spatial_z_geo = 1.2e9, -0.8e9, 0.3e9  # m
    eph.velocity_x_geo, eph.velocity_y_geo, eph.velocity_z_geo = 300.0, 500.0, -100.0  # m/s
    eph.spatial_x_bary, eph.spatial_y_bary, eph.spatial_z_bary = 1.4e8, 2.0e7, 1.0e7  # km
    eph.time = 60000.5
    eph.reference_frame = "EME2000"
    meta = observer_metadata(model)
    assert meta["mpc_code"] == JWST_MPC_CODE == "274"
    assert meta["geocentric_position_km"] == [1.2e6, -0.8e6, 0.3e6]
    assert meta["geocentric_velocity_km_s"] == [0.3, 0.5, -0.1]
    assert meta["barycentric_position_km"] == [1.4e8, 2.0e7, 1.0e7]
    assert meta["ephemeris_frame"] == "EME2000"
    pos = observer_position(meta, [60000.5, 60000.5 + 1000 / 86400])
    np.testing.assert_allclose(pos[0], [1.2e6, -0.8e6, 0.3e6])
    np.testing.assert_allclose(pos[1] - pos[0], [300.0, 500.0, -100.0], atol=1e-6)


# ---------------------------------------------------------------- photometry


def _photom_reference(path, filter="F770W", subarray="GENERIC", photmjsr=0.25, pixar_sr=2.8e-13):
    table = np.zeros(2, dtype=[("filter", "S12"), ("subarray", "S15"), ("photmjsr", "f4"),
                               ("uncertainty", "f4")])
    table["filter"] = [filter.encode(), b"F2100W"]
    table["subarray"] = subarray.encode()
    table["photmjsr"] = [photmjsr, 9.0]
    ref = datamodels.MirImgPhotomModel(phot_table=table)
    ref.meta.photometry.pixelarea_steradians = pixar_sr
    ref.meta.photometry.pixelarea_arcsecsq = pixar_sr * (180 / np.pi * 3600) ** 2
    ref.save(path)
    return path


def test_flux_from_photometric_keywords():
    model = datamodels.ImageModel((2, 2))
    model.meta.photometry.conversion_megajanskys = 0.25
    model.meta.photometry.pixelarea_steradians = 2.8e-13
    cat = _catalog_at([1.0, 2.0], [1.0, 1.0])
    # A source of 3631 Jy is AB 0; 1 DN/s here is 0.25 * 2.8e-13 MJy = 7e-5 mJy.
    cat["flux"] = [3631e3 / 7e-5, -5.0]
    columns, meta = flux_columns(cat, model)
    np.testing.assert_allclose(columns["flux_mjy"][0], 3631e3)
    assert abs(columns["abmag"][0]) < 1e-9 and np.isnan(columns["abmag"][1])
    np.testing.assert_allclose(columns["flux_mjy_err"], 5.0 * 7e-5)
    assert meta["photometry"]["source"] == "keywords"
    assert "none beyond the PSF model" in meta["photometry"]["psf_correction"]


def test_flux_from_photom_reference_file(tmp_path):
    model = _ramp_meta("SUB256", filter="F770W")
    path = _photom_reference(tmp_path / "photom.fits")
    conversion, info = photometric_conversion(model, photom=path)
    assert info["source"] == "photom" and info["time_correction"] == 1.0
    np.testing.assert_allclose(conversion, 0.25 * 2.8e-13, rtol=1e-6)
    new, _ = add_flux_columns(_catalog_at([1.0], [1.0]), model, photom=path)
    assert {"flux_mjy", "abmag"} <= set(new.dtype.names) and np.isfinite(new["abmag"][0])
    # No row for the filter: no calibration, NaN fluxes.
    model.meta.instrument.filter = "F1000W"
    conversion, info = photometric_conversion(model, photom=path)
    assert np.isnan(conversion) and info["source"] == "none"


def test_add_flux_columns_fills_existing_columns_in_place():
    wide = _catalog_at([1.0], [1.0])  # the catalog schema has the flux columns
    assert "flux_mjy" in wide.dtype.names
    new, _ = add_flux_columns(wide, conversion=7e-14)
    assert new.dtype == wide.dtype
    np.testing.assert_allclose(new["flux_mjy"], 100.0 * 7e-14 * 1e9)


def test_no_calibration_gives_nan():
    columns, meta = flux_columns(_catalog_at([1.0], [1.0]), _ramp_meta())
    assert np.isnan(columns["flux_mjy"][0]) and meta["photometry"]["source"] == "none"
