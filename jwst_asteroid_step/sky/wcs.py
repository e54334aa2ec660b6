"""Sky positions and sky motion of detections, from the exposure's WCS.

Two ways to map a 0-based SCI pixel ``(x, y)`` (x = column, y = row, pixel centres
at integers, DESIGN.md §4) to ICRS ``(ra, dec)``, tried in this order:

``assign_wcs``
    jwst's own MIRI imager WCS: the model's ``meta.wcs`` when it has one, or the
    WCS that :func:`jwst.assign_wcs.assign_wcs.load_wcs` builds from the pointing
    keywords and the ``distortion`` and ``filteroffset`` reference files (the step
    fetches them from CRDS; tests and demos pass the flight files in
    ``shared/data/real``).  Includes the filter offset and differential velocity
    aberration.
``pysiaf``
    The pointing keywords (``meta.wcsinfo``: ra_ref, dec_ref, v2_ref, v3_ref,
    roll_ref) and the MIRI SIAF distortion polynomials through pysiaf.  SCI pixel
    ``(x, y)`` is science-frame pixel ``(x + 1, y + 1)`` of the subarray's aperture
    (1-based), or ``(x + xstart, y + ystart)`` of ``MIRIM_FULL``.  The MIRI filter
    offset (up to ~0.7 px for the broad-band filters, 0 for F770W) is applied only
    when a ``filteroffset`` file is given; velocity aberration is applied as in
    jwst (a scale about the reference point).
``none``
    Nothing to build a WCS from: sky columns stay NaN.

Sky motion comes from the local Jacobian of the mapping at each detection:
``ra_rate = d(RA)/dt * cos(Dec)`` and ``dec_rate = d(Dec)/dt``, both in arcsec/h,
i.e. the rates on the tangent plane, as the MPC and JPL Horizons quote them.
Uncertainties are propagated linearly from ``x_err, y_err, vx_err, vy_err``
(taken as uncorrelated); they are the measurement errors only and do not include
the absolute accuracy of the pointing (guide-star catalogue, ~tens of mas).
"""

import logging
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "SkyTransform",
    "add_sky_columns",
    "assign_wcs_transform",
    "build_sky_transform",
    "siaf_transform",
    "sky_columns",
    "sky_jacobian",
]

log = logging.getLogger(__name__)

SKY_COLUMNS = (
    "ra", "dec", "ra_err", "dec_err", "ra_rate", "dec_rate", "ra_rate_err", "dec_rate_err",
)

#: Convention recorded with the catalog.
RATE_CONVENTION = "ra_rate = dRA/dt * cos(Dec), dec_rate = dDec/dt, arcsec/h (tangent-plane rates)"

_SECONDS_PER_HOUR = 3600.0
_POINTING_KEYS = ("ra_ref", "dec_ref", "v2_ref", "v3_ref", "roll_ref")


