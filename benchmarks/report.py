"""Numbers, tables and plots from the bench's per-mover and per-ramp results.

Everything here reads the two tables written by :mod:`benchmarks.recovery` and the
performance dict of :mod:`benchmarks.performance`; nothing re-runs a detector.
"""

from itertools import pairwise

import numpy as np

from jwst_asteroid_step.config import DetectionConfig

from .recovery import DETECTOR_LABELS, DETECTORS, FULL_FRAME_PIXELS, SNR_BINS, SPEED_BINS

__all__ = [
    "completeness", "depth_gain", "direction_sense", "error_medians", "false_positives", "make_plots",
    "snr50",
]

#: Columns of the side-by-side tables, in order.
SHORT = {"ours": "ours", "ours_deep": "ours deep", "seed": "seed", "rate": "rate"}


def _bin_label(lo, hi):
    return f"{lo:g}–{hi:g}"


def _ran(movers, det):
    return np.array(movers[f"{det}_ran"], dtype=bool)  # a copy: callers combine it in place


def completeness(movers, det, key, edges, found="found", select=None):
    """Fraction of truth movers found per bin of ``key``.

    Returns
    -------
    list of (lo, hi, n, k)
        Movers in the bin on which the detector ran, and how many it found.
    """
    value = np.asarray(movers[key], dtype=float)
    ok = _ran(movers, det) if len(movers) else np.zeros(0, bool)
    if select is not None:
        ok = ok & select
    hit = np.asarray(movers[f"{det}_{found}"], dtype=bool) if len(movers) else np.zeros(0, bool)
    out = []
    for lo, hi in pairwise(edges):
        sel = ok & (value >= lo) & (value < hi)
        out.append((lo, hi, int(sel.sum()), int((sel & hit).sum())))
    return out


def _frac(n, k):
    return k / n if n else np.nan


def _wilson(n, k, z=1.0):
    """68 % Wilson interval of a binomial fraction."""
    if n == 0:
        return np.nan, np.nan
    p = k / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def false_positives(ramps, det, select):
    """False detections per full-frame integration on the selected ramps.

    Area-scaled: ``n_false / (sum of light-sensitive pixels x integrations) x 1024**2``.

    Returns
    -------
    n_false, rate, upper90 : int, float, float
        The count, the rate, and the 90 % Poisson upper limit of the rate.
    """
    sel = select & np.asarray(ramps[f"{det}_ran"], dtype=bool)
    exposure = float(np.sum(np.asarray(ramps["n_pixels"])[sel] * np.asarray(ramps["nints"])[sel]))
    n = int(np.sum(np.asarray(ramps[f"{det}_n_false"])[sel]))
    if exposure == 0:
        return n, np.nan, np.nan
    scale = FULL_FRAME_PIXELS / exposure
    return n, n * scale, _poisson_upper90(n) * scale


def _poisson_upper90(n):
    from scipy.stats import chi2

    return 0.5 * chi2.ppf(0.9, 2 * (n + 1))


def error_medians(movers, det, edges=SNR_BINS, select=None):
    """Median errors of matched detections per SNR bin.

    Returns
    -------
    list of dict
        ``lo, hi, n, dpos`` (px), ``abs_dspeed``, ``dspeed`` (relative), ``ddir`` (deg),
        ``dflux``, ``abs_dflux`` (relative).
    """
    snr = np.asarray(movers["snr"], dtype=float)
    found = np.asarray(movers[f"{det}_found"], dtype=bool) & _ran(movers, det)
    if select is not None:
        found &= select
    out = []
    for lo, hi in pairwise(edges):
        sel = found & (snr >= lo) & (snr < hi)

        def med(col, f=lambda v: v, sel=sel):
            v = f(np.asarray(movers[f"{det}_{col}"], dtype=float)[sel])
            return float(np.median(v)) if v.size else np.nan

        out.append({"lo": lo, "hi": hi, "n": int(sel.sum()), "dpos": med("dpos"),
                    "dspeed": med("dspeed"), "abs_dspeed": med("dspeed", np.abs), "ddir": med("ddir"),
                    "dflux": med("dflux"), "abs_dflux": med("dflux", np.abs)})
    return out


def direction_sense(movers, det, min_snr=10.0, select=None):
    """Fraction of matched movers with SNR >= ``min_snr`` whose velocity has the right sense."""
    sel = (np.asarray(movers[f"{det}_found"], dtype=bool) & _ran(movers, det)
           & (np.asarray(movers["snr"], dtype=float) >= min_snr))
    if select is not None:
        sel &= select
    n = int(sel.sum())
    return n, int(np.sum(np.asarray(movers[f"{det}_sense"], dtype=bool)[sel]))


