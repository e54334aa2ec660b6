"""The matched-filter search with its scans on a GPU (``search_backend="cupy"``) against the numba scans.

Not part of ``run_all.py``: it needs a CUDA GPU and CuPy, and none of jwst.  It
times :func:`~jwst_asteroid_step.search.matched_filter.matched_filter_search`,
called as the step calls it, on a synthetic full-frame cube of group
differences: F770W sky of 5 DN/s per pixel with its shot and read noise, and a
few movers of 0.05-2 px/group.  Two searches: the step's default (main search
to 0.5 px/group, fast windows to 3 px/group) and the deep search (main search
to 3 px/group).  Each runs after a warm-up call on a small cube (numba
compilation, CUDA context and kernel compilation): with numba on all the CPU's
cores, on 2 threads (the development machine's count), and with the CUDA
kernels.  Per run: the whole search's time, the part spent in the velocity
scans (``_scan_maxima``), and how many candidates agree with the first run's.

Run from the repository root, on a machine with a CUDA GPU::

    python -m benchmarks.gpu_scan --ngroups 100 200 --deep-ngroups 100
"""

import argparse
import time

import numba
import numpy as np

from jwst_asteroid_step.config import DetectionConfig
from jwst_asteroid_step.mover_model import mover_differences
from jwst_asteroid_step.psf import psf_for_filter
from jwst_asteroid_step.search import backends
from jwst_asteroid_step.search import matched_filter as mf
from jwst_asteroid_step.timebase import difference_intervals

GROUP_TIME, READ_NOISE, GAIN, SKY = 2.77504, 7.0, 4.0, 5.0  # s, DN (CDS), e/DN, DN/s
PSF = psf_for_filter("F770W")
#: (x, y) on a 1024-px frame, (vx, vy) in px/group, flux in DN/s.
MOVERS = [(200.0, 300.0, 0.05, 0.02, 40.0), (700.0, 600.0, -0.2, 0.1, 20.0), (500.0, 200.0, 0.31, -0.12, 15.0),
          (300.0, 800.0, 0.45, 0.3, 15.0), (600.0, 450.0, 1.2, -0.7, 40.0), (150.0, 150.0, 2.0, 1.0, 60.0)]


def difference_cube(n_groups, ny, nx, seed=1):
    """Group differences (DN, float32) of sky, noise and :data:`MOVERS` scaled into the frame."""
    rng = np.random.default_rng(seed)
    per_diff = SKY * GROUP_TIME
    diff = rng.standard_normal((n_groups - 1, ny, nx), dtype=np.float32)
    diff *= np.float32(np.sqrt(per_diff / GAIN + READ_NOISE**2))
    diff += np.float32(per_diff)
    t0, t1 = difference_intervals(n_groups, GROUP_TIME)
    for x, y, vx, vy, flux in MOVERS:
        x, y = x * nx / 1024.0, y * ny / 1024.0
        half = 0.5 * max(abs(vx), abs(vy)) * n_groups + 3 * PSF.fwhm
        xs = np.arange(max(0, int(x - half)), min(nx, int(x + half) + 1))
        ys = np.arange(max(0, int(y - half)), min(ny, int(y + half) + 1))
        charge = mover_differences(x, y, vx / GROUP_TIME, vy / GROUP_TIME, flux, 0.5 * t1[-1], t0, t1, PSF,
                                   xs.astype(float), ys.astype(float))
        diff[:, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1] += charge.astype(np.float32)
    return diff


def run_search(diff, backend, deep=False):
    """The step's search of ``diff`` (a copy) on ``backend``: (candidates, seconds, scan seconds)."""
    config = DetectionConfig()
    ny, nx = diff.shape[1:]
    scan_s = [0.0]
    scan_maxima = mf._scan_maxima

    def timed_scan(*args, **kwargs):
        t = time.perf_counter()
        try:
            return scan_maxima(*args, **kwargs)
        finally:
            scan_s[0] += time.perf_counter() - t

    mf._scan_maxima = timed_scan
    try:
        work = diff.copy()
        t = time.perf_counter()
        found, _ = mf.matched_filter_search(
            work, np.zeros(work.shape, bool), np.full((ny, nx), SKY * GROUP_TIME), READ_NOISE, GAIN, PSF,
            v_max=config.deep_search_max_speed if deep else config.search_max_speed,
            snr_threshold=config.search_snr_threshold, grid_loss=config.grid_loss,
            max_candidates=config.search_max_candidates, overwrite=True, backend=backend,
            fast_max_speed=0.0 if deep else config.deep_search_max_speed, fast_window=config.fast_search_window,
            fast_snr_threshold=config.fast_search_snr_threshold, fast_confirm_snr=config.snr_threshold)
        total = time.perf_counter() - t
    finally:
        mf._scan_maxima = scan_maxima
    return np.array([[c.x, c.y, c.vx, c.vy, c.snr] for c in found]).reshape(-1, 5), total, scan_s[0]


def agreement(a, b):
    """How many candidates of ``a`` have a twin in ``b`` (position within 0.01 px, SNR within 1e-4)."""
    n = 0
    for row in a:
        close = (np.hypot(b[:, 0] - row[0], b[:, 1] - row[1]) < 0.01) & (np.abs(b[:, 4] - row[4]) < 1e-4 * row[4])
        n += bool(close.any())
    return n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ngroups", type=int, nargs="*", default=[100], help="default search")
    parser.add_argument("--deep-ngroups", type=int, nargs="*", default=[], help="deep search (no 2-thread run)")
    parser.add_argument("--size", type=int, default=1024, help="rows (the columns are 8 more, as MIRI's FULL)")
    args = parser.parse_args(argv)
    if backends.gpu_unavailable_reason():
        raise SystemExit(backends.gpu_unavailable_reason())
    import cupy

    cores = numba.config.NUMBA_NUM_THREADS
    print(f"GPU: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}, CuPy {cupy.__version__}; "
          f"CPU: {cores} numba threads")
    warm = difference_cube(40, 64, 64, seed=2)
    for backend in ("cpu", "cupy"):
        run_search(warm, backend)
    print("| search | ngroups | cube MB | scans on | search s | scans s | candidates | agree with the first |")
    print("|---|---|---|---|---|---|---|---|")
    for deep, lengths in ((False, args.ngroups), (True, args.deep_ngroups)):
        runs = [(f"cpu, {cores} threads", "cpu", cores), ("GPU", "cupy", cores)]
        if not deep:
            runs.insert(1, ("cpu, 2 threads", "cpu", 2))
        for n_groups in lengths:
            diff = difference_cube(n_groups, args.size, args.size + 8)
            reference = None
            for label, backend, threads in runs:
                numba.set_num_threads(threads)
                found, total, scans = run_search(diff, backend, deep)
                reference = found if reference is None else reference
                print(f"| {'deep' if deep else 'default'} | {n_groups} | {diff.nbytes / 2**20:.0f} | {label} | "
                      f"{total:.2f} | {scans:.2f} | {len(found)} | {agreement(found, reference)}/{len(reference)} |",
                      flush=True)
            numba.set_num_threads(cores)


if __name__ == "__main__":
    main()
