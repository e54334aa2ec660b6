"""Cosmic-ray hits for simulated ramps.

A primary cosmic ray at L2 deposits its charge in one instant, so in a ramp it is a
step: every read after the hit is higher by the deposited DN.  Hits come at ~5 per
cm² per second (DESIGN.md §2); with 25 µm pixels that is ~30 per second on the full
array.  Each hit touches 1-6 pixels: most of the charge in the pixel hit, the rest
in a few of its neighbours (charge diffusion and inclined tracks).  Showers and
snowballs are not modelled here.
"""

import numpy as np
from astropy.table import Table

__all__ = ["PIXEL_AREA_CM2", "expected_cosmic_ray_count", "draw_cosmic_rays"]

#: Area of one 25 µm MIRI pixel (cm²).
PIXEL_AREA_CM2 = (25e-4) ** 2

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
