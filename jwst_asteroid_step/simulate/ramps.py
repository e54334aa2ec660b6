"""Simulated MIRI imager ramps with movers, stars and cosmic rays, and their truth.

The ramp is built from its group differences, which is how the detector sees it:

1. expected charge per pixel and group difference (DN): sky, stars and hot pixels
   (constant in time), plus each mover from
   :func:`~jwst_asteroid_step.mover_model.mover_differences`; dead pixels and
   reference columns collect nothing;
2. shot noise, drawn in electrons (``poisson(charge * gain) / gain``);
3. cosmic-ray steps and showers (prompt charge plus a slow leak) added to the
   differences they arrive in;
4. cumulative sum into reads (read 0 at ``t_int = 0`` holds no charge), read noise
   of ``read_noise_cds / sqrt(2)`` per read (so a difference has CDS noise
   ``read_noise_cds``), bias;
5. saturation: reads at or above ``saturation`` (raw DN, bias included, as the
   jwst saturation step compares) are clipped and flagged SATURATED from the
   first such read onwards;
6. group flags as MIRI Stage 1 sets them (:mod:`.group_flags`): DO_NOT_USE on the
   first and last group, and optionally the RSCD step's leading groups.

The noise drawn here has, per difference, exactly the variance of the package
noise model (:mod:`jwst_asteroid_step.ramp.noise`), so the detector's weights
match it.  Read noise is drawn per read, as in a real MIRI ramp (the real
ground-test ramp shows the same anticorrelation), so adjacent differences of a
pixel have covariance ``-read_noise_cds**2 / 2``, which the diagonal DESIGN.md §3
SNR ignores; the truth table therefore carries both ``snr`` and ``snr_optimal``.
Work is done in blocks of rows so that a full-frame, 100-group ramp needs little
more memory than its own float32 cube.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack
from scipy.optimize import brentq
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

from ..mover_model import mover_differences
from ..psf import psf_for_filter
from ..ramp.noise import matched_filter_snr, matched_filter_snr_correlated, matched_filter_snr_moving
from ..timebase import difference_intervals
from .bad_pixels import bad_pixel_effects, cdp7_pixel_dq
from .cosmic_rays import SHOWER_RATE, draw_cosmic_rays, draw_showers
from .group_flags import rscd_group_flags, rscd_skip_counts, valid_differences
from .metadata import (
    SUBARRAYS,
    fill_miri_imager_meta,
    group_time_for,
    integration_period,
    reference_pixel_columns,
)
from .scene import default_background, mover_position, random_stars, render_stars

__all__ = [
    "simulate_ramp",
    "snr_to_flux",
    "mover_patches",
    "mover_snr",
    "mover_snr_optimal",
    "first_saturated_read",
    "pixel_series",
    "save_simulation",
    "TRUTH_COLUMNS",
]

#: Columns of the truth table, in order.
TRUTH_COLUMNS = (
    "id",
    "integration",
    "x",
    "y",
    "t_ref",
    "vx",
    "vy",
    "speed_px_per_group",
    "flux",
    "snr",
    "snr_optimal",
    "snr_moving",
    "n_groups_on_detector",
    "x_start",
    "y_start",
    "x_end",
    "y_end",
)
_TRUTH_UNITS = {
    "x": "pix", "y": "pix", "t_ref": "s", "vx": "pix / s", "vy": "pix / s",
    "speed_px_per_group": "pix", "flux": "DN / s",
    "x_start": "pix", "y_start": "pix", "x_end": "pix", "y_end": "pix",
}

_DO_NOT_USE = dqflags.group["DO_NOT_USE"]
_SATURATED = dqflags.group["SATURATED"]
_REFERENCE_PIXEL = dqflags.pixel["REFERENCE_PIXEL"]
_PIXEL_DO_NOT_USE = dqflags.pixel["DO_NOT_USE"]


@dataclass(frozen=True)
class Patch:
    """Expected source charge (DN) of a mover over a block of group differences.

    ``data[k - k0, y - y0, x - x0]`` is the charge in pixel ``(y, x)`` during
    difference ``k`` for ``k0 <= k < k1``; zero outside the patch.
    """

    k0: int
    k1: int
    y0: int
    y1: int
    x0: int
    x1: int
    data: np.ndarray


def _sensitive_columns(subarray):
    nx = SUBARRAYS[subarray]["xsize"]
    sensitive = np.ones(nx, dtype=bool)
    sensitive[reference_pixel_columns(subarray)] = False
    return sensitive


def mover_patches(x_ref, y_ref, vx, vy, flux, t_ref, t0, t1, psf, shape, sensitive_columns=None):
    """Render a mover's expected charge only near its track.

    The group differences are split into blocks over which the mover travels at
    most about one PSF box width, and each block is rendered in a box of half-size
    ``psf.radius`` around that stretch of the track, clipped to the array.  A fast
    mover thus costs a chain of small boxes, never a full frame per group.

    Parameters
    ----------
    x_ref, y_ref, vx, vy, flux, t_ref : float
        Mover position (px) at ``t_ref`` (s), velocity (px/s), count rate (DN/s).
    t0, t1 : ndarray, shape (K,)
        Group-difference intervals (s), from
        :func:`~jwst_asteroid_step.timebase.difference_intervals`.
    psf : PSFModel or SeparablePSF
        The PSF.
    shape : tuple of int
        ``(ny, nx)`` of the array.
    sensitive_columns : ndarray of bool, shape (nx,), optional
        Columns that collect light; charge on the others (reference pixels) is
        set to zero.

    Returns
    -------
    list of Patch
        Blocks in increasing time order; they never share a difference.
    """
    ny, nx = shape
    t0 = np.asarray(t0, dtype=float)
    t1 = np.asarray(t1, dtype=float)
    n_diff = t0.size
    r = psf.radius
    step = np.hypot(vx, vy) * float(np.max(t1 - t0)) if n_diff else 0.0
    block = n_diff if step <= 0 else max(1, int(max(2 * r, 1) // step))
    patches = []
    for k0 in range(0, n_diff, max(block, 1)):
        k1 = min(k0 + block, n_diff)
        xa, ya = x_ref + vx * (t0[k0] - t_ref), y_ref + vy * (t0[k0] - t_ref)
        xb, yb = x_ref + vx * (t1[k1 - 1] - t_ref), y_ref + vy * (t1[k1 - 1] - t_ref)
        bx0 = max(int(np.floor(min(xa, xb))) - r, 0)
        bx1 = min(int(np.ceil(max(xa, xb))) + r + 1, nx)
        by0 = max(int(np.floor(min(ya, yb))) - r, 0)
        by1 = min(int(np.ceil(max(ya, yb))) + r + 1, ny)
        if bx0 >= bx1 or by0 >= by1:
            continue
        data = mover_differences(
            x_ref, y_ref, vx, vy, flux, t_ref, t0[k0:k1], t1[k0:k1], psf,
            np.arange(bx0, bx1, dtype=float), np.arange(by0, by1, dtype=float),
        )
        if sensitive_columns is not None:
            data[:, :, ~sensitive_columns[bx0:bx1]] = 0.0
        patches.append(Patch(k0, k1, by0, by1, bx0, bx1, data))
    return patches


def first_saturated_read(static_rate, bias, saturation, group_time, ngroups):
    """Index of the first read the static scene saturates, per pixel.

    Read ``j`` (at ``j * group_time``) holds ``bias + static_rate * j * group_time``
    on average; it saturates when that reaches ``saturation``.

    Returns
    -------
    ndarray of int, shape (ny, nx)
        ``ngroups`` where the pixel never saturates.
    """
    head = np.asarray(saturation, dtype=float) - np.asarray(bias, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        reads = np.where(static_rate > 0, np.ceil(head / (static_rate * group_time)), np.inf)
    reads = np.where(head <= 0, 0, reads)
    return np.minimum(reads, ngroups).astype(int)


def _track_cells(patches, static_rate, dt, valid, usable=None, first_sat=None):
    """Signal and background (DN) of every cell the mover touches.

    Returns flat arrays over the (difference, pixel) cells with signal, in valid
    differences and usable pixels only, and before the pixel saturates (difference
    ``k`` needs read ``k + 1`` unsaturated); the patches never share a cell, so the
    cells are distinct.
    """
    signal, background = [], []
    for p in patches:
        use = valid[p.k0 : p.k1]
        if not np.any(use):
            continue
        s = p.data[use]
        bkg = static_rate[p.y0 : p.y1, p.x0 : p.x1][None, :, :] * dt[p.k0 : p.k1][use, None, None]
        on = s > 0
        if usable is not None:
            on &= usable[p.y0 : p.y1, p.x0 : p.x1][None, :, :]
        if first_sat is not None:
            k = np.arange(p.k0, p.k1)[use]
            on &= (k[:, None, None] + 1) < first_sat[p.y0 : p.y1, p.x0 : p.x1][None, :, :]
        signal.append(s[on])
        background.append(np.broadcast_to(bkg, s.shape)[on])
    if not signal:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(signal), np.concatenate(background)


def mover_snr(patches, static_rate, dt, valid, read_noise_cds, gain, usable=None, first_sat=None):
    """Matched-filter SNR of a rendered mover (DESIGN.md §3).

    Parameters
    ----------
    patches : list of Patch
        From :func:`mover_patches`.
    static_rate : ndarray, shape (ny, nx)
        Sky plus stars (DN/s) in each pixel.
    dt : ndarray, shape (K,)
        Length (s) of each group difference.
    valid : ndarray of bool, shape (K,)
        Differences that count (``False`` for those touching a DO_NOT_USE group).
    read_noise_cds, gain : float
        CDS read noise (DN) and gain (e/DN).
    usable : ndarray of bool, shape (ny, nx), optional
        Pixels whose cells count (``False`` for DO_NOT_USE and dead pixels).
    first_sat : ndarray of int, shape (ny, nx), optional
        First saturated read per pixel (:func:`first_saturated_read`); later
        differences do not count.

    Returns
    -------
    float
        :func:`~jwst_asteroid_step.ramp.noise.matched_filter_snr` over every cell
        of the track.
    """
    signal, background = _track_cells(patches, static_rate, dt, valid, usable, first_sat)
    if signal.size == 0:
        return 0.0
    return matched_filter_snr(signal, background, read_noise_cds, gain)


def pixel_series(patches, n_diff):
    """Each touched pixel's whole time series of a mover's expected charge.

    Parameters
    ----------
    patches : list of Patch
        From :func:`mover_patches`.
    n_diff : int
        Differences per integration.

    Returns
    -------
    ys, xs : ndarray of int, shape (N,)
        Pixels with signal in any difference.
    signal : ndarray, shape (n_diff, N)
        Expected charge (DN), zero where the mover is not.
    """
    keys = []
    for p in patches:
        on = np.argwhere(p.data.any(axis=0))
        keys.append((on[:, 0] + p.y0) * 1_000_000 + on[:, 1] + p.x0)
    if not keys:
        return np.zeros(0, int), np.zeros(0, int), np.zeros((n_diff, 0))
    keys = np.unique(np.concatenate(keys))
    ys, xs = keys // 1_000_000, keys % 1_000_000
    signal = np.zeros((n_diff, keys.size))
    for p in patches:
        yy, xx = np.mgrid[p.y0 : p.y1, p.x0 : p.x1]
        col = np.searchsorted(keys, yy * 1_000_000 + xx)
        inside = (col < keys.size) & (keys[np.minimum(col, keys.size - 1)] == yy * 1_000_000 + xx)
        signal[p.k0 : p.k1, col[inside]] = p.data[:, inside]
    return ys, xs, signal


def mover_snr_optimal(
    patches, static_rate, dt, valid, read_noise_cds, gain, usable=None, first_sat=None, moving=False
):
    """SNR of the ideal matched filter with correlated read noise (see
    :func:`~jwst_asteroid_step.ramp.noise.matched_filter_snr_correlated`).

    Same arguments as :func:`mover_snr`; with ``moving`` the SNR of the track's
    changes in time only, each pixel's constant level fitted too
    (:func:`~jwst_asteroid_step.ramp.noise.matched_filter_snr_moving`).
    """
    ys, xs, signal = pixel_series(patches, dt.size)
    if xs.size == 0:
        return 0.0
    v = np.broadcast_to(np.asarray(valid)[:, None], signal.shape)
    if usable is not None:
        v = v & usable[ys, xs][None, :]
    if first_sat is not None:
        v = v & ((np.arange(dt.size)[:, None] + 1) < first_sat[ys, xs][None, :])
    background = static_rate[ys, xs][None, :] * dt[:, None]
    rn = np.asarray(read_noise_cds, dtype=float)
    g = np.asarray(gain, dtype=float)
    rn = rn[ys, xs][None] if rn.ndim == 2 else rn
    g = g[ys, xs][None] if g.ndim == 2 else g
    if moving:
        return matched_filter_snr_moving(signal, background, v, rn, g)
    return matched_filter_snr_correlated(signal, background, v, rn, g)[0]


def _valid_differences(n_groups, flag_edges):
    """Differences not touching a DO_NOT_USE edge group."""
    return valid_differences(n_groups, flag_edges)


def _static_rate(shape, background, stars, psf, sensitive, extra=None, live=None):
    rate = np.broadcast_to(np.asarray(background, dtype=float), shape).copy()
    if stars:
        rate += render_stars(stars, shape, psf)
    if extra is not None:
        rate += extra
    rate[:, ~sensitive] = 0.0  # reference pixels collect no light
    if live is not None:
        rate[~live] = 0.0
    return rate


def _flux_for_snr(target_snr, unit_signal, background, read_noise_cds, gain):
    """Flux scale that gives ``unit_signal`` (the track at flux 1) a target SNR.

    SNR grows monotonically with flux, so bracket in log flux and use Brent's
    method.
    """
    if not target_snr > 0:
        raise ValueError(f"target_snr must be positive, got {target_snr!r}")
    if unit_signal.size == 0:
        raise ValueError("The mover's track has no valid group difference on the array")

    def excess(log_flux):
        return (
            matched_filter_snr(np.exp(log_flux) * unit_signal, background, read_noise_cds, gain)
            - target_snr
        )

    lo, hi = np.log(1e-6), np.log(1.0)
    while excess(lo) > 0:
        lo -= 5.0
        if lo < np.log(1e-30):
            raise ValueError("Could not bracket the flux: SNR does not fall with flux")
    while excess(hi) < 0:
        hi += 3.0
        if hi > np.log(1e30):
            raise ValueError("Could not bracket the flux: SNR stays below the target")
    return float(np.exp(brentq(excess, lo, hi, xtol=1e-12, rtol=1e-12)))


def _merge_deposits(*deposits):
    """Concatenate deposit dicts and sort them by row."""
    dep = {key: np.concatenate([d[key] for d in deposits]) for key in ("y", "x", "k", "dn")}
    order = np.argsort(dep["y"], kind="stable")
    return {key: val[order] for key, val in dep.items()}


def _on_detector(x, y, shape, sensitive):
    cols = np.flatnonzero(sensitive)
    return (x >= cols[0] - 0.5) & (x <= cols[-1] + 0.5) & (y >= -0.5) & (y <= shape[0] - 0.5)


def simulate_ramp(
    *,
    subarray="FULL",
    ngroups=50,
    nints=1,
    filter="F770W",
    readpatt="FAST",
    group_time=None,
    background=None,
    stars=0,
    star_flux_range=(1.0, 3000.0),
    movers=(),
    read_noise_cds=7.0,
    gain=4.0,
    bias=10000.0,
    saturation=50000.0,
    cosmic_ray_rate=5.0,
    cosmic_ray_amplitude_range=(50.0, 5000.0),
    shower_rate=SHOWER_RATE,
    shower_model=None,
    bad_pixels=None,
    hot_pixel_rate_range=(10.0, 1000.0),
    flag_edges=True,
    rscd=None,
    poisson=True,
    psf=None,
    start_mjd=60000.5,
    ra_ref=180.0,
    dec_ref=0.0,
    roll_ref=0.0,
    filename="jw_asteroid_sim_uncal.fits",
    seed=None,
    chunk_mbytes=32.0,
):
    """Simulate a MIRI imager ramp exposure with movers.

    Parameters
    ----------
    subarray : str
        ``FULL`` (1032 x 1024, x by y), ``BRIGHTSKY`` (512 x 512), ``SUB256``
        (256 x 256), ``SUB128`` (136 x 128) or ``SUB64`` (72 x 64).
    ngroups, nints : int
        Groups per integration and integrations.
    filter : str
        Imager filter; sets the PSF (:func:`~jwst_asteroid_step.psf.psf_for_filter`: the
        PSF computed from JWST's optics).
    readpatt : str
        ``FAST``, ``FASTR1``, ``SLOW`` or ``SLOWR1``.
    group_time : float, optional
        Seconds between reads; by default that of the subarray and pattern
        (2.77504 s for FULL FAST, 0.08512 s for SUB64, 23.88992 s for SLOW).
    background : float or ndarray, shape (ny, nx), optional
        Sky (plus dark) count rate per pixel (DN/s); by default the filter's
        approximate level, :data:`~.scene.FILTER_BACKGROUND` (1.5 DN/s at F560W
        to 400 DN/s at F2550W).
    stars : int or sequence of Star
        Fixed stars, or how many to draw at random (log-uniform in
        ``star_flux_range``, DN/s).
    star_flux_range : tuple of float
        Flux range for random stars.
    movers : sequence of Mover
        The movers; pixel coordinates of this subarray's SCI array.
    read_noise_cds : float
        CDS read noise (DN): the standard deviation of a group difference from
        read noise alone.  0 disables read noise.
    gain : float
        Electrons per DN; shot noise is drawn in electrons.
    bias : float or ndarray, shape (ny, nx)
        Bias level (DN) added to every read.
    saturation : float
        Raw level (DN, bias included) at which a pixel saturates.
    cosmic_ray_rate : float
        Cosmic-ray hits per second per cm² (25 µm pixels); 0 disables them.
    cosmic_ray_amplitude_range : tuple of float
        Total DN of a hit, drawn log-uniformly.
    shower_rate : float
        Showers per second per cm² (:func:`~.cosmic_rays.draw_showers`); the
        default gives one per 160 s on the full array, proportionally fewer on a
        subarray; 0 disables them.
    shower_model : ShowerModel, optional
        Shower size, brightness and charge leak; by default ``ShowerModel()``.
    bad_pixels : {"cdp7", None} or ndarray of uint32, shape (ny, nx)
        ``"cdp7"``: PIXELDQ from the real CDP7 imager mask cut to the subarray
        (:func:`~.bad_pixels.cdp7_pixel_dq`; needs the real-data directory);
        an array: JWST pixel flags to use.  DEAD pixels then collect no charge and
        HOT pixels get an extra dark rate.  ``None``: no bad pixels.
    hot_pixel_rate_range : tuple of float
        Extra dark rate (DN/s) of HOT pixels, drawn log-uniformly.
    flag_edges : bool
        Set DO_NOT_USE in GROUPDQ for the first and last group of every
        integration, as the firstframe and lastframe steps do.
    rscd : tuple of int, optional
        ``(group_skip1, group_skip)``: flag the leading groups of integration 1
        and of integrations 2+ DO_NOT_USE exactly as jwst 3.0's RSCD step does
        with those reference-file values (:func:`~.group_flags.rscd_group_flags`,
        including its small-ngroups rules and saturation back-off).
    poisson : bool
        Draw shot noise; ``False`` gives the expected charge exactly.
    psf : PSFModel or SeparablePSF, optional
        Overrides the filter's PSF.
    start_mjd : float
        UTC MJD of the first read of integration 1.
    ra_ref, dec_ref, roll_ref : float
        Pointing of the aperture reference point (deg), for ``meta``.
    filename : str
        ``meta.filename``.
    seed : int or numpy.random.Generator, optional
        Random seed; the same seed and inputs give the same ramp.
    chunk_mbytes : float
        Working-memory target (MB) for one block of rows.

    Returns
    -------
    model : stdatamodels.jwst.datamodels.RampModel
        SCI (nints, ngroups, ny, nx) float32 in DN, GROUPDQ (uint8) with
        DO_NOT_USE edges (and RSCD groups) and SATURATED, PIXELDQ with
        REFERENCE_PIXEL (and the bad-pixel flags), INT_TIMES, and MIRI imager
        metadata (:func:`~.metadata.fill_miri_imager_meta`).
    truth : astropy.table.Table
        One row per mover per integration, columns :data:`TRUTH_COLUMNS`: ``id``
        (1-based index in ``movers``), ``integration`` (1-based), ``x``, ``y`` at
        ``t_ref`` (s since that integration's first read), ``vx``, ``vy``,
        ``speed_px_per_group``, ``flux``, ``snr`` (matched-filter SNR of
        DESIGN.md §3 over the cells the pipeline uses: differences touching no
        DO_NOT_USE group and ending before the static scene (sky, stars, hot
        pixels) saturates the pixel, pixels neither DO_NOT_USE nor dead, on the
        array; noise
        from sky + stars + hot pixels + the mover, differences taken as
        independent), ``snr_optimal`` (the same cells with the true noise, in
        which adjacent differences share a read: the SNR of the ideal matched
        filter, higher than ``snr`` when read noise dominates and the mover
        lingers in pixels), ``snr_moving`` (the ideal SNR of the track's changes
        in time, each pixel's constant level fitted: what tells the mover from a
        star within one integration; far below ``snr_optimal`` for movers that
        cross less than their PSF), ``n_groups_on_detector`` (reads with the mover's
        centre on the light-sensitive array), and the track ends ``x_start``,
        ``y_start`` (first read) and ``x_end``, ``y_end`` (last read).
        ``truth.meta`` holds the simulation parameters, ``n_cosmic_rays`` and
        ``n_showers`` per integration, and three tables: ``truth.meta["stars"]``,
        ``truth.meta["cosmic_rays"]`` and ``truth.meta["showers"]`` (one row per
        event, with its ``integration``); :func:`save_simulation` writes those to
        files of their own.

    Notes
    -----
    Showers and hot-pixel rates are drawn from a child of the random generator
    (``rng.spawn``), so switching them on or off leaves every other random draw
    (stars, cosmic rays, noise) unchanged for a given seed.
    """
    subarray = subarray.upper()
    readpatt = readpatt.upper()
    if subarray not in SUBARRAYS:
        raise ValueError(f"Unknown subarray {subarray!r}; expected one of {sorted(SUBARRAYS)}")
    if ngroups < 2:
        raise ValueError(f"A ramp needs at least 2 groups, got ngroups={ngroups}")
    if nints < 1:
        raise ValueError(f"nints must be >= 1, got {nints}")
    if gain <= 0:
        raise ValueError(f"gain must be positive, got {gain}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    (extra_rng,) = rng.spawn(1)
    shape = (SUBARRAYS[subarray]["ysize"], SUBARRAYS[subarray]["xsize"])
    ny, nx = shape
    if group_time is None:
        group_time = group_time_for(subarray, readpatt)
    period = integration_period(ngroups, group_time, readpatt)
    if psf is None:
        psf = psf_for_filter(filter)
    sensitive = _sensitive_columns(subarray)
    cols = np.flatnonzero(sensitive)

    if isinstance(stars, (int, np.integer)):
        x_range = (cols[0] - 0.5, cols[-1] + 0.5)
        stars = random_stars(int(stars), shape, rng, star_flux_range, x_range)
    stars = list(stars)
    movers = list(movers)
    for m in movers:
        if m.integration is not None and m.integration > nints:
            raise ValueError(f"Mover in integration {m.integration} but nints={nints}")
    if background is None:
        background = default_background(filter)
    pixeldq = np.zeros(shape, dtype=np.uint32)
    pixeldq[:, ~sensitive] |= _REFERENCE_PIXEL
    if isinstance(bad_pixels, str):
        if bad_pixels.lower() != "cdp7":
            raise ValueError(f"bad_pixels must be 'cdp7', an array or None, got {bad_pixels!r}")
        pixeldq |= cdp7_pixel_dq(subarray)
    elif bad_pixels is not None:
        pixeldq |= np.asarray(bad_pixels, dtype=np.uint32)
    live, hot_rate = bad_pixel_effects(pixeldq, extra_rng, hot_pixel_rate_range)
    live &= sensitive[None, :]
    usable = live & ((pixeldq & _PIXEL_DO_NOT_USE) == 0)
    static_rate = _static_rate(shape, background, stars, psf, sensitive, hot_rate, live)
    bias_image = np.broadcast_to(np.asarray(bias, dtype=np.float32), shape)
    first_sat = first_saturated_read(static_rate, bias, saturation, group_time, ngroups)

    t0, t1 = difference_intervals(ngroups, group_time)
    dt = t1 - t0
    n_skip = rscd_skip_counts(ngroups, nints, *rscd) if rscd is not None else np.zeros(nints, int)
    t_reads = np.arange(ngroups) * group_time
    n_diff = ngroups - 1

    data = np.empty((nints, ngroups, ny, nx), dtype=np.float32)
    groupdq = np.zeros((nints, ngroups, ny, nx), dtype=np.uint8)
    sigma_read = read_noise_cds / np.sqrt(2.0)
    rows_per_chunk = max(1, int(chunk_mbytes * 2**20 // (8 * max(n_diff, 1) * nx)))

    truth_rows = []
    cr_tables = []
    shower_tables = []
    for integ in range(1, nints + 1):
        valid = valid_differences(ngroups, flag_edges, n_skip[integ - 1])
        patches = []
        for mid, m in enumerate(movers, start=1):
            if m.integration is not None and m.integration != integ:
                continue
            x_ref, y_ref = mover_position(m, m.t_ref, integ, period)
            mp = mover_patches(
                x_ref, y_ref, m.vx, m.vy, m.flux, m.t_ref, t0, t1, psf, shape, sensitive
            )
            for p in mp:
                p.data[:, ~live[p.y0 : p.y1, p.x0 : p.x1]] = 0.0  # dead pixels see nothing
            patches.extend(mp)
            xr, yr = mover_position(m, t_reads, integ, period)
            on_array = _on_detector(xr, yr, shape, sensitive)
            truth_rows.append(
                {
                    "id": mid,
                    "integration": integ,
                    "x": float(x_ref),
                    "y": float(y_ref),
                    "t_ref": float(m.t_ref),
                    "vx": float(m.vx),
                    "vy": float(m.vy),
                    "speed_px_per_group": float(np.hypot(m.vx, m.vy) * group_time),
                    "flux": float(m.flux),
                    "snr": mover_snr(
                        mp, static_rate, dt, valid, read_noise_cds, gain, usable, first_sat
                    ),
                    "snr_optimal": mover_snr_optimal(
                        mp, static_rate, dt, valid, read_noise_cds, gain, usable, first_sat
                    ),
                    "snr_moving": mover_snr_optimal(
                        mp, static_rate, dt, valid, read_noise_cds, gain, usable, first_sat,
                        moving=True,
                    ),
                    "n_groups_on_detector": int(np.count_nonzero(on_array)),
                    "x_start": float(xr[0]),
                    "y_start": float(yr[0]),
                    "x_end": float(xr[-1]),
                    "y_end": float(yr[-1]),
                }
            )

        events, deposits = draw_cosmic_rays(
            rng, shape, ngroups, group_time, cosmic_ray_rate, cosmic_ray_amplitude_range, sensitive
        )
        events["integration"] = np.full(len(events), integ, dtype=int)
        cr_tables.append(events)
        showers, shower_deposits = draw_showers(
            extra_rng, shape, ngroups, group_time, shower_rate, shower_model, sensitive
        )
        showers["integration"] = np.full(len(showers), integ, dtype=int)
        shower_tables.append(showers)
        dep = _merge_deposits(deposits, shower_deposits)
        if not live.all():
            keep = live[dep["y"], dep["x"]]
            dep = {key: val[keep] for key, val in dep.items()}

        for r0 in range(0, ny, rows_per_chunk):
            r1 = min(r0 + rows_per_chunk, ny)
            charge = np.empty((n_diff, r1 - r0, nx), dtype=float)
            charge[:] = static_rate[None, r0:r1, :] * dt[:, None, None]
            for p in patches:
                ya, yb = max(p.y0, r0), min(p.y1, r1)
                if ya < yb:
                    charge[p.k0 : p.k1, ya - r0 : yb - r0, p.x0 : p.x1] += p.data[
                        :, ya - p.y0 : yb - p.y0, :
                    ]
            # A separable PSF's truncated terms ripple slightly below zero far out; light cannot.
            np.maximum(charge, 0.0, out=charge)
            if poisson:
                charge *= gain
                charge[:] = rng.poisson(charge)
                charge /= gain
            i0, i1 = np.searchsorted(dep["y"], [r0, r1])
            if i1 > i0:
                where = (dep["k"][i0:i1], dep["y"][i0:i1] - r0, dep["x"][i0:i1])
                np.add.at(charge, where, dep["dn"][i0:i1])

            reads = data[integ - 1, :, r0:r1, :]
            reads[0] = 0.0
            np.cumsum(charge, axis=0, out=charge)  # in float64, then one cast
            reads[1:] = charge
            del charge
            reads += bias_image[None, r0:r1, :]
            if sigma_read > 0:
                reads += sigma_read * rng.standard_normal(reads.shape, dtype=np.float32)
            saturated = reads >= saturation
            if saturated.any():
                np.logical_or.accumulate(saturated, axis=0, out=saturated)
                reads[saturated] = saturation
                groupdq[integ - 1, :, r0:r1, :][saturated] |= _SATURATED

    if flag_edges:
        groupdq[:, 0] |= _DO_NOT_USE
        groupdq[:, -1] |= _DO_NOT_USE
    if rscd is not None:
        rscd_group_flags(groupdq, pixeldq, *rscd)

    model = datamodels.RampModel(data=data, groupdq=groupdq, pixeldq=pixeldq)
    fill_miri_imager_meta(
        model,
        filter=filter,
        subarray=subarray,
        readpatt=readpatt,
        ngroups=ngroups,
        nints=nints,
        group_time=group_time,
        start_mjd=start_mjd,
        ra_ref=ra_ref,
        dec_ref=dec_ref,
        roll_ref=roll_ref,
        filename=filename,
    )

    truth = _truth_table(truth_rows)
    cosmic_rays = vstack(cr_tables, metadata_conflicts="silent")
    shower_table = vstack(shower_tables, metadata_conflicts="silent")
    star_table = Table(
        {
            "x": [s.x for s in stars],
            "y": [s.y for s in stars],
            "flux": [s.flux for s in stars],
        },
        dtype=(float, float, float),
        units={"x": "pix", "y": "pix", "flux": "DN / s"},
    )
    truth.meta.update(
        {
            "subarray": subarray,
            "filter": filter.upper(),
            "readpatt": readpatt,
            "ngroups": int(ngroups),
            "nints": int(nints),
            "group_time": float(group_time),
            "integration_period": float(period),
            "start_mjd": float(start_mjd),
            "background_mean": float(np.mean(background)),
            "hot_pixel_rate_range": [float(v) for v in hot_pixel_rate_range],
            "bad_pixels": bad_pixels if isinstance(bad_pixels, str) else (
                None if bad_pixels is None else "array"),
            "n_dead_pixels": int(np.count_nonzero(sensitive[None, :] & ~live)),
            "n_hot_pixels": int(np.count_nonzero(hot_rate)),
            "rscd": None if rscd is None else [int(v) for v in rscd],
            "rscd_groups_flagged": [int(v) for v in n_skip],
            "read_noise_cds": float(read_noise_cds),
            "gain": float(gain),
            "bias_mean": float(np.mean(bias)),
            "saturation": float(saturation),
            "cosmic_ray_rate": float(cosmic_ray_rate),
            "n_cosmic_rays": [int(len(t)) for t in cr_tables],
            "shower_rate": float(shower_rate),
            "n_showers": [len(t) for t in shower_tables],
            "flag_edges": bool(flag_edges),
            "poisson": bool(poisson),
            "psf_model": psf.name,
            "psf_fwhm": float(psf.fwhm),
            "seed": seed if isinstance(seed, (int, np.integer)) else None,
            "stars": star_table,
            "cosmic_rays": cosmic_rays,
            "showers": shower_table,
        }
    )
    return model, truth


def _truth_table(rows):
    dtypes = {"id": int, "integration": int, "n_groups_on_detector": int}
    table = Table(
        {
            name: np.array([r[name] for r in rows], dtype=dtypes.get(name, float))
            for name in TRUTH_COLUMNS
        }
    )
    for name, unit in _TRUTH_UNITS.items():
        table[name].unit = unit
    return table


def snr_to_flux(
    target_snr,
    vx,
    vy,
    *,
    x=None,
    y=None,
    t_ref=None,
    ngroups=50,
    subarray="FULL",
    readpatt="FAST",
    group_time=None,
    filter="F770W",
    psf=None,
    background=None,
    stars=(),
    read_noise_cds=7.0,
    gain=4.0,
    flag_edges=True,
    bias=10000.0,
    saturation=50000.0,
):
    """Flux (DN/s) that gives a mover a requested matched-filter SNR.

    Uses the same rendering and SNR as the truth table of :func:`simulate_ramp`,
    so ``simulate_ramp(movers=[Mover(x, y, vx, vy, snr_to_flux(S, vx, vy, x=x,
    y=y, ...))], ...)`` reports ``snr == S`` for a mover in one integration (for a
    mover in every integration, in the first).  SNR grows monotonically with
    flux, so the flux is found by bracketing and Brent's method.

    Parameters
    ----------
    target_snr : float
        Requested matched-filter SNR (> 0).
    vx, vy : float
        Velocity (px/s).
    x, y : float, optional
        Position (px) at ``t_ref``; by default the centre of the light-sensitive
        array.
    t_ref : float, optional
        Reference time (s); by default the middle of the integration.
    ngroups : int
        Groups per integration.
    subarray, readpatt, group_time, filter, psf :
        As for :func:`simulate_ramp`.
    background : float or ndarray, optional
        Sky count rate per pixel (DN/s); by default the filter's
        (:data:`~.scene.FILTER_BACKGROUND`), as in :func:`simulate_ramp`.
    stars : sequence of Star
        Stars adding to the background.
    read_noise_cds, gain : float
        Noise parameters, as for :func:`simulate_ramp`.
    flag_edges : bool
        Whether the first and last groups are DO_NOT_USE (their differences do
        not count).
    bias, saturation : float or ndarray
        As for :func:`simulate_ramp`: differences after the static scene saturates
        a pixel do not count.

    Returns
    -------
    float
        Flux in DN/s.

    Raises
    ------
    ValueError
        If the target is not positive, or the track has no valid cell (off the
        array, or too few groups).
    """
    if not target_snr > 0:
        raise ValueError(f"target_snr must be positive, got {target_snr!r}")
    subarray = subarray.upper()
    shape = (SUBARRAYS[subarray]["ysize"], SUBARRAYS[subarray]["xsize"])
    sensitive = _sensitive_columns(subarray)
    cols = np.flatnonzero(sensitive)
    if group_time is None:
        group_time = group_time_for(subarray, readpatt)
    if psf is None:
        psf = psf_for_filter(filter)
    if background is None:
        background = default_background(filter)
    x = 0.5 * (cols[0] + cols[-1]) if x is None else x
    y = 0.5 * (shape[0] - 1) if y is None else y
    t_ref = 0.5 * (ngroups - 1) * group_time if t_ref is None else t_ref

    t0, t1 = difference_intervals(ngroups, group_time)
    patches = mover_patches(x, y, vx, vy, 1.0, t_ref, t0, t1, psf, shape, sensitive)
    static_rate = _static_rate(shape, background, list(stars), psf, sensitive)
    first_sat = first_saturated_read(static_rate, bias, saturation, group_time, ngroups)
    unit, bkg = _track_cells(
        patches, static_rate, t1 - t0, _valid_differences(ngroups, flag_edges), None, first_sat
    )
    return _flux_for_snr(target_snr, unit, bkg, read_noise_cds, gain)


def save_truth(truth, output_root, overwrite=True):
    """Write a truth table and the tables in its metadata.

    Writes ``<root>_truth.ecsv`` (the mover truth, with the scalar simulation
    parameters in its metadata) and, when present in ``truth.meta``,
    ``<root>_stars.ecsv``, ``<root>_cosmic_rays.ecsv`` and ``<root>_showers.ecsv``.

    Parameters
    ----------
    truth : astropy.table.Table
        Truth table from :func:`simulate_ramp`.
    output_root : str or path-like
        Path prefix of the files.
    overwrite : bool
        Overwrite existing files.

    Returns
    -------
    dict of str to Path
        Paths written, keyed ``"truth"``, ``"stars"``, ``"cosmic_rays"``, ``"showers"``.
    """
    root = Path(output_root)
    root.parent.mkdir(parents=True, exist_ok=True)
    out = truth.copy(copy_data=False)
    out.meta = {k: v for k, v in truth.meta.items() if not isinstance(v, Table)}
    paths = {"truth": root.with_name(f"{root.name}_truth.ecsv")}
    out.write(paths["truth"], format="ascii.ecsv", overwrite=overwrite)
    for key in ("stars", "cosmic_rays", "showers"):
        table = truth.meta.get(key)
        if isinstance(table, Table):
            paths[key] = root.with_name(f"{root.name}_{key}.ecsv")
            table.write(paths[key], format="ascii.ecsv", overwrite=overwrite)
    return paths


def save_simulation(model, truth, output_root, suffix="uncal", overwrite=True):
    """Write a simulated exposure and its truth.

    Writes ``<root>_<suffix>.fits`` (the ramp) and the files of :func:`save_truth`.

    Parameters
    ----------
    model : RampModel
        The ramp from :func:`simulate_ramp`.
    truth : astropy.table.Table
        Its truth table.
    output_root : str or path-like
        Path prefix of the files.
    suffix : str
        Suffix of the ramp file.
    overwrite : bool
        Overwrite existing files.

    Returns
    -------
    dict of str to Path
        Paths written, keyed ``"ramp"`` and as :func:`save_truth`.
    """
    root = Path(output_root)
    root.parent.mkdir(parents=True, exist_ok=True)
    paths = {"ramp": root.with_name(f"{root.name}_{suffix}.fits")}
    model.save(paths["ramp"], overwrite=overwrite)
    paths.update(save_truth(truth, root, overwrite=overwrite))
    return paths