@dataclass
class SkyTransform:
    """Pixel-to-sky mapping of one exposure.

    Attributes
    ----------
    source : {"assign_wcs", "pysiaf", "none"}
        Where the mapping comes from (``meta.asteroid_detect.wcs_source``).
    pixel_to_sky : callable or None
        ``pixel_to_sky(x, y) -> (ra, dec)``: 0-based SCI pixel coordinates
        (arrays) to ICRS degrees; evaluated outside the bounding box too.
    info : dict
        Provenance to record with the catalog (reference files, aperture, notes).
    """

    source: str
    pixel_to_sky: object = None
    info: dict = field(default_factory=dict)

    def __call__(self, x, y):
        if self.pixel_to_sky is None:
            nan = np.full(np.shape(x), np.nan)
            return nan, nan.copy()
        ra, dec = self.pixel_to_sky(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        return np.asarray(ra, dtype=float) % 360.0, np.asarray(dec, dtype=float)


# ---------------------------------------------------------------- helpers


def _meta_value(node, name):
    try:
        value = getattr(node, name)
    except AttributeError:
        return None
    return value


def _pointing(model):
    """The five pointing keywords as floats, or None when any is missing."""
    wcsinfo = _meta_value(model.meta, "wcsinfo")
    if wcsinfo is None:
        return None
    values = {k: _meta_value(wcsinfo, k) for k in _POINTING_KEYS}
    if any(v is None or not np.isfinite(float(v)) for v in values.values()):
        return None
    return {k: float(v) for k, v in values.items()}


def _frame_shape(model):
    """(ny, nx) of the SCI frame: from the subarray keywords, else the data."""
    sub = model.meta.subarray
    if sub.xsize and sub.ysize:
        return int(sub.ysize), int(sub.xsize)
    data = getattr(model, "data", None)
    if data is not None and np.ndim(data) >= 2:
        return tuple(np.shape(data)[-2:])
    raise ValueError("cannot tell the frame size: no meta.subarray.xsize/ysize and no data")


def _image_proxy(model):
    """A small ImageModel carrying the exposure's metadata, for assign_wcs.

    assign_wcs works on images; a RampModel is 4-D.  The input is never modified.
    """
    from stdatamodels.jwst import datamodels

    proxy = datamodels.ImageModel(_frame_shape(model))
    proxy.update(model)
    # Keywords assign_wcs reads that ``update`` may not carry over.
    for name in ("wcsinfo", "velocity_aberration", "subarray", "instrument", "exposure"):
        node = _meta_value(model.meta, name)
        if node is not None and hasattr(node, "instance"):
            for key, value in node.instance.items():
                if value is not None and not isinstance(value, dict):
                    setattr(getattr(proxy.meta, name), key, value)
    return proxy


def _without_bounding_box(wcs):
    def evaluate(x, y):
        return wcs(x, y, with_bounding_box=False)

    return evaluate


# ---------------------------------------------------------------- transforms


def assign_wcs_transform(model, distortion, filteroffset):
    """The jwst MIRI imager WCS built from reference files.

    Runs :func:`jwst.assign_wcs.assign_wcs.load_wcs` (the function behind the
    ``assign_wcs`` step) on an ImageModel holding a copy of ``model``'s metadata.

    Parameters
    ----------
    model : stdatamodels DataModel
        Any MIRI imager model with pointing keywords (RampModel, ImageModel, ...).
    distortion, filteroffset : str or Path
        The ``distortion`` and ``filteroffset`` reference files.

    Returns
    -------
    SkyTransform
        With ``source="assign_wcs"``.
    """
    from jwst.assign_wcs.assign_wcs import load_wcs

    proxy = _image_proxy(model)
    refs = {"distortion": str(distortion), "filteroffset": str(filteroffset)}
    load_wcs(proxy, dict(refs))
    wcs = proxy.meta.wcs
    info = {
        "distortion": _basename(distortion),
        "filteroffset": _basename(filteroffset),
        "filter": str(proxy.meta.instrument.filter),
        "va_scale": _as_float(proxy.meta.velocity_aberration.scale_factor),
    }
    return SkyTransform("assign_wcs", _without_bounding_box(wcs), info)


def _siaf_aperture(model, siaf):
    """SIAF aperture whose science frame is the SCI array, and the (dx, dy) offset.

    Science-frame pixel (1-based) = SCI index + 1 + offset.  Uses the exposure's
    aperture when its science frame is this subarray, else MIRIM_FULL with the
    subarray corner.
    """
    sub = model.meta.subarray
    xstart, ystart = int(sub.xstart or 1), int(sub.ystart or 1)
    ny, nx = _frame_shape(model)
    name = _meta_value(model.meta.aperture, "name")
    if name and name in siaf.apernames:
        ap = siaf[name]
        corner = (ap.XDetRef - ap.XSciRef + 1, ap.YDetRef - ap.YSciRef + 1)
        if (
            ap.DetSciParity == 1 and ap.DetSciYAngle == 0
            and np.allclose(corner, (xstart, ystart)) and (ap.XSciSize, ap.YSciSize) == (nx, ny)
        ):
            return ap, 0.0, 0.0
    return siaf["MIRIM_FULL"], float(xstart - 1), float(ystart - 1)


def _filter_offset(filteroffset, filter_name):
    from jwst.assign_wcs.miri import retrieve_filter_offset
    from stdatamodels.jwst.datamodels import FilteroffsetModel

    with FilteroffsetModel(str(filteroffset)) as ref:
        col, row = retrieve_filter_offset(ref, filter_name)
    return (float(col or 0.0), float(row or 0.0))


def siaf_transform(model, filteroffset=None):
    """Pixel-to-sky mapping from the pointing keywords and the MIRI SIAF.

    Parameters
    ----------
    model : stdatamodels DataModel
        MIRI imager model with ``meta.wcsinfo`` ra_ref, dec_ref, v2_ref, v3_ref,
        roll_ref, and ``meta.subarray`` (and ``meta.aperture.name``).
    filteroffset : str or Path, optional
        A ``filteroffset`` reference file; its offset for the exposure's filter is
        applied as assign_wcs applies it.  Without it no filter offset is applied.

    Returns
    -------
    SkyTransform
        With ``source="pysiaf"``.

    Raises
    ------
    ValueError
        If a pointing keyword is missing.
    """
    import pysiaf
    from pysiaf.utils import rotations

    pointing = _pointing(model)
    if pointing is None:
        raise ValueError(f"missing pointing keywords (meta.wcsinfo {', '.join(_POINTING_KEYS)})")
    siaf = pysiaf.Siaf("MIRI")
    ap, dx, dy = _siaf_aperture(model, siaf)
    full = siaf["MIRIM_FULL"]
    attitude = rotations.attitude(
        pointing["v2_ref"], pointing["v3_ref"], pointing["ra_ref"], pointing["dec_ref"],
        pointing["roll_ref"],
    )
    ap.set_attitude_matrix(attitude)
    va_scale = _as_float(_meta_value(model.meta.velocity_aberration, "scale_factor"))
    filter_name = str(model.meta.instrument.filter)
    col_off, row_off = (0.0, 0.0)
    if filteroffset is not None:
        col_off, row_off = _filter_offset(filteroffset, filter_name)
    v2_ref, v3_ref = pointing["v2_ref"], pointing["v3_ref"]

    sub = model.meta.subarray
    xstart, ystart = int(sub.xstart or 1), int(sub.ystart or 1)

    def evaluate(x, y):
        if col_off or row_off:
            # assign_wcs shifts full-frame detector pixels before the distortion.
            v2, v3 = full.sci_to_tel(x + xstart + col_off, y + ystart + row_off)
        else:
            v2, v3 = ap.sci_to_tel(x + dx + 1.0, y + dy + 1.0)
        if va_scale is not None and va_scale != 1.0:
            # Differential velocity aberration: a scale about the reference point.
            v2 = v2_ref + va_scale * (v2 - v2_ref)
            v3 = v3_ref + va_scale * (v3 - v3_ref)
        return ap.tel_to_sky(v2, v3)

    info = {
        "siaf_aperture": ap.AperName,
        "prd_version": str(getattr(pysiaf, "JWST_PRD_VERSION", "unknown")),
        "filter": filter_name,
        "filter_offset_px": [col_off, row_off],
        "filteroffset": _basename(filteroffset) if filteroffset is not None else "N/A",
        "va_scale": va_scale,
    }
    return SkyTransform("pysiaf", evaluate, info)


def build_sky_transform(model, distortion=None, filteroffset=None):
    """The best pixel-to-sky mapping available for an exposure.

    Order: ``model.meta.wcs`` (a model that went through assign_wcs); jwst's WCS
    from ``distortion`` + ``filteroffset`` reference files; the pysiaf fallback
    from the pointing keywords; nothing.

    Parameters
    ----------
    model : stdatamodels DataModel
        The exposure (RampModel, ImageModel, ...); never modified.
    distortion, filteroffset : str or Path, optional
        Reference files (in the step: ``get_reference_file(model, "distortion")``
        and ``get_reference_file(model, "filteroffset")``).

    Returns
    -------
    SkyTransform
        ``info["notes"]`` says why a better mapping could not be used.
    """
    notes = []
    wcs = _meta_value(model.meta, "wcs")
    if wcs is not None:
        return SkyTransform("assign_wcs", _without_bounding_box(wcs), {"from": "meta.wcs"})
    if _pointing(model) is None:
        notes.append("no pointing keywords (meta.wcsinfo ra_ref/dec_ref/v2_ref/v3_ref/roll_ref)")
        return SkyTransform("none", None, {"notes": "; ".join(notes)})
    if _usable_reffile(distortion) and _usable_reffile(filteroffset):
        try:
            return assign_wcs_transform(model, distortion, filteroffset)
        except Exception as err:  # noqa: BLE001 - fall back, but say why
            log.warning("assign_wcs could not build the WCS (%s); falling back to pysiaf", err)
            notes.append(f"assign_wcs failed: {err}")
    else:
        notes.append("no distortion/filteroffset reference files")
    try:
        transform = siaf_transform(
            model, filteroffset=filteroffset if _usable_reffile(filteroffset) else None
        )
    except Exception as err:  # noqa: BLE001 - no sky columns, say why
        log.warning("no sky coordinates: pysiaf fallback failed (%s)", err)
        notes.append(f"pysiaf failed: {err}")
        return SkyTransform("none", None, {"notes": "; ".join(notes)})
    transform.info["notes"] = "; ".join(notes)
    return transform


# ---------------------------------------------------------------- columns


def sky_jacobian(transform, x, y, step=0.5):
    """Sky position and local Jacobian of a pixel-to-sky mapping.

    Parameters
    ----------
    transform : SkyTransform or callable
        ``(x, y) -> (ra, dec)`` in degrees.
    x, y : array-like
        0-based SCI pixel coordinates.
    step : float
        Half-step (px) of the central differences.

    Returns
    -------
    ra, dec : ndarray
        Degrees.
    jac : ndarray, shape (n, 2, 2)
        ``[[dxi/dx, dxi/dy], [deta/dx, deta/dy]]`` in arcsec/px, where
        ``xi = RA cos(Dec)`` and ``eta = Dec`` on the local tangent plane.
    """
    x = np.atleast_1d(np.asarray(x, dtype=float))
    y = np.atleast_1d(np.asarray(y, dtype=float))
    n = x.size
    h = float(step)
    xs = np.concatenate([x, x + h, x - h, x, x])
    ys = np.concatenate([y, y, y, y + h, y - h])
    ra_all, dec_all = transform(xs, ys)
    ra_all, dec_all = np.asarray(ra_all, float), np.asarray(dec_all, float)
    ra, dec = ra_all[:n], dec_all[:n]
    cosd = np.cos(np.radians(dec))

    def offsets(i):
        sl = slice(i * n, (i + 1) * n)
        dra = (ra_all[sl] - ra + 180.0) % 360.0 - 180.0
        return dra * cosd * 3600.0, (dec_all[sl] - dec) * 3600.0

    (xi_xp, eta_xp), (xi_xm, eta_xm) = offsets(1), offsets(2)
    (xi_yp, eta_yp), (xi_ym, eta_ym) = offsets(3), offsets(4)
    jac = np.empty((n, 2, 2))
    jac[:, 0, 0] = (xi_xp - xi_xm) / (2 * h)
    jac[:, 0, 1] = (xi_yp - xi_ym) / (2 * h)
    jac[:, 1, 0] = (eta_xp - eta_xm) / (2 * h)
    jac[:, 1, 1] = (eta_yp - eta_ym) / (2 * h)
    return ra, dec, jac


def _propagate(jac, sx, sy):
    """1-sigma of the two sky components of J @ (x, y) for uncorrelated x, y."""
    return (
        np.sqrt((jac[:, 0, 0] * sx) ** 2 + (jac[:, 0, 1] * sy) ** 2),
        np.sqrt((jac[:, 1, 0] * sx) ** 2 + (jac[:, 1, 1] * sy) ** 2),
    )


def sky_columns(catalog, model=None, distortion=None, filteroffset=None, transform=None):
    """Sky positions, sky rates and their uncertainties for every detection.

    Parameters
    ----------
    catalog : numpy structured array or Table
        Detections with ``x, y, x_err, y_err`` (px) and ``vx, vy, vx_err,
        vy_err`` (px/s), pixel coordinates as in DESIGN.md §4.
    model : stdatamodels DataModel, optional
        The exposure (its metadata is used; never modified).  Not needed when
        ``transform`` is given.
    distortion, filteroffset : str or Path, optional
        Reference files for jwst's WCS (see :func:`build_sky_transform`).
    transform : SkyTransform, optional
        A mapping already built (e.g. shared by several calls).

    Returns
    -------
    columns : dict of ndarray
        ``ra, dec`` (deg), ``ra_err, dec_err`` (arcsec, on the sky),
        ``ra_dec_corr`` (correlation of the two position errors),
        ``ra_rate, dec_rate, ra_rate_err, dec_rate_err`` (arcsec/h; ra_rate
        includes cos dec).  NaN when no WCS can be built.
    meta : dict
        ``wcs_source`` (for ``meta.asteroid_detect.wcs_source``) and ``wcs``
        (provenance: reference files or SIAF aperture, rate convention, notes).
    """
    if transform is None:
        if model is None:
            raise ValueError("give the exposure's model or a SkyTransform")
        transform = build_sky_transform(model, distortion=distortion, filteroffset=filteroffset)
    x = np.asarray(catalog["x"], dtype=float)
    n = x.size
    columns = {name: np.full(n, np.nan) for name in SKY_COLUMNS + ("ra_dec_corr",)}
    meta = {
        "wcs_source": transform.source,
        "wcs": {**_clean(transform.info), "rate_convention": RATE_CONVENTION,
                "position_errors": "measurement only; pointing accuracy not included"},
    }
    if transform.source == "none" or n == 0:
        return columns, meta
    y = np.asarray(catalog["y"], dtype=float)
    ra, dec, jac = sky_jacobian(transform, x, y)
    columns["ra"], columns["dec"] = ra, dec
    sx, sy = np.asarray(catalog["x_err"], float), np.asarray(catalog["y_err"], float)
    columns["ra_err"], columns["dec_err"] = _propagate(jac, sx, sy)
    cov = (jac[:, 0, 0] * jac[:, 1, 0] * sx**2 + jac[:, 0, 1] * jac[:, 1, 1] * sy**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        columns["ra_dec_corr"] = cov / (columns["ra_err"] * columns["dec_err"])
    v = np.stack([np.asarray(catalog["vx"], float), np.asarray(catalog["vy"], float)], axis=-1)
    rates = np.einsum("nij,nj->ni", jac, v) * _SECONDS_PER_HOUR
    columns["ra_rate"], columns["dec_rate"] = rates[:, 0], rates[:, 1]
    err_ra, err_dec = _propagate(
        jac, np.asarray(catalog["vx_err"], float), np.asarray(catalog["vy_err"], float)
    )
    columns["ra_rate_err"] = err_ra * _SECONDS_PER_HOUR
    columns["dec_rate_err"] = err_dec * _SECONDS_PER_HOUR
    return columns, meta


def add_sky_columns(catalog, model=None, **kwargs):
    """Copy of a catalog array with the sky columns filled.

    Parameters
    ----------
    catalog : numpy structured array
        With the sky columns (e.g. ``AsteroidCatalogModel.catalog``).
    model, **kwargs
        As :func:`sky_columns`.

    Returns
    -------
    new_catalog : numpy structured array
    meta : dict
        As :func:`sky_columns`.
    """
    columns, meta = sky_columns(catalog, model, **kwargs)
    out = np.array(catalog, copy=True)
    for name, values in columns.items():
        if name in out.dtype.names:  # ra_dec_corr only once the catalog has it
            out[name] = values
    return out, meta


# ---------------------------------------------------------------- small utilities


def _usable_reffile(path):
    return path is not None and str(path).strip().upper() not in ("", "N/A", "NONE")


def _basename(path):
    from pathlib import Path

    return Path(str(path)).name


def _as_float(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _clean(info):
    """Drop None values (asdf/YAML-friendly provenance)."""
    return {k: v for k, v in info.items() if v is not None}
