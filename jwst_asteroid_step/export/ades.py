"""Minor Planet Center ADES astrometry reports (PSV) of the detections.

Follows ADES version **2022**: the IAU Astrometry Data Exchange Standard as
described in ``ADES_Description_v07Sep2022.pdf`` and encoded in the MPC's
submission schema ``xsd/submit.xsd`` (both in the IAU-ADES/ADES-Master GitHub
repository; the same ``submit.xsd`` ships in the ``iau-ades`` PyPI package).
PSV layout (ADES description, "Secondary Exchange Format - PSV"): a first line
``# version=2022``; a header of ``# group`` / ``! element value`` lines (the
``obsContext``); a keyword record that starts with ``permID``; data records,
fields separated by ``|`` and optionally blank-padded.

What ``submit.xsd`` requires, and what this writer puts there:

obsContext
    ``observatory/mpcCode`` (274, JWST), ``submitter/name``, ``measurers/name``,
    ``telescope/design``, ``telescope/aperture`` (6.5 m), ``telescope/detector``.
optical record
    an identifier (one of permID, provID, artSat, trkSub: a new detection has
    only a ``trkSub``, at most 8 of ``[-A-Za-z0-9_]``), ``mode``, ``stn`` (274),
    ``obsTime`` (UTC, ``yyyy-mm-ddThh:mm:ss.sssZ``), ``ra``, ``dec`` (ICRS deg)
    and ``astCat``; and, for a space-based station, the observer position
    ``sys`` (ICRF_KM), ``ctr`` (399, geocentre), ``pos1..3`` (km) when the
    header has JWST's ephemeris.  Optional fields written: ``rmsRA`` (arcsec,
    includes cos dec), ``rmsDec``, ``rmsCorr``, ``logSNR``, ``exp`` and
    ``remarks`` (sky rate, MIRI filter, AB magnitude).

``mag``/``band`` are not written: MIRI filters have no ADES band code; the AB
magnitude goes in ``remarks``.  ``astCat`` names the catalogue the astrometry is
tied to; JWST's pointing comes from the FGS guide-star catalogue (GSC 2.4.2,
astrometry from Gaia DR2), hence the default ``Gaia2``; pass ``ast_cat="Gaia3"``
after aligning the image to Gaia DR3.
"""

import math
import re

import numpy as np
from astropy.time import Time

from ..sky.observer import JWST_MPC_CODE, JWST_NAME, observer_metadata, observer_position
from ._common import catalog_and_meta

__all__ = [
    "ADES_VERSION",
    "OPTICAL_FIELD_ORDER",
    "REQUIRED_CONTEXT",
    "REQUIRED_ID_ONE_OF",
    "REQUIRED_LOCATION",
    "REQUIRED_OPTICAL",
    "ades_records",
    "read_ades_psv",
    "to_ades_psv",
    "to_tracklet_ades_psv",
    "validate_ades_psv",
    "write_ades",
    "write_tracklet_ades",
]

ADES_VERSION = "2022"

#: submit.xsd (ADES 2022) ``OpticalType``: required elements of an optical record.
REQUIRED_OPTICAL = ("mode", "stn", "obsTime", "ra", "dec", "astCat")
#: submit.xsd ``OpticalID`` group: at least one of these identifies the object.
REQUIRED_ID_ONE_OF = ("permID", "provID", "artSat", "trkSub")
#: submit.xsd ``Location`` group: all of these when any is given.
REQUIRED_LOCATION = ("sys", "ctr", "pos1", "pos2", "pos3")
#: submit.xsd ``ObsContextType`` and its element types: required groups and elements.
REQUIRED_CONTEXT = {
    "observatory": ("mpcCode",),
    "submitter": ("name",),
    "measurers": ("name",),
    "telescope": ("design", "aperture", "detector"),
}
#: Element order of submit.xsd ``OpticalType`` (the fields this writer can use).
OPTICAL_FIELD_ORDER = (
    "permID", "provID", "trkSub", "mode", "stn", "sys", "ctr", "pos1", "pos2", "pos3",
    "vel1", "vel2", "vel3", "obsTime", "rmsTime", "ra", "dec", "rmsRA", "rmsDec", "rmsCorr",
    "astCat", "mag", "rmsMag", "band", "logSNR", "exp", "notes", "remarks",
)

