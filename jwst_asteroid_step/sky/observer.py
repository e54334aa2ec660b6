"""Where JWST was: observer metadata an astrometric report needs.

Minor-planet astrometry from a spacecraft is only usable with the observer's
position.  JWST level-1b headers carry its ephemeris (stdatamodels core schema,
``meta.ephemeris``): geocentric position ``OBSGEO-X/Y/Z`` (m) and velocity
``OBSGEODX/DY/DZ`` (m/s), barycentric ``JWST_X/Y/Z`` (km) and ``JWST_DX/DY/DZ``
(km/s), at ``EPH_TIME`` (MJD; the headers document the vectors at MJD-AVG, the
exposure mid-time), in the frame ``REFFRAME`` (EME2000, i.e. ICRF axes to the
accuracy that matters here).  The MPC observatory code of JWST is ``274``.
"""

import numpy as np

__all__ = ["JWST_MPC_CODE", "JWST_NAME", "observer_metadata", "observer_position"]

#: MPC observatory code of the James Webb Space Telescope.
JWST_MPC_CODE = "274"
JWST_NAME = "James Webb Space Telescope"

_SECONDS_PER_DAY = 86400.0

# (output key, meta.ephemeris attributes, factor to km or km/s)
_VECTORS = (
    ("geocentric_position_km", ("spatial_x_geo", "spatial_y_geo", "spatial_z_geo"), 1e-3),
    ("geocentric_velocity_km_s", ("velocity_x_geo", "velocity_y_geo", "velocity_z_geo"), 1e-3),
    ("barycentric_position_km", ("spatial_x_bary", "spatial_y_bary", "spatial_z_bary"), 1.0),
    ("barycentric_velocity_km_s", ("velocity_x_bary", "velocity_y_bary", "velocity_z_bary"), 1.0),
)


def _get(node, name):
    try:
        value = getattr(node, name)
    except AttributeError:
        return None
    return value


def _vector(eph, names, factor):
    values = [_get(eph, n) for n in names]
    if any(v is None for v in values):
        return None
    vec = np.array(values, dtype=float) * factor
    return vec if np.all(np.isfinite(vec)) else None


def observer_metadata(model):
    """Observatory and ephemeris metadata of an exposure.

    Parameters
    ----------
    model : stdatamodels DataModel
        Any model with the core metadata (RampModel, ImageModel, or the
        AsteroidCatalogModel, which copies it).

    Returns
    -------
    dict
        ``mpc_code`` ("274"), ``observatory``, and, when the header has them,
        ``ephemeris_time_mjd``, ``ephemeris_frame``, ``ephemeris_type``,
        ``geocentric_position_km``, ``geocentric_velocity_km_s``,
        ``barycentric_position_km``, ``barycentric_velocity_km_s`` (lists of
        three floats).  Plain Python types, ready for ``meta.asteroid_detect``.
    """
    meta = {"mpc_code": JWST_MPC_CODE, "observatory": JWST_NAME}
    eph = _get(model.meta, "ephemeris")
    if eph is None:
        return meta
    vectors = {key: _vector(eph, names, factor) for key, names, factor in _VECTORS}
    vectors = {key: [float(v) for v in vec] for key, vec in vectors.items() if vec is not None}
    if not vectors:
        return meta
    time = _get(eph, "time")
    if time is None:  # the vectors refer to MJD-AVG
        time = _get(model.meta.exposure, "mid_time")
    if time is not None and np.isfinite(time):
        meta["ephemeris_time_mjd"] = float(time)
    for key, attr in (("ephemeris_frame", "reference_frame"), ("ephemeris_type", "type")):
        value = _get(eph, attr)
        if value:
            meta[key] = str(value)
    meta.update(vectors)
    return meta


def observer_position(observer, mjd):
    """Geocentric position of JWST at given times.

    The header vector is propagated linearly with the header velocity (JWST
    moves ~1 km/s relative to the Earth: ~1000 km over a long exposure).

    Parameters
    ----------
    observer : dict
        From :func:`observer_metadata` (or a catalog's recorded copy).
    mjd : float or array-like
        UTC MJD.

    Returns
    -------
    ndarray, shape (n, 3), or None
        Geocentric ICRF position (km); None when the header had no position.
    """
    pos = observer.get("geocentric_position_km")
    if pos is None:
        return None
    mjd = np.atleast_1d(np.asarray(mjd, dtype=float))
    pos = np.broadcast_to(np.asarray(pos, dtype=float), (mjd.size, 3)).copy()
    vel = observer.get("geocentric_velocity_km_s")
    t0 = observer.get("ephemeris_time_mjd")
    if vel is not None and t0 is not None:
        dt = (mjd - float(t0)) * _SECONDS_PER_DAY
        pos += np.where(np.isfinite(dt), dt, 0.0)[:, None] * np.asarray(vel, dtype=float)[None]
    return pos
