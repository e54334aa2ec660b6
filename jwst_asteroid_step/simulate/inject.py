"""Synthetic movers added to existing ramps: the measuring bench on real data.

Two methods, both returning a new ``RampModel`` and a truth table and never
touching the input:

``charge`` (:func:`inject_movers`)
    Renders each mover with the package PSF, mover model and time base (the same
    as :func:`~.ramps.simulate_ramp`), draws the shot noise of the *added* charge
    (``poisson(charge * gain) / gain``), and adds it to the reads as raw DN.  The
    flux is given, or chosen to reach a matched-filter SNR measured with the
    input ramp's own noise: per-pixel background from the median group difference
    (:func:`~jwst_asteroid_step.ramp.differences.pixel_background`) and the
    ``read_noise_cds`` parameter, in the package noise model
    (:mod:`jwst_asteroid_step.ramp.noise`).  Where the sum crosses ``saturation``
    the read is clipped and flagged SATURATED from then on; a pixel already
    saturated in the input is left as it was.

    Limits: the source is only as real as the PSF model (by default the PSF computed
    from JWST's optics, cruciform included; no brighter-fatter or nonlinearity, no
    IPC); the added charge is perfectly linear on top of a
    possibly non-linear input; the injected SNR uses the diagonal noise model
    (read noise of adjacent differences is in fact anti-correlated, see the tests)
    and a background estimated from the data, which cosmic rays, stars or a real
    mover in a pixel bias only slightly because the median is used; the Poisson
    noise of the background already in the ramp is of course not re-drawn.

``shift`` (:func:`shift_inject`)
    The "shift the group differences" method of earlier MIRI asteroid studies:
    take a real stationary star, cut its group differences in a box, subtract the
    local background (clipped mean of a ring around the box, per difference), and
    re-place difference ``k`` shifted by ``v * (t_k - t_ref)`` with ``t_k`` the
    middle of that difference, so the star appears to move; the shift is an
    integer number of pixels or sub-pixel by bilinear or Fourier interpolation.
    In place, the star's own differences are removed first (the whole background-
    subtracted box moves with it); or the moving copy is inserted elsewhere, in
    a star-free region, leaving the star.

    Limits: (1) noise double-counting: the box carries its own read, background
    and star shot noise along, so inserted copies add that noise on top of the
    destination's (variance about doubled in the box), and in place the trailing
    strip the box uncovers holds the flat ring background with no noise while the
    leading strip has doubled noise; (2) PSF sampling: within one difference the
    star does not trail, so the method is right only for motions well below a
    PSF width per group (~< 0.5 px/group), and sub-pixel shifts of an
    undersampled PSF are approximate (bilinear interpolation broadens the PSF and
    lowers the noise by up to a factor 2 in variance at half-pixel shifts; Fourier
    interpolation keeps the noise but rings at sharp features and wraps at the
    box edge, which the zero padding only softens); (3) background subtraction:
    errors in the ring median per difference are carried along as a flat offset
    over the box (about ``area * sigma / sqrt(n_ring)`` DN in total: the ring is
    6 px wide, so ~250 DN for the default F770W box with 7 DN read noise); a
    non-flat background (nebula, neighbouring star) moves with the source; (4) saturation: a star that saturates, or has a cosmic ray in its
    box, gives clipped or spiked differences that are moved with it — pick an
    unsaturated, isolated star (saturated boxes raise a warning); (5) flux and
    SNR in the truth are estimates from the star's own differences and the PSF
    model, not a known input.
"""

import warnings

import numpy as np
from astropy.table import Table
from scipy import ndimage
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

from ..psf import psf_for_filter
from ..ramp.noise import matched_filter_snr, matched_filter_snr_correlated, matched_filter_snr_moving
from ..timebase import difference_intervals, integration_start_mjd
from .metadata import reference_columns_in
from .ramps import (
    _TRUTH_UNITS,
    TRUTH_COLUMNS,
    _flux_for_snr,
    _on_detector,
    mover_patches,
    pixel_series,
)
from .scene import Mover

__all__ = ["inject_movers", "shift_inject", "ramp_background"]

