"""How well a bright mover's differences fix the share of its light in the PSF's wing.

``python -m benchmarks.wing_share`` (about a minute) asks what issue 23's "the bright movers
adjust the model" can reach. A PSF fit's total flux follows the share of the light the
model puts beyond the core; the refinement learns it from stars. This computes, from the
Fisher information of one mover's group differences, how well the mover itself fixes the
share of its light beyond 3 FWHM of the computed PSF, and what that costs its flux:

- the mover is rendered with the computed PSF (``instrument_psf``) split at 3 FWHM into a
  core and a wing grid, ``(1 - share) * core + share * wing``, on SUB256 with the bench's
  read noise (7 DN), gain (4 e/DN) and the filter's sky, at yardstick SNR 100;
- parameters x, vx, flux and the share; each pixel's static level profiled out (its mean
  over the differences), white noise per difference (the read noise's correlation between
  neighbouring differences is left out);
- the split grids are interpolated directly (bilinear on the ePSF grid): a grid with a hole
  is not separable, and :class:`~jwst_asteroid_step.psf.separable.SeparablePSF`'s low-rank
  form would put structure in the core.

Prints, per filter and speed, the share with its error, the flux error with the share
known and free, and how many such movers an exposure needs to fix the share to 0.03.
"""

import argparse

import numpy as np
from scipy.ndimage import map_coordinates

from jwst_asteroid_step.psf import instrument_psf
from jwst_asteroid_step.simulate import snr_to_flux
from jwst_asteroid_step.simulate.metadata import group_time_for
from jwst_asteroid_step.simulate.scene import default_background

READ_NOISE, GAIN = 7.0, 4.0  # as the psf_families bench
SUB_SAMPLES = 8


def _mover(grid, oversample, x_start, speed, n_diff, box):
    """Unit-flux differences (per group) of a mover along x, from an ePSF grid."""
    n = grid.shape[0]
    yy, xx = np.mgrid[:box, :box].astype(float)
    y0 = box / 2
    out = np.zeros((n_diff, box, box))
    for k in range(n_diff):
        for s in (np.arange(SUB_SAMPLES) + 0.5) / SUB_SAMPLES:
            x = x_start + speed * (k + s)
            coords = [((yy - y0) * oversample + (n - 1) / 2).ravel(), ((xx - x) * oversample + (n - 1) / 2).ravel()]
            out[k] += map_coordinates(grid, coords, order=1, mode="constant").reshape(box, box)
    return out / SUB_SAMPLES


def wing_share_errors(filter_name, ngroups, speed, snr, radius_fwhm=3.0):
    """Share beyond ``radius_fwhm`` FWHM, its error, and the flux's errors with it known and free.

    Returns
    -------
    dict
        ``share``, ``share_err``, ``flux_err_known`` and ``flux_err_free`` (relative).
    """
    psf = instrument_psf(filter_name)
    o, n = psf.oversample, psf.grid.shape[0]
    d = (np.arange(n) - (n - 1) / 2) / o
    core = np.where(np.hypot(d[None, :], d[:, None]) <= radius_fwhm * psf.fwhm, psf.grid, 0.0)
    wing = psf.grid - core
    gt = group_time_for("SUB256")
    flux = snr_to_flux(snr, speed / gt, 0.0, ngroups=ngroups, subarray="SUB256", group_time=gt, filter=filter_name,
                       psf=psf, read_noise_cds=READ_NOISE, gain=GAIN) * gt  # DN per group
    n_diff = ngroups - 1
    half = (n - 1) / 2 / o
    box = int(2 * half + speed * n_diff + 4)
    x_start = half + 2

    def model(grid, x=x_start, v=speed):
        return _mover(grid, o, x, v, n_diff, box)

    whole, inner, outer = model(psf.grid), model(core), model(wing)
    norm = whole.sum() / n_diff
    whole, inner, outer = whole / norm, inner / norm, outer / norm
    share = outer.sum() / whole.sum()
    h = 1e-2
    columns = [flux * (model(psf.grid, x=x_start + h) - model(psf.grid, x=x_start - h)) / norm / (2 * h),
               flux * (model(psf.grid, v=speed * (1 + h)) - model(psf.grid, v=speed * (1 - h))) / norm / (2 * h * speed),
               whole,
               flux * (outer / share - inner / (1 - share))]
    sigma = np.sqrt(READ_NOISE**2 + (default_background(filter_name) * gt + flux * whole) / GAIN)
    jac = np.stack([((c - c.mean(axis=0, keepdims=True)) / sigma).ravel() for c in columns], axis=1)
    free = np.linalg.inv(jac.T @ jac)
    known = np.linalg.inv(jac[:, :3].T @ jac[:, :3])
    return {"share": float(share), "share_err": float(np.sqrt(free[3, 3])),
            "flux_err_known": float(np.sqrt(known[2, 2]) / flux), "flux_err_free": float(np.sqrt(free[2, 2]) / flux)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snr", type=float, default=100.0, help="yardstick SNR of the mover")
    parser.add_argument("--speeds", type=float, nargs="*", default=[0.05, 0.25, 0.45], help="px/group")
    args = parser.parse_args(argv)
    print("| filter | speed (px/group) | share beyond 3 FWHM | flux error, share known | share free "
          "| such movers to fix the share to 0.03 |")
    print("|---|---|---|---|---|---|")
    for filter_name, ngroups in (("F770W", 60), ("F2100W", 40)):
        for speed in args.speeds:
            r = wing_share_errors(filter_name, ngroups, speed, args.snr)
            print(f"| {filter_name} | {speed:g} | {r['share']:.3f} ± {r['share_err']:.3f} | {r['flux_err_known']:.1%} "
                  f"| {r['flux_err_free']:.1%} | {(r['share_err'] / 0.03) ** 2:.0f} |", flush=True)


if __name__ == "__main__":
    main()
