"""Compute the MIRI imager PSF of each filter from JWST's optics, and write the shipped grids.

Run ``python -m jwst_asteroid_step.psf.make_grids`` (needs poppy: ``pip install -e ".[psf]"``;
about 2 s per filter on 2 cores). The step never imports poppy: it reads the FITS files this
writes into ``jwst_asteroid_step/psf/data/``.

What each file holds
--------------------
The *effective* PSF (ePSF) of one filter: the fraction of a point source's total flux that
falls in a detector pixel whose centre lies ``(dx, dy)`` pixels from the source, tabulated at
``dx, dy = (i - c) / OVERSAMP`` with ``c`` the array's centre, as photutils' ePSFs are. It is
built from

1. a polychromatic Fraunhofer diffraction PSF of JWST's aperture: 18 hexagonal segments
   (1.32 m flat to flat, 7 mm gaps) in two rings, a 0.74 m secondary obscuration on three
   struts, rotated by the imager's 4.835° to the detector rows, on a grid of 0.11"/px / 4;
   the filter's band is a top-hat of the documented centre and width, sampled at
   ``N_WAVELENGTHS`` wavelengths weighted for a source flat in F_nu (photons per unit
   wavelength ∝ 1/λ);
2. at F560W–F1280W, the detector's cruciform: light the Si:As layer does not absorb on its
   first pass is diffracted by the pixel lattice along the rows and the columns. It is added
   as a convolution with an exponentially decaying cross (e-folding 25 px; amplitude per
   filter from the MIRI imager PSF technical note MIRI-TN-00076-ATC with the in-flight
   scaling used by STPSF; halved within ``CRUCIFORM_INNER_PX`` of the core, where light
   escapes within the total-internal-reflection cone) and a faint diffuse halo, then the
   PSF is scaled back to unit total flux;
3. integration over a detector pixel (a box of ``OVERSAMP`` x ``OVERSAMP`` samples).

The optical PSF is computed over ``FOV_PX`` pixels, so the cruciform's arms and the light
scattered out of the core are accounted for before the grid is cut to ``2 * half + 1``
pixels, ``half`` = :func:`half_px`: 24 px, or 8 flight FWHMs where that is more (F1130W and
longer), so that a PSF refined from stars (:mod:`.refine`) has the model's light out to
6 FWHMs to compare its outer ring with. Each file's header keeps ``EE_GRID``, the fraction of
the total flux inside the cut grid: a fit with the ePSF therefore measures the total flux to
infinity, with the encircled-energy correction explicit.
"""

import argparse
from pathlib import Path

import numpy as np

from .separable import pixel_integrate, whole_pixel_samples

__all__ = ["add_cruciform", "effective_psf", "half_px", "main", "optical_psf", "write_grid"]

#: Top-hat bands (centre, width) in µm of the MIRI imager filters (JWST user documentation).
BANDS = {
    "F560W": (5.6, 1.2),
    "F770W": (7.7, 2.2),
    "F1000W": (10.0, 2.0),
    "F1130W": (11.3, 0.7),
    "F1280W": (12.8, 2.4),
    "F1500W": (15.0, 3.0),
    "F1800W": (18.0, 3.0),
    "F2100W": (21.0, 5.0),
    "F2550W": (25.5, 4.0),
}

#: Cruciform arm amplitude A (the arms are A exp(-|d| / 25 px), sampled at 1/4 px, and the
#: convolution is divided by 4**2, the calibration's convention): the two arms of both axes
#: carry 100 A / 4 of the light, 11 % at F560W, 7 % at F770W, 1.6 % at F1000W.
CRUCIFORM_AMPLITUDE = {
    "F560W": 0.00220 * 4.05 * 0.5,
    "F770W": 0.00139 * 4.1 * 0.5,
    "F1000W": 0.00034 * 3.8 * 0.5,
    "F1130W": 0.00007 * 2.5 * 0.5,
    "F1280W": 0.00011 * 2.5 * 0.5,
}
CRUCIFORM_EFOLD_PX = 25.0
CRUCIFORM_INNER_PX = 2.0
#: The diffuse halo beside the cross, relative to the arms' amplitude.
CRUCIFORM_HALO = 0.05

PIXEL_SCALE = 0.11  # arcsec
OVERSAMP = 4
N_WAVELENGTHS = 9
FOV_PX = 161  # optical PSF and cruciform computed over this many pixels
HALF_PX = 24  # the shipped grid's smallest half-size (px)
V3_ROTATION_DEG = 4.835

DATA = Path(__file__).resolve().parent / "data"


def optical_psf(filter_name, fov_px=FOV_PX, oversample=OVERSAMP):
    """Polychromatic diffraction PSF of JWST's aperture, sampled at 1/oversample px.

    Returns
    -------
    ndarray, shape (fov_px * oversample, fov_px * oversample)
        Fraction of the total flux per sample (sums to the energy inside the field).
    """
    import astropy.units as u
    import poppy

    centre, width = BANDS[filter_name]
    lam = np.linspace(centre - width / 2, centre + width / 2, N_WAVELENGTHS) * 1e-6
    weights = 1.0 / lam
    osys = poppy.OpticalSystem(pupil_diameter=6.603464 * u.m, npix=512, oversample=4)
    segments = poppy.MultiHexagonAperture(side=1.32 / np.sqrt(3) * u.m, gap=0.007 * u.m,
                                          rings=2, segmentlist=list(range(1, 19)))
    secondary = poppy.SecondaryObscuration(secondary_radius=0.37 * u.m, n_supports=3,
                                           support_width=0.08 * u.m)
    osys.add_pupil(poppy.CompoundAnalyticOptic([segments, secondary], name="JWST aperture"))
    osys.add_rotation(V3_ROTATION_DEG)
    osys.add_detector(pixelscale=PIXEL_SCALE, fov_pixels=fov_px, oversample=oversample)
    result = osys.calc_psf(source={"wavelengths": lam, "weights": weights / weights.sum()})
    return np.asarray(result[0].data, dtype=float)