_DO_NOT_USE = dqflags.group["DO_NOT_USE"]
_SATURATED = dqflags.group["SATURATED"]
_PIX_DO_NOT_USE = dqflags.pixel["DO_NOT_USE"]
_PIX_DEAD = dqflags.pixel["DEAD"]
_PIX_REFERENCE = dqflags.pixel["REFERENCE_PIXEL"]
_SECONDS_PER_DAY = 86400.0

#: Extra truth columns of injections: expected DN added on the array.
INJECT_COLUMNS = TRUTH_COLUMNS + ("charge",)


class _Ramp:
    """Geometry, timing and masks of an input ramp, read once."""

    def __init__(self, model, group_time=None, filter=None, psf=None):
        self.nints, self.ngroups, self.ny, self.nx = model.data.shape
        self.shape = (self.ny, self.nx)
        gt = group_time if group_time is not None else model.meta.exposure.group_time
        if not gt or gt <= 0:
            raise ValueError("The ramp has no meta.exposure.group_time; pass group_time=")
        self.group_time = float(gt)
        self.t0, self.t1 = difference_intervals(self.ngroups, self.group_time)
        if psf is None:
            name = filter or model.meta.instrument.filter
            if name is None:
                raise ValueError("The ramp has no meta.instrument.filter; pass filter= or psf=")
            psf = psf_for_filter(name)
        self.psf = psf
        pixeldq = np.asarray(model.pixeldq) if model.pixeldq is not None else 0
        pixeldq = np.broadcast_to(pixeldq, self.shape).astype(np.uint32)
        self.pixeldq = pixeldq
        sensitive = np.ones(self.nx, dtype=bool)
        xstart = model.meta.subarray.xstart
        if xstart is not None:
            sensitive[reference_columns_in(xstart, self.nx)] = False
        self.sensitive = sensitive
        # Pixels that collect light, and pixels whose cells the pipeline uses.
        self.live = sensitive[None, :] & ((pixeldq & (_PIX_DEAD | _PIX_REFERENCE)) == 0)
        self.usable = self.live & ((pixeldq & _PIX_DO_NOT_USE) == 0)
        self.offsets = self._integration_offsets(model)

    def _integration_offsets(self, model):
        """Seconds from integration 1's first read to each integration's."""
        exp = model.meta.exposure
        period = (self.ngroups + (exp.nresets_between_ints or 0)) * self.group_time
        try:
            int_times = model.int_times
        except AttributeError:
            int_times = None
        start = exp.start_time if exp.start_time is not None else 0.0
        mjd = [integration_start_mjd(i + 1, start, period, int_times) for i in range(self.nints)]
        return (np.asarray(mjd) - mjd[0]) * _SECONDS_PER_DAY

    def position(self, mover, t, integration):
        offset = 0.0 if mover.integration is not None else self.offsets[integration - 1]
        dt = np.asarray(t, dtype=float) + offset - mover.t_ref
        return mover.x0 + mover.vx * dt, mover.y0 + mover.vy * dt

    def patches(self, mover, integration, flux):
        """Expected charge boxes of a mover at ``flux``, dead pixels zeroed."""
        x_ref, y_ref = self.position(mover, mover.t_ref, integration)
        out = mover_patches(x_ref, y_ref, mover.vx, mover.vy, flux, mover.t_ref, self.t0, self.t1,
                            self.psf, self.shape, self.sensitive)
        for p in out:
            p.data[:, ~self.live[p.y0 : p.y1, p.x0 : p.x1]] = 0.0
        return out, x_ref, y_ref


def _as_ramp_model(model):
    if isinstance(model, datamodels.RampModel):
        return model
    return datamodels.RampModel(model)


