"""Figures of detections: what a person checks before believing a mover.

Per detection, one PNG with six panels:

A. the rate image around the track, with the fitted track as an arrow (first read
   to last read) and the catalog position at ``t_int``;
B. the JUMP_DET cells near the track in (x, y, t) and the fitted line
   ``x(t) = x + vx (t - t_int)``; cells within 2 PSF widths of the line are
   coloured by time, the others (cosmic rays, noise) are red crosses;
C. the ramps (DN above the first read) of three pixels on the track, JUMP_DET
   groups marked, and the time the fitted track passes each pixel;
D. the group differences averaged without shifting (a streak);
E. the same differences shifted along the fitted motion before averaging
   (shift-and-stack inside the ramp: a point source at the catalog position);
F. the detection's catalog entry.

Plus a summary PNG with every detection's track on the full frame.  Rendering uses
matplotlib's Agg canvas directly (no pyplot, no display needed).  Time base and
pixel convention as in DESIGN.md §4: difference ``k`` spans reads ``k`` to ``k+1``
and is plotted at ``(k + 1/2) * group_time``.
"""

from pathlib import Path

import numpy as np

from ..export._common import catalog_and_meta, track_times
from ..ramp.differences import IntegrationDifferences

__all__ = ["approximate_rate", "plot_detection", "plot_detections", "plot_summary"]

_DO_NOT_USE = 1  # GROUPDQ DO_NOT_USE bit
_JUMP_DET = 4


# ---------------------------------------------------------------- inputs


def _open(obj, cls_name=None):
    """A datamodel from a path (or the object as given)."""
    if obj is None or not isinstance(obj, (str, Path)):
        return obj
    from stdatamodels.jwst import datamodels

    return datamodels.open(str(obj))


def _rate_frame(rate_image, integration):
    """2-D rate array from an array, ImageModel, CubeModel (rateints) or path."""
    if rate_image is None:
        return None
    rate_image = _open(rate_image)
    data = np.asarray(getattr(rate_image, "data", rate_image), dtype=float)
    if data.ndim == 3:
        data = data[min(integration, data.shape[0]) - 1]
    return data


def _usable_groups(groupdq):
    """First and last group not DO_NOT_USE in most pixels (edge groups excluded)."""
    bad = np.array([np.mean((g & _DO_NOT_USE) != 0) > 0.5 for g in groupdq])
    good = np.flatnonzero(~bad)
    if good.size < 2:
        return 0, len(groupdq) - 1
    return int(good[0]), int(good[-1])


def approximate_rate(sci, groupdq, group_time):
    """Count rate (DN/s) from the first and last usable reads of one integration.

    Parameters
    ----------
    sci, groupdq : ndarray, shape (ngroups, ny, nx)
    group_time : float

    Returns
    -------
    ndarray, shape (ny, nx)
        ``(SCI[g1] - SCI[g0]) / ((g1 - g0) * group_time)``: what ramp_fit gives
        without jumps; used when no rate image is given.
    """
    g0, g1 = _usable_groups(groupdq)
    return (np.asarray(sci[g1], float) - np.asarray(sci[g0], float)) / ((g1 - g0) * group_time)


# ---------------------------------------------------------------- geometry


class _Detection:
    """One catalog row with its track and a cutout box."""

    def __init__(self, row, t_start, t_end, shape, fwhm):
        self.row = row
        self.id = int(row["id"])
        self.integration = int(row["integration"])
        self.x, self.y, self.t = float(row["x"]), float(row["y"]), float(row["t_int"])
        self.vx, self.vy = float(row["vx"]), float(row["vy"])
        self.t_start, self.t_end = float(t_start), float(t_end)
        xs, ys = self.at(np.array([self.t_start, self.t_end]))
        half = max(0.5 * np.hypot(xs[1] - xs[0], ys[1] - ys[0]) + 3 * fwhm, 10.0)
        half = int(np.ceil(min(half, 64)))
        cx, cy = (np.mean(xs), np.mean(ys)) if half < 64 else (self.x, self.y)
        ny, nx = shape
        self.x0 = int(np.clip(round(cx) - half, 0, max(nx - 1, 0)))
        self.x1 = int(np.clip(round(cx) + half + 1, 1, nx))
        self.y0 = int(np.clip(round(cy) - half, 0, max(ny - 1, 0)))
        self.y1 = int(np.clip(round(cy) + half + 1, 1, ny))
        self.fwhm = fwhm

    def at(self, t):
        return self.x + self.vx * (t - self.t), self.y + self.vy * (t - self.t)

    @property
    def box(self):
        return (slice(self.y0, self.y1), slice(self.x0, self.x1))

    @property
    def extent(self):
        return (self.x0 - 0.5, self.x1 - 0.5, self.y0 - 0.5, self.y1 - 0.5)


