"""Where the shift-and-stack scan runs: numba on the CPU, or an array library (CuPy on a GPU).

The array path (:func:`scan_array`) is the same statistic as the numba kernels
of :mod:`~jwst_asteroid_step.search.matched_filter`, written with whole-plane
slices of an array module ``xp``: every (velocity, bin) is one shifted plane
addition, which a GPU does at memory bandwidth.  It runs with numpy too, which
is how the CPU tests check it against the numba kernels; with CuPy the planes
live on the GPU for one speed class at a time.  Both paths scan long stacks as
two halves laid out by :func:`halves_layout`, so they give the same candidates.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["HalvesLayout", "array_module", "gpu_unavailable_reason", "halves_layout", "scan_array"]


def gpu_unavailable_reason():
    """Why the ``cupy`` backend cannot run here, or None when it can.

    Returns
    -------
    str or None
    """
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install 'jwst-asteroid-step[gpu]')"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # noqa: BLE001 - CUDA raises its own error types when no driver
        return f"CuPy finds no CUDA device ({str(err).splitlines()[0][:120]})"
    return None if n > 0 else "CuPy finds no CUDA device"


def array_module(name):
    """The array module of a backend name: ``"numpy"`` or ``"cupy"``."""
    if name == "numpy":
        return np
    if name == "cupy":
        import cupy

        return cupy
    raise ValueError(f"unknown array backend {name!r}; expected 'numpy' or 'cupy'")


@dataclass(frozen=True)
class HalvesLayout:
    """How a stack is scanned as two halves on a coarse velocity grid.

    Attributes
    ----------
    split : int
        First bin of the second half.
    c_a, c_b : float
        Middle (groups from the reference time) of each half.
    t_off : ndarray, float32, shape (n_bins,)
        Each bin's time from its half's middle.
    coarse : ndarray, float32, shape (n_coarse, 2)
        Coarse velocities (vx, vy) at which the halves are stacked.
    cell_of : ndarray, int, shape (n_vel,)
        Coarse velocity of each fine velocity.
    order : ndarray, int, shape (n_vel,)
        The fine velocities grouped by coarse velocity (stable): the order in
        which both backends visit them, so ties resolve alike.
    pad : int
        Margin (px) of the half stacks around the planes.
    """

    split: int
    c_a: float
    c_b: float
    t_off: np.ndarray
    coarse: np.ndarray
    cell_of: np.ndarray
    order: np.ndarray
    pad: int


def halves_layout(t_bin, vxs, vys, half_step):
    """The two-halves layout of a stack with bin times ``t_bin`` for the velocities ``(vxs, vys)``.

    Parameters
    ----------
    t_bin : ndarray, float32, shape (n_bins,)
        Bin centres (groups) from the reference time.
    vxs, vys : ndarray, float32, shape (n_vel,)
        Fine velocities (px/group).
    half_step : float
        Spacing (px/group) of the coarse grid.

    Returns
    -------
    HalvesLayout
    """
    n_bins = t_bin.size
    split = n_bins // 2
    c_a, c_b = float(np.mean(t_bin[:split])), float(np.mean(t_bin[split:]))
    t_off = (t_bin - np.where(np.arange(n_bins) < split, c_a, c_b)).astype(np.float32)
    cells = np.rint(np.stack([vxs, vys], axis=1) / half_step).astype(np.int64)
    coarse, cell_of = np.unique(cells, axis=0, return_inverse=True)
    cell_of = cell_of.ravel()
    pad = int(np.ceil(max(np.abs(vxs).max(), np.abs(vys).max()) * max(abs(c_a), abs(c_b)))) + 1
    return HalvesLayout(split=split, c_a=c_a, c_b=c_b, t_off=t_off, coarse=(coarse * half_step).astype(np.float32),
                        cell_of=cell_of, order=np.argsort(cell_of, kind="stable"), pad=pad)


def _shifted_add(xp, dst, src, dy, dx, pad):
    """``dst[r, c] += src[r - pad + dy, c - pad + dx]`` wherever that sample is on ``src``."""
    ny, nx = src.shape
    r0, r1 = max(0, pad - dy), min(dst.shape[0], ny + pad - dy)
    c0, c1 = max(0, pad - dx), min(dst.shape[1], nx + pad - dx)
    if r1 > r0 and c1 > c0:
        dst[r0:r1, c0:c1] += src[r0 - pad + dy:r1 - pad + dy, c0 - pad + dx:c1 - pad + dx]


def scan_array(xp, planes, t_bin, vxs, vys, vnorm, norm, half_step=0.0):
    """For every starting pixel, the best SNR over the velocities and its index.

    Parameters
    ----------
    xp : module
        numpy or cupy.
    planes : ndarray, float32, shape (n_bins, ny, nx)
        PSF-correlated, pre-whitened bins (host memory).
    t_bin : ndarray, float32, shape (n_bins,)
        Bin centres (groups) from the reference time.
    vxs, vys, vnorm : ndarray, float32, shape (n_vel,)
        Velocities (px/group) and their SNR normalisation.
    norm : ndarray, float32, shape (ny, nx)
        Per-pixel SNR normalisation.
    half_step : float
        With ``half_step`` > 0 the stack is scanned as two halves on a grid
        ``half_step`` apart (:func:`halves_layout`), as the numba path does.

    Returns
    -------
    best_snr : ndarray, float32, shape (ny, nx)
    best_iv : ndarray, int32, shape (ny, nx)
        Host arrays; ``-inf`` and the first velocity visited where no velocity
        reached the pixel.
    """
    n_bins, ny, nx = planes.shape
    dev_planes = xp.asarray(planes)
    # As the numba kernels: the best of acc * vnorm over the velocities, then
    # times the pixel's own normalisation.
    best = xp.full((ny, nx), -np.inf, dtype=xp.float32)
    best_pos = xp.zeros((ny, nx), dtype=xp.int32)

    def keep_best(acc, scale, pos):
        s = acc * scale
        better = s > best
        best[...] = xp.where(better, s, best)
        best_pos[...] = xp.where(better, xp.int32(pos), best_pos)

    if half_step > 0:
        lay = halves_layout(t_bin, vxs, vys, half_step)
        pad = lay.pad
        halves = xp.empty((2, ny + 2 * pad, nx + 2 * pad), dtype=xp.float32)
        pos = 0
        for cell, (ux, uy) in enumerate(lay.coarse):
            halves[...] = 0.0
            for b in range(n_bins):
                # float32 products rounded half to even, as the numba kernels do.
                _shifted_add(xp, halves[int(b >= lay.split)], dev_planes[b], int(np.rint(uy * lay.t_off[b])),
                             int(np.rint(ux * lay.t_off[b])), pad)
            for iv in lay.order[pos:pos + np.count_nonzero(lay.cell_of == cell)]:
                # float64 products, as numba's float32 velocity times a float middle.
                ya, xa = pad + int(np.rint(float(vys[iv]) * lay.c_a)), pad + int(np.rint(float(vxs[iv]) * lay.c_a))
                yb, xb = pad + int(np.rint(float(vys[iv]) * lay.c_b)), pad + int(np.rint(float(vxs[iv]) * lay.c_b))
                keep_best(halves[0, ya:ya + ny, xa:xa + nx] + halves[1, yb:yb + ny, xb:xb + nx], vnorm[iv], pos)
                pos += 1
        visit = lay.order
    else:
        acc = xp.empty((ny, nx), dtype=xp.float32)
        for iv in range(vxs.size):
            acc[...] = 0.0
            for b in range(n_bins):
                _shifted_add(xp, acc, dev_planes[b], int(np.rint(vys[iv] * t_bin[b])),
                             int(np.rint(vxs[iv] * t_bin[b])), 0)
            keep_best(acc, vnorm[iv], iv)
        visit = np.arange(vxs.size)
    snr = best * xp.asarray(norm)
    # Where best * norm is not above -inf (NaN at norm 0), the numba merge keeps -inf.
    merged = snr > -np.inf
    snr = xp.where(merged, snr, xp.float32(-np.inf))
    best_pos = xp.where(merged, best_pos, 0)
    if xp is not np:
        snr, best_pos = xp.asnumpy(snr), xp.asnumpy(best_pos)
    return snr, visit[best_pos].astype(np.int32)
