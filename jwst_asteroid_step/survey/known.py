"""Known asteroids: match detections and tracklets against an ephemeris.

Offline, from a user-supplied table (ECSV or CSV) of predicted positions, such
as a JPL Horizons or IMCCE SkyBoT export: one row per object and epoch with a
designation, the epoch, ``ra``, ``dec`` (deg) and optionally the sky rates
``ra_rate`` (including cos dec) and ``dec_rate`` (arcsec/h) and a position
uncertainty.  The ephemeris must be **for JWST as observer** (Horizons location
``500@-170``, SkyBoT/MPC observatory code ``274``): seen from L2, 1.5 million km
from Earth, a main-belt asteroid is displaced by up to ~0.5° from its geocentric
position.

Positions at a detection's epoch are interpolated in a tangent plane between the
bracketing ephemeris rows (cubic Hermite when both rows have rates, linear
otherwise) or extrapolated with the rates from the nearest row by at most
``max_extrapolation_hours`` (a SkyBoT answer is a single epoch).

Online queries (:func:`query_skybot`, :func:`query_horizons`) use ``astroquery``,
the optional ``[online]`` extra (``pip install "jwst-asteroid-step[online]"``);
it is imported only when they are called.
"""

import numpy as np
from astropy import units as u
from astropy.table import QTable, Table

from .tracklets import from_tangent_plane, tangent_plane

__all__ = [
    "match_known",
    "normalize_ephemeris",
    "predict_positions",
    "query_horizons",
    "query_skybot",
    "query_skybot_for",
    "read_ephemeris",
]

JWST_HORIZONS_LOCATION = "500@-170"
JWST_MPC_CODE = "274"

#: Accepted column names (lower case, spaces/punctuation removed) -> standard name.
_ALIASES = {
    "designation": ("designation", "targetname", "target", "name", "objectname", "object",
                    "desig", "provid", "permid", "number"),
    "mjd": ("mjd", "epochmjd", "mjdutc", "timemjd"),
    "jd": ("jd", "datetimejd", "epochjd", "jdutc", "epoch"),
    "iso": ("datetimestr", "datetime", "date", "isot", "time", "utc", "dateutc"),
    "ra": ("ra", "radeg", "raj2000", "ra_icrs", "raicrs", "ra2000"),
    "dec": ("dec", "decdeg", "dej2000", "decj2000", "de", "deicrs", "decicrs", "dec2000"),
    "ra_rate": ("rarate", "racosdrate", "racosdecrate", "dracosd", "dracosdec", "dra", "rarateas"),
    "dec_rate": ("decrate", "ddec", "ddecdt", "derate", "decrateas"),
    "pos_unc": ("posunc", "posuncertainty", "sigmapos", "rmspos", "unc", "ra3sigma"),
}


def _norm(name):
    return "".join(c for c in name.lower() if c.isalnum())


def _column(table, key):
    names = {_norm(c): c for c in table.colnames}
    for alias in _ALIASES[key]:
        if _norm(alias) in names:
            return names[_norm(alias)]
    return None


def _as_float(col, unit):
    if getattr(col, "unit", None) is not None and unit is not None:
        try:
            return np.asarray(u.Quantity(col).to_value(unit), dtype=float)
        except u.UnitConversionError:
            pass
    return np.asarray(np.ma.filled(np.ma.asarray(col, dtype=float), np.nan), dtype=float)