# Value patterns of submit.xsd (simple types), for the fields written here.
_DECIMAL = r"[+\-]?(0|([1-9][0-9]*))(\.[0-9]*)?"
_POS_DECIMAL = r"(0|([1-9][0-9]*))(\.[0-9]*)?"
_PATTERNS = {
    "permID": r"\d+([IPD](-[A-Z]{1,2})?)?",
    "trkSub": r"[-A-Za-z0-9_]{1,8}",
    "mode": r"[A-Za-z0-9_]{1,3}",
    "stn": r"[A-Za-z0-9_]{3,4}",
    "sys": r"WGS84|ITRF|IAU|ICRF_AU|ICRF_KM",
    "ctr": r"399",
    "obsTime": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z",
    "ra": r"([1-3][0-9]{2}|[1-9]?[0-9])?(\.[0-9]{0,9})?",
    "dec": r"[+\-]?([1-9]?[0-9])?(\.[0123456789]{0,9})?",
    "rmsCorr": r"[+\-]?(0|1)(\.[0123456789]{0,11})?",
    "astCat": r"[.A-Za-z0-9_]{1,8}",
    "remarks": r"[^|]*[^|\s][^|]*",
}
_WIDTH = {"pos1": 13, "pos2": 13, "pos3": 13, "vel1": 13, "vel2": 13, "vel3": 13,
          "rmsRA": 7, "rmsDec": 7, "logSNR": 5, "exp": 6}
_POSITIVE = {"rmsRA", "rmsDec", "exp"}
_DECIMAL_FIELDS = {"pos1", "pos2", "pos3", "vel1", "vel2", "vel3", "logSNR"}


# ---------------------------------------------------------------- formatting


def _obs_time(mjd):
    """UTC MJD -> ADES obsTime (millisecond precision)."""
    return Time(mjd, format="mjd", scale="utc").isot[:23] + "Z"


def _fmt_ra(ra):
    text = f"{ra % 360.0:.7f}"
    return "0.0000000" if text.startswith("360") else text


def _fmt_dec(dec):
    return f"{dec:+.7f}"


def _fmt_positive(value, width=7):
    """Shortest positive decimal (>= 1e-4) that fits the field width."""
    value = max(float(value), 1e-4)
    for decimals in (4, 3, 2, 1, 0):
        text = f"{value:.{decimals}f}"
        if len(text) <= width and float(text) > 0:
            return text
    raise ValueError(f"{value} does not fit an ADES field of width {width}")


def _fmt_position(value):
    return f"{value:.4f}" if abs(value) < 1e7 else f"{value:.1f}"


def _fmt_velocity(value):
    return f"{value:.6f}"


def _trk_sub(prefix, detection_id):
    text = re.sub(r"[^-A-Za-z0-9_]", "", f"{prefix}{int(detection_id)}")
    if not 1 <= len(text) <= 8:
        raise ValueError(f"trkSub {text!r} must be 1-8 characters of [-A-Za-z0-9_]")
    return text


def _check_trk_sub(text):
    if not re.fullmatch(_PATTERNS["trkSub"], text):
        raise ValueError(f"trkSub {text!r} must be 1-8 characters of [-A-Za-z0-9_]")
    return text


def _remark(row, meta):
    filt = meta.get("instrument", {}).get("filter", "")
    parts = [f"JWST MIRI {filt} ramp detection {int(row['id'])} int {int(row['integration'])}"]
    if np.isfinite(row["ra_rate"]) and np.isfinite(row["dec_rate"]):
        parts.append(
            f"rate RA*cosDec {row['ra_rate']:+.3f} Dec {row['dec_rate']:+.3f} arcsec/h"
        )
    names = row.dtype.names
    if "abmag" in names and np.isfinite(row["abmag"]):
        parts.append(f"AB {row['abmag']:.2f}+-{row['abmag_err']:.2f}")
    return "; ".join(parts)[:300]


# ---------------------------------------------------------------- records


