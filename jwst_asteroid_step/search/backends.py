"""Where the shift-and-stack scan runs: numba on the CPU, or an array library (CuPy on a GPU).

The array path (:func:`scan_array`) is the same statistic as the numba kernel
``matched_filter._scan``, written with whole-plane slices of an array module
``xp``: every (velocity, bin) is one shifted plane addition, which a GPU does
at memory bandwidth.  It runs with numpy too, which is how the CPU tests check
it against the numba kernel; with CuPy the planes live on the GPU for one speed
class at a time.
"""

import numpy as np

__all__ = ["array_module", "gpu_unavailable_reason", "scan_array"]


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


def scan_array(xp, planes, t_bin, vxs, vys, vnorm, norm):
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

    Returns
    -------
    best_snr : ndarray, float32, shape (ny, nx)
    best_iv : ndarray, int32, shape (ny, nx)
        Host arrays; ``-inf`` and 0 where no velocity reached the pixel.
    """
    n_bins, ny, nx = planes.shape
    dev_planes, dev_norm = xp.asarray(planes), xp.asarray(norm)
    best = xp.full((ny, nx), -np.inf, dtype=xp.float32)
    best_iv = xp.zeros((ny, nx), dtype=xp.int32)
    acc = xp.empty((ny, nx), dtype=xp.float32)
    for iv in range(vxs.size):
        acc[...] = 0.0
        for b in range(n_bins):
            # float32 products rounded half to even, as the numba kernel does.
            dy = int(np.rint(vys[iv] * t_bin[b]))
            dx = int(np.rint(vxs[iv] * t_bin[b]))
            y0, y1 = max(0, -dy), min(ny, ny - dy)
            x0, x1 = max(0, -dx), min(nx, nx - dx)
            if y1 > y0 and x1 > x0:
                acc[y0:y1, x0:x1] += dev_planes[b, y0 + dy:y1 + dy, x0 + dx:x1 + dx]
        snr = acc * dev_norm * vnorm[iv]
        better = snr > best
        best = xp.where(better, snr, best)
        best_iv = xp.where(better, xp.int32(iv), best_iv)
    if xp is np:
        return best, best_iv
    return xp.asnumpy(best), xp.asnumpy(best_iv)