def normalize_ephemeris(table):
    """An ephemeris table with the standard columns.

    Parameters
    ----------
    table : astropy Table
        Columns under common names (Horizons: ``targetname``, ``datetime_jd``,
        ``RA``, ``DEC``, ``RA_rate``, ``DEC_rate``; SkyBoT: ``Name``, ``epoch``
        (JD), ``RA``, ``DEC``, ``RA_rate``, ``DEC_rate``, ``posunc``; or
        ``designation, mjd, ra, dec, ra_rate, dec_rate``).  RA/Dec may be
        sexagesimal strings.  Units attached to columns are honoured; bare
        columns are taken as deg, arcsec/h, arcsec.

    Returns
    -------
    astropy.table.QTable
        ``designation`` (str), ``mjd``, ``ra``, ``dec`` (deg), ``ra_rate``,
        ``dec_rate`` (arcsec/h, NaN if absent), ``pos_unc`` (arcsec, NaN if
        absent), sorted by designation and mjd.

    Raises
    ------
    ValueError
        If no designation, epoch, ra or dec column is found.
    """
    from astropy.time import Time

    missing = [k for k in ("designation", "ra", "dec") if _column(table, k) is None]
    if missing:
        raise ValueError(f"ephemeris: no column for {missing} (columns: {table.colnames})")
    n = len(table)
    if _column(table, "mjd"):
        mjd = _as_float(table[_column(table, "mjd")], u.d)
    elif _column(table, "jd"):
        mjd = _as_float(table[_column(table, "jd")], u.d)
        # "epoch" columns hold JD (SkyBoT) or MJD: the size tells which.
        mjd = mjd - 2400000.5 if np.nanmedian(mjd) > 2400000.5 else mjd
    elif _column(table, "iso"):
        mjd = Time([str(v).strip() for v in table[_column(table, "iso")]], scale="utc").mjd
    else:
        raise ValueError(f"ephemeris: no epoch column (mjd, jd or date; got {table.colnames})")
    ra_col, dec_col = table[_column(table, "ra")], table[_column(table, "dec")]
    if np.asarray(ra_col).dtype.kind in "US":
        from astropy.coordinates import SkyCoord

        c = SkyCoord([str(v) for v in ra_col], [str(v) for v in dec_col],
                     unit=(u.hourangle, u.deg))
        ra, dec = c.ra.deg, c.dec.deg
    else:
        ra, dec = _as_float(ra_col, u.deg), _as_float(dec_col, u.deg)
    out = QTable()
    out["designation"] = np.array([str(v).strip() for v in table[_column(table, "designation")]],
                                  dtype=str)
    out["mjd"] = mjd * u.d
    out["ra"] = ra * u.deg
    out["dec"] = dec * u.deg
    for key, unit in (("ra_rate", u.arcsec / u.h), ("dec_rate", u.arcsec / u.h),
                      ("pos_unc", u.arcsec)):
        name = _column(table, key)
        out[key] = (_as_float(table[name], unit) if name else np.full(n, np.nan)) * unit
    out.sort(["designation", "mjd"])
    return out


def read_ephemeris(path):
    """Read an ephemeris table (ECSV, CSV, or any astropy-readable table) and normalise it.

    See :func:`normalize_ephemeris` for the accepted columns.
    """
    path = str(path)
    if path.endswith(".ecsv"):
        table = QTable.read(path, format="ascii.ecsv")
    elif path.endswith(".csv"):
        table = Table.read(path, format="ascii.csv")
    else:
        table = Table.read(path)
    return normalize_ephemeris(table)


def _hermite(s, p0, p1, v0, v1, h):
    """Cubic Hermite on [0, 1] (s), values p, derivatives v (per unit time), interval h."""
    h00 = 2 * s**3 - 3 * s**2 + 1
    h10 = s**3 - 2 * s**2 + s
    h01 = -2 * s**3 + 3 * s**2
    h11 = s**3 - s**2
    value = h00 * p0 + h10 * h * v0 + h01 * p1 + h11 * h * v1
    dh00 = (6 * s**2 - 6 * s) / h
    dh10 = 3 * s**2 - 4 * s + 1
    dh01 = (-6 * s**2 + 6 * s) / h
    dh11 = 3 * s**2 - 2 * s
    rate = dh00 * p0 + dh10 * v0 + dh01 * p1 + dh11 * v1
    return value, rate


def predict_positions(ephemeris, designation, mjd, max_extrapolation_hours=6.0):
    """Position and rate of one object at the given epochs.

    Parameters
    ----------
    ephemeris : QTable
        From :func:`normalize_ephemeris`.
    designation : str
    mjd : array-like
        Epochs (UTC MJD).
    max_extrapolation_hours : float
        Epochs further than this from every ephemeris row give NaN.

    Returns
    -------
    ra, dec : ndarray
        Degrees.
    ra_rate, dec_rate : ndarray
        arcsec/h (ra_rate including cos dec); NaN where unknown.
    """
    rows = ephemeris[ephemeris["designation"] == designation]
    mjd = np.atleast_1d(np.asarray(mjd, dtype=float))
    te = np.asarray(rows["mjd"].to_value(u.d))
    ra_e, dec_e = rows["ra"].to_value(u.deg), rows["dec"].to_value(u.deg)
    rate_e = np.stack([rows["ra_rate"].to_value(u.arcsec / u.h),
                       rows["dec_rate"].to_value(u.arcsec / u.h)], axis=1)
    n = len(mjd)
    out = [np.full(n, np.nan) for _ in range(4)]
    if len(rows) == 0:
        return tuple(out)
    k = np.clip(np.searchsorted(te, mjd) - 1, 0, max(len(te) - 2, 0))
    inside = (len(te) > 1) & (mjd >= te[0]) & (mjd <= te[-1])
    # Inside the table: interpolate between rows k and k + 1, about row k.
    for i in np.flatnonzero(inside):
        a, b = k[i], k[i] + 1
        h = (te[b] - te[a]) * 24.0
        s = (mjd[i] - te[a]) * 24.0 / h if h > 0 else 0.0
        xb, yb = tangent_plane(ra_e[b], dec_e[b], ra_e[a], dec_e[a])
        p0, p1 = np.zeros(2), np.array([xb, yb])
        if np.all(np.isfinite(rate_e[[a, b]])):
            pos, rate = _hermite(s, p0, p1, rate_e[a], rate_e[b], h)
        else:
            pos = p0 + s * (p1 - p0)
            rate = (p1 - p0) / h if h > 0 else np.full(2, np.nan)
        out[0][i], out[1][i] = from_tangent_plane(pos[0], pos[1], ra_e[a], dec_e[a])
        out[2][i], out[3][i] = rate
    # Outside: extrapolate from the nearest row with its rate.
    for i in np.flatnonzero(~inside):
        j = int(np.argmin(np.abs(te - mjd[i])))
        dt_h = (mjd[i] - te[j]) * 24.0
        if abs(dt_h) > max_extrapolation_hours:
            continue
        if dt_h == 0:
            out[0][i], out[1][i] = ra_e[j], dec_e[j]
        elif np.all(np.isfinite(rate_e[j])):
            out[0][i], out[1][i] = from_tangent_plane(rate_e[j, 0] * dt_h, rate_e[j, 1] * dt_h,
                                                      ra_e[j], dec_e[j])
        else:
            continue
        out[2][i], out[3][i] = rate_e[j]
    return tuple(out)


