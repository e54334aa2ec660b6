"""What the simulated detector looks at: movers (asteroids) and fixed stars.

Coordinates follow the package convention (DESIGN.md §4): 0-based pixel indices of
the SCI array, x = column, y = row, pixel centres at integers.  Times are ``t_int``,
seconds since the first read of an integration.
"""

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FILTER_BACKGROUND",
    "default_background",
    "Mover",
    "Star",
    "random_stars",
    "mover_position",
    "render_stars",
]

#: Approximate sky + telescope background (DN/s per pixel) of each MIRI imager
#: filter, used when no background is given.  Zodiacal light dominates at 5-10 µm
#: and the telescope's own thermal emission takes over beyond ~15 µm, so the rate
#: climbs steeply with wavelength (the narrow F1130W sits below its neighbours).
#: These are this package's round numbers for a low-to-medium background field at
#: ~4 e/DN, chosen to follow that shape (Glasse et al. 2015, PASP 127, 686;
#: Dicken et al. 2024, A&A 689, A5), not values read from a reference file or the
#: ETC: trust them to a factor of ~2.  Real backgrounds change with ecliptic
#: latitude and season, and at long wavelengths with telescope temperature; pass
#: ``background=`` for quantitative work.
FILTER_BACKGROUND = {
    "F560W": 1.5,
    "F770W": 5.0,
    "F1000W": 10.0,
    "F1130W": 7.0,
    "F1280W": 18.0,
    "F1500W": 30.0,
    "F1800W": 60.0,
    "F2100W": 130.0,
    "F2550W": 400.0,
}


def default_background(filter_name):
    """Default background count rate (DN/s per pixel) of a MIRI imager filter.

    Parameters
    ----------
    filter_name : str
        Filter, e.g. ``"F770W"``.

    Returns
    -------
    float
        The :data:`FILTER_BACKGROUND` value.

    Raises
    ------
    ValueError
        For a filter not in the table.
    """
    key = (filter_name or "").upper()
    if key not in FILTER_BACKGROUND:
        raise ValueError(
            f"No default background for filter {filter_name!r}; expected one of "
            f"{sorted(FILTER_BACKGROUND)} or an explicit background"
        )
    return FILTER_BACKGROUND[key]


@dataclass(frozen=True)
class Mover:
    """A point source moving in a straight line at constant rate.

    Parameters
    ----------
    x0, y0 : float
        Position (px) at ``t_ref``.
    vx, vy : float
        Apparent motion on the detector (px/s).
    flux : float
        Total count rate of the source (DN/s).
    t_ref : float
        Reference time (s since the first read of the reference integration).
    integration : int or None
        1-based integration the mover is in.  ``None`` puts it in every
        integration, moving on between them: ``t_ref`` then refers to the first
        integration's time base, and integration ``i`` starts
        ``(i - 1) * integration_period`` seconds later.
    """

    x0: float
    y0: float
    vx: float
    vy: float
    flux: float
    t_ref: float = 0.0
    integration: int | None = None

    def __post_init__(self):
        if not np.isfinite(self.flux) or self.flux < 0:
            raise ValueError(f"Mover flux must be a finite non-negative rate, got {self.flux!r}")
        if self.integration is not None and self.integration < 1:
            raise ValueError(f"Mover.integration is 1-based, got {self.integration!r}")


@dataclass(frozen=True)
class Star:
    """A fixed point source.

    Parameters
    ----------
    x, y : float
        Position (px).
    flux : float
        Total count rate (DN/s).
    """

    x: float
    y: float
    flux: float


def mover_position(mover, t_int, integration=1, integration_period=0.0):
    """Position of a mover at ``t_int`` of an integration.

    Parameters
    ----------
    mover : Mover
        The mover.
    t_int : float or ndarray
        Seconds since the first read of ``integration``.
    integration : int
        1-based integration number.
    integration_period : float
        Seconds between the starts of successive integrations; used only for movers
        present in every integration (``mover.integration is None``).

    Returns
    -------
    x, y : float or ndarray
        Position (px).
    """
    offset = 0.0 if mover.integration is not None else (integration - 1) * integration_period
    dt = np.asarray(t_int, dtype=float) + offset - mover.t_ref
    return mover.x0 + mover.vx * dt, mover.y0 + mover.vy * dt


def random_stars(n, shape, rng, flux_range=(1.0, 3000.0), x_range=None):
    """Draw stars at uniformly random positions with log-uniform fluxes.

    Parameters
    ----------
    n : int
        Number of stars.
    shape : tuple of int
        ``(ny, nx)`` of the array.
    rng : numpy.random.Generator
        Random generator.
    flux_range : tuple of float
        Smallest and largest count rate (DN/s).
    x_range : tuple of float, optional
        Column range ``(xmin, xmax)`` to place stars in; by default the whole width
        (the caller passes the light-sensitive columns).

    Returns
    -------
    list of Star
    """
    ny, nx = shape
    xmin, xmax = x_range if x_range is not None else (-0.5, nx - 0.5)
    xs = rng.uniform(xmin, xmax, n)
    ys = rng.uniform(-0.5, ny - 0.5, n)
    lo, hi = np.log(flux_range[0]), np.log(flux_range[1])
    fluxes = np.exp(rng.uniform(lo, hi, n))
    return [Star(float(x), float(y), float(f)) for x, y, f in zip(xs, ys, fluxes)]


def render_stars(stars, shape, psf):
    """Count-rate image (DN/s) of fixed stars.

    Each star is rendered only in a box of half-size ``psf.radius`` around it.

    Parameters
    ----------
    stars : sequence of Star
        The stars.
    shape : tuple of int
        ``(ny, nx)`` of the image.
    psf : PSFModel
        The PSF.

    Returns
    -------
    ndarray, shape (ny, nx), float64
    """
    ny, nx = shape
    image = np.zeros(shape, dtype=float)
    r = psf.radius
    for star in stars:
        x0 = max(int(np.floor(star.x)) - r, 0)
        x1 = min(int(np.ceil(star.x)) + r + 1, nx)
        y0 = max(int(np.floor(star.y)) - r, 0)
        y1 = min(int(np.ceil(star.y)) + r + 1, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        stamp = psf.render(
            np.array([[star.x]]),
            np.array([[star.y]]),
            np.arange(x0, x1, dtype=float),
            np.arange(y0, y1, dtype=float),
        )[0]
        image[y0:y1, x0:x1] += star.flux * stamp
    return image
