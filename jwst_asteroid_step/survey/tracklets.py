"""Tracklets: one object's detections across the exposures and integrations of a visit.

Every detection of a ramp carries a position at a known epoch *and* a sky rate
(``ra, dec, mjd, ra_rate, dec_rate`` with errors; DESIGN.md §5).  Detections of one
object in the dithers and repeats of a visit therefore agree on a single uniform
motion: positions lie on a straight line in the gnomonic (tangent-plane)
projection, which is a great circle on the sky, and every detection's own rate
equals that line's rate.

The consistency test is one generalised least-squares fit of (ξ0, η0, ξ̇, η̇) at a
reference epoch to all members' positions (2x2 covariance each, ``ra_dec_corr``
included) and rates, with

- an astrometric floor (``pos_floor``) and a rate floor (``rate_floor``) added in
  quadrature: WCS and guide-star systematics between dithers, and rates measured
  inside one integration;
- an allowance for unmodelled curvature (``accel``, arcsec/h²): the apparent
  acceleration of a main-belt asteroid seen from L2 is ~0.1″/h², which bends a
  track by ½·a·Δt² (0.05″ after 1 h, 5″ after 10 h), so positions far from the
  reference epoch are down-weighted instead of rejected.

A tracklet is accepted when the χ² of positions and rates about the fit has a
p-value of at least ``p_min``.  Linking is greedy: candidate pairs pass a cheap
vectorised gate, are fitted exactly and sorted best first; each seed grows by the
detection that raises χ² least while the fit still passes; a detection joins at
most one tracklet, and a tracklet holds at most one detection per exposure and
integration.  Rows without ``ra``/``dec``/``mjd`` (no WCS) are never linked and
are marked so.

Pure numpy / astropy; no stpipe.
"""

from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.table import QTable
from scipy import stats

__all__ = [
    "LinkConfig",
    "LinkResult",
    "fit_linear_motion",
    "from_tangent_plane",
    "link_tracklets",
    "read_detections",
    "tangent_plane",
    "write_tracklets",
]

_ARCSEC_PER_RAD = 206264.80624709636


@dataclass
class LinkConfig:
    """Parameters of :func:`link_tracklets`.

    Attributes
    ----------
    max_hours : float
        Longest time span of a tracklet (h).
    p_min : float
        Smallest χ² p-value of an accepted tracklet.
    pos_floor : float
        Astrometric error floor added in quadrature (arcsec).
    rate_floor : float
        Rate error floor added in quadrature (arcsec/h).
    accel : float
        Allowed apparent acceleration (arcsec/h²) for curvature the linear model
        leaves out; 0 tests strictly linear motion.
    default_pos_err : float
        Position error (arcsec) assumed where ``ra_err``/``dec_err`` are NaN.
    min_members : int
        Smallest tracklet reported.
    by_visit : bool
        Link only within one ``visit_id`` (when the table has that column).
    gate_factor : float
        The pair gate accepts χ² up to this many times the acceptance threshold
        (the exact fit decides).
    """

    max_hours: float = 12.0
    p_min: float = 1e-3
    pos_floor: float = 0.03
    rate_floor: float = 0.5
    accel: float = 0.1
    default_pos_err: float = 0.1
    min_members: int = 2
    by_visit: bool = True
    gate_factor: float = 4.0


@dataclass
class LinkResult:
    """Tracklets and the detections they were built from.

    Attributes
    ----------
    tracklets : astropy.table.QTable
        One row per tracklet: ``tracklet_id``, ``visit_id``, ``n_members``,
        ``n_exposures``, ``mjd_ref``, ``ra``, ``dec`` (at ``mjd_ref``),
        ``ra_err``, ``dec_err``, ``ra_rate``, ``dec_rate``, ``ra_rate_err``,
        ``dec_rate_err``, ``chi2_pos``, ``chi2_rate``, ``dof``, ``p_value``,
        ``rms_residual``, ``max_residual`` (arcsec), ``span_hours``, ``members``
        (comma-separated ``det_key``) and ``exposures``.
    detections : astropy.table.QTable
        The input rows plus ``tracklet_id`` (-1: not linked), ``resid_ra``,
        ``resid_dec`` (arcsec, detection minus fitted motion at its epoch, RA
        including cos dec) and ``link_note``.
    config : LinkConfig
    """

    tracklets: QTable
    detections: QTable
    config: LinkConfig


