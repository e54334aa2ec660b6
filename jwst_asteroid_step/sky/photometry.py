"""Flux density and AB magnitude of detections.

The catalog's ``flux`` is the total count rate (DN/s) of a moving-PSF fit: the fit
model is the package's PSF (:mod:`jwst_asteroid_step.psf`, normalised to unit total
flux, wing included), so **no aperture correction is applied beyond the PSF model**;
a difference between that model and the true MIRI PSF (far wings, cruciform)
biases the fluxes at the few-per-cent level.  The count rate comes from the raw
ramp (Stage 1: no flat field), so the calibrated fluxes also carry the flat-field
(pixel-to-pixel, few per cent) error.

Conversion, as jwst's ``photom`` step does it for MIRI imaging::

    flux [MJy] = flux [DN/s] * PHOTMJSR [MJy/sr per DN/s/px] * PIXAR_SR [sr/px]

with PHOTMJSR and PIXAR_SR from the input's ``meta.photometry`` when set, or else
from a ``photom`` reference file (row for the exposure's FILTER and SUBARRAY, or
GENERIC; time-dependent throughput correction included) and its or an ``area``
file's PIXAR_SR.  The catalog reports mJy (milli-jansky):
``flux_mjy = 1e9 * flux [MJy]``; ``abmag = -2.5 log10(flux_mjy * 1e-3 / 3631)``.
"""

import logging

import numpy as np

__all__ = ["FLUX_COLUMNS", "add_flux_columns", "flux_columns", "photometric_conversion"]

log = logging.getLogger(__name__)

#: Columns this module fills: (name, dtype, unit, description), CATALOG_COLUMNS style.
FLUX_COLUMNS = (
    ("flux_mjy", "f8", "mJy", "Total flux density (milli-jansky): flux x PHOTMJSR x PIXAR_SR"),
    ("flux_mjy_err", "f8", "mJy", "1-sigma uncertainty of flux_mjy (measurement only)"),
    ("abmag", "f8", "mag", "AB magnitude, -2.5 log10(flux_mjy / 3631e3)"),
    ("abmag_err", "f8", "mag", "1-sigma uncertainty of abmag"),
)

_MJY_TO_MILLIJY = 1e9  # 1 MJy = 1e6 Jy = 1e9 mJy
_AB_ZERO_MJY = 3631e3  # 3631 Jy in mJy
PSF_CORRECTION = (
    "none beyond the PSF model: flux is the total flux, to infinity, of the fitted moving-PSF "
    "model (the PSF named in psf_model, normalised to unit total flux; how it was refined "
    "and the light beyond its box in psf_refinement)"
)


def _get(node, name):
    try:
        return getattr(node, name)
    except AttributeError:
        return None