def ades_records(catalog, *, trk_sub_prefix="J", ast_cat="Gaia2", mode="CCD", observer=None,
                 trk_subs=None):
    """One ADES optical record per detection that has a sky position.

    Parameters
    ----------
    catalog : AsteroidCatalogModel, path, or numpy structured array
    trk_sub_prefix : str
        trkSub = prefix + detection id (unique within the file; at most 8
        characters of ``[-A-Za-z0-9_]``).
    ast_cat : str
        ADES ``astCat`` (see module docstring).
    mode : str
        ADES ``mode`` (MPC list: ``CCD``, ``CMO``, ...).
    observer : dict, optional
        :func:`~jwst_asteroid_step.sky.observer.observer_metadata`; by default the
        catalog's ``meta.asteroid_detect.observer`` or its ephemeris keywords.
    trk_subs : dict, optional
        Detection id -> trkSub: report only these detections, with these trkSubs
        (several detections of one tracklet share one); by default every
        detection, trkSub = prefix + id.

    Returns
    -------
    records : list of dict
        ADES field name -> string, in :data:`OPTICAL_FIELD_ORDER`.
    skipped : list of int
        Detection ids left out (no sky position).
    """
    table, meta = catalog_and_meta(catalog)
    if observer is None:
        observer = meta.get("asteroid_detect", {}).get("observer") or _observer_from_meta(meta)
    exposure = meta.get("exposure", {})
    exp_time = exposure.get("integration_time")
    ok = np.isfinite(table["ra"]) & np.isfinite(table["dec"]) & np.isfinite(table["mjd"])
    if trk_subs is not None:
        wanted = np.isin(table["id"], np.asarray(list(trk_subs), dtype=int))
        skipped = [int(i) for i in table["id"][wanted & ~ok]]
        ok &= wanted
    else:
        skipped = [int(i) for i in table["id"][~ok]]
    rows = table[ok]
    positions = observer_position(observer, rows["mjd"]) if len(rows) else None
    records = []
    for i, row in enumerate(rows):
        rec = {
            "permID": "", "provID": "",
            "trkSub": (_trk_sub(trk_sub_prefix, row["id"]) if trk_subs is None
                       else _check_trk_sub(trk_subs[int(row["id"])])),
            "mode": mode, "stn": JWST_MPC_CODE,
        }
        if positions is not None:
            rec.update({"sys": "ICRF_KM", "ctr": "399"})
            for k in range(3):
                rec[f"pos{k + 1}"] = _fmt_position(positions[i, k])
        rec["obsTime"] = _obs_time(row["mjd"])
        rec["ra"], rec["dec"] = _fmt_ra(row["ra"]), _fmt_dec(row["dec"])
        if np.isfinite(row["ra_err"]) and np.isfinite(row["dec_err"]):
            rec["rmsRA"] = _fmt_positive(row["ra_err"])
            rec["rmsDec"] = _fmt_positive(row["dec_err"])
            corr = row["ra_dec_corr"] if "ra_dec_corr" in row.dtype.names else np.nan
            if np.isfinite(corr):
                rec["rmsCorr"] = f"{np.clip(corr, -0.9999, 0.9999):.4f}"
        rec["astCat"] = ast_cat
        if np.isfinite(row["snr"]) and row["snr"] > 0:
            rec["logSNR"] = f"{math.log10(row['snr']):.2f}"
        if exp_time:
            rec["exp"] = _fmt_positive(exp_time, 6)
        rec["remarks"] = _remark(row, meta)
        records.append({k: rec[k] for k in OPTICAL_FIELD_ORDER if k in rec})
    return records, skipped


def _observer_from_meta(meta):
    """observer_metadata() from a plain meta dict (catalog read from a file)."""
    from types import SimpleNamespace

    def ns(d):
        return SimpleNamespace(**{k: ns(v) if isinstance(v, dict) else v for k, v in d.items()})

    tree = ns({"ephemeris": meta.get("ephemeris", {}), "exposure": meta.get("exposure", {})})
    return observer_metadata(SimpleNamespace(meta=tree))


