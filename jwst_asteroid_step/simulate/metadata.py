"""Metadata of a simulated MIRI imager exposure.

Fills a ``RampModel``'s ``meta`` the way a real level-1b MIRIM exposure has it, so
that the jwst Stage 1 steps run on it and ``assign_wcs`` can build the imager WCS
from the pointing keywords.

Subarray geometry and reference points are from the MIRI SIAF (PRD PRDOPSSOC-075,
through pysiaf 0.29): ``xstart = XDetRef - XSciRef + 1``, which reproduces the real
SUB64 ground-test ramp in ``shared/data/real`` (COLSTART 1, ROWSTART 779).  Frame
times are the detector clock counts of each readout (10 µs per clock, as used by
jwst's ``emicorr``), e.g. 277504 clocks = 2.77504 s for the full array in FAST.
"""

import numpy as np
from astropy.time import Time

__all__ = [
    "SUBARRAYS",
    "READOUT_PATTERNS",
    "MIRIM_V3IDLYANGLE",
    "MIRIM_VPARITY",
    "group_time_for",
    "integration_period",
    "reference_pixel_columns",
    "reference_columns_in",
    "v1_pointing",
    "make_int_times",
    "fill_miri_imager_meta",
]

#: MIRI imager subarrays: 1-based corner, size, SIAF aperture, reference point
#: (V2/V3 arcsec, science-frame pixel, 1-based) and FAST frame time (s).
SUBARRAYS = {
    "FULL": dict(
        xstart=1, ystart=1, xsize=1032, ysize=1024, aperture="MIRIM_FULL",
        v2_ref=-453.34829, v3_ref=-373.667949, xref_sci=693.5, yref_sci=512.5,
        frame_time=2.77504,
    ),
    "BRIGHTSKY": dict(
        xstart=457, ystart=51, xsize=512, ysize=512, aperture="MIRIM_BRIGHTSKY",
        v2_ref=-457.433389, v3_ref=-396.318333, xref_sci=256.5, yref_sci=256.5,
        frame_time=0.86528,
    ),
    "SUB256": dict(
        xstart=413, ystart=51, xsize=256, ysize=256, aperture="MIRIM_SUB256",
        v2_ref=-439.639945, v3_ref=-411.947899, xref_sci=128.5, yref_sci=128.5,
        frame_time=0.29952,
    ),
    "SUB128": dict(
        xstart=1, ystart=891, xsize=136, ysize=128, aperture="MIRIM_SUB128",
        v2_ref=-381.037312, v3_ref=-330.86721, xref_sci=70.5, yref_sci=62.5,
        frame_time=0.11904,
    ),
    "SUB64": dict(
        xstart=1, ystart=779, xsize=72, ysize=64, aperture="MIRIM_SUB64",
        v2_ref=-378.758527, v3_ref=-346.788779, xref_sci=38.5, yref_sci=32.5,
        frame_time=0.08512,
    ),
}

#: Readout patterns: frame-time multiplier over FAST, and resets between integrations.
#: SLOW reads the full array only (2388992 clocks = 23.88992 s).
READOUT_PATTERNS = {
    "FAST": dict(slow=False, resets_between_ints=0),
    "FASTR1": dict(slow=False, resets_between_ints=1),
    "SLOW": dict(slow=True, resets_between_ints=0),
    "SLOWR1": dict(slow=True, resets_between_ints=1),
}
_SLOW_FULL_FRAME_TIME = 23.88992

#: Angle (deg) from V3 to the MIRIM ideal y axis, and the ideal-frame parity (SIAF).
MIRIM_V3IDLYANGLE = 4.83544897
MIRIM_VPARITY = -1

# Pixel scale (deg/px) along science x and y at the MIRIM_FULL reference point, as
# in the CDELT keywords of the real pointing header in shared/data/real.
_CDELT = (3.06939222222222e-05, 3.09266472222222e-05)

# Columns 0-3 and 1028-1031 of the full array are reference pixels (no photodiode).
_FULL_REFERENCE_COLUMNS = np.r_[0:4, 1028:1032]

_SECONDS_PER_DAY = 86400.0


def _subarray(name):
    key = name.upper()
    if key not in SUBARRAYS:
        raise ValueError(
            f"Unknown MIRI imager subarray {name!r}; expected one of {sorted(SUBARRAYS)}"
        )
    return SUBARRAYS[key]


def _readpatt(name):
    key = name.upper()
    if key not in READOUT_PATTERNS:
        raise ValueError(
            f"Unknown readout pattern {name!r}; expected one of {sorted(READOUT_PATTERNS)}"
        )
    return READOUT_PATTERNS[key]


