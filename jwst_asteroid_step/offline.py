"""Run the real jwst Stage 1 steps with no CRDS server (DESIGN.md §7).

This is the one place that knows how to: point CRDS at an offline cache with a
server_config, turn off CRDS parameter files, and build the reference files
(gain, read noise, bad-pixel mask, saturation) that jwst's steps would otherwise
fetch.  Tests, the demo and the notebooks use it.  The step and the pipeline never
import it: real users have CRDS, and nothing in the product may depend on this.
"""

import os
from pathlib import Path

import numpy as np
from stdatamodels.jwst import datamodels
from stdatamodels.jwst.datamodels import dqflags

__all__ = [
    "OfflineReferences",
    "build_references",
    "configure_offline_crds",
    "detector1_offline_steps",
    "run_jump_and_ramp_fit",
    "write_detector1_pars",
]

_SERVER_CONFIG = (
    "{'observatory': 'jwst', 'operational_context': 'jwst_0000.pmap', "
    "'edit_context': 'jwst_0000.pmap', 'bad_files': '', 'bad_files_list': [], "
    "'force_remote_mode': False, 'last_synced': '2026-01-01', "
    "'crds_version': {'str': '14'}, 'reference_url': {}, 'mapping_url': {}}"
)

#: Bit meanings of the CDP7 MIRI imager mask (its DQ_DEF table) as JWST pixel flags.
_CDP7_BITS = {
    1: "DO_NOT_USE",
    2: "DEAD",
    4: "HOT",
    8: "UNRELIABLE_SLOPE",
    16: "RC",
    32: "REFERENCE_PIXEL",
}

#: Real MIRI files live beside the checkout (../shared/data/real) and are never
#: copied into the repository; JWST_ASTEROID_REAL_DATA points elsewhere.
REAL_DATA_DIR = Path(
    os.environ.get(
        "JWST_ASTEROID_REAL_DATA",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "real",
    )
)
REAL_MASK = REAL_DATA_DIR / "MIRI_FM_MIRIMAGE_MASK_07.02.01.fits.gz"


def configure_offline_crds(cache_dir):
    """Make jwst steps run without a CRDS server, for this process.

    Writes ``<cache_dir>/config/jwst/server_config`` and sets ``CRDS_PATH``,
    ``CRDS_SERVER_URL`` and ``STPIPE_DISABLE_CRDS_STEPPARS``.  Every reference file a
    step needs must then be given as ``override_<reftype>``.

    Parameters
    ----------
    cache_dir : str or Path
        Directory to hold the offline CRDS cache.

    Returns
    -------
    Path
        The cache directory.
    """
    cache_dir = Path(cache_dir)
    cfg = cache_dir / "config" / "jwst"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "server_config").write_text(_SERVER_CONFIG + "\n")
    os.environ["CRDS_PATH"] = str(cache_dir)
    os.environ.setdefault("CRDS_SERVER_URL", "https://jwst-crds.stsci.edu")
    os.environ["STPIPE_DISABLE_CRDS_STEPPARS"] = "True"
    return cache_dir


class OfflineReferences(dict):
    """Paths of reference files built in code (or real ones), keyed by CRDS reftype."""

    def overrides(self, *reftypes):
        """``override_<reftype>`` keyword arguments for the given reftypes."""
        return {f"override_{r}": str(self[r]) for r in reftypes}

    def step_overrides(self):
        """Every reference ``asteroid_detect`` uses: gain, read noise, the real
        flight distortion and filter offset, and no photom/area ("N/A")."""
        return {**self.overrides("gain", "readnoise", "distortion", "filteroffset"),
                "override_photom": "N/A", "override_area": "N/A"}


def _full_frame_reference(model, reftype):
    meta = model.meta
    meta.instrument.name = "MIRI"
    meta.instrument.detector = "MIRIMAGE"
    meta.subarray.name = "FULL"
    meta.subarray.xstart, meta.subarray.ystart = 1, 1
    meta.subarray.xsize, meta.subarray.ysize = 1032, 1024
    meta.reftype = reftype
    meta.description = f"Flat {reftype} built in code for offline runs"
    meta.author = "jwst_asteroid_step.offline"
    meta.pedigree = "DUMMY"
    meta.useafter = "2000-01-01T00:00:00"
    return model


def _cdp7_mask_dq():
    from astropy.io import fits

    raw = fits.getdata(REAL_MASK, "DQ").astype(np.uint32)
    dq = np.zeros_like(raw)
    for bit, name in _CDP7_BITS.items():
        dq[(raw & bit) != 0] |= dqflags.pixel[name]
    return dq