def _context_lines(meta, submitter, measurers, observers, institution, comments):
    software = meta.get("asteroid_detect", {}).get("software", {})
    wcs_source = meta.get("asteroid_detect", {}).get("wcs_source", "none")
    filt = meta.get("instrument", {}).get("filter")
    lines = ["# observatory", f"! mpcCode {JWST_MPC_CODE}", f"! name {JWST_NAME}",
             "# submitter", f"! name {submitter}"]
    if institution:
        lines.append(f"! institution {institution}")
    if observers:
        lines += ["# observers"] + [f"! name {n}" for n in observers]
    lines += ["# measurers"] + [f"! name {n}" for n in measurers]
    lines += ["# telescope", "! name JWST", "! design Three-mirror anastigmat",
              "! aperture 6.5", "! detector Si:As IBC (MIRI imager)"]
    if filt:
        lines.append(f"! filter {filt}")
    lines.append("! pixelScale 0.11")
    detection = f"jwst_asteroid_step {software.get('jwst_asteroid_step', '')}"
    astrometry = f"jwst {software.get('jwst', '')} WCS ({wcs_source})"
    lines += [
        "# software",
        " ".join(f"! objectDetection {detection} (up-the-ramp moving-PSF fit)".split()),
        " ".join(f"! astrometry {astrometry}".split()),
    ]
    if comments:
        lines += ["# comment"] + [f"! line {c[:100]}" for c in comments]
    return lines


def to_ades_psv(catalog, *, submitter="Unknown", measurers=("Unknown",), observers=(),
                institution=None, comments=(), pad=True, **record_kwargs):
    """The catalog as an ADES 2022 PSV document.

    Parameters
    ----------
    catalog : AsteroidCatalogModel, path, or numpy structured array
    submitter : str
        ``submitter/name`` (required by the MPC; replace the default).
    measurers : sequence of str
        ``measurers/name`` entries (at least one).
    observers : sequence of str, optional
        ``observers/name`` entries (e.g. the programme's PI).
    institution : str, optional
        ``submitter/institution``.
    comments : sequence of str, optional
        ``comment/line`` entries (100 characters each at most).
    pad : bool
        Blank-pad the columns for reading by eye.
    **record_kwargs
        ``trk_sub_prefix``, ``ast_cat``, ``mode``, ``observer`` (:func:`ades_records`).

    Returns
    -------
    text : str
    skipped : list of int
        Detection ids without a sky position, not reported.

    Raises
    ------
    ValueError
        If no detection has a sky position, or a name is empty.
    """
    if not submitter or not measurers or not all(measurers):
        raise ValueError("ADES needs a submitter name and at least one measurer name")
    records, skipped = ades_records(catalog, **record_kwargs)
    if not records:
        raise ValueError("no detection has a sky position (ra/dec): nothing to report")
    _, meta = catalog_and_meta(catalog)
    text = _psv_document(records, meta, submitter, measurers, observers, institution, comments,
                         pad)
    return text, skipped


def _psv_document(records, meta, submitter, measurers, observers, institution, comments, pad):
    """Header (obsContext from ``meta``), keyword record and data records as PSV text."""
    fields = [f for f in OPTICAL_FIELD_ORDER if any(f in r for r in records)]
    rows = [[r.get(f, "") for f in fields] for r in records]
    if pad:
        widths = [max(len(f), *(len(row[i]) for row in rows)) for i, f in enumerate(fields)]
        widths[-1] = 0 if fields[-1] == "remarks" else widths[-1]

        def join(values):
            return "|".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()
    else:
        def join(values):
            return "|".join(values)

    lines = [f"# version={ADES_VERSION}"]
    lines += _context_lines(meta, submitter, list(measurers), list(observers), institution,
                            list(comments))
    lines.append(join(fields))
    lines += [join(row) for row in rows]
    return "\n".join(lines) + "\n"


def write_ades(catalog, path, **kwargs):
    """Write :func:`to_ades_psv` to ``path``; returns (Path, skipped ids)."""
    from pathlib import Path

    text, skipped = to_ades_psv(catalog, **kwargs)
    Path(path).write_text(text)
    return Path(path), skipped


# ---------------------------------------------------------------- tracklets


