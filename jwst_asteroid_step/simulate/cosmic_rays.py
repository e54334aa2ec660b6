"""Cosmic-ray hits for simulated ramps.

A primary cosmic ray at L2 deposits its charge in one instant, so in a ramp it is a
step: every read after the hit is higher by the deposited DN.  Hits come at ~5 per
cm² per second (DESIGN.md §2); with 25 µm pixels that is ~30 per second on the full
array.  Each hit touches 1-6 pixels: most of the charge in the pixel hit, the rest
in a few of its neighbours (charge diffusion and inclined tracks).  The total DN of
a hit is drawn log-uniformly over 50-5000 DN by default: a minimum-ionising
particle crossing the ~35 µm Si:As layer at normal incidence frees ~3 ke (~700 DN
at 4 e/DN), inclined paths, slower protons and helium nuclei give more, and grazing
or edge hits less, so the range brackets the bulk with a median of 500 DN.

Showers (:func:`draw_showers`) are MIRI's large, faint events: a few to a few tens
of DN over hundreds of pixels at one instant, about once per 160 s on the full
array (DESIGN.md §2), followed by a slow release of extra charge over the next
seconds (jwst's jump step flags ``time_masked_after_shower`` = 15 s after each).
"""

from dataclasses import dataclass

import numpy as np
from astropy.table import Table

__all__ = [
    "PIXEL_AREA_CM2",
    "SHOWER_RATE",
    "ShowerModel",
    "expected_cosmic_ray_count",
    "draw_cosmic_rays",
    "draw_showers",
]

#: Area of one 25 µm MIRI pixel (cm²).
PIXEL_AREA_CM2 = (25e-4) ** 2

#: Shower rate (per second per cm²) that gives one shower per 160 s on the
#: 1024 x 1024 light-sensitive pixels of the full array.
SHOWER_RATE = 1.0 / (160.0 * 1024 * 1024 * PIXEL_AREA_CM2)

# Probability of a hit touching 1..6 pixels: most are compact.
_NPIX_PROB = np.array([0.35, 0.25, 0.15, 0.10, 0.08, 0.07])

# The 8 neighbours; the first four share an edge with the hit pixel and are filled first.
_NEIGHBOURS = np.array(
    [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1)], dtype=int
)


def expected_cosmic_ray_count(rate, n_pixels, exposed_time, pixel_area_cm2=PIXEL_AREA_CM2):
    """Mean number of hits in one integration.

    Parameters
    ----------
    rate : float
        Hits per second per cm².
    n_pixels : int
        Number of light-sensitive pixels.
    exposed_time : float
        Seconds during which a hit shows in the ramp (first to last read).
    pixel_area_cm2 : float
        Area of one pixel.

    Returns
    -------
    float
    """
    return rate * n_pixels * pixel_area_cm2 * exposed_time


