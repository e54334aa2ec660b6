"""Where the shift-and-stack scan runs: numba on the CPU, or CUDA kernels through CuPy on a GPU.

The CUDA kernels (:func:`scan_cuda`) are the numba kernels of
:mod:`~jwst_asteroid_step.search.matched_filter` written for one GPU thread per
starting pixel: the same additions in the same order, the same float32
rounding of every shift, the same strict comparison over the velocities
visited in the same order, so both backends give the same candidates.  Long
stacks are scanned as two halves laid out by :func:`halves_layout` on both.
A scan is one kernel launch per call (two per block of coarse velocities for
the halves): a per-plane array formulation was bound by CuPy's launch
overhead and scanned no faster than numba on 16 CPU cores.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["HalvesLayout", "gpu_unavailable_reason", "halves_layout", "scan_cuda"]


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
    ux, uy : ndarray, float32, shape (n_coarse,)
        Coarse velocities at which the halves are stacked.
    order : ndarray, int, shape (n_vel,)
        The fine velocities grouped by coarse velocity (stable): the order in
        which both backends visit them, so ties resolve alike.
    cell : ndarray, int64, shape (n_vel,)
        Coarse velocity of each fine velocity, in that order.
    bounds : ndarray, int, shape (n_coarse + 1,)
        Coarse velocity ``c`` holds visits ``bounds[c]`` to ``bounds[c + 1]``.
    pad : int
        Margin (px) of the half stacks around the planes.
    """

    split: int
    c_a: float
    c_b: float
    t_off: np.ndarray
    ux: np.ndarray
    uy: np.ndarray
    order: np.ndarray
    cell: np.ndarray
    bounds: np.ndarray
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
    order = np.argsort(cell_of, kind="stable")
    cell = cell_of[order].astype(np.int64)
    pad = int(np.ceil(max(np.abs(vxs).max(), np.abs(vys).max()) * max(abs(c_a), abs(c_b)))) + 1
    ux, uy = (coarse * half_step).astype(np.float32).T
    return HalvesLayout(split=split, c_a=c_a, c_b=c_b, t_off=t_off, ux=np.ascontiguousarray(ux),
                        uy=np.ascontiguousarray(uy), order=order, cell=cell,
                        bounds=np.searchsorted(cell, np.arange(len(coarse) + 1)), pad=pad)


_CUDA_SOURCE = r"""
extern "C" {

// _scan: every starting pixel (x, y) over the velocities [0, n_vel).
__global__ void scan_full(const float* planes, int n_bins, int ny, int nx, const float* t_bin,
                          const float* vxs, const float* vys, const float* vnorm, int n_vel,
                          float* best, int* best_iv)
{
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y;
    if (x >= nx) return;
    float top = best[(size_t)y * nx + x];
    int top_iv = best_iv[(size_t)y * nx + x];
    for (int iv = 0; iv < n_vel; ++iv) {
        float acc = 0.0f;
        for (int b = 0; b < n_bins; ++b) {
            int yy = y + (int)rintf(__fmul_rn(vys[iv], t_bin[b]));
            if (yy < 0 || yy >= ny) continue;
            int xx = x + (int)rintf(__fmul_rn(vxs[iv], t_bin[b]));
            if (xx < 0 || xx >= nx) continue;
            acc = __fadd_rn(acc, planes[((size_t)b * ny + yy) * nx + xx]);
        }
        float s = __fmul_rn(acc, vnorm[iv]);
        if (s > top) { top = s; top_iv = iv; }
    }
    best[(size_t)y * nx + x] = top;
    best_iv[(size_t)y * nx + x] = top_iv;
}

// _half_sums: out[h, iu] (padded by pad) for the coarse velocities [0, n_u).
__global__ void half_sums(const float* planes, int n_bins, int ny, int nx, const float* t_off, int split,
                          const float* uxs, const float* uys, int n_u, int pad, float* out)
{
    int nyp = ny + 2 * pad, nxp = nx + 2 * pad;
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int r = blockIdx.y;
    int hu = blockIdx.z;
    if (c >= nxp) return;
    int h = hu / n_u, iu = hu % n_u;
    int b0 = h ? split : 0, b1 = h ? n_bins : split;
    float acc = 0.0f;
    for (int b = b0; b < b1; ++b) {
        int yy = r - pad + (int)rintf(__fmul_rn(uys[iu], t_off[b]));
        if (yy < 0 || yy >= ny) continue;
        int xx = c - pad + (int)rintf(__fmul_rn(uxs[iu], t_off[b]));
        if (xx < 0 || xx >= nx) continue;
        acc = __fadd_rn(acc, planes[((size_t)b * ny + yy) * nx + xx]);
    }
    out[((size_t)hu * nyp + r) * nxp + c] = acc;
}

// _scan_halves: velocity i adds half stacks cell[i] at (ya, xa) and (yb, xb), all offsets in the padded frame.
__global__ void scan_halves(const float* halves, int n_u, int pad, int ny, int nx, const int* cell,
                            const int* ya, const int* xa, const int* yb, const int* xb, const float* vnorm,
                            int n_vel, int pos0, float* best, int* best_pos)
{
    int nyp = ny + 2 * pad, nxp = nx + 2 * pad;
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y;
    if (x >= nx) return;
    const float* h_b = halves + (size_t)n_u * nyp * nxp;
    float top = best[(size_t)y * nx + x];
    int top_pos = best_pos[(size_t)y * nx + x];
    for (int i = 0; i < n_vel; ++i) {
        size_t plane = (size_t)cell[i] * nyp * nxp;
        float a = halves[plane + (size_t)(y + ya[i]) * nxp + x + xa[i]];
        float b = h_b[plane + (size_t)(y + yb[i]) * nxp + x + xb[i]];
        float s = __fmul_rn(__fadd_rn(a, b), vnorm[i]);
        if (s > top) { top = s; top_pos = pos0 + i; }
    }
    best[(size_t)y * nx + x] = top;
    best_pos[(size_t)y * nx + x] = top_pos;
}

}
"""