def _edge_valid(groupdq, assume_edge_flags):
    """Differences usable at exposure level, per integration: shape (nints, ndiff).

    Groups DO_NOT_USE in every pixel are bad.  A raw ramp has no such flags yet;
    with ``assume_edge_flags`` the first and last groups count as flagged, as MIRI
    Stage 1 (RSCD/firstframe and lastframe) will flag them.
    """
    ngroups = groupdq.shape[1]
    bad = np.all((groupdq & _DO_NOT_USE) != 0, axis=(2, 3))
    if assume_edge_flags == "auto":
        assume_edge_flags = not bad.any()
    if assume_edge_flags and ngroups > 2:
        bad[:, 0] = True
        bad[:, -1] = True
    return ~(bad[:, 1:] | bad[:, :-1])


def _saturation_flagged(model, saturation):
    """GROUPDQ with SATURATED also where the input reads reach ``saturation``.

    A raw ramp has not been through the saturation step; the SNR should still
    leave out what that step will flag.
    """
    gdq = np.array(model.groupdq, copy=True)
    sat = np.asarray(model.data) >= np.asarray(saturation, dtype=np.float32)
    np.logical_or.accumulate(sat, axis=1, out=sat)
    gdq[sat] |= _SATURATED
    return gdq


def ramp_background(model):
    """Per-pixel background of a ramp: the median group difference (DN per difference).

    Uses the detector's own estimate
    (:func:`~jwst_asteroid_step.ramp.differences.pixel_background`), per
    integration, ignoring DO_NOT_USE / SATURATED groups and unusable pixels.

    Parameters
    ----------
    model : RampModel

    Returns
    -------
    ndarray, float, shape (nints, ny, nx)
        Median difference (DN), clipped at 0; NaN where no difference is usable.
    """
    from ..ramp.differences import group_differences, pixel_background  # numba: load lazily

    out = []
    for i in range(model.data.shape[0]):
        diff = group_differences(model.data[i], model.groupdq[i], model.pixeldq)
        med, _ = pixel_background(diff)
        out.append(np.maximum(med.astype(float), 0.0))
    return np.asarray(out)


def _cells(patches, background, gdq, edge_valid, usable, read_noise_cds, gain):
    """Signal, background (DN) and noise parameters of the track cells the pipeline uses.

    A cell (difference, pixel) counts when it has signal, neither of its groups is
    DO_NOT_USE or SATURATED, its difference is valid at exposure level, and its
    pixel is usable with a finite background.  ``read_noise_cds`` and ``gain`` are
    (ny, nx) arrays.  Returns four flat arrays in the same cell order.
    """
    out = ([], [], [], [])
    for p in patches:
        win = (slice(p.y0, p.y1), slice(p.x0, p.x1))
        bad = (gdq[(slice(p.k0, p.k1 + 1),) + win] & (_DO_NOT_USE | _SATURATED)) != 0
        b = background[win]
        ok = ~(bad[1:] | bad[:-1]) & edge_valid[p.k0 : p.k1, None, None]
        ok &= (usable[win] & np.isfinite(b))[None] & (p.data > 0)
        for dest, src in zip(out, (p.data, b, read_noise_cds[win], gain[win])):
            dest.append(np.broadcast_to(src, p.data.shape)[ok])
    return tuple(np.concatenate(a) if a else np.zeros(0) for a in out)


def _snrs(patches, background, gdq, edge_valid, usable, read_noise_cds, gain):
    """DESIGN.md §3 SNR, the correlated-noise optimal SNR, and the optimal SNR of the
    track's changes in time (``snr_moving``) of a mover's track."""
    s, b, r, g = _cells(patches, background, gdq, edge_valid, usable, read_noise_cds, gain)
    if s.size == 0:
        return 0.0, 0.0, 0.0
    ys, xs, series = pixel_series(patches, edge_valid.size)
    bad = (gdq[:, ys, xs] & (_DO_NOT_USE | _SATURATED)) != 0
    bkg = background[ys, xs][None, :]
    ok = ~(bad[1:] | bad[:-1]) & edge_valid[:, None] & (usable[ys, xs] & np.isfinite(bkg[0]))[None]
    args = (series, np.nan_to_num(bkg), ok, read_noise_cds[ys, xs][None], gain[ys, xs][None])
    optimal, _ = matched_filter_snr_correlated(*args)
    return matched_filter_snr(s, b, r, g), optimal, matched_filter_snr_moving(*args)


