"""PSF models of the MIRI imager, behind one interface.

Every user of a PSF in the package (the simulator, the search, the moving-PSF fit, the
photometry) calls the same methods: ``pixel_profiles`` (per-term row or column profiles,
whose outer products give a box's pixel fractions), ``pixel_fraction``, ``render``, and the
properties ``fwhm``, ``core_sigma``, ``radius``, ``n_eff``, ``flux_uncertainty`` and ``name``.
Two models have them:

- :class:`PSFModel` (``gaussian.py``): two concentric Gaussians, analytic;
- :class:`SeparablePSF` (``separable.py``): any effective-PSF grid, held as a short sum of
  separable terms. The computed instrument PSFs (:func:`instrument_psf`, grids written by
  ``make_grids.py`` with poppy) and users' PSF files (:func:`read_psf_file`) are of this kind.
"""

from .gaussian import FILTER_FWHM, PSFModel
from .instrument import instrument_psf, read_psf_file
from .separable import SeparablePSF

__all__ = [
    "DEFAULT_PSF_MODEL",
    "FILTER_FWHM",
    "PSF_MODELS",
    "PSFModel",
    "SeparablePSF",
    "instrument_psf",
    "psf_for_filter",
    "read_psf_file",
]

#: The ``psf_model`` choices of :func:`psf_for_filter`.
PSF_MODELS = ("gaussian", "instrument")

#: The PSF the step, the simulator and the benches use unless told otherwise: the real
#: telescope's. The two Gaussians read its fluxes 14-15 % low (docs: the PSF page).
DEFAULT_PSF_MODEL = "instrument"


def psf_for_filter(filter_name, fwhm=None, model=DEFAULT_PSF_MODEL, psf_file=None):
    """Return the PSF model for a MIRI imager filter.

    Parameters
    ----------
    filter_name : str or None
        Filter name as in ``meta.instrument.filter`` (e.g. ``"F770W"``).
    fwhm : float, optional
        Explicit core FWHM in pixels: the double-Gaussian model of that width, whatever
        ``model`` says (a width is a property of the analytic model only).
    model : {"instrument", "gaussian"}
        The PSF computed from JWST's optics for the filter (the default), or the
        double-Gaussian model.
    psf_file : str or Path, optional
        A PSF FITS file (:func:`read_psf_file`); takes precedence over ``model``.

    Returns
    -------
    PSFModel or SeparablePSF

    Raises
    ------
    ValueError
        If the filter has no FWHM (gaussian) or no shipped grid (instrument), or the
        model or file is unknown or unreadable.
    """
    if psf_file:
        return read_psf_file(psf_file)
    if model not in PSF_MODELS:
        raise ValueError(f"psf model must be one of {PSF_MODELS}, got {model!r}")
    if fwhm is not None:
        return PSFModel(float(fwhm))
    key = (filter_name or "").upper()
    if key not in FILTER_FWHM:  # the imager filters, each with its computed grid
        raise ValueError(
            f"No PSF is known for filter {filter_name!r}; expected one of "
            f"{sorted(FILTER_FWHM)}, an explicit psf_fwhm or a psf_file."
        )
    if model == "instrument":
        return instrument_psf(key)
    return PSFModel(FILTER_FWHM[key])