def _sky_value(table, names, unit):
    for name in names:
        if name in table.colnames:
            col = table[name]
            if getattr(col, "unit", None) is not None:
                return np.asarray(col.to_value(unit), dtype=float)
            return np.asarray(col, dtype=float)
    return np.full(len(table), np.nan)


def _separation_arcsec(ra1, dec1, ra2, dec2):
    r1, d1, r2, d2 = (np.radians(v) for v in (ra1, dec1, ra2, dec2))
    # Haversine: accurate at arcsec scales.
    a = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))) * 3600.0


def match_known(table, ephemeris, radius=5.0, rate_tolerance=10.0, max_extrapolation_hours=6.0):
    """Flag detections or tracklets that are known objects.

    Parameters
    ----------
    table : astropy Table
        Detections (``ra``, ``dec``, ``mjd``) or tracklets (``ra``, ``dec``,
        ``mjd_ref``); ``ra_rate``/``dec_rate`` used when present.
    ephemeris : QTable
        From :func:`read_ephemeris` / :func:`normalize_ephemeris` or a query.
    radius : float
        Match radius (arcsec); an object's own uncertainty widens it to
        ``3 * pos_unc`` where larger.
    rate_tolerance : float
        Largest absolute rate difference (arcsec/h) of a match where both rates are
        known; rows without rates match on position alone.
    max_extrapolation_hours : float
        See :func:`predict_positions`.

    Returns
    -------
    astropy.table.QTable
        A copy of ``table`` with ``known_designation`` ("" when none),
        ``known_offset`` (arcsec), ``known_rate_diff`` (arcsec/h, NaN when a
        rate is unknown), ``known_dra_rate``, ``known_ddec_rate`` (measured minus
        predicted, arcsec/h), and ``known_n_candidates`` (objects within the
        radius).  Rows without a sky position are never matched.
    """
    out = QTable(table, copy=True)
    n = len(out)
    ra = _sky_value(out, ("ra",), u.deg)
    dec = _sky_value(out, ("dec",), u.deg)
    mjd = _sky_value(out, ("mjd", "mjd_ref"), u.d)
    rate = np.stack([_sky_value(out, ("ra_rate",), u.arcsec / u.h),
                     _sky_value(out, ("dec_rate",), u.arcsec / u.h)], axis=1)
    ok = np.isfinite(ra) & np.isfinite(dec) & np.isfinite(mjd)
    best_name = np.array([""] * n, dtype=object)
    best_sep = np.full(n, np.nan)
    best_drate = np.full((n, 2), np.nan)
    n_cand = np.zeros(n, dtype=int)
    if n and np.any(ok) and len(ephemeris):
        names = np.unique(np.asarray(ephemeris["designation"]))
        unc = np.asarray(ephemeris["pos_unc"].to_value(u.arcsec))
        te = np.asarray(ephemeris["mjd"].to_value(u.d))
        window = max_extrapolation_hours / 24.0
        for name in names:
            sel = np.asarray(ephemeris["designation"]) == name
            # Only epochs the ephemeris covers (or nearly): skips most objects cheaply.
            near = ok & (mjd >= te[sel].min() - window) & (mjd <= te[sel].max() + window)
            if not np.any(near):
                continue
            idx = np.flatnonzero(near)
            p_ra, p_dec, p_rr, p_dr = predict_positions(ephemeris, name, mjd[idx],
                                                        max_extrapolation_hours)
            sep = _separation_arcsec(ra[idx], dec[idx], p_ra, p_dec)
            obj_radius = max(radius, 3.0 * np.nanmax(np.append(unc[sel], 0.0)))
            drate = rate[idx] - np.stack([p_rr, p_dr], axis=1)
            rate_ok = ~np.all(np.isfinite(drate), axis=1) | (np.hypot(*drate.T) <= rate_tolerance)
            hit = np.isfinite(sep) & (sep <= obj_radius) & rate_ok
            n_cand[idx[hit]] += 1
            better = hit & ~(sep >= best_sep[idx])  # NaN best_sep: any hit is better
            rows = idx[better]
            best_name[rows] = name
            best_sep[rows] = sep[better]
            best_drate[rows] = drate[better]
    out["known_designation"] = best_name.astype(str) if n else np.zeros(0, dtype="U1")
    out["known_offset"] = best_sep * u.arcsec
    out["known_rate_diff"] = np.hypot(best_drate[:, 0], best_drate[:, 1]) * (u.arcsec / u.h)
    out["known_dra_rate"] = best_drate[:, 0] * (u.arcsec / u.h)
    out["known_ddec_rate"] = best_drate[:, 1] * (u.arcsec / u.h)
    out["known_n_candidates"] = n_cand
    return out


