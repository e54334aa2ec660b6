"""DS9 and CASA (CRTF) region files of the detections' tracks, via ``regions``.

Each detection becomes its track over the integration (a line from where the
object was at the first read to where it was at the last read), a circle point
at the start, and an arrowhead (two short lines) at the end, so the sense of
motion reads in any viewer (``regions`` cannot write DS9's ``line=0 1`` arrows).
Tracks are drawn in ICRS from ``ra, dec, ra_rate, dec_rate`` when the catalog has
sky positions (detections without one are left out), otherwise in image
coordinates from ``x, y, vx, vy`` (DS9 only: CRTF is written in ICRS).

In DS9 files the track line carries ``text={id}`` and ``tag={track}``, the start
point ``tag={start}``, the arrowhead ``tag={head}``; in CRTF the track line carries
``label='<id>'``.
"""

import logging
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from ._common import catalog_and_meta, track_times

log = logging.getLogger(__name__)

__all__ = ["read_tracks", "track_regions", "write_regions"]

_FORMATS = ("ds9", "crtf")
_HEAD_ANGLE = np.radians(25.0)


def _head_offsets(d1, d2, scale_min, scale_max):
    """Arrowhead end-points relative to the track's end, in the track's units."""
    length = np.hypot(d1, d2)
    if not np.isfinite(length) or length == 0:
        return []
    head = float(np.clip(0.25 * length, scale_min, scale_max))
    ux, uy = -d1 / length, -d2 / length  # pointing back along the track
    out = []
    for a in (_HEAD_ANGLE, -_HEAD_ANGLE):
        c, s = np.cos(a), np.sin(a)
        out.append((head * (c * ux - s * uy), head * (s * ux + c * uy)))
    return out


def _shapes(table, meta):
    """Per detection: (id, start, end, heads) in sky or pixel coordinates."""
    from regions import PixCoord

    t0, t1 = track_times(meta, table)
    has_sky = np.isfinite(table["ra"]) & np.isfinite(table["dec"]) & np.isfinite(table["ra_rate"])
    sky = bool(np.any(has_sky))
    out = []
    for row, ta, tb, row_sky in zip(table, t0, t1, has_sky):
        det_id = int(row["id"])
        if sky and not row_sky:
            log.warning("detection %d has no sky position: left out of the region file", det_id)
            continue
        if sky:
            centre = SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg, frame="icrs")
            ra_rate, dec_rate = row["ra_rate"] / 3600.0, row["dec_rate"] / 3600.0  # arcsec/s
            start = centre.spherical_offsets_by(ra_rate * (ta - row["t_int"]) * u.arcsec,
                                                dec_rate * (ta - row["t_int"]) * u.arcsec)
            end = centre.spherical_offsets_by(ra_rate * (tb - row["t_int"]) * u.arcsec,
                                              dec_rate * (tb - row["t_int"]) * u.arcsec)
            d_lon, d_lat = start.spherical_offsets_to(end)
            heads = [end.spherical_offsets_by(dx * u.arcsec, dy * u.arcsec)
                     for dx, dy in _head_offsets(d_lon.to_value(u.arcsec),
                                                 d_lat.to_value(u.arcsec), 0.15, 1.0)]
        else:
            def at(t, row=row):
                return PixCoord(row["x"] + row["vx"] * (t - row["t_int"]),
                                row["y"] + row["vy"] * (t - row["t_int"]))

            start, end = at(ta), at(tb)
            heads = [PixCoord(end.x + dx, end.y + dy)
                     for dx, dy in _head_offsets(end.x - start.x, end.y - start.y, 1.5, 8.0)]
        out.append((det_id, start, end, heads))
    return out, sky


def track_regions(catalog, format="ds9", color="cyan"):
    """Region objects of every detection's track.

    Parameters
    ----------
    catalog : AsteroidCatalogModel, path, or numpy structured array
    format : {"ds9", "crtf"}
        Target format (labels and point symbols differ between the two).
    color : str

    Returns
    -------
    regions.Regions
    """
    from regions import (
        LinePixelRegion,
        LineSkyRegion,
        PointPixelRegion,
        PointSkyRegion,
        Regions,
    )

    if format not in _FORMATS:
        raise ValueError(f"format must be one of {_FORMATS}, got {format!r}")
    table, meta = catalog_and_meta(catalog)
    shapes, sky = _shapes(table, meta)
    if format == "crtf" and not sky:
        raise ValueError("CRTF regions need sky coordinates; the catalog has none (use ds9)")
    Line = LineSkyRegion if sky else LinePixelRegion
    Point = PointSkyRegion if sky else PointPixelRegion
    ds9 = format == "ds9"
    items = []
    for det_id, start, end, heads in shapes:
        label = {"text": str(det_id), "tag": ["track"]} if ds9 else {"label": str(det_id)}
        items.append(Line(start, end, meta=label, visual={"color": color, "width": 2} if ds9
                          else {"color": color}))
        items.append(Point(start, meta={"tag": ["start"]} if ds9 else {},
                           visual={"color": color, "symbol": "circle" if ds9 else "o"}))
        for head in heads:
            items.append(Line(end, head, meta={"tag": ["head"]} if ds9 else {},
                              visual={"color": color}))
    return Regions(items)


def write_regions(catalog, path, format="ds9", color="cyan", overwrite=True):
    """Write the tracks as a DS9 (``.reg``) or CRTF (``.crtf``) region file.

    Returns
    -------
    Path
    """
    regions = track_regions(catalog, format=format, color=color)
    path = Path(path)
    if format == "ds9":
        text = regions.serialize(format="ds9", precision=9)
    else:
        text = regions.serialize(format="crtf", coordsys="icrs", fmt=".9f")
    if path.exists() and not overwrite:
        raise FileExistsError(path)
    path.write_text(text)
    return path


def read_tracks(path, format="ds9"):
    """Read the tracks back from a file written by :func:`write_regions`.

    Returns
    -------
    dict
        Detection id -> (start, end): SkyCoord or PixCoord.
    """
    from regions import Regions

    regions = Regions.read(str(path), format=format)
    tracks = {}
    for region in regions:
        if not hasattr(region, "start"):
            continue
        key = region.meta.get("text") if format == "ds9" else region.meta.get("label")
        tags = region.meta.get("tag", ["track"]) if format == "ds9" else ["track"]
        if key not in (None, "") and "track" in tags:
            tracks[int(str(key).strip("'"))] = (region.start, region.end)
    return tracks