# ---------------------------------------------------------------- geometry


def tangent_plane(ra, dec, ra0, dec0):
    """Gnomonic projection about (ra0, dec0).

    Parameters
    ----------
    ra, dec, ra0, dec0 : float or ndarray
        Degrees.

    Returns
    -------
    xi, eta : ndarray
        Arcsec; ξ towards east (increasing RA), η towards north.
    """
    ra, dec, ra0, dec0 = (np.radians(np.asarray(v, dtype=float)) for v in (ra, dec, ra0, dec0))
    cosc = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    xi = np.cos(dec) * np.sin(ra - ra0) / cosc
    eta = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cosc
    return xi * _ARCSEC_PER_RAD, eta * _ARCSEC_PER_RAD


def from_tangent_plane(xi, eta, ra0, dec0):
    """Inverse of :func:`tangent_plane`: (ξ, η) in arcsec to (ra, dec) in degrees."""
    xi = np.asarray(xi, dtype=float) / _ARCSEC_PER_RAD
    eta = np.asarray(eta, dtype=float) / _ARCSEC_PER_RAD
    ra0, dec0 = np.radians(ra0), np.radians(dec0)
    rho = np.hypot(xi, eta)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        dec = np.where(rho > 0, np.arcsin(np.cos(c) * np.sin(dec0)
                                          + eta * np.sin(c) * np.cos(dec0) / np.where(rho > 0, rho, 1)),
                       dec0)
    ra = ra0 + np.arctan2(xi * np.sin(c),
                          rho * np.cos(dec0) * np.cos(c) - eta * np.sin(dec0) * np.sin(c))
    ra = np.where(rho > 0, ra, ra0)
    return np.degrees(ra) % 360.0, np.degrees(dec)


def _unit_mean(ra, dec):
    """Mean direction of points on the sky (deg)."""
    r, d = np.radians(ra), np.radians(dec)
    v = np.array([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)]).sum(axis=1)
    return np.degrees(np.arctan2(v[1], v[0])) % 360.0, np.degrees(np.arcsin(v[2] / np.linalg.norm(v)))


# ---------------------------------------------------------------- the fit