def _fwhm(meta, table):
    fwhm = meta.get("asteroid_detect", {}).get("psf_fwhm")
    if fwhm:
        return float(fwhm)
    from ..psf import FILTER_FWHM

    return FILTER_FWHM.get(str(meta.get("instrument", {}).get("filter", "")).upper(), 2.5)


# ---------------------------------------------------------------- panels


def _stretch(image):
    finite = np.asarray(image)[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [1, 99.7])
    return float(lo), float(hi if hi > lo else lo + 1)


def _arrow(ax, det, color="cyan"):
    from matplotlib import patheffects

    outline = [patheffects.withStroke(linewidth=3.5, foreground="black")]
    xs, ys = det.at(np.array([det.t_start, det.t_end]))
    arrow = ax.annotate("", xy=(xs[1], ys[1]), xytext=(xs[0], ys[0]),
                        arrowprops=dict(arrowstyle="-|>", color=color, lw=1.6, mutation_scale=14))
    arrow.arrow_patch.set_path_effects(outline)
    ax.plot(xs[0], ys[0], "o", mfc="none", mec=color, ms=5, path_effects=outline)


def _panel_rate(ax, det, rate, label):
    if rate is None:
        ax.text(0.5, 0.5, "no rate image", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    cut = rate[det.box]
    vmin, vmax = _stretch(cut)
    im = ax.imshow(cut, origin="lower", extent=det.extent, cmap="magma", vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="DN/s")
    _arrow(ax, det)
    ax.plot(det.x, det.y, "+", color="white", ms=10, mew=1.2)
    ax.set(xlabel="x (column, px)", ylabel="y (row, px)", title=f"A. {label}")


def _panel_xyt(ax, det, cells, group_time):
    t_line = np.linspace(det.t_start, det.t_end, 50)
    x_line, y_line = det.at(t_line)
    if cells.size:
        k, yy, xx = cells[:, 0], cells[:, 1] + det.y0, cells[:, 2] + det.x0
        t = (k + 0.5) * group_time
        xt, yt = det.at(t)
        on = np.hypot(xx - xt, yy - yt) < 2 * det.fwhm
        if np.any(on):
            ax.scatter(xx[on], yy[on], t[on], s=6, c=t[on], cmap="viridis", depthshade=False,
                       alpha=0.6, label="JUMP_DET on track (colour: time)", zorder=1)
        if np.any(~on):
            ax.scatter(xx[~on], yy[~on], t[~on], s=14, c="tab:red", marker="x", depthshade=False,
                       label="other JUMP_DET", zorder=2)
    ax.plot(x_line, y_line, t_line, "-", color="crimson", lw=2.5, label="fitted track", zorder=3)
    ax.set(xlabel="x (px)", ylabel="y (px)", zlabel="t_int (s)",
           xlim=(det.x0 - 0.5, det.x1 - 0.5), ylim=(det.y0 - 0.5, det.y1 - 0.5))
    ax.set_title(f"B. JUMP_DET cells in (x, y, t): {len(cells)} in box", fontsize=10)
    ax.view_init(elev=22, azim=-60)
    ax.tick_params(labelsize=7)
    ax.legend(loc="upper left", fontsize=7)


def _track_pixels(det, n=3):
    """Up to ``n`` distinct pixels on the track, spread over the integration."""
    pixels = []
    for frac in np.linspace(0.2, 0.8, n) if n > 1 else [0.5]:
        t = det.t_start + frac * (det.t_end - det.t_start)
        px, py = (int(round(v)) for v in det.at(t))
        if det.x0 <= px < det.x1 and det.y0 <= py < det.y1 and (px, py) not in pixels:
            pixels.append((px, py))
    return pixels


def _panel_ramps(ax, det, sci, groupdq, group_time):
    reads = np.arange(sci.shape[0]) * group_time
    colors = ["tab:blue", "tab:orange", "tab:green"]
    for (px, py), color in zip(_track_pixels(det), colors):
        ramp = np.asarray(sci[:, py - det.y0, px - det.x0], float)
        dq = groupdq[:, py - det.y0, px - det.x0]
        usable = (dq & _DO_NOT_USE) == 0
        ref = ramp[usable][0] if np.any(usable) else ramp[0]
        ax.plot(reads, ramp - ref, ".-", color=color, ms=3, lw=0.8, label=f"pixel ({px}, {py})")
        jump = (dq & _JUMP_DET) != 0
        ax.plot(reads[jump], (ramp - ref)[jump], "o", mfc="none", mec=color, ms=7)
        # Closest approach of the fitted track to the pixel centre.
        v2 = det.vx**2 + det.vy**2
        if v2 > 0:
            t_pass = det.t + ((px - det.x) * det.vx + (py - det.y) * det.vy) / v2
            ax.axvline(t_pass, color=color, ls="--", lw=0.8)
    ax.plot([], [], "o", mfc="none", mec="k", label="JUMP_DET group")
    ax.plot([], [], "--", color="k", lw=0.8, label="track passes pixel")
    ax.set(xlabel="time since first read (s)", ylabel="DN above first usable read",
           title="C. ramps of 3 pixels on the track")
    ax.legend(fontsize=7, loc="upper left")


def _stacks(det, diff, group_time):
    """Unshifted mean and motion-shifted mean of the differences (DN/s)."""
    from scipy import ndimage

    valid = np.isfinite(diff)
    values = np.where(valid, diff, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        plain = values.sum(0) / valid.sum(0) / group_time
    num = np.zeros(diff.shape[1:])
    den = np.zeros(diff.shape[1:])
    for k in range(diff.shape[0]):
        t_k = (k + 0.5) * group_time
        shift = (-det.vy * (t_k - det.t), -det.vx * (t_k - det.t))  # (row, column)
        num += ndimage.shift(values[k], shift, order=1, mode="constant", cval=0.0)
        den += ndimage.shift(valid[k].astype(float), shift, order=1, mode="constant", cval=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        stacked = np.where(den > 0.5, num / den, np.nan) / group_time
    return plain, stacked


def _panel_stack(ax, det, image, title, vrange, mark_track):
    from matplotlib import colormaps

    cmap = colormaps["magma"].with_extremes(bad="black")
    im = ax.imshow(image, origin="lower", extent=det.extent, cmap=cmap, vmin=vrange[0],
                   vmax=vrange[1], interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="DN/s")
    if mark_track:
        _arrow(ax, det)
    else:
        ax.plot(det.x, det.y, "+", color="cyan", ms=14, mew=1.2)
    ax.set(xlabel="x (px)", ylabel="y (px)", title=title)


def _panel_text(ax, det, group_time):
    row, names = det.row, det.row.dtype.names
    speed = np.hypot(det.vx, det.vy)

    def val(name, fmt):
        return format(row[name], fmt) if name in names and np.isfinite(row[name]) else "n/a"

    method = row["method"].decode() if isinstance(row["method"], bytes) else str(row["method"])
    lines = [
        f"detection {det.id}   integration {det.integration}   method {method}",
        f"SNR {val('snr', '.1f')}   chi2/dof {val('chi2_dof', '.2f')}",
        f"x, y = {det.x:.2f}, {det.y:.2f} px  (+- {val('x_err', '.3f')}, {val('y_err', '.3f')})",
        f"t_int = {det.t:.2f} s   mjd = {val('mjd', '.6f')}",
        f"v = ({det.vx:+.3f}, {det.vy:+.3f}) px/s = {speed * group_time:.3f} px/group",
        f"ra, dec = {val('ra', '.6f')}, {val('dec', '+.6f')} deg",
        f"rate RA*cosDec, Dec = {val('ra_rate', '+.2f')}, {val('dec_rate', '+.2f')} arcsec/h",
        f"flux = {val('flux', '.1f')} +- {val('flux_err', '.1f')} DN/s",
        f"groups {int(row['n_groups'])}  pixels {int(row['n_pixels'])}  "
        f"JUMP_DET {int(row['n_jumps'])}",
    ]
    if "abmag" in names and np.isfinite(row["abmag"]):
        lines.append(f"AB mag = {row['abmag']:.2f} +- {row['abmag_err']:.2f}")
    ax.text(0.02, 0.98, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=8.5,
            transform=ax.transAxes)
    ax.set_axis_off()
    ax.set_title("F. catalog entry")


# ---------------------------------------------------------------- figures


def _new_figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def plot_detection(det, path, *, sci=None, groupdq=None, pixeldq=None, rate=None,
                   rate_label="rate image", group_time=1.0, title="", dpi=72):
    """Write the six-panel figure of one detection (see module docstring).

    ``sci``/``groupdq`` (ngroups, ny, nx) and ``pixeldq`` are the full frames of the
    detection's integration (sliced here); without them panels B-E say so.
    """
    fig = _new_figure((15, 9))
    grid = fig.add_gridspec(2, 3, hspace=0.32, wspace=0.42)
    _panel_rate(fig.add_subplot(grid[0, 0]), det, rate, rate_label)
    if sci is not None:
        box = (slice(None),) + det.box
        sci_cut = np.asarray(sci[box], dtype=np.float32)
        gdq_cut = np.asarray(groupdq[box])
        pdq_cut = (np.asarray(pixeldq[det.box]) if pixeldq is not None
                   else np.zeros(sci_cut.shape[1:], np.uint32))
        diffs = IntegrationDifferences(sci_cut, gdq_cut, pdq_cut)
        cells = np.argwhere(diffs.jump)
        # computed_zorder=False: draw the fitted line over the cells, as plotted.
        _panel_xyt(fig.add_subplot(grid[0, 1], projection="3d", computed_zorder=False), det, cells,
                   group_time)
        _panel_ramps(fig.add_subplot(grid[0, 2]), det, sci_cut, gdq_cut, group_time)
        plain, stacked = _stacks(det, diffs.diff, group_time)
        vrange = _stretch(stacked)
        _panel_stack(fig.add_subplot(grid[1, 0]), det, plain,
                     "D. differences averaged, unshifted", vrange, mark_track=True)
        _panel_stack(fig.add_subplot(grid[1, 1]), det, stacked,
                     "E. differences shifted along the motion", vrange, mark_track=False)
    else:
        for cell in (grid[0, 1], grid[0, 2], grid[1, 0], grid[1, 1]):
            ax = fig.add_subplot(cell)
            ax.text(0.5, 0.5, "no ramp given", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
    _panel_text(fig.add_subplot(grid[1, 2]), det, group_time)
    fig.suptitle(title, fontsize=12)
    fig.savefig(path, dpi=dpi)
    return Path(path)


def plot_summary(detections, path, *, frame=None, frame_label="", title="", dpi=72):
    """Write the summary figure: every detection's track on the full frame."""
    fig = _new_figure((9, 8.5))
    ax = fig.add_subplot(1, 1, 1)
    if frame is not None:
        from matplotlib.colors import PowerNorm

        finite = frame[np.isfinite(frame)]
        vmin, vmax = np.percentile(finite, [1, 99.9]) if finite.size else (0.0, 1.0)
        im = ax.imshow(np.clip(frame, vmin, None), origin="lower", cmap="gray",
                       norm=PowerNorm(0.5, vmin=vmin, vmax=max(vmax, vmin + 1e-6)),
                       interpolation="nearest")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label=frame_label)
    colors = ["cyan", "yellow", "lime", "magenta", "orange", "deepskyblue"]
    for i, det in enumerate(detections):
        color = colors[i % len(colors)]
        _arrow(ax, det, color=color)
        ax.add_patch(_box_patch(det, color))
        ax.text(det.x1, det.y1, f" {det.id}", color=color, fontsize=12, fontweight="bold",
                va="bottom")
    if frame is None:
        ax.set_facecolor("black")
        if detections:
            ax.set(xlim=(0, max(d.x1 for d in detections) + 10),
                   ylim=(0, max(d.y1 for d in detections) + 10))
    ax.set(xlabel="x (column, px)", ylabel="y (row, px)", title=title)
    fig.savefig(path, dpi=dpi)
    return Path(path)


def _box_patch(det, color):
    from matplotlib.patches import Rectangle

    return Rectangle((det.x0 - 0.5, det.y0 - 0.5), det.x1 - det.x0, det.y1 - det.y0, fill=False,
                     ec=color, lw=0.8, ls=":")


def plot_detections(catalog, ramp_model=None, rate_image=None, output_dir=".", root=None, dpi=72):
    """Figures of every detection in a catalog, and a summary of the frame.

    Parameters
    ----------
    catalog : AsteroidCatalogModel, path to ``_asteroids.asdf``, or structured array
    ramp_model : RampModel or path, optional
        The jump-flagged ramp (``_jump.fits`` / ``_ramp.fits``) the catalog came
        from; needed for the (x, y, t), ramp and stack panels.
    rate_image : ndarray, ImageModel, CubeModel or path, optional
        ``_rate`` or ``_rateints``; by default an approximate rate from the ramp
        (:func:`approximate_rate`).
    output_dir : str or Path
        Created if needed.
    root : str, optional
        File name root; by default from the catalog's file name.
    dpi : int

    Returns
    -------
    list of Path
        ``<root>_det<id>.png`` for each detection, then ``<root>_summary.png``.
    """
    table, meta = catalog_and_meta(catalog)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if root is None:
        name = Path(str(meta.get("filename") or "asteroids")).name
        root = name.split(".")[0].removesuffix("_asteroids")
    ramp = _open(ramp_model)
    exposure = meta.get("exposure", {})
    group_time = float(exposure.get("group_time") or getattr(
        getattr(getattr(ramp, "meta", None), "exposure", None), "group_time", 1.0) or 1.0)
    if ramp is not None:
        shape = ramp.data.shape[-2:]
    elif rate_image is not None:
        shape = _rate_frame(rate_image, 1).shape
    else:
        sub = meta.get("subarray", {})
        shape = (int(sub.get("ysize") or 1024), int(sub.get("xsize") or 1032))
    t0, t1 = track_times(meta, table)
    fwhm = _fwhm(meta, table)
    dets = [_Detection(row, a, b, shape, fwhm) for row, a, b in zip(table, t0, t1)]

    paths, frames = [], {}

    def frame_for(integration):
        if integration not in frames:
            rate = _rate_frame(rate_image, integration)
            label = "rate image (DN/s)"
            if rate is None and ramp is not None:
                i = integration - 1
                rate = approximate_rate(ramp.data[i], ramp.groupdq[i], group_time)
                label = "approx. rate, last - first usable read (DN/s)"
            frames[integration] = (rate, label)
        return frames[integration]

    for det in dets:
        rate, label = frame_for(det.integration)
        kwargs = {}
        if ramp is not None:
            i = det.integration - 1
            kwargs = dict(sci=ramp.data[i], groupdq=ramp.groupdq[i], pixeldq=ramp.pixeldq)
        path = output_dir / f"{root}_det{det.id}.png"
        title = f"{root}: detection {det.id} (integration {det.integration})"
        paths.append(plot_detection(det, path, rate=rate, rate_label=label, group_time=group_time,
                                    title=title, dpi=dpi, **kwargs))
    frame, label = frame_for(1) if (ramp is not None or rate_image is not None) else (None, "")
    paths.append(plot_summary(dets, output_dir / f"{root}_summary.png", frame=frame,
                              frame_label=label, dpi=dpi,
                              title=f"{root}: {len(dets)} detection(s), tracks first -> last read"))
    return paths