def _saturate(old, new, gdq, saturation):
    """Clip and flag reads where added charge crosses saturation, in place.

    ``old``/``new``/``gdq`` are (ngroups, n) reads of the touched pixels before and
    after adding charge.  Cells saturated in the input (flagged, or at or above
    the level) keep their input value; cells newly at or above it are clipped to
    the level, and every read from the first such one on is flagged SATURATED.

    Returns the number of newly saturated cells.
    """
    sat = np.broadcast_to(saturation, old.shape)
    before = ((gdq & _SATURATED) != 0) | (old >= sat)
    np.logical_or.accumulate(before, axis=0, out=before)
    after = before | (new >= sat)
    np.logical_or.accumulate(after, axis=0, out=after)
    new[before] = old[before]
    fresh = after & ~before
    new[fresh] = sat[fresh]
    gdq[np.logical_or.accumulate(fresh, axis=0)] |= _SATURATED
    return int(np.count_nonzero(fresh))


def _add_patches(reads, patch_list, touched):
    """Add noisy per-difference charge boxes to one integration's reads."""
    ngroups = reads.shape[0]
    for p, charge in patch_list:
        box = (slice(p.y0, p.y1), slice(p.x0, p.x1))
        reads[(slice(p.k0 + 1, p.k1 + 1),) + box] += np.cumsum(charge, axis=0)
        if p.k1 + 1 < ngroups:
            reads[(slice(p.k1 + 1, None),) + box] += charge.sum(axis=0)
        touched[box] |= charge.any(axis=0)


def _finish_integration(new_data, old_data, groupdq, touched, saturation):
    """Apply saturation to the touched pixels of one integration."""
    ys, xs = np.nonzero(touched)
    if ys.size == 0:
        return 0
    new = new_data[:, ys, xs].astype(float)
    old = old_data[:, ys, xs].astype(float)
    gdq = groupdq[:, ys, xs]
    sat = saturation[ys, xs] if np.ndim(saturation) == 2 else saturation
    n = _saturate(old, new, gdq, sat)
    new_data[:, ys, xs] = new
    groupdq[:, ys, xs] = gdq
    return n


def _truth_table(rows, columns):
    dtypes = {"id": int, "integration": int, "n_groups_on_detector": int}
    table = Table({c: np.array([r[c] for r in rows], dtype=dtypes.get(c, float)) for c in columns})
    for name, unit in {**_TRUTH_UNITS, "charge": "DN"}.items():
        if name in table.colnames:
            table[name].unit = unit
    return table