def _tracklet_rows(detections, trk_sub_prefix, unlinked_prefix, include_unlinked):
    """(catalog_file or None, rows, {id: trkSub}) groups of the detections to report."""
    ids = np.asarray(detections["tracklet_id"], dtype=int)
    keep = ids > 0
    if include_unlinked:
        keep |= ids <= 0
    trk = np.array([""] * len(detections), dtype=object)
    trk[ids > 0] = [f"{trk_sub_prefix}{i}" for i in ids[ids > 0]]
    unlinked = np.flatnonzero(keep & (ids <= 0))
    trk[unlinked] = [f"{unlinked_prefix}{k + 1}" for k in range(len(unlinked))]
    files = (np.array([str(f) for f in detections["catalog_file"]], dtype=object)
             if "catalog_file" in detections.colnames else np.array([""] * len(detections)))
    exposure = (np.array([str(e) for e in detections["exposure"]], dtype=object)
                if "exposure" in detections.colnames else files)
    groups = {}
    for i in np.flatnonzero(keep):
        groups.setdefault((files[i], exposure[i]), []).append(i)
    return groups, trk


def to_tracklet_ades_psv(result, *, submitter="Unknown", measurers=("Unknown",), observers=(),
                         institution=None, comments=(), pad=True, trk_sub_prefix="T",
                         unlinked_prefix="U", include_unlinked=False, **record_kwargs):
    """Tracklets as one ADES 2022 PSV document: each tracklet one set of obs with one trkSub.

    Parameters
    ----------
    result : LinkResult
        From :func:`jwst_asteroid_step.survey.tracklets.link_tracklets`; its
        ``detections`` have ``tracklet_id`` and, for observer positions and
        exposure times, ``catalog_file`` (the ``_asteroids.asdf`` of each row).
        Rows whose catalog file is not found are reported from the table alone
        (no observer position: only for checks, the MPC needs it for 274).
    trk_sub_prefix : str
        trkSub of tracklet k = prefix + k.
    unlinked_prefix : str
        With ``include_unlinked``: each unlinked detection its own trkSub.
    include_unlinked : bool
        Report detections not in any tracklet too.
    submitter, measurers, observers, institution, comments, pad, **record_kwargs
        As for :func:`to_ades_psv`.

    Returns
    -------
    text : str
    skipped : list of str
        ``det_key`` (or ``exposure#id``) of members without a sky position.
    """
    from pathlib import Path

    from ..datamodels import catalog_from_table

    if not submitter or not measurers or not all(measurers):
        raise ValueError("ADES needs a submitter name and at least one measurer name")
    detections = result.detections
    groups, trk = _tracklet_rows(detections, trk_sub_prefix, unlinked_prefix, include_unlinked)
    records, skipped, metas = [], [], []
    for (catalog_file, exposure), rows in groups.items():
        subs = {int(detections["id"][i]): trk[i] for i in rows}
        if catalog_file and Path(catalog_file).exists():
            source = catalog_file
        else:
            source = catalog_from_table(detections[rows])
        recs, missing = ades_records(source, trk_subs=subs, **record_kwargs)
        records += recs
        skipped += [f"{exposure}#{i}" for i in missing]
        metas.append(catalog_and_meta(source)[1] if isinstance(source, str) else {})
    if not records:
        raise ValueError("no tracklet member has a sky position (ra/dec): nothing to report")
    records.sort(key=lambda r: (_trk_order(r["trkSub"]), r["obsTime"]))
    meta = next((m for m in metas if m), {})
    filters = {m.get("instrument", {}).get("filter") for m in metas if m}
    if len(filters) > 1:  # one obsContext for all: name no single filter
        meta = {**meta, "instrument": {k: v for k, v in meta.get("instrument", {}).items()
                                       if k != "filter"}}
    text = _psv_document(records, meta, submitter, measurers, observers, institution, comments,
                         pad)
    return text, skipped


def _trk_order(trk_sub):
    """Sort trkSubs by prefix, then numerically (T2 before T10)."""
    head = trk_sub.rstrip("0123456789")
    tail = trk_sub[len(head):]
    return head, int(tail) if tail else 0


def write_tracklet_ades(result, path, **kwargs):
    """Write :func:`to_tracklet_ades_psv` to ``path``; returns (Path, skipped)."""
    from pathlib import Path

    text, skipped = to_tracklet_ades_psv(result, **kwargs)
    Path(path).write_text(text)
    return Path(path), skipped


# ---------------------------------------------------------------- reading and checking


