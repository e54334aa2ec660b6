"""From detector to sky: WCS and sky motion, observer metadata, flux calibration.

- :mod:`.wcs`: ``ra, dec`` and sky rates from jwst's assign_wcs or the pysiaf fallback;
- :mod:`.observer`: JWST's MPC code and ephemeris from the header;
- :mod:`.photometry`: ``flux_mjy`` and AB magnitudes from PHOTMJSR / photom files.

All take catalog arrays and models' metadata and return new column values plus a
small dict of metadata to record; none imports stpipe.
"""

from .observer import JWST_MPC_CODE, observer_metadata, observer_position
from .photometry import FLUX_COLUMNS, add_flux_columns, flux_columns, photometric_conversion
from .wcs import SkyTransform, add_sky_columns, build_sky_transform, sky_columns, sky_jacobian

__all__ = [
    "FLUX_COLUMNS",
    "JWST_MPC_CODE",
    "SkyTransform",
    "add_flux_columns",
    "add_sky_columns",
    "build_sky_transform",
    "flux_columns",
    "observer_metadata",
    "observer_position",
    "photometric_conversion",
    "sky_columns",
    "sky_jacobian",
]