def fit_linear_motion(t, pos, pos_cov, rate, rate_cov, t_ref=None, accel=0.0):
    """Fit uniform motion to positions and rates (generalised least squares).

    Parameters
    ----------
    t : ndarray, shape (n,)
        Epochs (h).
    pos : ndarray, shape (n, 2)
        Tangent-plane positions (ξ, η), arcsec.
    pos_cov : ndarray, shape (n, 2, 2)
        Their covariances (arcsec²), floors included.
    rate : ndarray, shape (n, 2)
        Measured rates (ξ̇, η̇), arcsec/h; rows with a NaN are not used.
    rate_cov : ndarray, shape (n, 2, 2)
        Their covariances ((arcsec/h)²).
    t_ref : float, optional
        Reference epoch (h); default the mean of ``t``.
    accel : float
        Allowed apparent acceleration (arcsec/h²): adds (½·a·Δt)² to the
        position variances and (a·Δt)² to the rate variances, Δt = t - t_ref.

    Returns
    -------
    dict
        ``t_ref``; ``params`` (ξ0, η0, ξ̇, η̇) and ``cov`` (4x4); ``chi2_pos``,
        ``chi2_rate``, ``chi2``, ``dof`` (2·n_pos + 2·n_rate - 4) and ``p_value``
        (1.0 when dof is 0: nothing is tested); ``resid`` (n, 2): positions minus
        the fit, arcsec.
    """
    t = np.asarray(t, dtype=float)
    pos, rate = np.asarray(pos, dtype=float), np.asarray(rate, dtype=float)
    t_ref = float(np.mean(t)) if t_ref is None else float(t_ref)
    dt = t - t_ref
    eye = np.eye(2)
    pcov = np.asarray(pos_cov, dtype=float) + ((0.5 * accel * dt**2) ** 2)[:, None, None] * eye
    rcov = np.asarray(rate_cov, dtype=float) + ((accel * dt) ** 2)[:, None, None] * eye
    has_rate = np.all(np.isfinite(rate), axis=1) & np.all(np.isfinite(rcov), axis=(1, 2))
    wp = np.linalg.inv(pcov)
    design = np.zeros((len(t), 2, 4))
    design[:, 0, 0] = design[:, 1, 1] = 1.0
    design[:, 0, 2] = design[:, 1, 3] = dt
    normal = np.einsum("nji,njk,nkl->il", design, wp, design)
    rhs = np.einsum("nji,njk,nk->i", design, wp, pos)
    rate_design = np.zeros((2, 4))
    rate_design[0, 2] = rate_design[1, 3] = 1.0
    if np.any(has_rate):
        wr = np.linalg.inv(rcov[has_rate])
        normal = normal + rate_design.T @ wr.sum(axis=0) @ rate_design
        rhs = rhs + rate_design.T @ np.einsum("njk,nk->j", wr, rate[has_rate])
    cov = np.linalg.pinv(normal)
    params = cov @ rhs
    model = params[:2] + dt[:, None] * params[2:]
    resid = pos - model
    chi2_pos = float(np.einsum("ni,nij,nj->", resid, wp, resid))
    chi2_rate = 0.0
    if np.any(has_rate):
        rr = rate[has_rate] - params[2:]
        chi2_rate = float(np.einsum("ni,nij,nj->", rr, wr, rr))
    dof = 2 * len(t) + 2 * int(has_rate.sum()) - 4
    chi2 = chi2_pos + chi2_rate
    p_value = float(stats.chi2.sf(chi2, dof)) if dof > 0 else 1.0
    return {"t_ref": t_ref, "params": params, "cov": cov, "chi2_pos": chi2_pos,
            "chi2_rate": chi2_rate, "chi2": chi2, "dof": dof, "p_value": p_value, "resid": resid}


# ---------------------------------------------------------------- linking


def _value(table, name, unit=None, default=np.nan):
    if name not in table.colnames:
        return np.full(len(table), default, dtype=float)
    col = table[name]
    if unit is not None and hasattr(col, "unit") and col.unit is not None:
        return np.asarray(col.to_value(unit), dtype=float)
    return np.asarray(col, dtype=float)


def _text(table, name, default=""):
    if name not in table.colnames:
        return np.array([default] * len(table), dtype=object)
    return np.array([str(v) for v in table[name]], dtype=object)


def _measurements(table, config):
    """Per-row arrays: ra, dec (deg), mjd, covariances of position and rate."""
    ra = _value(table, "ra", u.deg)
    dec = _value(table, "dec", u.deg)
    mjd = _value(table, "mjd", u.d)
    ra_err = _value(table, "ra_err", u.arcsec)
    dec_err = _value(table, "dec_err", u.arcsec)
    corr = np.nan_to_num(_value(table, "ra_dec_corr"), nan=0.0)
    ra_err = np.where(np.isfinite(ra_err), ra_err, config.default_pos_err)
    dec_err = np.where(np.isfinite(dec_err), dec_err, config.default_pos_err)
    pos_cov = np.empty((len(table), 2, 2))
    pos_cov[:, 0, 0] = ra_err**2 + config.pos_floor**2
    pos_cov[:, 1, 1] = dec_err**2 + config.pos_floor**2
    pos_cov[:, 0, 1] = pos_cov[:, 1, 0] = corr * ra_err * dec_err
    rate = np.stack([_value(table, "ra_rate", u.arcsec / u.h),
                     _value(table, "dec_rate", u.arcsec / u.h)], axis=1)
    rate_err = np.stack([_value(table, "ra_rate_err", u.arcsec / u.h),
                         _value(table, "dec_rate_err", u.arcsec / u.h)], axis=1)
    rate_cov = np.zeros((len(table), 2, 2))
    rate_cov[:, 0, 0] = rate_err[:, 0] ** 2 + config.rate_floor**2
    rate_cov[:, 1, 1] = rate_err[:, 1] ** 2 + config.rate_floor**2
    return ra, dec, mjd, pos_cov, rate, rate_cov