def read_ades_psv(text):
    """Parse an ADES PSV document (one obsContext, one data block).

    Parameters
    ----------
    text : str
        PSV text (e.g. ``Path(...).read_text()``).

    Returns
    -------
    header : dict
        ``{"version": str, group: {element: [values...]}}``.
    records : list of dict
        Field name -> value (blank-stripped; empty fields are "").
    """
    header, records, keys, group = {}, [], None, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            if body.replace(" ", "").startswith("version="):
                header["version"] = body.split("=", 1)[1].strip()
                continue
            group = body.split(None, 1)[0]
            header.setdefault(group, {})
            continue
        if line.startswith("!"):
            element, _, value = line[1:].strip().partition(" ")
            header[group].setdefault(element, []).append(value.strip())
            continue
        fields = [f.strip() for f in line.split("|")]
        if keys is None:
            keys = fields
            continue
        records.append(dict(zip(keys, fields + [""] * (len(keys) - len(fields)))))
    return header, records


def validate_ades_psv(text):
    """Check a PSV document against the ADES 2022 submit.xsd rules used here.

    Checks the version line, the required obsContext elements, the keyword
    record (first keyword ``permID``, known field names), and for every record
    the required fields and the value patterns and ranges of submit.xsd for the
    fields this writer produces.

    Returns
    -------
    list of str
        Problems found; empty when the document passes.
    """
    problems = []
    header, records = read_ades_psv(text)
    if header.get("version") != ADES_VERSION:
        problems.append(f"version is {header.get('version')!r}, expected {ADES_VERSION}")
    for group, elements in REQUIRED_CONTEXT.items():
        for element in elements:
            values = header.get(group, {}).get(element, [])
            if not values or not all(v.strip() for v in values):
                problems.append(f"obsContext {group}/{element} missing")
    keys = None
    for raw in text.splitlines():
        line = raw.strip()
        if line and line[0] not in "#!":
            keys = [f.strip() for f in line.split("|")]
            break
    if not keys or keys[0] != "permID":
        problems.append("the keyword record must start with permID")
    if not records:
        problems.append("no data records")
    for i, rec in enumerate(records):
        where = f"record {i + 1}"
        present = {k for k, v in rec.items() if v != ""}
        unknown = present - set(OPTICAL_FIELD_ORDER)
        if unknown:
            problems.append(f"{where}: fields not in ADES optical: {sorted(unknown)}")
        if not present & set(REQUIRED_ID_ONE_OF):
            problems.append(f"{where}: no object identifier ({'/'.join(REQUIRED_ID_ONE_OF)})")
        for name in REQUIRED_OPTICAL:
            if name not in present:
                problems.append(f"{where}: required field {name} missing")
        if present & set(REQUIRED_LOCATION) and not set(REQUIRED_LOCATION) <= present:
            problems.append(f"{where}: incomplete observer location {REQUIRED_LOCATION}")
        for name in present:
            problems += [f"{where}: {p}" for p in _check_value(name, rec[name])]
    return problems


def _check_value(name, value):
    problems = []
    pattern = _PATTERNS.get(name)
    if pattern and not re.fullmatch(pattern, value):
        problems.append(f"{name}={value!r} does not match {pattern}")
    if name in _WIDTH and len(value.lstrip("+-")) > _WIDTH[name]:
        problems.append(f"{name}={value!r} is wider than {_WIDTH[name]} characters")
    if name in _POSITIVE and (not re.fullmatch(_POS_DECIMAL, value) or not 0 < float(value) < 1e5):
        problems.append(f"{name}={value!r} is not a positive decimal below 100000")
    if name in _DECIMAL_FIELDS and not re.fullmatch(_DECIMAL, value):
        problems.append(f"{name}={value!r} is not a decimal")
    try:
        if name == "ra" and not 0.0 <= float(value) < 360.0:
            problems.append(f"ra={value} outside [0, 360)")
        if name == "dec" and not -90.0 <= float(value) <= 90.0:
            problems.append(f"dec={value} outside [-90, 90]")
        if name == "rmsCorr" and not -1.0 < float(value) < 1.0:
            problems.append(f"rmsCorr={value} outside (-1, 1)")
        if name == "obsTime":
            Time(value[:-1], format="isot", scale="utc")
    except ValueError as err:
        problems.append(f"{name}={value!r}: {err}")
    return problems