def draw_cosmic_rays(
    rng,
    shape,
    n_groups,
    group_time,
    rate=5.0,
    amplitude_range=(50.0, 5000.0),
    sensitive_columns=None,
    pixel_area_cm2=PIXEL_AREA_CM2,
):
    """Draw the cosmic-ray hits of one integration.

    Hits arrive as a Poisson process over the time between the first and the last
    read, at random light-sensitive pixels.  A hit inside group difference ``k``
    (between reads ``k`` and ``k + 1``) raises reads ``k + 1`` onwards.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator.
    shape : tuple of int
        ``(ny, nx)`` of the array.
    n_groups : int
        Reads in the integration.
    group_time : float
        Seconds between reads.
    rate : float
        Hits per second per cm²; 0 disables them.
    amplitude_range : tuple of float
        Total DN of a hit is drawn log-uniformly in this range.
    sensitive_columns : ndarray of bool, shape (nx,), optional
        Columns that collect charge (``False`` for reference pixels).  Hits land
        only there, and charge spilling onto other columns is lost.
    pixel_area_cm2 : float
        Area of one pixel.

    Returns
    -------
    events : astropy.table.Table
        One row per hit: ``x``, ``y`` (pixel hit), ``group`` (0-based first read
        that includes it), ``amplitude`` (DN, all pixels), ``n_pixels``.
    deposits : dict of ndarray
        One entry per touched pixel: ``y``, ``x``, ``k`` (group-difference index)
        and ``dn``, ready to add to the group differences.
    """
    ny, nx = shape
    if sensitive_columns is None:
        sensitive_columns = np.ones(nx, dtype=bool)
    cols = np.flatnonzero(sensitive_columns)
    n_diff = n_groups - 1
    mean = expected_cosmic_ray_count(rate, cols.size * ny, n_diff * group_time, pixel_area_cm2)
    n = int(rng.poisson(mean)) if mean > 0 and n_diff > 0 else 0

    x = cols[rng.integers(0, cols.size, n)] if n else np.zeros(0, dtype=int)
    y = rng.integers(0, ny, n)
    k = rng.integers(0, max(n_diff, 1), n)
    lo, hi = np.log(amplitude_range[0]), np.log(amplitude_range[1])
    amplitude = np.exp(rng.uniform(lo, hi, n))
    npix = rng.choice(np.arange(1, 7), size=n, p=_NPIX_PROB)

    # Share of the central pixel; the rest goes to npix-1 neighbours with
    # Dirichlet(1) weights, edge-sharing neighbours first in random order.
    central = np.where(npix > 1, rng.uniform(0.5, 0.85, n), 1.0)
    order_keys = rng.random((n, 8)) + np.r_[np.zeros(4), np.ones(4)][None, :]
    order = np.argsort(order_keys, axis=1)[:, :5]
    weights = rng.gamma(1.0, size=(n, 5)) * (np.arange(5)[None, :] < (npix - 1)[:, None])
    wsum = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, wsum, out=np.zeros_like(weights), where=wsum > 0)
    share = weights * ((1.0 - central) * amplitude)[:, None]

    dy = _NEIGHBOURS[order, 0]
    dx = _NEIGHBOURS[order, 1]
    dep_y = np.concatenate([y, (y[:, None] + dy).ravel()])
    dep_x = np.concatenate([x, (x[:, None] + dx).ravel()])
    dep_k = np.concatenate([k, np.repeat(k, 5)])
    dep_dn = np.concatenate([central * amplitude, share.ravel()])
    inside = (dep_dn > 0) & (dep_y >= 0) & (dep_y < ny) & (dep_x >= 0) & (dep_x < nx)
    inside[inside] &= sensitive_columns[dep_x[inside]]

    events = Table(
        {
            "x": x.astype(int),
            "y": y.astype(int),
            "group": (k + 1).astype(int),
            "amplitude": amplitude,
            "n_pixels": npix.astype(int),
        }
    )
    events["amplitude"].unit = "DN"
    deposits = {
        "y": dep_y[inside],
        "x": dep_x[inside],
        "k": dep_k[inside],
        "dn": dep_dn[inside],
    }
    return events, deposits


@dataclass(frozen=True)
class ShowerModel:
    """Shape, brightness and afterglow of MIRI cosmic-ray showers.

    A shower is a disc of area drawn log-uniformly in ``area_range`` whose prompt
    charge falls from ``peak`` at the centre to zero at the rim as ``1 - (r/R)**2``
    (so the mean over the disc is half the peak), with ``peak`` drawn
    log-uniformly in ``amplitude_range``.  After the prompt step each pixel leaks a
    further ``leak_fraction`` of its prompt charge, released exponentially with
    e-folding time ``leak_time``: a few DN spread over the following groups.

    Parameters
    ----------
    amplitude_range : tuple of float
        Central prompt charge (DN).  Low, about the CDS read noise: a shower is
        seen by its area, not pixel by pixel (jwst's MIRI shower search looks for
        >= 90 px of ring-convolved differences at SNR >= 1.2).
    area_range : tuple of float
        Area (pixels) of the disc.
    leak_fraction : float
        Leaked charge as a fraction of the prompt charge.
    leak_time : float
        E-folding time (s) of the leak.
    """

    amplitude_range: tuple = (4.0, 20.0)
    area_range: tuple = (100.0, 1000.0)
    leak_fraction: float = 0.5
    leak_time: float = 6.0

    def __post_init__(self):
        if self.leak_fraction < 0 or self.leak_time <= 0:
            raise ValueError("leak_fraction must be >= 0 and leak_time > 0")


def _leak_shares(t_event, t0, t1, tau, tol=1e-3):
    """Fraction of the leaked charge released in each difference after ``t_event``.

    Returns the first difference index and the shares, cut where less than
    ``tol`` of the leak remains.
    """
    k = int(np.searchsorted(t1, t_event, side="right"))
    if k >= t0.size:
        return k, np.zeros(0)
    t_end = t_event - tau * np.log(tol)
    k_end = int(min(np.searchsorted(t0, t_end, side="right"), t0.size))
    a = np.maximum(t0[k:k_end], t_event) - t_event
    b = t1[k:k_end] - t_event
    return k, np.exp(-a / tau) - np.exp(-b / tau)