def _candidate_pairs(t, pos, pos_cov, rate, rate_cov, epoch, config, threshold):
    """Pairs (i, j) whose positions and rates roughly agree (vectorised gate)."""
    n = len(t)
    i, j = np.triu_indices(n, k=1)
    dt = t[j] - t[i]
    keep = (epoch[i] != epoch[j]) & (np.abs(dt) <= config.max_hours) & (dt != 0)
    i, j, dt = i[keep], j[keep], dt[keep]
    ri, rj = rate[i], rate[j]
    vi_ok = np.all(np.isfinite(ri), axis=1)
    vj_ok = np.all(np.isfinite(rj), axis=1)
    both = vi_ok & vj_ok
    # Mean rate where both have one, else whichever exists.
    v = np.where(both[:, None], 0.5 * (ri + rj), np.where(vi_ok[:, None], ri, rj))
    var_v = np.where(both, 0.25 * (rate_cov[i, 0, 0] + rate_cov[j, 0, 0]),
                     np.where(vi_ok, rate_cov[i, 0, 0], rate_cov[j, 0, 0]))
    var_v2 = np.where(both, 0.25 * (rate_cov[i, 1, 1] + rate_cov[j, 1, 1]),
                      np.where(vi_ok, rate_cov[i, 1, 1], rate_cov[j, 1, 1]))
    curve = (0.5 * config.accel * dt**2) ** 2
    d = pos[j] - pos[i] - v * dt[:, None]
    var_d = np.stack([pos_cov[i, 0, 0] + pos_cov[j, 0, 0] + dt**2 * var_v + curve,
                      pos_cov[i, 1, 1] + pos_cov[j, 1, 1] + dt**2 * var_v2 + curve], axis=1)
    chi2 = np.sum(d**2 / var_d, axis=1)
    dv = np.where(both[:, None], ri - rj, 0.0)
    var_dv = np.stack([rate_cov[i, 0, 0] + rate_cov[j, 0, 0],
                       rate_cov[i, 1, 1] + rate_cov[j, 1, 1]], axis=1) + (config.accel * dt[:, None]) ** 2
    chi2 = chi2 + np.sum(dv**2 / var_dv, axis=1)
    has_any_rate = vi_ok | vj_ok
    ok = has_any_rate & np.isfinite(chi2) & (chi2 <= config.gate_factor * threshold)
    return list(zip(i[ok].tolist(), j[ok].tolist()))


def _fit_members(members, t, pos, pos_cov, rate, rate_cov, config):
    m = np.asarray(sorted(members))
    return fit_linear_motion(t[m], pos[m], pos_cov[m], rate[m], rate_cov[m], accel=config.accel)


def _passes(fit, config):
    return fit["dof"] > 0 and fit["p_value"] >= config.p_min