def inject_movers(
    model,
    movers,
    *,
    snr=None,
    read_noise_cds=7.0,
    gain=4.0,
    saturation=50000.0,
    filter=None,
    psf=None,
    group_time=None,
    assume_edge_flags="auto",
    poisson=True,
    seed=None,
):
    """Add synthetic movers to a ramp as raw charge ("charge" method).

    Parameters
    ----------
    model : RampModel or str
        The ramp (any MIRI ramp, simulated or real; a path is opened as a
        ``RampModel``).  It is not modified.
    movers : sequence of Mover
        Movers in this ramp's pixel coordinates and time base (``t_ref`` in
        seconds since the first read of integration ``integration``, or of
        integration 1 for movers present in all integrations).
    snr : float or sequence of float, optional
        Matched-filter SNR to give each mover instead of its ``flux``, in the first
        integration it is in; noise from the ramp's own median group difference
        and ``read_noise_cds`` (see :func:`ramp_background`).
    read_noise_cds : float or ndarray, shape (ny, nx)
        CDS read noise (DN) used for the SNR.
    gain : float or ndarray, shape (ny, nx)
        Electrons per DN: shot noise of the added charge and the SNR's Poisson term.
    saturation : float or ndarray, shape (ny, nx)
        Raw saturation level (DN, bias included).
    filter : str, optional
        Filter for the PSF when the ramp has no ``meta.instrument.filter``.
    psf : PSFModel or SeparablePSF, optional
        Overrides the filter's default PSF (:func:`~jwst_asteroid_step.psf.psf_for_filter`).
    group_time : float, optional
        Overrides ``meta.exposure.group_time``.
    assume_edge_flags : {"auto", True, False}
        Whether the SNR leaves out differences touching the first and last group
        when GROUPDQ does not yet flag them ("auto": when no group is flagged
        DO_NOT_USE in every pixel, as in a raw ``uncal`` ramp).
    poisson : bool
        Draw shot noise of the added charge (``False``: add the expected charge).
    seed : int or numpy.random.Generator, optional
        Random seed.

    Returns
    -------
    new_model : RampModel
        A copy of the input with the movers added and SATURATED flags updated.
    truth : astropy.table.Table
        One row per mover per integration with :data:`~.ramps.TRUTH_COLUMNS` plus
        ``charge`` (expected DN added on the light-sensitive array).  ``snr`` is
        computed with the input ramp's noise over the cells the pipeline will use.
        ``meta`` holds the method, parameters and ``n_saturated`` cells.
    """
    model = _as_ramp_model(model)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    movers = list(movers)
    ramp = _Ramp(model, group_time, filter, psf)
    if snr is not None:
        targets = np.broadcast_to(np.asarray(snr, dtype=float), (len(movers),))
    for m in movers:
        if m.integration is not None and not 1 <= m.integration <= ramp.nints:
            raise ValueError(f"Mover in integration {m.integration} but the ramp has {ramp.nints}")

    groupdq_in = np.asarray(model.groupdq)
    snr_gdq = _saturation_flagged(model, saturation)
    edge_valid = _edge_valid(groupdq_in, assume_edge_flags)
    background = ramp_background(model)
    gain_b = np.broadcast_to(np.asarray(gain, dtype=float), ramp.shape)
    rn_b = np.broadcast_to(np.asarray(read_noise_cds, dtype=float), ramp.shape)

    def cells(patches, i):
        return _cells(patches, background[i - 1], snr_gdq[i - 1], edge_valid[i - 1],
                      ramp.usable, rn_b, gain_b)

    # Fluxes: given, or the one reaching the target SNR in the mover's first integration.
    fluxes = []
    for j, m in enumerate(movers):
        if snr is None:
            fluxes.append(float(m.flux))
            continue
        first = m.integration or 1
        unit, _, _ = ramp.patches(m, first, 1.0)
        s, b, r, g = cells(unit, first)
        fluxes.append(_flux_for_snr(float(targets[j]), s, b, r, g))

    new = model.copy()
    new_data = np.array(model.data, dtype=np.float32)
    new_gdq = groupdq_in.copy()
    t_reads = np.arange(ramp.ngroups) * ramp.group_time
    rows, n_saturated = [], 0
    for i in range(1, ramp.nints + 1):
        touched = np.zeros(ramp.shape, dtype=bool)
        added = []
        for j, (m, flux) in enumerate(zip(movers, fluxes), start=1):
            if m.integration is not None and m.integration != i:
                continue
            patches, x_ref, y_ref = ramp.patches(m, i, flux)
            for p in patches:
                g = gain_b[p.y0 : p.y1, p.x0 : p.x1][None]
                # A separable PSF's truncated terms ripple slightly below zero far out.
                charge = np.maximum(p.data, 0.0)
                if poisson:
                    charge = rng.poisson(charge * g) / g
                added.append((p, charge))
            snr_i, snr_opt, snr_mov = _snrs(patches, background[i - 1], snr_gdq[i - 1],
                                   edge_valid[i - 1], ramp.usable, rn_b, gain_b)
            xr, yr = ramp.position(m, t_reads, i)
            rows.append({
                "id": j, "integration": i, "x": float(x_ref), "y": float(y_ref),
                "t_ref": float(m.t_ref), "vx": float(m.vx), "vy": float(m.vy),
                "speed_px_per_group": float(np.hypot(m.vx, m.vy) * ramp.group_time),
                "flux": float(flux),
                "snr": snr_i,
                "snr_optimal": snr_opt,
                "snr_moving": snr_mov,
                "n_groups_on_detector": int(np.count_nonzero(
                    _on_detector(xr, yr, ramp.shape, ramp.sensitive))),
                "x_start": float(xr[0]), "y_start": float(yr[0]),
                "x_end": float(xr[-1]), "y_end": float(yr[-1]),
                "charge": float(sum(p.data.sum() for p in patches)),
            })
        _add_patches(new_data[i - 1], added, touched)
        n_saturated += _finish_integration(new_data[i - 1], model.data[i - 1], new_gdq[i - 1],
                                           touched, saturation)

    new.data = new_data
    new.groupdq = new_gdq
    truth = _truth_table(rows, INJECT_COLUMNS)
    truth.meta.update({
        "method": "charge",
        "input": str(model.meta.filename),
        "group_time": ramp.group_time,
        "psf_fwhm": float(ramp.psf.fwhm),
        "read_noise_cds": float(np.mean(read_noise_cds)),
        "gain": float(np.mean(gain)),
        "saturation": float(np.mean(saturation)),
        "snr_target": None if snr is None else [float(v) for v in targets],
        "poisson": bool(poisson),
        "n_saturated": int(n_saturated),
        "seed": seed if isinstance(seed, (int, np.integer)) else None,
    })
    return new, truth