def group_time_for(subarray="FULL", readpatt="FAST"):
    """Seconds between reads for a subarray and readout pattern.

    Parameters
    ----------
    subarray : str
        Subarray name (``SUBARRAYS`` keys).
    readpatt : str
        ``FAST``, ``FASTR1``, ``SLOW`` or ``SLOWR1``.

    Returns
    -------
    float
        Group time (s); one frame per group, no group gap.

    Raises
    ------
    ValueError
        For unknown names, or a SLOW pattern with a subarray (not offered).
    """
    sub = _subarray(subarray)
    patt = _readpatt(readpatt)
    if patt["slow"]:
        if subarray.upper() != "FULL":
            raise ValueError(f"{readpatt} is only available for the full array, not {subarray}")
        return _SLOW_FULL_FRAME_TIME
    return sub["frame_time"]


def integration_period(ngroups, group_time, readpatt="FAST"):
    """Seconds from the start of one integration to the start of the next.

    FAST/SLOW integrations follow each other directly (the last read resets);
    FASTR1/SLOWR1 add one reset frame between integrations.
    """
    return (ngroups + _readpatt(readpatt)["resets_between_ints"]) * group_time


def reference_pixel_columns(subarray="FULL"):
    """Indices of the reference-pixel columns within a subarray's SCI array.

    Parameters
    ----------
    subarray : str
        Subarray name.

    Returns
    -------
    ndarray of int
        0-based column indices (possibly empty).
    """
    sub = _subarray(subarray)
    return reference_columns_in(sub["xstart"], sub["xsize"])


def reference_columns_in(xstart, xsize):
    """Reference-pixel columns of any window of the full array.

    Parameters
    ----------
    xstart : int
        1-based first column (``meta.subarray.xstart``).
    xsize : int
        Number of columns.

    Returns
    -------
    ndarray of int
        0-based column indices within the window.
    """
    full_cols = np.arange(int(xsize)) + int(xstart) - 1
    return np.flatnonzero(np.isin(full_cols, _FULL_REFERENCE_COLUMNS))


def _rotation(axis, angle_deg):
    """Right-handed frame rotation about x (0), y (1) or z (2)."""
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    if axis == 0:
        return np.array([[1, 0, 0], [0, c, s], [0, -s, c]])
    if axis == 1:
        return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])
    return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])


def _unit(lon_deg, lat_deg):
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    return np.array([np.cos(lon) * np.cos(lat), np.sin(lon) * np.cos(lat), np.sin(lat)])


def _lonlat(vec):
    lon = np.degrees(np.arctan2(vec[1], vec[0])) % 360.0
    lat = np.degrees(np.arcsin(np.clip(vec[2] / np.linalg.norm(vec), -1, 1)))
    return lon, lat


def v1_pointing(ra_ref, dec_ref, roll_ref, v2_ref, v3_ref):
    """Telescope V1 pointing and V3 position angle from an aperture's pointing.

    Builds the attitude that puts ``(v2_ref, v3_ref)`` at ``(ra_ref, dec_ref)`` with
    the V3 axis at position angle ``roll_ref`` there (JWST-STScI-001550 §6), then
    reads off where V1 points and the V3 position angle at V1.

    Parameters
    ----------
    ra_ref, dec_ref : float
        Sky position (deg) of the aperture reference point.
    roll_ref : float
        Position angle (deg, N through E) of V3 at the reference point.
    v2_ref, v3_ref : float
        Reference point in the telescope frame (arcsec).

    Returns
    -------
    ra_v1, dec_v1, pa_v3 : float
        Degrees.
    """
    attitude = (
        _rotation(2, -ra_ref)
        @ _rotation(1, dec_ref)
        @ _rotation(0, roll_ref)
        @ _rotation(1, -v3_ref / 3600.0)
        @ _rotation(2, v2_ref / 3600.0)
    )
    ra_v1, dec_v1 = _lonlat(attitude @ _unit(0.0, 0.0))
    # V3 direction at V1: a point a small step towards +V3, seen from V1 on the sky.
    ra_n, dec_n = _lonlat(attitude @ _unit(0.0, 1e-3))
    d_ra = np.radians(ra_n - ra_v1)
    d1, d2 = np.radians(dec_v1), np.radians(dec_n)
    east = np.sin(d_ra) * np.cos(d2)
    north = np.cos(d1) * np.sin(d2) - np.sin(d1) * np.cos(d2) * np.cos(d_ra)
    pa_v3 = np.degrees(np.arctan2(east, north)) % 360.0
    return float(ra_v1), float(dec_v1), float(pa_v3)