def draw_showers(
    rng,
    shape,
    n_groups,
    group_time,
    rate=SHOWER_RATE,
    model=None,
    sensitive_columns=None,
    pixel_area_cm2=PIXEL_AREA_CM2,
):
    """Draw the showers of one integration.

    Showers arrive as a Poisson process over the time between the first and the
    last read, centred on random light-sensitive pixels (``rate`` per cm² of
    light-sensitive area, so a subarray sees proportionally fewer).  A shower in
    difference ``k`` adds its prompt charge there and its leak to ``k`` (after the
    event) and the following differences.  Charge falling off the array or on
    reference columns is lost.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator.
    shape : tuple of int
        ``(ny, nx)`` of the array.
    n_groups : int
        Reads in the integration.
    group_time : float
        Seconds between reads.
    rate : float
        Showers per second per cm²; 0 disables them.  :data:`SHOWER_RATE` (the
        default) gives one per 160 s on the full array.
    model : ShowerModel, optional
        Shape and brightness; by default ``ShowerModel()``.
    sensitive_columns : ndarray of bool, shape (nx,), optional
        Columns that collect charge.
    pixel_area_cm2 : float
        Area of one pixel.

    Returns
    -------
    events : astropy.table.Table
        One row per shower: ``x``, ``y`` (centre, px), ``group`` (first read that
        includes it), ``t_int`` (s), ``radius`` (px), ``peak`` (DN), ``prompt`` and
        ``leak`` (total DN deposited on the array), ``n_pixels`` (on the array).
    deposits : dict of ndarray
        ``y``, ``x``, ``k``, ``dn`` as for :func:`draw_cosmic_rays`.
    """
    model = ShowerModel() if model is None else model
    ny, nx = shape
    if sensitive_columns is None:
        sensitive_columns = np.ones(nx, dtype=bool)
    cols = np.flatnonzero(sensitive_columns)
    n_diff = n_groups - 1
    mean = expected_cosmic_ray_count(rate, cols.size * ny, n_diff * group_time, pixel_area_cm2)
    n = int(rng.poisson(mean)) if mean > 0 and n_diff > 0 else 0

    t0 = np.arange(n_diff) * group_time
    t1 = t0 + group_time
    xc = rng.uniform(cols[0] - 0.5, cols[-1] + 0.5, n) if n else np.zeros(0)
    yc = rng.uniform(-0.5, ny - 0.5, n)
    t_event = rng.uniform(0.0, n_diff * group_time, n)
    log_area = rng.uniform(*np.log(model.area_range), n)
    peak = np.exp(rng.uniform(*np.log(model.amplitude_range), n))
    radius = np.sqrt(np.exp(log_area) / np.pi)

    rows = []
    dep = {"y": [], "x": [], "k": [], "dn": []}
    for i in range(n):
        r = radius[i]
        x0, x1 = max(int(np.floor(xc[i] - r)), 0), min(int(np.ceil(xc[i] + r)) + 1, nx)
        y0, y1 = max(int(np.floor(yc[i] - r)), 0), min(int(np.ceil(yc[i] + r)) + 1, ny)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        rho2 = ((xx - xc[i]) ** 2 + (yy - yc[i]) ** 2) / r**2
        on = (rho2 < 1.0) & sensitive_columns[xx]
        py, px = yy[on], xx[on]
        prompt = peak[i] * (1.0 - rho2[on])
        k_event = min(int(t_event[i] // group_time), n_diff - 1)
        k_leak, shares = _leak_shares(t_event[i], t0, t1, model.leak_time)
        leak = model.leak_fraction * prompt
        dep["y"] += [py, np.tile(py, shares.size)]
        dep["x"] += [px, np.tile(px, shares.size)]
        dep["k"] += [np.full(py.size, k_event), np.repeat(k_leak + np.arange(shares.size), py.size)]
        dep["dn"] += [prompt, np.outer(shares, leak).ravel()]
        rows.append((xc[i], yc[i], k_event + 1, t_event[i], r, peak[i], prompt.sum(),
                     leak.sum() * shares.sum(), py.size))

    names = ("x", "y", "group", "t_int", "radius", "peak", "prompt", "leak", "n_pixels")
    dtypes = (float, float, int, float, float, float, float, float, int)
    events = Table(rows=rows or None, names=names, dtype=dtypes)
    for name, unit in (("x", "pix"), ("y", "pix"), ("t_int", "s"), ("radius", "pix"),
                       ("peak", "DN"), ("prompt", "DN"), ("leak", "DN")):
        events[name].unit = unit
    deposits = {
        key: (np.concatenate(val) if val else np.zeros(0, dtype=float if key == "dn" else int))
        for key, val in dep.items()
    }
    for key in ("y", "x", "k"):
        deposits[key] = deposits[key].astype(int)
    return events, deposits
