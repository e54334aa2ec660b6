"""Bad pixels for simulated ramps, from the real MIRI imager CDP7 mask.

The CDP7 bad-pixel mask (``MIRI_FM_MIRIMAGE_MASK_07.02.01.fits.gz`` in the real-data
directory, :data:`jwst_asteroid_step.offline.REAL_DATA_DIR`) is a full-array
(1024 x 1032) DQ image whose own ``DQ_DEF`` table names its bits: 1 DO_NOT_USE,
2 DEAD, 4 HOT, 8 UNRELIABLE_SLOPE, 16 RC, 32 REFERENCE_PIXEL.  Every name is a JWST
pixel flag, so the bits are translated through that table into
``stdatamodels`` ``dqflags.pixel`` values, then cut to the subarray with its
1-based ``xstart``/``ystart`` (``meta.subarray``).

In the simulated data a DEAD pixel collects no charge (no sky, no source, no
cosmic ray; it keeps bias and read noise) and a HOT pixel has an extra dark rate.
"""

from pathlib import Path

import numpy as np
from stdatamodels.jwst.datamodels import dqflags

from .metadata import SUBARRAYS

__all__ = ["CDP7_MASK_NAME", "cdp7_mask_path", "cdp7_pixel_dq", "bad_pixel_effects"]

#: File name of the CDP7 imager mask in the real-data directory.
CDP7_MASK_NAME = "MIRI_FM_MIRIMAGE_MASK_07.02.01.fits.gz"

_DEAD = dqflags.pixel["DEAD"]
_HOT = dqflags.pixel["HOT"]


def cdp7_mask_path():
    """Path of the CDP7 mask in :data:`jwst_asteroid_step.offline.REAL_DATA_DIR`."""
    from ..offline import REAL_DATA_DIR

    return Path(REAL_DATA_DIR) / CDP7_MASK_NAME


def _translate(raw, dq_def):
    """Map the mask's own bits (named in DQ_DEF) to JWST pixel flags."""
    out = np.zeros(raw.shape, dtype=np.uint32)
    for row in dq_def:
        name = str(row["NAME"]).strip().upper()
        if name not in dqflags.pixel:
            raise ValueError(f"CDP7 mask bit {row['VALUE']} is {name!r}, not a JWST pixel flag")
        out[(raw & np.uint32(row["VALUE"])) != 0] |= np.uint32(dqflags.pixel[name])
    return out


def cdp7_pixel_dq(subarray="FULL", path=None):
    """PIXELDQ of a subarray from the CDP7 bad-pixel mask.

    Parameters
    ----------
    subarray : str or tuple of int
        A name in :data:`~.metadata.SUBARRAYS`, or ``(xstart, ystart, xsize,
        ysize)`` with 1-based corner as in ``meta.subarray``.
    path : str or Path, optional
        The mask file; by default :func:`cdp7_mask_path`.

    Returns
    -------
    ndarray, uint32, shape (ysize, xsize)
        JWST pixel flags (DO_NOT_USE, DEAD, HOT, UNRELIABLE_SLOPE, RC,
        REFERENCE_PIXEL).

    Raises
    ------
    FileNotFoundError
        If the mask is not there.
    """
    from astropy.io import fits

    if isinstance(subarray, str):
        sub = SUBARRAYS[subarray.upper()]
        xstart, ystart, xsize, ysize = sub["xstart"], sub["ystart"], sub["xsize"], sub["ysize"]
    else:
        xstart, ystart, xsize, ysize = (int(v) for v in subarray)
    path = Path(path) if path is not None else cdp7_mask_path()
    if not path.exists():
        raise FileNotFoundError(f"CDP7 bad-pixel mask not found at {path}")
    with fits.open(path) as hdul:
        raw = np.asarray(hdul["DQ"].data).astype(np.uint32)
        dq_def = hdul["DQ_DEF"].data
        full = _translate(raw, dq_def)
    cut = full[ystart - 1 : ystart - 1 + ysize, xstart - 1 : xstart - 1 + xsize]
    if cut.shape != (ysize, xsize):
        raise ValueError(f"Subarray {subarray} does not fit in the {full.shape} mask")
    return np.ascontiguousarray(cut)


def bad_pixel_effects(pixeldq, rng, hot_rate_range=(10.0, 1000.0)):
    """What DEAD and HOT flags do to the charge a pixel collects.

    Parameters
    ----------
    pixeldq : ndarray of int, shape (ny, nx)
        JWST pixel flags.
    rng : numpy.random.Generator
        Draws the hot pixels' dark rates.
    hot_rate_range : tuple of float
        Extra dark rate (DN/s) of a HOT pixel, drawn log-uniformly.  The upper end
        saturates a full-array ramp within a minute, as the worst MIRI hot pixels do.

    Returns
    -------
    live : ndarray of bool, shape (ny, nx)
        ``False`` for DEAD pixels (they collect nothing).
    hot_rate : ndarray of float, shape (ny, nx)
        Extra count rate (DN/s); zero except at HOT pixels.
    """
    pixeldq = np.asarray(pixeldq)
    live = (pixeldq & _DEAD) == 0
    hot = ((pixeldq & _HOT) != 0) & live
    hot_rate = np.zeros(pixeldq.shape, dtype=float)
    n_hot = int(np.count_nonzero(hot))
    if n_hot:
        lo, hi = np.log(hot_rate_range[0]), np.log(hot_rate_range[1])
        hot_rate[hot] = np.exp(rng.uniform(lo, hi, n_hot))
    return live, hot_rate