def make_int_times(nints, start_mjd, ngroups, group_time, period):
    """INT_TIMES table rows for an exposure.

    ``int_start_MJD_UTC`` is the time of the integration's first read (``t_int = 0``
    of the package time base); ``int_end_MJD_UTC`` is one group time after its last
    read (the end of the last frame).  The BJD_TDB columns are the same instants
    shifted by TT - UTC only (no barycentric correction is modelled).

    Parameters
    ----------
    nints, ngroups : int
        Integrations and groups per integration.
    start_mjd : float
        UTC MJD of the first read of integration 1.
    group_time, period : float
        Seconds between reads, and between integration starts.

    Returns
    -------
    numpy structured ndarray
        With the INT_TIMES columns of the jwst datamodels schema.
    """
    dtype = [
        ("integration_number", "i4"),
        ("int_start_MJD_UTC", "f8"),
        ("int_mid_MJD_UTC", "f8"),
        ("int_end_MJD_UTC", "f8"),
        ("int_start_BJD_TDB", "f8"),
        ("int_mid_BJD_TDB", "f8"),
        ("int_end_BJD_TDB", "f8"),
    ]
    rows = np.zeros(nints, dtype=dtype)
    i = np.arange(nints)
    start = start_mjd + i * period / _SECONDS_PER_DAY
    end = start + ngroups * group_time / _SECONDS_PER_DAY
    rows["integration_number"] = i + 1
    rows["int_start_MJD_UTC"] = start
    rows["int_mid_MJD_UTC"] = 0.5 * (start + end)
    rows["int_end_MJD_UTC"] = end
    tt_minus_utc = (32.184 + 37.0) / _SECONDS_PER_DAY
    rows["int_start_BJD_TDB"] = start + tt_minus_utc
    rows["int_mid_BJD_TDB"] = rows["int_mid_MJD_UTC"] + tt_minus_utc
    rows["int_end_BJD_TDB"] = end + tt_minus_utc
    return rows