def build_references(out_dir, read_noise_cds=7.0, gain=4.0, saturation=50000.0, real_mask=True):
    """Build full-frame MIRI imager reference files for offline runs.

    Parameters
    ----------
    out_dir : str or Path
        Where to write the files.
    read_noise_cds : float
        CDS read noise (DN) of the READNOISE file.
    gain : float
        Gain (e/DN) of the GAIN file.
    saturation : float
        Saturation level (DN) of the SATURATION file.
    real_mask : bool
        Build the MASK file from the real CDP7 bad-pixel mask (if present);
        otherwise a clean mask with only the reference columns flagged.

    Returns
    -------
    OfflineReferences
        Paths keyed by reftype: gain, readnoise, mask, saturation, and the real
        flight distortion and filteroffset files ("N/A" where missing).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shape = (1024, 1032)
    refs = OfflineReferences()

    gain_model = _full_frame_reference(datamodels.GainModel(data=np.full(shape, gain, "f4")), "GAIN")
    refs["gain"] = out_dir / "offline_gain.fits"
    gain_model.save(refs["gain"])

    rn = datamodels.ReadnoiseModel(data=np.full(shape, read_noise_cds, "f4"))
    refs["readnoise"] = out_dir / "offline_readnoise.fits"
    _full_frame_reference(rn, "READNOISE").save(refs["readnoise"])

    if real_mask and REAL_MASK.exists():
        dq = _cdp7_mask_dq()
    else:
        dq = np.zeros(shape, np.uint32)
        dq[:, :4] = dq[:, -4:] = dqflags.pixel["REFERENCE_PIXEL"] | dqflags.pixel["DO_NOT_USE"]
    refs["mask"] = out_dir / "offline_mask.fits"
    _full_frame_reference(datamodels.MaskModel(dq=dq), "MASK").save(refs["mask"])

    for reftype, name in (("distortion", "jwst_miri_imager_distortion_flt9.asdf"),
                          ("filteroffset", "jwst_miri_filteroffset_full_flt9.asdf")):
        refs[reftype] = REAL_DATA_DIR / name if (REAL_DATA_DIR / name).exists() else "N/A"

    sat = datamodels.SaturationModel(
        data=np.full(shape, saturation, "f4"), dq=np.zeros(shape, np.uint32)
    )
    refs["saturation"] = out_dir / "offline_saturation.fits"
    _full_frame_reference(sat, "SATURATION").save(refs["saturation"])
    return refs


def detector1_offline_steps(refs):
    """Per-step parameters that let ``calwebb_detector1`` run offline on MIRI imaging.

    Steps whose reference files cannot be built meaningfully here (EMI, IPC, reset,
    linearity, RSCD, dark, reference pixels) are skipped; simulated ramps carry none
    of those effects.  dq_init, saturation, firstframe, lastframe, jump, ramp_fit and
    gain_scale run for real; firstframe is switched on because it flags the first
    group, which the skipped RSCD step would otherwise do.

    Parameters
    ----------
    refs : OfflineReferences
        From :func:`build_references`.

    Returns
    -------
    dict
        ``{step_name: {parameter: value}}``, usable as ``steps=`` of ``Pipeline.call``
        or in a parameter file.
    """
    skipped = ["emicorr", "ipc", "reset", "linearity", "rscd", "dark_current", "refpix"]
    steps = {name: {"skip": True} for name in skipped}
    steps["firstframe"] = {"skip": False}
    steps["dq_init"] = refs.overrides("mask")
    steps["saturation"] = {**refs.overrides("saturation"), "override_superbias": "N/A"}
    steps["jump"] = refs.overrides("gain", "readnoise")
    steps["ramp_fit"] = refs.overrides("gain", "readnoise")
    steps["gain_scale"] = refs.overrides("gain")
    return steps


def write_detector1_pars(path, refs):
    """Write a parameter file that runs ``calwebb_detector1_asteroid`` offline.

    Parameters
    ----------
    path : str or Path
        The ``.asdf`` parameter file to write; use it as ``strun <path> <input>``.
    refs : OfflineReferences
        From :func:`build_references`.

    Returns
    -------
    Path
    """
    import asdf

    from .pipeline import AsteroidDetector1Pipeline as cls

    steps = detector1_offline_steps(refs)
    # Gain and read noise only: offline, asteroid_detect then finds no distortion file
    # and takes the pysiaf sky fallback, as a run without those references would.
    steps["asteroid_detect"] = refs.overrides("gain", "readnoise")
    tree = {
        "class": f"{cls.__module__}.{cls.__name__}",
        "name": cls.class_alias,
        "parameters": {},
        "steps": [
            {"class": f"{step.__module__}.{step.__name__}", "name": step_name,
             "parameters": steps.get(step_name, {})}
            for step_name, step in cls.step_defs.items()
        ],
    }
    path = Path(path)
    asdf.AsdfFile(tree).write_to(path)
    return path


def run_jump_and_ramp_fit(ramp, refs, output_dir=None, save=False, **jump_pars):
    """Run the real jwst JumpStep and RampFitStep offline.

    Parameters
    ----------
    ramp : RampModel
        A ramp with GROUPDQ initialised (e.g. from the simulator).
    refs : OfflineReferences
        From :func:`build_references`.
    output_dir : str or Path, optional
        Where ``_jump``, ``_fitopt``, ``_rate`` and ``_rateints`` go when ``save``.
    save : bool
        Write the products with the jwst naming convention.
    **jump_pars
        Extra JumpStep parameters (e.g. ``rejection_threshold``).

    Returns
    -------
    jump_model, rate, rateints, fitopt : RampModel, ImageModel, CubeModel, RampFitOutputModel
    """
    from jwst.jump import JumpStep

    from .pipeline import RampFitSegmentsStep

    out = {} if output_dir is None else {"output_dir": str(output_dir)}
    refpars = refs.overrides("gain", "readnoise")
    jump_model = JumpStep.call(ramp, save_results=save, suffix="jump", **out, **refpars, **jump_pars)
    ramp_fit = RampFitSegmentsStep(save_opt=save, **out, **refpars)
    rate, rateints = ramp_fit.run(jump_model)
    if save:
        ramp_fit.save_model(rate, "rate", force=True)
        ramp_fit.save_model(rateints, "rateints", force=True)
    return jump_model, rate, rateints, ramp_fit.fitopt