#: GPU memory (bytes) for the half stacks of one block of coarse velocities.
_HALVES_BYTES = 2**30
_THREADS = 256


@lru_cache(maxsize=1)
def _kernels():
    import cupy

    module = cupy.RawModule(code=_CUDA_SOURCE)
    return {name: module.get_function(name) for name in ("scan_full", "half_sums", "scan_halves")}


def scan_cuda(planes, t_bin, vxs, vys, vnorm, norm, half_step=0.0):
    """For every starting pixel, the best SNR over the velocities and its index, on a CUDA GPU.

    The numba scan (``matched_filter._scan``, or ``_scan_by_halves`` with
    ``half_step`` > 0) as CUDA kernels through CuPy.

    Parameters
    ----------
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
        ``half_step`` apart (:func:`halves_layout`).

    Returns
    -------
    best_snr : ndarray, float32, shape (ny, nx)
    best_iv : ndarray, int32, shape (ny, nx)
        Host arrays; ``-inf`` and the first velocity visited where no velocity
        reached the pixel.
    """
    import cupy

    kernels = _kernels()
    n_bins, ny, nx = planes.shape
    dev = cupy.asarray(np.ascontiguousarray(planes, dtype=np.float32))

    def f32(a):
        return cupy.asarray(np.ascontiguousarray(a, dtype=np.float32))

    def i32(a):
        return cupy.asarray(np.ascontiguousarray(a, dtype=np.int32))

    # The best of acc * vnorm over the velocities, then times the pixel's own
    # normalisation, as the numba kernels do.
    best = cupy.full((ny, nx), -np.inf, dtype=cupy.float32)
    best_pos = cupy.zeros((ny, nx), dtype=cupy.int32)
    grid = ((nx + _THREADS - 1) // _THREADS, ny)
    if half_step > 0:
        lay = halves_layout(t_bin, vxs, vys, half_step)
        pad, n_coarse = lay.pad, lay.ux.size
        nyp, nxp = ny + 2 * pad, nx + 2 * pad
        block = int(max(1, min(n_coarse, _HALVES_BYTES // (8 * nyp * nxp))))
        # Flat, so that a block of n_u coarse velocities is the contiguous (2, n_u, nyp, nxp) the kernels index.
        buffer = cupy.empty(2 * block * nyp * nxp, dtype=cupy.float32)
        # numba rounds its float32 velocities times the float64 middles in float64.
        vx, vy = vxs[lay.order].astype(np.float64), vys[lay.order].astype(np.float64)
        ya, xa = pad + np.rint(vy * lay.c_a), pad + np.rint(vx * lay.c_a)
        yb, xb = pad + np.rint(vy * lay.c_b), pad + np.rint(vx * lay.c_b)
        sorted_vnorm = vnorm[lay.order]
        for first in range(0, n_coarse, block):
            n_u = min(block, n_coarse - first)
            halves = buffer[:2 * n_u * nyp * nxp]
            kernels["half_sums"](((nxp + _THREADS - 1) // _THREADS, nyp, 2 * n_u), (_THREADS,),
                                 (dev, np.int32(n_bins), np.int32(ny), np.int32(nx), f32(lay.t_off),
                                  np.int32(lay.split), f32(lay.ux[first:first + n_u]),
                                  f32(lay.uy[first:first + n_u]), np.int32(n_u), np.int32(pad), halves))
            lo, hi = lay.bounds[first], lay.bounds[first + n_u]
            kernels["scan_halves"](grid, (_THREADS,),
                                   (halves, np.int32(n_u), np.int32(pad), np.int32(ny), np.int32(nx),
                                    i32(lay.cell[lo:hi] - first), i32(ya[lo:hi]), i32(xa[lo:hi]),
                                    i32(yb[lo:hi]), i32(xb[lo:hi]), f32(sorted_vnorm[lo:hi]), np.int32(hi - lo),
                                    np.int32(lo), best, best_pos))
        visit = lay.order
    else:
        kernels["scan_full"](grid, (_THREADS,),
                             (dev, np.int32(n_bins), np.int32(ny), np.int32(nx), f32(t_bin), f32(vxs), f32(vys),
                              f32(vnorm), np.int32(vxs.size), best, best_pos))
        visit = np.arange(vxs.size)
    snr = best * cupy.asarray(norm, dtype=cupy.float32)
    # Where best * norm is not above -inf (NaN at norm 0), the numba merge keeps -inf.
    merged = snr > -np.inf
    snr = cupy.where(merged, snr, cupy.float32(-np.inf))
    best_pos = cupy.where(merged, best_pos, 0)
    return cupy.asnumpy(snr), visit[cupy.asnumpy(best_pos)].astype(np.int32)
