"""The computed MIRI imager PSFs shipped with the package, and users' own PSF files.

``data/miri_<filter>_epsf.fits`` are written by :mod:`jwst_asteroid_step.psf.make_grids`
(poppy: JWST's segmented aperture, the filter's band, the detector's cruciform, pixel
integration). A user's PSF is read from a FITS file in one of the forms the field produces:

- an effective PSF (pixel-integrated, oversampled) with its oversampling in ``OVERSAMP``,
  as this package ships and as photutils' ``EPSFBuilder`` output saved to FITS;
- a photutils ``GriddedPSFModel`` file (a cube of ePSFs at several detector positions, as
  ``stpsf``'s ``psf_grid`` writes): the ePSF nearest the detector's centre is used;
- an ``stpsf``/WebbPSF ``calc_psf`` result: its oversampled extension (``OVERDIST``, else
  ``OVERSAMP``), which holds intensity per sample, is integrated over a pixel here.
"""

from functools import lru_cache
from pathlib import Path

import numpy as np

from .separable import SeparablePSF, pixel_integrate

__all__ = ["DATA_DIR", "instrument_psf", "read_psf_file"]

DATA_DIR = Path(__file__).resolve().parent / "data"


def shipped_file(filter_name):
    """Path of the shipped ePSF of a filter."""
    return DATA_DIR / f"miri_{filter_name.lower()}_epsf.fits"


@lru_cache(maxsize=16)
def instrument_psf(filter_name):
    """The computed PSF of a MIRI imager filter.

    Parameters
    ----------
    filter_name : str
        E.g. ``"F770W"``.

    Returns
    -------
    SeparablePSF

    Raises
    ------
    ValueError
        If no grid is shipped for the filter.
    """
    path = shipped_file(filter_name or "")
    if not filter_name or not path.exists():
        known = sorted(p.name.split("_")[1].upper() for p in DATA_DIR.glob("miri_*_epsf.fits"))
        raise ValueError(f"no computed PSF is shipped for filter {filter_name!r}; "
                         f"there are: {known}")
    return read_psf_file(path)


def read_psf_file(path):
    """A PSF from a FITS file (see the module docstring for the forms read).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    SeparablePSF

    Raises
    ------
    OSError
        If the file cannot be read as FITS.
    ValueError
        If the file holds none of the forms, or no oversampling factor.
    """
    from astropy.io import fits

    path = Path(path)
    try:
        hdus = fits.open(path)
    except (OSError, ValueError) as err:
        raise OSError(f"cannot read the PSF file {path}: {err}") from err
    with hdus:
        names = [h.name for h in hdus]
        if "OVERDIST" in names or ("OVERSAMP" in names and "DET_SAMP" in hdus[0].header):
            hdu = hdus["OVERDIST" if "OVERDIST" in names else "OVERSAMP"]
            oversample = int(hdu.header.get("DET_SAMP") or hdus[0].header["DET_SAMP"])
            image = pixel_integrate(np.asarray(hdu.data, dtype=float), oversample)
            kind = "stpsf calc_psf"
        else:
            hdu = next((h for h in hdus if h.data is not None and h.data.ndim in (2, 3)), None)
            if hdu is None:
                raise ValueError(f"{path} holds no PSF image")
            oversample = hdu.header.get("OVERSAMP", hdus[0].header.get("OVERSAMP"))
            if oversample is None:
                raise ValueError(f"{path}: no OVERSAMP keyword (samples per pixel of the ePSF)")
            image = np.asarray(hdu.data, dtype=float)
            kind = "ePSF"
            if image.ndim == 3:
                image = image[_nearest_to_centre(hdu.header, image.shape[0])]
                kind = "GriddedPSFModel"
    image = _odd_centred(image)
    return SeparablePSF(image, int(oversample), name=f"{kind} from {path.name}")


def _nearest_to_centre(header, n):
    """Index of a GriddedPSFModel cube's PSF nearest the detector's centre (512, 512)."""
    positions = []
    for i in range(n):
        key = f"DET_YX{i}"
        if key not in header:
            return n // 2
        y, x = (float(v) for v in str(header[key]).strip("()").split(","))
        positions.append((y, x))
    return int(np.argmin([np.hypot(y - 512, x - 512) for y, x in positions]))


def _odd_centred(image):
    """Trim an even-sized grid by one sample so the source sits on the central sample."""
    if image.shape[0] % 2 == 0:
        yy, xx = np.indices(image.shape)
        total = image.sum()
        cy, cx = np.sum(image * yy) / total, np.sum(image * xx) / total
        y0, x0 = round(cy - (image.shape[0] - 2) / 2), round(cx - (image.shape[1] - 2) / 2)
        y0, x0 = min(max(y0, 0), 1), min(max(x0, 0), 1)
        image = image[y0:y0 + image.shape[0] - 1, x0:x0 + image.shape[1] - 1]
    return image