# ---------------------------------------------------------------- online (optional extra)


def _astroquery(module):
    try:
        import importlib

        return importlib.import_module(f"astroquery.{module}")
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("online ephemerides need astroquery: "
                          'pip install "jwst-asteroid-step[online]"') from err


def query_skybot(ra, dec, mjd, radius_arcmin=5.0):  # pragma: no cover - needs the network
    """Known objects in a cone at one epoch, seen from JWST (IMCCE SkyBoT).

    Parameters
    ----------
    ra, dec : float
        Cone centre (deg).
    mjd : float
        Epoch (UTC MJD).
    radius_arcmin : float

    Returns
    -------
    QTable
        Normalised ephemeris (:func:`normalize_ephemeris`); empty when SkyBoT
        finds nothing.
    """
    from astropy.coordinates import SkyCoord
    from astropy.time import Time

    skybot = _astroquery("imcce").Skybot
    try:
        found = skybot.cone_search(SkyCoord(ra * u.deg, dec * u.deg), radius_arcmin * u.arcmin,
                                   Time(mjd, format="mjd", scale="utc"), location=JWST_MPC_CODE)
    except RuntimeError:  # SkyBoT raises when no object is in the cone
        return normalize_ephemeris(Table({"designation": [], "mjd": [], "ra": [], "dec": []}))
    found = Table(found)
    if "Name" in found.colnames:
        found.rename_column("Name", "designation")
    return normalize_ephemeris(found)


def query_skybot_for(table, radius_arcmin=5.0):  # pragma: no cover - needs the network
    """SkyBoT ephemerides for every exposure (or tracklet epoch) of a table, stacked."""
    from astropy.table import vstack

    ra = _sky_value(table, ("ra",), u.deg)
    dec = _sky_value(table, ("dec",), u.deg)
    mjd = _sky_value(table, ("mjd", "mjd_ref"), u.d)
    key = (np.asarray(table["exposure"]) if "exposure" in table.colnames
           else np.round(mjd, 2).astype(str))
    results = []
    for k in np.unique(key):
        sel = (key == k) & np.isfinite(ra) & np.isfinite(mjd)
        if np.any(sel):
            results.append(query_skybot(float(np.median(ra[sel])), float(np.median(dec[sel])),
                                        float(np.median(mjd[sel])), radius_arcmin))
    return vstack(results) if results else normalize_ephemeris(
        Table({"designation": [], "mjd": [], "ra": [], "dec": []}))


def query_horizons(designation, mjds):  # pragma: no cover - needs the network
    """Ephemeris of one object at the given epochs, seen from JWST (JPL Horizons).

    Returns
    -------
    QTable
        Normalised ephemeris (:func:`normalize_ephemeris`).
    """
    horizons = _astroquery("jplhorizons").Horizons
    jd = [float(m) + 2400000.5 for m in np.atleast_1d(mjds)]
    eph = horizons(id=designation, location=JWST_HORIZONS_LOCATION, epochs=jd).ephemerides()
    eph = Table(eph)
    eph["designation"] = [designation] * len(eph)
    return normalize_ephemeris(eph)