def _link_group(t, pos, pos_cov, rate, rate_cov, epoch, config):
    """Greedy linking of one group; returns a list of (member indices, fit)."""
    threshold = float(stats.chi2.isf(config.p_min, 4))
    pairs = _candidate_pairs(t, pos, pos_cov, rate, rate_cov, epoch, config, threshold)
    neighbours = {}
    seeds = []
    for i, j in pairs:
        neighbours.setdefault(i, set()).add(j)
        neighbours.setdefault(j, set()).add(i)
        fit = _fit_members((i, j), t, pos, pos_cov, rate, rate_cov, config)
        if _passes(fit, config):
            seeds.append((fit["chi2"] / fit["dof"], i, j))
    seeds.sort()
    used = np.zeros(len(t), dtype=bool)
    out = []
    for _, i, j in seeds:
        if used[i] or used[j]:
            continue
        members = {i, j}
        fit = _fit_members(members, t, pos, pos_cov, rate, rate_cov, config)
        while True:
            epochs = {epoch[m] for m in members}
            candidates = {k for m in members for k in neighbours.get(m, ())
                          if not used[k] and k not in members and epoch[k] not in epochs
                          and max(abs(t[k] - t[m]) for m in members) <= config.max_hours}
            best = None
            for k in candidates:
                trial = _fit_members(members | {k}, t, pos, pos_cov, rate, rate_cov, config)
                if _passes(trial, config) and (best is None or trial["chi2"] < best[1]["chi2"]):
                    best = (k, trial)
            if best is None:
                break
            members.add(best[0])
            fit = best[1]
        if len(members) >= config.min_members:
            for m in members:
                used[m] = True
            out.append((sorted(members), fit))
    return out


_TRACKLET_UNITS = {
    "mjd_ref": u.d, "ra": u.deg, "dec": u.deg, "ra_err": u.arcsec, "dec_err": u.arcsec,
    "ra_rate": u.arcsec / u.h, "dec_rate": u.arcsec / u.h, "ra_rate_err": u.arcsec / u.h,
    "dec_rate_err": u.arcsec / u.h, "rms_residual": u.arcsec, "max_residual": u.arcsec,
    "span_hours": u.h,
}