def add_cruciform(psf, filter_name, oversample=OVERSAMP):
    """Add the detector's cruciform (rows and columns) and rescale to the same total flux."""
    from scipy.signal import fftconvolve

    amp = CRUCIFORM_AMPLITUDE.get(filter_name, 0.0)
    if amp == 0.0:
        return psf
    n = psf.shape[0]
    centre = (n - 1) // 2  # the kernel sample fftconvolve's "same" output treats as zero shift
    d = (np.arange(n) - centre) / oversample  # px from the origin
    arm = amp * np.exp(-np.abs(d) / CRUCIFORM_EFOLD_PX)
    arm[np.abs(d) < CRUCIFORM_INNER_PX] *= 0.5
    kernel = np.zeros((n, n))
    kernel[centre, :] += arm
    kernel[:, centre] += arm
    r = np.hypot(*np.meshgrid(d, d))
    kernel += (amp * CRUCIFORM_HALO * np.exp(-r / (2 * CRUCIFORM_INNER_PX))
               * (r > CRUCIFORM_INNER_PX))
    # The kernel is per detector pixel; the PSF is per sample, oversample**2 of them a pixel.
    scattered = fftconvolve(psf, kernel, mode="same") / oversample**2
    # A unit source scatters kernel.sum() / oversample**2 of its light; the total stays the same.
    return (psf + scattered) / (1.0 + kernel.sum() / oversample**2)


def half_px(filter_name):
    """Half-size (px) of a filter's shipped grid: 24, or 8 flight FWHMs where that is more."""
    from .gaussian import FILTER_FWHM

    return max(HALF_PX, int(np.ceil(8 * FILTER_FWHM[filter_name])))


def effective_psf(filter_name):
    """The shipped ePSF of one filter and the fraction of the total flux its grid holds."""
    psf = add_cruciform(optical_psf(filter_name), filter_name)
    epsf = pixel_integrate(psf, OVERSAMP)
    # An odd number of samples, the source on the central one.
    yy, xx = np.indices(epsf.shape)
    cy, cx = (np.sum(epsf * yy) / epsf.sum(), np.sum(epsf * xx) / epsf.sum())
    half_pixels = half_px(filter_name)
    half = half_pixels * OVERSAMP + OVERSAMP // 2
    iy, ix = round(cy), round(cx)
    if abs(cy - iy) > 0.05 or abs(cx - ix) > 0.05:
        epsf = _shift(epsf, iy - cy, ix - cx)
    grid = epsf[iy - half: iy + half + 1, ix - half: ix + half + 1]
    if grid.shape != (2 * half + 1,) * 2:
        raise ValueError(f"FOV_PX ({FOV_PX}) is too small for a grid of {2 * half_pixels + 1} px")
    # Fraction of total flux inside the grid.
    ee = float(grid[whole_pixel_samples(grid.shape[0], OVERSAMP)].sum())
    return grid.astype(np.float32), ee


def _shift(image, dy, dx):
    from scipy.ndimage import shift

    return shift(image, (dy, dx), order=3, mode="constant")


def write_grid(filter_name, directory=DATA):
    """Compute and write ``miri_<filter>_epsf.fits``; return its path."""
    from astropy.io import fits

    grid, ee = effective_psf(filter_name)
    hdu = fits.PrimaryHDU(grid)
    h = hdu.header
    h["INSTRUME"] = "MIRI"
    h["DETECTOR"] = "MIRIMAGE"
    h["FILTER"] = filter_name
    h["OVERSAMP"] = (OVERSAMP, "samples per detector pixel")
    h["PIXELSCL"] = (PIXEL_SCALE, "arcsec per detector pixel")
    h["EE_GRID"] = (ee, "fraction of the total flux inside this grid")
    h["CRUCAMP"] = (CRUCIFORM_AMPLITUDE.get(filter_name, 0.0), "cruciform arm amplitude per px")
    h["NWAVE"] = (N_WAVELENGTHS, "wavelengths across the top-hat band")
    h["BANDCEN"], h["BANDWID"] = BANDS[filter_name][0], BANDS[filter_name][1]
    h["V3ROT"] = (V3_ROTATION_DEG, "deg, aperture to detector rows")
    h["ORIGIN"] = "jwst_asteroid_step.psf.make_grids (poppy)"
    h["EPSFDEF"] = "pixel-integrated fraction of total flux, pixel centre at (i-c)/OVERSAMP px"
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"miri_{filter_name.lower()}_epsf.fits"
    hdu.writeto(path, overwrite=True)
    return path


def main(argv=None):
    """Write the grids of the filters named (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("filters", nargs="*", default=sorted(BANDS), help="filters (default: all)")
    parser.add_argument("-o", "--output-dir", default=str(DATA))
    args = parser.parse_args(argv)
    for name in args.filters:
        path = write_grid(name.upper(), args.output_dir)
        print(f"{name.upper()}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