def _isotonic(y, w):
    """Pool-adjacent-violators: the non-decreasing fit to ``y`` (weights ``w``)."""
    blocks = []  # [mean, weight, count]
    for yi, wi in zip(y, w):
        blocks.append([yi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([np.full(c, m) for m, _, c in blocks])


def snr50(snr, found, lo=SNR_BINS[0], hi=SNR_BINS[-1]):
    """SNR at which completeness reaches 50 %, from a monotone (isotonic) fit.

    The movers are sorted by SNR, the found/missed outcomes fitted by a
    non-decreasing step function, and the first crossing of 0.5 interpolated in
    log SNR between the neighbouring steps.

    Returns
    -------
    float
        The SNR; ``inf`` when completeness stays below 50 % up to ``hi``.
    """
    snr = np.asarray(snr, dtype=float)
    found = np.asarray(found, dtype=float)
    sel = (snr >= lo) & (snr <= hi)
    snr, found = snr[sel], found[sel]
    if snr.size < 5:
        return np.nan
    order = np.argsort(snr)
    s, fit = snr[order], _isotonic(found[order], np.ones(snr.size))
    above = np.flatnonzero(fit >= 0.5)
    if above.size == 0:
        return np.inf
    i = above[0]
    if i == 0:
        return float(s[0])
    # Interpolate in log SNR between the last point below and the first above.
    f0, f1 = fit[i - 1], fit[i]
    x0, x1 = np.log(s[i - 1]), np.log(s[i])
    return float(np.exp(x0 + (0.5 - f0) / max(f1 - f0, 1e-12) * (x1 - x0)))


def depth_gain(movers, select, ours="ours", seed="seed", n_boot=200, rng_seed=1):
    """Magnitudes gained at 50 % completeness: ``2.5 log10(F50_seed / F50_ours)``.

    Fluxes are taken proportional to SNR: the movers near either detector's
    threshold are faint (source shot noise negligible next to read noise and sky),
    so for one mover's conditions the flux at a given SNR scales with the SNR; and
    both detectors are scored on the very same movers.

    Returns
    -------
    dict
        ``snr50_ours``, ``snr50_seed``, ``dmag`` and its bootstrap 16/84 percentiles,
        ``n``; ``dmag`` is a lower bound (``bound`` True) when the seed never reaches
        50 % (its SNR50 is then taken as the top of the grid).
    """
    sel = select & _ran(movers, ours) & _ran(movers, seed)
    snr = np.asarray(movers["snr"], dtype=float)[sel]
    f_ours = np.asarray(movers[f"{ours}_found"], dtype=bool)[sel]
    f_seed = np.asarray(movers[f"{seed}_found"], dtype=bool)[sel]

    def gain(s, a, b):
        s_o, s_s = snr50(s, a), snr50(s, b)
        if not (np.isfinite(s_o) and s_o > 0):
            return s_o, s_s, np.nan, False  # ours never reaches 50 %: no depth to compare
        bound = not np.isfinite(s_s)
        s_s_eff = SNR_BINS[-1] if bound else s_s
        return s_o, s_s, 2.5 * np.log10(s_s_eff / s_o), bound

    s_o, s_s, dmag, bound = gain(snr, f_ours, f_seed)
    rng = np.random.default_rng(rng_seed)
    boots = []
    for _ in range(n_boot if snr.size >= 5 else 0):
        i = rng.integers(0, snr.size, snr.size)
        boots.append(gain(snr[i], f_ours[i], f_seed[i])[2])
    boots = np.asarray(boots, dtype=float)
    boots = boots[np.isfinite(boots)]
    lo, hi = (np.percentile(boots, [16, 84]) if boots.size else (np.nan, np.nan))
    return {"snr50_ours": s_o, "snr50_seed": s_s, "dmag": dmag, "dmag_lo": float(lo),
            "dmag_hi": float(hi), "bound": bound, "n": int(snr.size)}


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------

_COLORS = {"ours": "C0", "ours_deep": "C2", "seed": "C3", "rate": "C1"}
_MARKERS = {"ours": "o", "ours_deep": "s", "seed": "^", "rate": "D"}


def _plot_completeness(ax, movers, key, edges, select, title, xlabel, found="found"):
    for det in DETECTORS:
        rows = completeness(movers, det, key, edges, found=found, select=select)
        x = np.array([np.sqrt(lo * hi) for lo, hi, n, k in rows])
        y = np.array([_frac(n, k) for lo, hi, n, k in rows])
        if not np.isfinite(y).any():
            continue
        ci = np.array([_wilson(n, k) for lo, hi, n, k in rows])
        yerr = np.abs(np.vstack([y - ci[:, 0], ci[:, 1] - y]))
        ax.errorbar(x, y, yerr=yerr, color=_COLORS[det], marker=_MARKERS[det], ms=5, capsize=2,
                    label=DETECTOR_LABELS[det])
    _log_ticks(ax, edges)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlim(edges[0], edges[-1])
    for e in edges:
        ax.axvline(e, color="0.9", lw=0.8, zorder=0)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("completeness")
    ax.grid(axis="y", color="0.9")


def _log_ticks(ax, edges):
    """Log x axis with the bin edges as its only tick labels."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(edges))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{e:g}" for e in edges])


def make_plots(movers, out_dir):
    """Write completeness_vs_snr.png, completeness_vs_speed.png, errors_vs_snr.png.

    Returns
    -------
    list of Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.asarray(movers["set"]) == "grid"
    real = np.asarray(movers["set"]) == "real"
    speed = np.asarray(movers["speed"], dtype=float)
    ngroups = np.asarray(movers["ngroups"])
    paths = []

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    panels = [(grid, "all grid movers"), (grid & (ngroups >= 50), "grid, ngroups ≥ 50")]
    for lo, hi in pairwise(SPEED_BINS):
        panels.append((grid & (speed >= lo) & (speed < hi), f"grid, speed {lo:g}–{hi:g} px/group"))
    for ax, (sel, title) in zip(axes.flat, panels):
        _plot_completeness(ax, movers, "snr", SNR_BINS, sel, f"{title} (n={int(sel.sum())})",
                           "matched-filter SNR")
    axes.flat[0].legend(fontsize=8, loc="upper left")
    fig.suptitle("Completeness vs matched-filter SNR (match: position ≤ max(2 px, FWHM), speed ±30 %)")
    fig.tight_layout()
    paths.append(out_dir / "completeness_vs_snr.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    snr = np.asarray(movers["snr"], dtype=float)
    _plot_completeness(axes[0], movers, "speed", SPEED_BINS, grid & (snr >= 3),
                       "SNR 3–100", "speed (px/group)")
    _plot_completeness(axes[1], movers, "speed", SPEED_BINS, grid & (snr >= 10),
                       "SNR 10–100", "speed (px/group)")
    _plot_completeness(axes[2], movers, "speed", SPEED_BINS, grid & (snr >= 10),
                       "SNR 10–100, position only (speed not checked)", "speed (px/group)",
                       found="near")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    paths.append(out_dir / "completeness_vs_speed.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    specs = [("dpos", "median position error at t_int (px)", False, "linear"),
             ("abs_dspeed", "median |speed error| (fraction)", False, "log"),
             ("ddir", "median direction error (deg; rate: axis only)", False, "log"),
             ("dflux", "median flux error (fraction; signed)", True, "linear")]
    x = np.array([np.sqrt(lo * hi) for lo, hi in pairwise(SNR_BINS)])
    for ax, (col, label, signed, yscale) in zip(axes.flat, specs):
        for det in DETECTORS:
            med = error_medians(movers, det, select=grid)
            y = np.array([m[col] for m in med])
            if not np.isfinite(y).any():
                continue
            ax.plot(x, y, color=_COLORS[det], marker=_MARKERS[det], label=DETECTOR_LABELS[det])
        _log_ticks(ax, SNR_BINS)
        ax.set_yscale(yscale)
        if signed:
            ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("matched-filter SNR")
        ax.set_ylabel(label)
        ax.grid(color="0.9")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Measurement errors of matched detections vs SNR (grid movers)")
    fig.tight_layout()
    paths.append(out_dir / "errors_vs_snr.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    if real.any():
        fig, ax = plt.subplots(figsize=(6, 4.5))
        edges = (3.0, 5.0, 7.0, 10.0, 15.0, 30.0)
        _plot_completeness(ax, movers, "snr", edges, real, f"movers injected into the real ramp "
                           f"(n={int(real.sum())})", "matched-filter SNR")
        ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        paths.append(out_dir / "completeness_real_ramp.png")
        fig.savefig(paths[-1], dpi=90)
        plt.close(fig)
    return paths


# ---------------------------------------------------------------------------
# RESULTS.md
# ---------------------------------------------------------------------------

def _pct(n, k):
    return "–" if n == 0 else f"{100 * k / n:.0f} % ({k}/{n})"


def _num(v, fmt="{:.2f}"):
    return "–" if v is None or not np.isfinite(v) else fmt.format(v)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _completeness_table(movers, key, edges, select, found="found", unit=""):
    header = [f"{key} {unit}".strip()] + [DETECTOR_LABELS[d] for d in DETECTORS]
    per = {d: completeness(movers, d, key, edges, found=found, select=select) for d in DETECTORS}
    rows = []
    for b, (lo, hi) in enumerate(pairwise(edges)):
        rows.append([_bin_label(lo, hi)] + [_pct(per[d][b][2], per[d][b][3]) for d in DETECTORS])
    return _table(header, rows)


def _select(movers, **conds):
    sel = np.ones(len(movers), dtype=bool)
    for key, cond in conds.items():
        sel &= cond(np.asarray(movers[key]))
    return sel


def key_numbers(movers, ramps, perf):
    """The headline numbers, as a dict (also printed by run_all)."""
    grid = _select(movers, set=lambda s: s == "grid")
    out = {}
    for d in DETECTORS:
        rows = completeness(movers, d, "snr", (5.0, 7.0, 10.0), select=grid)
        out[f"completeness_5_7_{d}"] = _frac(rows[0][2], rows[0][3])
        out[f"completeness_7_10_{d}"] = _frac(rows[1][2], rows[1][3])
        kinds = np.asarray(ramps["kind"])
        timing = np.asarray(ramps["timing"])
        fp_sel = ((kinds == "empty") & (timing == "full")) | (kinds == "full_empty")
        n, rate, up = false_positives(ramps, d, fp_sel)
        out[f"fp_per_full_frame_{d}"] = rate
        out[f"fp_upper90_{d}"] = up
        out[f"fp_n_{d}"] = n
    main100 = [r for r in perf.get("main", []) if r["ngroups"] == 100]
    if main100:
        out["time_ratio_100"] = main100[0]["time_ratio"]
        out["mem_ratio_100"] = main100[0]["mem_ratio"]
    speed = np.asarray(movers["speed"], dtype=float)
    long = grid & (np.asarray(movers["ngroups"]) >= 50)
    for name, sel in (("all", long), ("main_belt", long & (speed >= 0.05) & (speed < 0.5))):
        g = depth_gain(movers, sel)
        out[f"dmag_{name}"] = g["dmag"]
        out[f"dmag_{name}_bound"] = g["bound"]
        out[f"dmag_{name}_range"] = (g["dmag_lo"], g["dmag_hi"])
    return out


def _robust_width(values):
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return (1.4826 * float(np.median(np.abs(v - np.median(v)))), v.size) if v.size >= 5 else (np.nan, v.size)


def _completeness_of(movers, det, select):
    """(n, k, fraction) of the selected movers that ``det`` found, where it ran."""
    sel = select & _ran(movers, det)
    n = int(sel.sum())
    k = int(np.sum(np.asarray(movers[f"{det}_found"], dtype=bool)[sel]))
    return n, k, (k / n if n else np.nan)


def _completeness_targets(movers):
    """Issue 4's completeness targets: ``(measure, target %, detector, selection)`` rows.

    The first three, the slow and the bright movers', are the ones set at the
    yardstick SNR that :func:`single_integration_bound` weighs.
    """
    grid = _select(movers, set=lambda s: s == "grid")
    snr = np.asarray(movers["snr"], dtype=float)
    speed = np.asarray(movers["speed"], dtype=float)
    main_belt = grid & (speed >= 0.005) & (speed < 0.5)
    fast = grid & (speed >= 0.5) & (speed < 3.0)
    return [("SNR 7–10, 0.005–0.5 px/group", 90, "ours", main_belt & (snr >= 7) & (snr < 10)),
            ("SNR 5–7, 0.005–0.5 px/group", 50, "ours", main_belt & (snr >= 5) & (snr < 7)),
            ("SNR ≥ 15, 0.005–3 px/group", 98, "ours", grid & (speed < 3.0) & (snr >= 15)),
            ("SNR 7–10, 0.5–3 px/group, default", 70, "ours", fast & (snr >= 7) & (snr < 10)),
            ("SNR 7–10, 0.5–3 px/group, deep search", 90, "ours_deep", fast & (snr >= 7) & (snr < 10))]


def single_integration_bound(movers, thresholds=(5.0, 6.0)):
    """The issue-4 completeness targets set at yardstick SNR, against what one integration allows.

    An ideal detector that knows each mover's track and declares it when its
    ``snr_moving`` plus unit Gaussian noise reaches T finds, on average,
    ``Phi(snr_moving - T)`` of them.

    Returns
    -------
    list of list of str
        ``measure, target, measured`` and the ideal fraction at each threshold, one
        row per target; empty without the ``snr_moving`` column.
    """
    from scipy.stats import norm

    if "snr_moving" not in movers.colnames:
        return []
    moving = np.asarray(movers["snr_moving"], dtype=float)
    rows = []
    for label, target, det, select in _completeness_targets(movers)[:3]:
        sel = select & _ran(movers, det)
        n, k, _ = _completeness_of(movers, det, sel)
        ideal = [f"{100 * float(np.mean(norm.cdf(moving[sel] - t))):.0f} %" if n else "–" for t in thresholds]
        rows.append([label, f"≥ {target} %", _pct(n, k)] + ideal)
    return rows


def issue4_targets(movers, ramps, perf, key):
    """Rows ``(measure, target, measured, met)`` for the issue-4 table of RESULTS.md."""
    grid = _select(movers, set=lambda s: s == "grid")
    filt = np.asarray(movers["filter"])
    rows = []

    def completeness_row(label, target, det, select):
        n, k, f = _completeness_of(movers, det, select)
        rows.append((label, f"≥ {target:.0f} %", f"{_pct(n, k)}", bool(n) and f * 100 >= target))

    for i, (label, target, det, select) in enumerate(_completeness_targets(movers)):
        completeness_row(f"completeness, {label}", target, det, select)
        if i == 0:  # the slow movers' target holds for every filter
            for f in sorted(set(filt[grid].tolist())):
                completeness_row(f"  … {f}", target, det, select & (filt == f))
    n_fp, rate, up = key["fp_n_ours"], key["fp_per_full_frame_ours"], key["fp_upper90_ours"]
    rows.append(("false positives per full-frame integration (L2 cosmic rays, showers)", "≤ 0.2",
                 f"{_num(rate, '{:.2f}')} (n={n_fp}, 90 % UL {_num(up, '{:.2f}')})", bool(rate <= 0.2)))
    kinds = np.asarray(ramps["kind"])
    real = kinds == "real"
    if real.any():
        n_real = int(np.sum(np.asarray(ramps["ours_n_det"])[real]))
        rows.append(("false positives, real ground-test ramp", "0", str(n_real), n_real == 0))
    n, k = direction_sense(movers, "ours", 10.0, select=grid)
    rows.append(("motion sense correct, SNR ≥ 10", "≥ 99 %", _pct(n, k), bool(n) and k / n >= 0.99))
    med = error_medians(movers, "ours", (20.0, 1e9), select=grid)[0]
    rows.append(("median position error, SNR ≥ 20", "≤ 0.1 px", _num(med["dpos"], "{:.3f} px"),
                 med["dpos"] <= 0.1))
    rows.append(("median speed error, SNR ≥ 20", "≤ 3 %", _num(100 * med["abs_dspeed"], "{:.1f} %"),
                 med["abs_dspeed"] <= 0.03))
    rows.append(("median direction error, SNR ≥ 20", "≤ 1°", _num(med["ddir"], "{:.2f}°"), med["ddir"] <= 1.0))
    rows.append(("median flux bias, SNR ≥ 20", "≤ 5 %", _num(100 * med["dflux"], "{:+.1f} %"),
                 abs(med["dflux"]) <= 0.05))
    found = np.asarray(movers["ours_found"], dtype=bool) & grid
    for c in ("x", "y", "vx", "vy", "flux"):
        col = f"ours_pull_{c}"
        if col in movers.colnames:
            w, n = _robust_width(np.asarray(movers[col], dtype=float)[found])
            rows.append((f"pull width of {c} (robust σ, n={n})", "0.8–1.25", _num(w), 0.8 <= w <= 1.25))
    rows.append(("depth vs seed-style baseline at 50 % completeness, ngroups ≥ 50", "≥ 1.5 mag",
                 f"{'≥ ' if key['dmag_all_bound'] else ''}{_num(key['dmag_all'])} mag",
                 bool(key["dmag_all"] >= 1.5)))
    if "time_ratio_100" in key:
        rows.append(("time, default, full frame 100 groups / (jwst jump + ramp_fit)", "≤ 1.0",
                     _num(key["time_ratio_100"]), key["time_ratio_100"] <= 1.0))
        rows.append(("peak extra memory / ramp cube, full frame 100 groups", "≤ 2", _num(key["mem_ratio_100"]),
                     key["mem_ratio_100"] <= 2.0))
    return rows


def results_markdown(movers, ramps, perf, meta):
    """RESULTS.md text."""
    grid = _select(movers, set=lambda s: s == "grid")
    real = _select(movers, set=lambda s: s == "real")
    snr = np.asarray(movers["snr"], dtype=float)
    speed = np.asarray(movers["speed"], dtype=float)
    ngroups = np.asarray(movers["ngroups"])
    kinds = np.asarray(ramps["kind"])
    timing = np.asarray(ramps["timing"])
    key = key_numbers(movers, ramps, perf)
    L = []
    L.append("# Benchmark results\n")
    L.append(f"Mode **{meta['mode']}**, written {meta['date']} by `{meta['command']}` in "
             f"{meta['runtime_min']:.1f} min on {meta['machine']}.  Seeds: `BASE_SEED = {meta['base_seed']}` "
             "+ ramp index (see `benchmarks/recovery.py`).  Software: " + meta["software"] + "; package "
             "imported from " + meta.get("package_source", "the working tree") + ".\n")
    digests = meta.get("stage_digests", {})
    if len(set(digests.values())) > 1:
        L.append("Resumed run: the stages ran on different package sources (SHA-1 " + ", ".join(
            f"{k}: `{v}`" for k, v in digests.items()) + "); each section holds the numbers of its stage.\n")
    if meta.get("stage_minutes"):
        L.append("Stage run times: " + ", ".join(f"{k} {v:.1f} min" for k, v in meta["stage_minutes"].items())
                 + ".\n")
    L.append("What each number means, and how the ramps are made: [README.md](README.md).  "
             "Raw per-mover and per-ramp results: `data/`.\n")
    L.append("## Key numbers\n")
    rows = []
    for d in DETECTORS:
        rows.append([DETECTOR_LABELS[d], _num(100 * key[f"completeness_5_7_{d}"], "{:.0f} %"),
                     _num(100 * key[f"completeness_7_10_{d}"], "{:.0f} %"),
                     (f"{_num(key[f'fp_per_full_frame_{d}'], '{:.1f}')} "
                     f"(n={key[f'fp_n_{d}']}, 90 % UL {_num(key[f'fp_upper90_{d}'], '{:.1f}')})")])
    L.append(_table(["detector", "completeness SNR 5–7", "completeness SNR 7–10",
                     "false positives per full-frame integration (full-frame timing)"], rows))
    L.append("")
    if "time_ratio_100" in key:
        L.append(f"- At 100 groups, full frame: `asteroid_detect` takes **{key['time_ratio_100']:.2f}×** "
                 "the time of jwst JumpStep + RampFitStep, and needs **"
                 f"{key['mem_ratio_100']:.2f}×** the ramp cube in extra memory (peak RSS above the level "
                 "before the call).")
    lo, hi = key["dmag_main_belt_range"]
    L.append(f"- Depth at 50 % completeness, ngroups ≥ 50, main-belt speeds 0.05–0.5 px/group: "
             f"`asteroid_detect` is **{'≥ ' if key['dmag_main_belt_bound'] else ''}"
             f"{_num(key['dmag_main_belt'])} mag** [{_num(lo)}, {_num(hi)}] deeper than the seed-style "
             f"baseline (issue 4 target: ≥ 1.5 mag); all speeds 0.005–5 px/group together: "
             f"{'≥ ' if key['dmag_all_bound'] else ''}{_num(key['dmag_all'])} mag.  Per speed class "
             "below.\n")

    L.append("## Issue 4 targets\n")
    L.append("Each target of issue 4 against this run (`asteroid_detect` with its defaults unless the "
             "row says otherwise; SNR is the truth's DESIGN.md §3 yardstick; speeds in px/group).  "
             "Where a target is missed, the sections below say by how much and why.\n")
    L.append(_table(["measure", "target", "measured", "met"],
                    [[m, t, v, "yes" if ok else "**no**"] for m, t, v, ok in issue4_targets(movers, ramps, perf,
                                                                                             key)]))
    L.append("")
    bound = single_integration_bound(movers)
    if bound:
        L.append("The three completeness targets missed are set at the yardstick SNR, which counts a "
                 "mover's light as if it were all signal of motion.  Within one integration only the "
                 "light's change in time tells a mover from a star, galaxy or hot pixel: `snr_moving` "
                 "(see 'Completeness vs the SNR of the motion itself').  An ideal detector that knew "
                 "each track and declared it when `snr_moving` plus unit Gaussian noise reached T "
                 "would find, on average, Φ(snr_moving − T) of these movers.  The search scans ~2e9 "
                 "(velocity, pixel) trials per full-frame 50-group integration (`n_search_trials` of a "
                 "256² grid ramp × 16); even if only 1e8 of them were independent, T = 5 would let ~30 "
                 "noise peaks per frame through, and the false-positive target (0.2 per frame) needs "
                 "T ≈ 6 or more.  So no single-integration method reaches these three targets; "
                 "multi-integration exposures can (`method = \"multi-int\"`):\n")
        L.append(_table(["completeness", "target", "measured", "ideal, T = 5", "ideal, T = 6"], bound))
        L.append("")
    L.append("## The detectors\n")
    L.append("- **asteroid_detect (default)**: `find_movers` with `DetectionConfig()` (what the step runs: "
             "JUMP_DET tracks + matched-filter search up to 0.5 px/group + fast windows from 0.5 "
             "to 3 px/group + moving-PSF fit).")
    L.append("- **asteroid_detect (deep_search)**: the same with `deep_search=True` (search to 3 px/group); "
             "run on a subset only (see 'The deep search, on fast movers').")
    L.append("- **seed-style**: JUMP_DET cells clustered and classified by the package's `cluster_cells` / "
             "`classify_events`, equal-weight line fit (`fit_track`), ≥ 3 groups, ≥ 1 px of motion, "
             "speed ≥ 3σ; flux from summed jump amplitudes.  No matched filter, no PSF fit.")
    L.append("- **rate-image**: streaks in ramp_fit's rateints: background subtraction, PSF smoothing, 3σ "
             "segmentation, segment SNR ≥ 5, elongation ≥ 1.5, length ≥ 1 FWHM; speed = streak length "
             "(second moments) / fitted time span; direction only up to 180°.\n")
    L.append("Matching: truth position at the detection's `t_int` within max(2 px, FWHM) **and** speed "
             "within 30 %.  SNR is the truth's matched-filter SNR (DESIGN.md §3, differences taken as "
             "independent).\n")

    L.append("## Completeness vs SNR\n")
    L.append("All grid movers (speeds 0.005–5 px/group, all filters, ngroups, timings):\n")
    L.append(_completeness_table(movers, "snr", SNR_BINS, grid))
    L.append("\nngroups ≥ 50 only:\n")
    L.append(_completeness_table(movers, "snr", SNR_BINS, grid & (ngroups >= 50)))
    L.append("\n![completeness vs SNR](completeness_vs_snr.png)\n")

    L.append("## Completeness vs speed\n")
    L.append("SNR 3–100:\n")
    L.append(_completeness_table(movers, "speed", SPEED_BINS, grid & (snr >= 3), unit="(px/group)"))
    L.append("\nSNR 10–100:\n")
    L.append(_completeness_table(movers, "speed", SPEED_BINS, grid & (snr >= 10), unit="(px/group)"))
    L.append("\nSNR 10–100, position only (a detection within the distance, speed not checked):\n")
    L.append(_completeness_table(movers, "speed", SPEED_BINS, grid & (snr >= 10), found="near",
                                 unit="(px/group)"))
    L.append("\n![completeness vs speed](completeness_vs_speed.png)\n")

    if "snr_moving" in movers.colnames:
        L.append("## Completeness vs the SNR of the motion itself\n")
        L.append("Within one integration a mover is told from a star only by how its light changes in "
                 "time.  `snr_moving` (truth column; `jwst_asteroid_step.ramp.noise.matched_filter_snr_moving`) "
                 "is the ideal matched-filter SNR of the track once each pixel's constant level is fitted "
                 "too: the bound for any single-integration mover search, whatever its method.  A mover "
                 "that crosses less than its PSF keeps only a small part of its yardstick SNR "
                 "(median ratio `snr_moving / snr` per speed class below), which is why completeness at "
                 "a given yardstick SNR falls with speed.  Movers of 0.005–0.5 px/group:\n")
        slow = grid & (speed < 0.5)
        L.append(_completeness_table(movers, "snr_moving", SNR_BINS, slow))
        ratio = np.asarray(movers["snr_moving"], dtype=float) / np.maximum(snr, 1e-9)
        rows = []
        for lo, hi in pairwise(SPEED_BINS):
            sel = grid & (speed >= lo) & (speed < hi)
            rows.append([_bin_label(lo, hi), str(int(sel.sum())),
                         _num(float(np.median(ratio[sel])) if sel.any() else np.nan)])
        L.append("")
        L.append(_table(["speed (px/group)", "movers", "median snr_moving / snr"], rows))
        L.append("")

    deep_ran = grid & _ran(movers, "ours_deep")
    L.append("## The deep search, on fast movers\n")
    L.append(f"`deep_search=True` costs up to a minute per 256² ramp with fast movers, so it ran only on "
             f"{meta.get('deep_subset', 'a subset')} ({int(deep_ran.sum())} movers); in the tables above "
             "its column covers only those.  On the same movers, all four detectors:\n")
    if deep_ran.any():
        L.append(_completeness_table(movers, "snr", SNR_BINS, deep_ran))
        L.append("")
        L.append(_completeness_table(movers, "speed", SPEED_BINS, deep_ran & (snr >= 10), unit="(px/group)"))
        L.append("\n(second table: SNR 10–100)\n")

    L.append("## Completeness at SNR 10–100 by ngroups, filter and timing\n")
    header = ["subset"] + [DETECTOR_LABELS[d] for d in DETECTORS]
    rows = []
    hi_snr = grid & (snr >= 10)
    for ng in sorted(set(ngroups[grid].tolist())):
        sel = hi_snr & (ngroups == ng)
        rows.append([f"ngroups {ng}"] + [_pct(*completeness(movers, d, "snr", (10, 100), select=sel)[0][2:])
                                          for d in DETECTORS])
    filt = np.asarray(movers["filter"])
    for f in sorted(set(filt[grid].tolist())):
        sel = hi_snr & (filt == f)
        rows.append([f"filter {f}"] + [_pct(*completeness(movers, d, "snr", (10, 100), select=sel)[0][2:])
                                        for d in DETECTORS])
    tim = np.asarray(movers["timing"])
    for t in sorted(set(tim[grid].tolist())):
        sel = hi_snr & (tim == t)
        name = "SUB256 timing (0.30 s groups)" if t == "native" else "full-frame timing (2.775 s groups)"
        rows.append([name] + [_pct(*completeness(movers, d, "snr", (10, 100), select=sel)[0][2:])
                              for d in DETECTORS])
    L.append(_table(header, rows))
    L.append("")

    L.append("## False positives per full-frame integration\n")
    L.append("False detections (matching no truth mover, not even in position) scaled by area to the "
             "1024 × 1024 light-sensitive full array: `n_false / Σ(pixels × integrations) × 1024²`.  "
             "In brackets the count, and the 90 % Poisson upper limit of the rate.\n")
    fp_sets = [
        ("no movers, 256², full-frame timing", (kinds == "empty") & (timing == "full")),
        ("no movers, SUB256 timing (9× fewer cosmic rays per pixel)", (kinds == "empty") & (timing == "native")),
        ("no movers, full frame 1032 × 1024", kinds == "full_empty"),
        ("**headline**: full-frame timing + full frames", ((kinds == "empty") & (timing == "full"))
         | (kinds == "full_empty")),
        ("real ground-test ramp (SUB64, 5 ints, no injection)", kinds == "real"),
        ("grid ramps with movers (unmatched, away from every mover)", kinds == "grid"),
    ]
    rows = []
    for name, sel in fp_sets:
        if not sel.any():
            continue
        cells = []
        for d in DETECTORS:
            n, rate, up = false_positives(ramps, d, sel)
            cells.append(f"{_num(rate, '{:.1f}')} (n={n}, ≤{_num(up, '{:.1f}')})")
        rows.append([f"{name} [{int(sel.sum())} ramps]"] + cells)
    L.append(_table(["ramps"] + [DETECTOR_LABELS[d] for d in DETECTORS], rows))
    L.append("")
    rows = []
    for name, sel in fp_sets[-1:]:
        for what in ("position_only", "on_track", "duplicate"):
            rows.append([f"{what.replace('_', ' ')} detections in ramps with movers"]
                        + [str(int(np.sum(np.asarray(ramps[f"{d}_n_{what}"])[sel]))) for d in DETECTORS])
    L.append(_table(["", *[DETECTOR_LABELS[d] for d in DETECTORS]], rows))
    L.append("\n(*position only*: at a mover's place at `t_int` but with the speed off by more than 30 %; "
             "*on track*: on a mover's track at another time, e.g. a fragment of a long streak; "
             "*duplicate*: a second detection of a mover already matched.  None of these counts as a false "
             "positive.)\n")
    if "n_cosmic_rays" in ramps.colnames:
        sel = kinds == "full_empty"
        if sel.any():
            L.append(f"The full-frame no-mover ramps held {int(np.sum(np.asarray(ramps['n_cosmic_rays'])[sel]))} "
                     f"simulated cosmic rays and {int(np.sum(np.asarray(ramps['n_showers'])[sel]))} showers in all.\n")

    L.append("## Measurement errors vs SNR (matched grid movers)\n")
    L.append("Medians: position error at `t_int` (px); |speed error| and signed speed error (%); direction "
             "error (deg; for the rate baseline the axis error, 0–90°); signed and absolute flux error (%; "
             "flux_det / flux_true − 1).\n")
    for d in DETECTORS:
        med = error_medians(movers, d, select=grid)
        rows = [[_bin_label(m["lo"], m["hi"]), m["n"], _num(m["dpos"]), _num(100 * m["abs_dspeed"], "{:.1f}"),
                 _num(100 * m["dspeed"], "{:+.1f}"), _num(m["ddir"], "{:.1f}"), _num(100 * m["dflux"], "{:+.0f}"),
                 _num(100 * m["abs_dflux"], "{:.0f}")] for m in med]
        L.append(f"**{DETECTOR_LABELS[d]}**\n")
        L.append(_table(["SNR", "n", "pos (px)", "abs speed err %", "speed bias %", "dir (deg)",
                         "flux bias %", "abs flux err %"], rows))
        L.append("")
    L.append("![errors vs SNR](errors_vs_snr.png)\n")

    L.append("## Direction of motion (sense)\n")
    rows = []
    for d in DETECTORS:
        n, k = direction_sense(movers, d, select=grid)
        cell = "n/a: 180° ambiguous by construction" if d == "rate" else _pct(n, k)
        rows.append([DETECTOR_LABELS[d], cell])
    L.append(_table(["detector", ("matched movers with SNR ≥ 10 whose velocity has the right sense "
                     "(v_det · v_true > 0)")], rows))
    L.append("")

    L.append("## Depth: SNR at 50 % completeness and the gain over the seed-style baseline\n")
    L.append("SNR50 from an isotonic (monotone) fit of found/missed vs SNR; gain = 2.5 log10(SNR50_seed / "
             "SNR50_ours), fluxes being proportional to SNR near threshold for the same movers (read-noise "
             "and sky limited).  Bootstrap 16–84 % range in brackets.  '≥': the seed never reaches 50 % "
             "below SNR 100, so 100 is used and the gain is a lower bound.  ngroups ≥ 50.\n")
    rows = []
    subsets = [("all speeds", grid & (ngroups >= 50))]
    for lo, hi in pairwise(SPEED_BINS):
        subsets.append((f"{lo:g}–{hi:g} px/group", grid & (ngroups >= 50) & (speed >= lo) & (speed < hi)))
    for name, sel in subsets:
        cells = [name]
        for ours in ("ours", "ours_deep"):
            g = depth_gain(movers, sel, ours=ours)
            cells.append(_num(g["snr50_ours"], "{:.1f}"))
            cells.append(f"{'≥ ' if g['bound'] else ''}{_num(g['dmag'])} "
                         f"[{_num(g['dmag_lo'])}, {_num(g['dmag_hi'])}]")
        g = depth_gain(movers, sel)
        cells.insert(1, "> 100" if g["bound"] else _num(g["snr50_seed"], "{:.1f}"))
        cells.insert(2, _num(snr50(snr[sel & _ran(movers, "rate")],
                                   np.asarray(movers["rate_found"], bool)[sel & _ran(movers, "rate")]), "{:.1f}"))
        cells.append(str(g["n"]))
        rows.append(cells)
    L.append(_table(["movers", "SNR50 seed", "SNR50 rate", "SNR50 ours", "Δmag ours vs seed",
                     "SNR50 ours deep", "Δmag deep vs seed", "n"], rows))
    L.append("\n('inf': the detector never reaches 50 % completeness in that subset below SNR 100; "
             "'–': not run there, or no gain to state because `asteroid_detect` itself stays below 50 %.  "
             "The 'all speeds' row mixes speed classes with very different plateaus and is shown for "
             "completeness only.)\n")

    L.append("## The real ground-test ramp\n")
    sel_r = kinds == "real"
    if sel_r.any():
        rows = []
        for d in DETECTORS:
            n, rate, up = false_positives(ramps, d, sel_r)
            rows.append([DETECTOR_LABELS[d], str(n), f"{_num(rate, '{:.0f}')} (≤ {_num(up, '{:.0f}')})"])
        L.append("Real MIRI noise and real cosmic rays (SUB64, 5 integrations × 50 groups of 0.085 s), "
                 "firstframe + lastframe + jump + ramp_fit, no mover:\n")
        L.append(_table(["detector", "detections", "per full-frame integration (area-scaled, 90 % UL)"], rows))
        L.append("\n(The area scale is 1024² / (64 × 68) ≈ 241 per integration, and one SUB64 "
                 "integration lasts 4.3 s against ~140–280 s for a full-frame one, so these rates are "
                 "coarse.)\n")
        if real.any():
            L.append(f"Movers injected into it (`inject_movers`, charge method, one per integration, "
                     f"{int(real.sum())} in all, speeds 0.005–1 px/group):\n")
            L.append(_completeness_table(movers, "snr", (3.0, 5.0, 7.0, 10.0, 15.0, 30.0), real))
            L.append("\n![real ramp](completeness_real_ramp.png)\n")
    else:
        L.append("The real ramp was not found (../shared/data/real); nothing measured.\n")

    L.append("## Performance (full frame)\n")
    main = perf.get("main", [])
    if main:
        L.append(f"`{perf['subarray']}` ramps, F770W, 80 stars, 4 movers, L2 cosmic rays and showers, CDP7 bad "
                 "pixels.  Times are wall-clock seconds of `Step.call` in one process; memory is the peak RSS "
                 "above the level before the call (sampled every 5 ms), also in units of the float32 ramp cube"
                 + (", after the memory freed so far is handed back to the system "
                    "(`performance.release_freed_memory`), so that the level before a call holds nothing "
                    "earlier calls left with the allocator."
                    if perf.get("releases_freed_memory") else
                    "; the level before a call may hold memory earlier calls freed and the allocator kept, "
                    "so the rows may undercount.")
                 + (f"  All warm: first calls on the two shortest ramps (numba compilation or cache load) took "
                    f"{perf['warmup_seconds']:.1f} s before them." if "warmup_seconds" in perf else "") + "\n")
        rows = [[r["ngroups"], f"{r['cube_mb']:.0f}", f"{r['seconds_jump']:.1f}", f"{r['seconds_ramp_fit']:.1f}",
                 f"{r['seconds_ours']:.1f}", f"**{r['time_ratio']:.2f}**", f"{r['mem_jump_mb']:.0f}",
                 f"{r['mem_ramp_fit_mb']:.0f}", f"{r['mem_ours_mb']:.0f}", f"**{r['mem_ratio']:.2f}**",
                 r["n_jump_cells"], f"{r['n_search_trials']:.3g}", f"{r['n_detections']}/{r['n_true_movers']}"]
                for r in main]
        L.append(_table(["ngroups", "cube MB", "jump s", "ramp_fit s", "ours s", "ours / (jump+ramp_fit)",
                         "jump +MB", "ramp_fit +MB", "ours +MB", "ours +MB / cube", "JUMP_DET cells",
                         "search trials", "detections / movers"], rows))
        L.append("")
    for s in perf.get("skipped", []):
        L.append(f"- skipped: {s}")
    no_fast = perf.get("no_fast")
    if no_fast:
        L.append(f"\nWithout the fast search (`fast_search=False`: the main search to 0.5 px/group only; the "
                 f"default's fast windows reach 3 px/group) at {no_fast['ngroups']} groups: "
                 f"**{no_fast['seconds']:.1f} s** ({no_fast['time_ratio']:.2f}× jump + ramp_fit), "
                 f"+{no_fast['mem_mb']:.0f} MB ({no_fast['mem_ratio']:.2f} cubes), "
                 f"{no_fast['n_detections']} detections.\n")
    deep = perf.get("deep")
    if deep:
        L.append(f"\nDeep search (`deep_search=True`, to 3 px/group) at {deep['ngroups']} groups: "
                 f"**{deep['seconds']:.1f} s** ({deep['time_ratio']:.2f}× jump + ramp_fit), "
                 f"{deep['n_search_trials']:.3g} velocity × pixel trials (default search: "
                 f"{deep['n_search_trials_default']:.3g}), +{deep['mem_mb']:.0f} MB, "
                 f"{deep['n_detections']} detections.\n")
        speeds = perf.get("top_speed", [])
        main_row = [r for r in perf.get("main", []) if r["ngroups"] == deep["ngroups"]]
        if speeds and main_row:
            L.append(f"Time against the top speed of the main search, same ramp ({deep['ngroups']} groups, "
                     "without the fast windows; the number of velocity × pixel trials grows as the square of "
                     "the top speed):\n")
            defaults = DetectionConfig()
            base = no_fast or {"n_search_trials": main_row[0]["n_search_trials"],
                               "seconds": main_row[0]["seconds_ours"], "time_ratio": main_row[0]["time_ratio"]}
            rows = [[defaults.search_max_speed, f"{base['n_search_trials']:.3g}", f"{base['seconds']:.1f}",
                     f"{base['time_ratio']:.2f}", "default top speed"]]
            rows += [[r["search_max_speed"], f"{r['n_search_trials']:.3g}", f"{r['seconds']:.1f}",
                      f"{r['time_ratio']:.2f}", ""] for r in speeds]
            rows.append([defaults.deep_search_max_speed, f"{deep['n_search_trials']:.3g}", f"{deep['seconds']:.1f}", f"{deep['time_ratio']:.2f}",
                         "deep_search"])
            L.append(_table(["top speed (px/group)", "trials", "ours s", "ours / (jump+ramp_fit)", ""], rows))
            L.append("")
    scaling = perf.get("scaling", [])
    if scaling:
        L.append("Growth with movers and cosmic rays (same length, full frame):\n")
        rows = [[s["vary"], s["n_movers"], s["cosmic_ray_rate"], s["n_cosmic_rays_sim"], s["n_jump_cells"],
                 s["n_mover_candidates"], f"{s['seconds_ours']:.1f}", f"{s['mem_ours_mb']:.0f}", s["n_detections"]]
                for s in scaling]
        L.append(_table(["varied", "movers", "CR rate (/cm²/s)", "cosmic rays", "JUMP_DET cells",
                         "mover candidates", "ours s", "ours +MB", "detections"], rows))
        L.append("")

    L.append("## Detector run time on the grid\n")
    rows = []
    for d in DETECTORS:
        sel = np.asarray(ramps[f"{d}_ran"], dtype=bool) & np.isin(kinds, ["grid", "empty"])
        sec = np.asarray(ramps[f"{d}_seconds"], dtype=float)[sel]
        rows.append([DETECTOR_LABELS[d], f"{np.mean(sec):.2f}" if sec.size else "–",
                     f"{np.sum(sec) / 60:.1f}" if sec.size else "–", int(sel.sum())])
    L.append(_table(["detector", "mean s per 256² ramp", "total min", "ramps"], rows))
    L.append("")
    if meta.get("notes"):
        L.append("## Notes\n")
        L.extend(f"- {n}" for n in meta["notes"])
        L.append("")
    return "\n".join(L) + "\n"