def link_tracklets(detections, config=None):
    """Link detections into tracklets (see the module docstring).

    Parameters
    ----------
    detections : astropy.table.Table or QTable
        A survey table (:mod:`.tables`): at least ``ra``, ``dec``, ``mjd``; used
        when present: ``ra_err``, ``dec_err``, ``ra_dec_corr``, ``ra_rate``,
        ``dec_rate``, ``ra_rate_err``, ``dec_rate_err``, ``exposure``,
        ``integration``, ``visit_id``, ``det_key``.  Quantity columns are
        converted; plain columns are taken in the catalog units (deg, d,
        arcsec, arcsec/h).
    config : LinkConfig, optional

    Returns
    -------
    LinkResult
    """
    config = config or LinkConfig()
    det = QTable(detections, copy=True)
    n = len(det)
    ra, dec, mjd, pos_cov, rate, rate_cov = _measurements(det, config)
    exposure = _text(det, "exposure")
    integration = _text(det, "integration", "1")
    epoch = np.array([f"{e}|{i}" for e, i in zip(exposure, integration)], dtype=object)
    keys = _text(det, "det_key") if "det_key" in det.colnames else \
        np.array([f"{e}#{i}" for e, i in zip(exposure, _text(det, "id", ""))], dtype=object)
    visit = _text(det, "visit_id") if config.by_visit else np.array([""] * n, dtype=object)
    valid = np.isfinite(ra) & np.isfinite(dec) & np.isfinite(mjd)

    tracklet_id = np.full(n, -1, dtype=int)
    resid = np.full((n, 2), np.nan)
    note = np.array(["" if v else "no sky position or epoch" for v in valid], dtype=object)
    rows = []
    for group in sorted(set(visit[valid])):
        idx = np.flatnonzero(valid & (visit == group))
        ra0, dec0 = _unit_mean(ra[idx], dec[idx])
        pos = np.stack(tangent_plane(ra[idx], dec[idx], ra0, dec0), axis=1)
        t = (mjd[idx] - mjd[idx].min()) * 24.0
        for members, fit in _link_group(t, pos, pos_cov[idx], rate[idx], rate_cov[idx],
                                         epoch[idx], config):
            rows_idx = idx[members]
            tid = len(rows) + 1
            tracklet_id[rows_idx] = tid
            resid[rows_idx] = fit["resid"]
            p, cov = fit["params"], fit["cov"]
            ra_ref, dec_ref = from_tangent_plane(p[0], p[1], ra0, dec0)
            r = np.hypot(fit["resid"][:, 0], fit["resid"][:, 1])
            rows.append({
                "tracklet_id": tid, "visit_id": group, "n_members": len(members),
                "n_exposures": len(set(exposure[rows_idx])),
                "mjd_ref": mjd[idx].min() + fit["t_ref"] / 24.0,
                "ra": float(ra_ref), "dec": float(dec_ref),
                "ra_err": float(np.sqrt(cov[0, 0])), "dec_err": float(np.sqrt(cov[1, 1])),
                "ra_rate": float(p[2]), "dec_rate": float(p[3]),
                "ra_rate_err": float(np.sqrt(cov[2, 2])), "dec_rate_err": float(np.sqrt(cov[3, 3])),
                "chi2_pos": fit["chi2_pos"], "chi2_rate": fit["chi2_rate"], "dof": fit["dof"],
                "p_value": fit["p_value"], "rms_residual": float(np.sqrt(np.mean(r**2))),
                "max_residual": float(r.max()),
                "span_hours": float(np.ptp(mjd[rows_idx]) * 24.0),
                "members": ",".join(keys[rows_idx]),
                "exposures": ",".join(sorted(set(exposure[rows_idx]))),
            })
    det["tracklet_id"] = tracklet_id
    det["resid_ra"] = resid[:, 0] * u.arcsec
    det["resid_dec"] = resid[:, 1] * u.arcsec
    det["link_note"] = note.astype(str) if n else np.zeros(0, dtype="U1")
    return LinkResult(tracklets=_tracklet_table(rows), detections=det, config=config)


def _tracklet_table(rows):
    names = ["tracklet_id", "visit_id", "n_members", "n_exposures", "mjd_ref", "ra", "dec",
             "ra_err", "dec_err", "ra_rate", "dec_rate", "ra_rate_err", "dec_rate_err",
             "chi2_pos", "chi2_rate", "dof", "p_value", "rms_residual", "max_residual",
             "span_hours", "members", "exposures"]
    text = {"visit_id", "members", "exposures"}
    ints = {"tracklet_id", "n_members", "n_exposures", "dof"}
    table = QTable()
    for name in names:
        values = [r[name] for r in rows]
        if name in text:
            col = np.array(values, dtype=str) if values else np.zeros(0, dtype="U1")
        else:
            col = np.array(values, dtype=int if name in ints else float)
        table[name] = col * _TRACKLET_UNITS[name] if name in _TRACKLET_UNITS else col
    return table


# ---------------------------------------------------------------- I/O


def read_detections(specs):
    """Survey detections from catalogs, merged tables or directories.

    See :func:`jwst_asteroid_step.survey.tables.read_detections`.
    """
    from .tables import read_detections as _read

    return _read(specs)


def write_tracklets(result, root):
    """Write ``<root>_tracklets.ecsv`` and ``<root>_members.ecsv`` (detections with links).

    Returns
    -------
    dict
        ``{"tracklets": Path, "members": Path}``.
    """
    from pathlib import Path

    from .tables import write_table

    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    paths = {"tracklets": root.with_name(f"{root.name}_tracklets.ecsv"),
             "members": root.with_name(f"{root.name}_members.ecsv")}
    tracklets = result.tracklets.copy()
    tracklets.meta = {"link_config": vars(result.config)}
    write_table(tracklets, paths["tracklets"])
    write_table(result.detections, paths["members"])
    return paths
