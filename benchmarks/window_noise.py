"""Spread of the fast windows' SNR in pure model noise, by speed.

Not part of ``run_all.py``.  The fast windows' statistic
(:func:`~jwst_asteroid_step.search.matched_filter._fast_candidates`) should have
unit spread in noise at every speed.  This builds model noise (read noise and
sky shot noise, the package's noise model) for a 100-group full-frame-timing
ramp, pre-whitens and PSF-correlates it as the search does, and prints the
robust spread of the windows' SNR per speed (``_window_spread``, as
``_excess_window_noise`` measures it) with the speed normalisation ``vnorm``
at that speed.  A spread that grows with speed means the normalisation
favours fast velocities: SNRs there are inflated by that factor.

Run from the repository root (about 15 s on 2 cores)::

    python -m benchmarks.window_noise
"""

import numpy as np

from jwst_asteroid_step.psf import psf_for_filter
from jwst_asteroid_step.ramp.systematics import trend_basis
from jwst_asteroid_step.search import matched_filter as mf

GROUP_TIME, GAIN, READ_NOISE, SKY = 2.77504, 4.0, 7.0, 5.0  # s, e/DN, DN (CDS), DN/s
SPEEDS = (0.6, 1.0, 1.5, 2.0, 2.5, 3.0)  # px/group, the default fast range
WINDOW = 12


def window_spreads(filter_name, n_diff=99, size=200, seed=1):
    """(speed, vnorm, spread) rows for one filter's PSF."""
    psf = psf_for_filter(filter_name)
    per_diff = SKY * GROUP_TIME
    basis = trend_basis(n_diff, 0)
    sigma = psf.core_sigma
    prof = mf._core_profiles(psf, int(np.ceil(3.0 * sigma)))[0].astype(np.float32)
    planes = mf._model_noise_planes(n_diff, size, READ_NOISE, per_diff / GAIN, basis, prof, seed)
    speed_norm = mf._speed_normalisation(psf, n_diff, np.ones(n_diff, bool), per_diff, READ_NOISE, GAIN,
                                         max(SPEEDS), basis, sampled=True)
    rows = []
    for v in SPEEDS:
        margin = int(np.ceil(0.5 * v * WINDOW)) + prof.size // 2 + 1
        spread = mf._window_spread(planes, np.ones((size, size), np.float32), speed_norm, WINDOW, v, margin)
        rows.append((v, float(speed_norm(v)), float(np.nanmedian(spread))))
    return rows


def main():
    print("| filter | speed (px/group) | vnorm | spread of the windows' SNR in model noise |")
    print("|---|---|---|---|")
    for filter_name in ("F770W", "F2100W"):
        for v, vnorm, spread in window_spreads(filter_name):
            print(f"| {filter_name} | {v} | {vnorm:.3f} | {spread:.3f} |", flush=True)


if __name__ == "__main__":
    main()