def _finite(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _from_photom_reference(model, photom, area=None):
    """(photmjsr, pixar_sr, info) from a MIRI imager photom reference file."""
    from jwst.photom import time_dependence
    from jwst.photom.photom import find_row
    from stdatamodels.jwst import datamodels

    filt = str(model.meta.instrument.filter)
    subarray = str(model.meta.subarray.name)
    with datamodels.MirImgPhotomModel(str(photom)) as ref:
        row = find_row(ref.phot_table, {"subarray": subarray, "filter": filt})
        if row is None:
            row = find_row(ref.phot_table, {"subarray": "GENERIC", "filter": filt})
        if row is None:
            raise ValueError(
                f"no row for FILTER={filt} SUBARRAY={subarray} (or GENERIC) in {photom}"
            )
        conversion = float(ref.phot_table["photmjsr"][row])
        mid_time = _get(model.meta.exposure, "mid_time")
        correction = 1.0
        if mid_time is not None:
            table = time_dependence.get_correction_table(ref, mid_time)
            if table is not None:
                correction = float(table[row])
        pixar_sr = _finite(ref.meta.photometry.pixelarea_steradians)
    if area is not None:
        with datamodels.open(str(area)) as area_ref:
            pixar_sr = _finite(area_ref.meta.photometry.pixelarea_steradians) or pixar_sr
    from pathlib import Path

    info = {
        "photom": Path(str(photom)).name,
        "area": Path(str(area)).name if area is not None else "N/A",
        "time_correction": correction,
    }
    return conversion * correction, pixar_sr, info


def photometric_conversion(model=None, photom=None, area=None):
    """MJy per DN/s of total source flux, and where it came from.

    Parameters
    ----------
    model : stdatamodels DataModel, optional
        The exposure: its ``meta.photometry`` (PHOTMJSR, PIXAR_SR) wins when
        set; its FILTER, SUBARRAY and mid-time select the photom row otherwise.
    photom, area : str or Path, optional
        ``photom`` (MirImgPhotomModel) and ``area`` reference files.

    Returns
    -------
    conversion : float
        MJy per DN/s; NaN when nothing allows the conversion.
    info : dict
        ``source`` ("keywords", "photom", or "none"), PHOTMJSR, PIXAR_SR, files.
    """
    if model is not None:
        phot = _get(model.meta, "photometry")
        photmjsr = _finite(_get(phot, "conversion_megajanskys")) if phot is not None else None
        pixar_sr = _finite(_get(phot, "pixelarea_steradians")) if phot is not None else None
        if photmjsr is not None and pixar_sr is not None:
            return photmjsr * pixar_sr, {
                "source": "keywords", "photmjsr": photmjsr, "pixar_sr": pixar_sr,
            }
    if model is not None and photom is not None and str(photom).upper() != "N/A":
        try:
            photmjsr, pixar_sr, info = _from_photom_reference(model, photom, area)
        except Exception as err:  # noqa: BLE001 - any failure: no calibration, say why
            log.warning("no flux calibration from %s: %s", photom, err)
            return float("nan"), {"source": "none", "notes": f"photom failed: {err}"}
        if pixar_sr is None:
            return float("nan"), {"source": "none", "notes": "no PIXAR_SR in photom or area file"}
        return photmjsr * pixar_sr, {
            "source": "photom", "photmjsr": photmjsr, "pixar_sr": pixar_sr, **info,
        }
    return float("nan"), {
        "source": "none", "notes": "no PHOTMJSR/PIXAR_SR keywords, no photom file",
    }


def flux_columns(catalog, model=None, photom=None, area=None, conversion=None):
    """Calibrated flux density and AB magnitude for every detection.

    Parameters
    ----------
    catalog : numpy structured array or Table
        With ``flux`` and ``flux_err`` (DN/s).
    model, photom, area
        As :func:`photometric_conversion`.
    conversion : float, optional
        MJy per DN/s, overriding the lookup.

    Returns
    -------
    columns : dict of ndarray
        ``flux_mjy, flux_mjy_err`` (mJy) and ``abmag, abmag_err`` (AB mag; NaN for
        non-positive fluxes).  All NaN when no calibration is available.
    meta : dict
        ``photometry``: conversion source, PHOTMJSR, PIXAR_SR, the PSF/aperture
        correction statement and the conventions.
    """
    if conversion is None:
        conversion, info = photometric_conversion(model, photom, area)
    else:
        info = {"source": "given"}
    flux = np.asarray(catalog["flux"], dtype=float)
    flux_err = np.asarray(catalog["flux_err"], dtype=float)
    mjy = flux * conversion * _MJY_TO_MILLIJY
    mjy_err = np.abs(flux_err * conversion * _MJY_TO_MILLIJY)
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = mjy > 0
        safe = np.where(positive, mjy, 1.0)
        abmag = np.where(positive, -2.5 * np.log10(safe / _AB_ZERO_MJY), np.nan)
        abmag_err = np.where(positive, 2.5 / np.log(10) * mjy_err / safe, np.nan)
    columns = {"flux_mjy": mjy, "flux_mjy_err": mjy_err, "abmag": abmag, "abmag_err": abmag_err}
    meta = {
        "photometry": {
            **info,
            "mjy_per_dn_s": float(conversion) if np.isfinite(conversion) else None,
            "psf_correction": PSF_CORRECTION,
            "flat_field": "not applied (Stage 1 count rates)",
            "units": "flux_mjy in mJy (milli-jansky); abmag AB",
        }
    }
    meta["photometry"] = {k: v for k, v in meta["photometry"].items() if v is not None}
    return columns, meta


def add_flux_columns(catalog, model=None, **kwargs):
    """Copy of a catalog array with the :data:`FLUX_COLUMNS` filled (appended if missing).

    Returns
    -------
    new_catalog : numpy structured array
    meta : dict
    """
    columns, meta = flux_columns(catalog, model, **kwargs)
    catalog = np.asarray(catalog)
    names = [c[0] for c in FLUX_COLUMNS]
    if set(names) <= set(catalog.dtype.names):  # the catalog schema has them: fill in place
        out = catalog.copy()
        for name in names:
            out[name] = columns[name]
        return out, meta
    dtype = [d for d in catalog.dtype.descr if d[0] not in names and d[0] != ""]
    dtype += [(name, "f8") for name in names]
    out = np.empty(catalog.shape, dtype=dtype)
    for name in catalog.dtype.names:
        if name not in names:
            out[name] = catalog[name]
    for name in names:
        out[name] = columns[name]
    return out, meta