def _ring_background(ring_diffs, clip=5.0):
    """Background (DN per pixel) of each difference from the pixels of a ring.

    A clipped *mean*, not a median: the box's background error is multiplied by
    its area, and the mean of differences telescopes over the ramp (its errors
    cancel between adjacent differences, which share a read) while a median's do
    not.  Cosmic rays and stars in the ring are clipped at ``clip`` robust sigmas.

    Parameters
    ----------
    ring_diffs : ndarray, shape (K, n)
        Group differences of the n ring pixels.

    Returns
    -------
    ndarray, shape (K,)
    """
    med = np.median(ring_diffs, axis=1, keepdims=True)
    mad = 1.4826 * np.median(np.abs(ring_diffs - med), axis=1, keepdims=True)
    ok = np.abs(ring_diffs - med) <= clip * np.maximum(mad, 1e-6)
    return np.sum(np.where(ok, ring_diffs, 0.0), axis=1) / np.maximum(ok.sum(axis=1), 1)


def _fractional_shift(stamp, fy, fx, interpolation):
    """Shift a zero-padded stamp by a sub-pixel amount."""
    if interpolation == "integer" or (fy == 0 and fx == 0):
        return stamp
    if interpolation == "bilinear":
        return ndimage.shift(stamp, (fy, fx), order=1, mode="constant", cval=0.0)
    if interpolation == "fourier":
        return np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(stamp), (fy, fx))).real
    raise ValueError(f"interpolation must be 'integer', 'bilinear' or 'fourier', got {interpolation!r}")