def fill_miri_imager_meta(
    model,
    *,
    filter="F770W",
    subarray="FULL",
    readpatt="FAST",
    ngroups,
    nints=1,
    group_time=None,
    start_mjd=60000.5,
    ra_ref=180.0,
    dec_ref=0.0,
    roll_ref=0.0,
    filename="simulated_uncal.fits",
    target_name="ASTEROID-SIM",
):
    """Fill the metadata of a MIRI imager (MIRIMAGE, MIR_IMAGE) exposure.

    Sets instrument, exposure timing, subarray, observation date, target, visit,
    aperture and pointing (``meta.pointing`` and ``meta.wcsinfo`` with the SIAF
    reference point of the subarray's aperture), and the INT_TIMES table.

    Parameters
    ----------
    model : stdatamodels.jwst.datamodels.RampModel
        Model to fill, in place.
    filter : str
        Imager filter, e.g. ``"F770W"``.
    subarray : str
        ``FULL``, ``BRIGHTSKY``, ``SUB256``, ``SUB128`` or ``SUB64``.
    readpatt : str
        ``FAST``, ``FASTR1``, ``SLOW`` or ``SLOWR1``.
    ngroups, nints : int
        Groups per integration and integrations.
    group_time : float, optional
        Seconds between reads; by default from :func:`group_time_for`.
    start_mjd : float
        UTC MJD of the first read of the exposure.
    ra_ref, dec_ref : float
        Sky position (deg) of the aperture reference point.
    roll_ref : float
        V3 position angle (deg) at the reference point.
    filename : str
        ``meta.filename``.
    target_name : str
        ``meta.target.catalog_name``.

    Returns
    -------
    model
        The same model.
    """
    sub_name = subarray.upper()
    sub = _subarray(sub_name)
    patt = readpatt.upper()
    if group_time is None:
        group_time = group_time_for(sub_name, patt)
    period = integration_period(ngroups, group_time, patt)
    elapsed = (nints - 1) * period + ngroups * group_time
    end_mjd = start_mjd + elapsed / _SECONDS_PER_DAY
    t_start = Time(start_mjd, format="mjd", scale="utc")
    t_end = Time(end_mjd, format="mjd", scale="utc")

    meta = model.meta
    meta.telescope = "JWST"
    meta.filename = filename
    meta.origin = "jwst_asteroid_step.simulate"
    meta.date = Time.now().isot

    meta.instrument.name = "MIRI"
    meta.instrument.detector = "MIRIMAGE"
    meta.instrument.filter = filter.upper()

    exp = meta.exposure
    exp.type = "MIR_IMAGE"
    exp.readpatt = patt
    exp.ngroups = int(ngroups)
    exp.nints = int(nints)
    exp.integration_start = 1
    exp.integration_end = int(nints)
    exp.nframes = 1
    exp.groupgap = 0
    exp.nsamples = 10 if READOUT_PATTERNS[patt]["slow"] else 1
    exp.nresets_at_start = 1
    exp.nresets_between_ints = READOUT_PATTERNS[patt]["resets_between_ints"]
    exp.frame_time = float(group_time)
    exp.group_time = float(group_time)
    # MIRI convention: every group collects light, so the effective integration
    # time is ngroups * group_time.
    exp.integration_time = ngroups * group_time
    exp.exposure_time = nints * ngroups * group_time
    exp.effective_exposure_time = nints * ngroups * group_time
    exp.measurement_time = nints * (ngroups - 1) * group_time
    exp.duration = elapsed
    exp.elapsed_exposure_time = elapsed
    exp.start_time = start_mjd
    exp.end_time = end_mjd
    exp.mid_time = 0.5 * (start_mjd + end_mjd)
    exp.start_time_mjd = start_mjd
    exp.end_time_mjd = end_mjd
    exp.mid_time_mjd = 0.5 * (start_mjd + end_mjd)
    exp.zero_frame = False

    meta.subarray.name = sub_name
    meta.subarray.xstart = sub["xstart"]
    meta.subarray.ystart = sub["ystart"]
    meta.subarray.xsize = sub["xsize"]
    meta.subarray.ysize = sub["ysize"]
    meta.subarray.fastaxis = 1
    meta.subarray.slowaxis = 2

    obs = meta.observation
    obs.date, obs.time = t_start.isot.split("T")
    obs.date_beg = t_start.isot
    obs.date_end = t_end.isot
    obs.program_number = "99999"
    obs.observation_number = "001"
    obs.visit_number = "001"
    obs.visit_group = "01"
    obs.sequence_id = "1"
    obs.activity_id = "01"
    obs.exposure_number = "00001"
    obs.visit_id = "99999001001"
    obs.obs_id = "V99999001001P0000000001101"

    meta.target.type = "FIXED"
    meta.target.catalog_name = target_name
    meta.target.proposer_name = target_name
    meta.target.ra = float(ra_ref)
    meta.target.dec = float(dec_ref)
    meta.visit.tsovisit = False
    meta.visit.type = "PRIME_TARGETED_FIXED"
    meta.visit.engineering_quality = "OK"

    # Pointing: the aperture's SIAF reference point sits at (ra_ref, dec_ref).
    pa_aper = (roll_ref + MIRIM_V3IDLYANGLE) % 360.0
    ra_v1, dec_v1, pa_v3 = v1_pointing(ra_ref, dec_ref, roll_ref, sub["v2_ref"], sub["v3_ref"])
    meta.aperture.name = sub["aperture"]
    meta.aperture.position_angle = pa_aper
    meta.pointing.ra_v1 = ra_v1
    meta.pointing.dec_v1 = dec_v1
    meta.pointing.pa_v3 = pa_v3
    meta.coordinates.reference_frame = "ICRS"
    meta.velocity_aberration.scale_factor = 1.0

    wcs = meta.wcsinfo
    wcs.v2_ref = sub["v2_ref"]
    wcs.v3_ref = sub["v3_ref"]
    wcs.v3yangle = MIRIM_V3IDLYANGLE
    wcs.vparity = MIRIM_VPARITY
    wcs.ra_ref = float(ra_ref)
    wcs.dec_ref = float(dec_ref)
    wcs.roll_ref = float(roll_ref) % 360.0
    wcs.siaf_xref_sci = sub["xref_sci"]
    wcs.siaf_yref_sci = sub["yref_sci"]
    # An approximate FITS WCS (TAN, no distortion) like the level-1b header's.
    wcs.wcsaxes = 2
    wcs.crpix1 = sub["xref_sci"]
    wcs.crpix2 = sub["yref_sci"]
    wcs.crval1 = float(ra_ref)
    wcs.crval2 = float(dec_ref)
    wcs.ctype1 = "RA---TAN"
    wcs.ctype2 = "DEC--TAN"
    wcs.cunit1 = "deg"
    wcs.cunit2 = "deg"
    wcs.cdelt1, wcs.cdelt2 = _CDELT
    c, s = np.cos(np.radians(pa_aper)), np.sin(np.radians(pa_aper))
    wcs.pc1_1 = MIRIM_VPARITY * c
    wcs.pc1_2 = s
    wcs.pc2_1 = s
    wcs.pc2_2 = -MIRIM_VPARITY * c

    model.int_times = make_int_times(nints, start_mjd, ngroups, group_time, period)
    return model