def shift_inject(
    model,
    star,
    velocity,
    *,
    to=None,
    t_ref=0.0,
    half_size=None,
    remove_source=None,
    interpolation="fourier",
    integrations=None,
    read_noise_cds=7.0,
    gain=4.0,
    saturation=50000.0,
    filter=None,
    psf=None,
    group_time=None,
    assume_edge_flags="auto",
):
    """Make a real star move by shifting its group differences ("shift" method).

    Parameters
    ----------
    model : RampModel or str
        The ramp; not modified.
    star : tuple of float
        ``(x, y)`` of the stationary source to use (px).
    velocity : tuple of float
        ``(vx, vy)`` of the moving copy (px/s).
    to : tuple of float, optional
        Position (px) of the moving copy at ``t_ref``; by default the star's own
        position (moving the star in place).
    t_ref : float
        Time (s since each integration's first read) at which the copy is at ``to``.
    half_size : int, optional
        Half-size (px) of the box cut around the star; by default the PSF's
        radius (> 99 % of the flux).
    remove_source : bool, optional
        Remove the star's own (background-subtracted) differences from its box.
        Default: ``True`` in place, ``False`` when inserting elsewhere.
    interpolation : {"fourier", "bilinear", "integer"}
        How sub-pixel shifts are made; "integer" rounds the shift.
    integrations : sequence of int, optional
        1-based integrations to modify; by default all.
    read_noise_cds, gain : float
        Noise parameters for the truth SNR.
    saturation : float or ndarray
        Raw saturation level (DN).
    filter, psf, group_time, assume_edge_flags :
        As for :func:`inject_movers`.

    Returns
    -------
    new_model : RampModel
        The ramp with the moving copy.
    truth : astropy.table.Table
        One row per integration, columns as :func:`inject_movers`; ``flux`` is the
        star's flux measured from its own differences, ``charge`` the DN moved and
        ``snr`` the matched-filter SNR of a PSF-model mover of that flux with the
        ramp's noise.  ``meta`` records the star, the method and its options.

    Notes
    -----
    See the module docstring for what the method gets wrong: noise carried
    along with the box, no trailing within a difference, interpolation effects,
    background and saturation.
    """
    model = _as_ramp_model(model)
    ramp = _Ramp(model, group_time, filter, psf)
    xs, ys = (float(v) for v in star)
    vx, vy = (float(v) for v in velocity)
    dest = (xs, ys) if to is None else tuple(float(v) for v in to)
    in_place = to is None
    if remove_source is None:
        remove_source = in_place
    h = int(half_size) if half_size is not None else int(ramp.psf.radius)
    cx, cy = round(xs), round(ys)
    if not (h <= cx < ramp.nx - h and h <= cy < ramp.ny - h):
        raise ValueError(f"The {2 * h + 1} px box around the star ({xs}, {ys}) leaves the array")
    pad = 2
    box = (slice(cy - h, cy + h + 1), slice(cx - h, cx + h + 1))
    ring_h = h + 6
    ry0, ry1 = max(cy - ring_h, 0), min(cy + ring_h + 1, ramp.ny)
    rx0, rx1 = max(cx - ring_h, 0), min(cx + ring_h + 1, ramp.nx)
    yy, xx = np.mgrid[ry0:ry1, rx0:rx1]
    ring = (np.maximum(abs(yy - cy), abs(xx - cx)) > h) & ramp.usable[ry0:ry1, rx0:rx1]

    t_mid = 0.5 * (ramp.t0 + ramp.t1)
    groupdq_in = np.asarray(model.groupdq)
    snr_gdq = _saturation_flagged(model, saturation)
    edge_valid = _edge_valid(groupdq_in, assume_edge_flags)
    background = ramp_background(model)
    gain_b = np.broadcast_to(np.asarray(gain, dtype=float), ramp.shape)
    rn_b = np.broadcast_to(np.asarray(read_noise_cds, dtype=float), ramp.shape)
    todo = range(1, ramp.nints + 1) if integrations is None else [int(i) for i in integrations]

    new = model.copy()
    new_data = np.array(model.data, dtype=np.float32)
    new_gdq = groupdq_in.copy()
    rows, n_saturated, n_star_saturated = [], 0, 0
    t_reads = np.arange(ramp.ngroups) * ramp.group_time
    for i in todo:
        sci = np.asarray(model.data[i - 1], dtype=float)
        n_star_saturated += int(np.count_nonzero(
            ((groupdq_in[i - 1][(slice(None),) + box] & _SATURATED) != 0)
            | (sci[(slice(None),) + box] >= np.max(saturation))))
        diff = np.diff(sci, axis=0)
        ring_bkg = _ring_background(diff[:, ry0:ry1, rx0:rx1][:, ring])
        stamps = diff[(slice(None),) + box] - ring_bkg[:, None, None]

        # The modified differences live in one window covering box and track.
        shifts = np.array(dest)[None, :] - np.array([xs, ys])[None, :] + (
            (t_mid - t_ref)[:, None] * np.array([vx, vy])[None, :])
        ishift = np.rint(shifts).astype(int)
        frac = shifts - ishift
        wy0 = max(min(cy - h, cy - h + ishift[:, 1].min()) - pad, 0)
        wy1 = min(max(cy + h + 1, cy + h + 1 + ishift[:, 1].max()) + pad, ramp.ny)
        wx0 = max(min(cx - h, cx - h + ishift[:, 0].min()) - pad, 0)
        wx1 = min(max(cx + h + 1, cx + h + 1 + ishift[:, 0].max()) + pad, ramp.nx)
        window = diff[:, wy0:wy1, wx0:wx1].copy()
        if remove_source:
            window[:, cy - h - wy0 : cy + h + 1 - wy0, cx - h - wx0 : cx + h + 1 - wx0] -= stamps
        moved = 0.0
        for k in range(ramp.ngroups - 1):
            padded = np.pad(stamps[k], pad)
            shifted = _fractional_shift(padded, frac[k, 1], frac[k, 0], interpolation)
            y0 = cy - h - pad + ishift[k, 1] - wy0
            x0 = cx - h - pad + ishift[k, 0] - wx0
            # Clip the placed stamp to the window (the array edge): charge off it is lost.
            sy0, sx0 = max(0, -y0), max(0, -x0)
            sy1 = min(shifted.shape[0], window.shape[1] - y0)
            sx1 = min(shifted.shape[1], window.shape[2] - x0)
            if sy0 < sy1 and sx0 < sx1:
                piece = shifted[sy0:sy1, sx0:sx1]
                live = ramp.live[wy0 + y0 + sy0 : wy0 + y0 + sy1, wx0 + x0 + sx0 : wx0 + x0 + sx1]
                window[k, y0 + sy0 : y0 + sy1, x0 + sx0 : x0 + sx1] += piece * live
                moved += float(np.sum(piece * live))
        reads = sci[0, wy0:wy1, wx0:wx1][None] + np.concatenate(
            [np.zeros((1,) + window.shape[1:]), np.cumsum(window, axis=0)])
        new_data[i - 1, :, wy0:wy1, wx0:wx1] = reads

        touched = np.zeros(ramp.shape, dtype=bool)
        touched[wy0:wy1, wx0:wx1] = True
        n_saturated += _finish_integration(new_data[i - 1], model.data[i - 1], new_gdq[i - 1],
                                           touched, saturation)

        # Truth: the star's measured flux, and the SNR of a PSF-model mover like it.
        valid = edge_valid[i - 1]
        flux = float(stamps[valid].sum() / (valid.sum() * ramp.group_time)) if valid.any() else 0.0
        mover = Mover(dest[0], dest[1], vx, vy, max(flux, 0.0), t_ref=t_ref, integration=i)
        patches, _, _ = ramp.patches(mover, i, mover.flux)
        snr_i, snr_opt, snr_mov = _snrs(patches, background[i - 1], snr_gdq[i - 1], valid,
                               ramp.usable, rn_b, gain_b)
        xr, yr = ramp.position(mover, t_reads, i)
        rows.append({
            "id": 1, "integration": i, "x": dest[0], "y": dest[1], "t_ref": float(t_ref),
            "vx": vx, "vy": vy, "speed_px_per_group": float(np.hypot(vx, vy) * ramp.group_time),
            "flux": flux,
            "snr": snr_i,
            "snr_optimal": snr_opt,
            "snr_moving": snr_mov,
            "n_groups_on_detector": int(np.count_nonzero(
                _on_detector(xr, yr, ramp.shape, ramp.sensitive))),
            "x_start": float(xr[0]), "y_start": float(yr[0]),
            "x_end": float(xr[-1]), "y_end": float(yr[-1]),
            "charge": moved,
        })

    if n_star_saturated:
        warnings.warn(
            f"The star's box has {n_star_saturated} saturated reads: the shift method moves "
            "clipped differences; pick an unsaturated star", stacklevel=2)
    new.data = new_data
    new.groupdq = new_gdq
    truth = _truth_table(rows, INJECT_COLUMNS)
    truth.meta.update({
        "method": "shift",
        "input": str(model.meta.filename),
        "star_x": xs, "star_y": ys,
        "in_place": bool(in_place),
        "remove_source": bool(remove_source),
        "interpolation": interpolation,
        "half_size": h,
        "group_time": ramp.group_time,
        "n_saturated": int(n_saturated),
        "n_star_saturated": int(n_star_saturated),
    })
    return new, truth
