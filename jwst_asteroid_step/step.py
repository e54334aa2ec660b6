"""``asteroid_detect``: find asteroids in a jump-flagged MIRI imager ramp."""

import json
import logging
from pathlib import Path

import numpy as np
from jwst.lib import reffile_utils
from jwst.stpipe import Step
from stdatamodels.jwst import datamodels

from . import __version__
from .config import DetectionConfig
from .crds_pars import shipped_config
from .datamodels import AsteroidCatalogModel, empty_catalog
from .detect import detections_to_catalog, find_movers
from .psf import psf_for_filter
from .ramp.segments import check_fitopt
from .sky import add_flux_columns, add_sky_columns, observer_metadata

__all__ = ["AsteroidDetectStep"]

log = logging.getLogger(__name__)


class SkipExposure(Exception):
    """The exposure cannot be searched; the message says why."""


class AsteroidDetectStep(Step):
    """Find moving objects in a jump-flagged MIRI imager ramp.

    Input is a RampModel after jump (``<root>_jump.fits``), optionally with the
    ramp_fit segments (``<root>_fitopt.fits``).  Output is an
    :class:`~jwst_asteroid_step.datamodels.AsteroidCatalogModel` saved as
    ``<root>_asteroids.asdf``.
    """

    class_alias = "asteroid_detect"

    spec = """
        fitopt = string(default=None)  # ramp_fit segments file (<root>_fitopt.fits); optional
        snr_threshold = float(default=8.0, min=0)  # Minimum matched-filter SNR (full covariance) of a reported detection
        min_groups = integer(default=3, min=3)  # Minimum distinct group differences with JUMP_DET cells on a track
        link_px = float(default=1.5, min=0)  # Distance (px) within which JUMP_DET cells join one event
        link_groups = integer(default=2, min=1)  # Gap (group differences) within which JUMP_DET cells join one event
        shower_min_pixels = integer(default=30, min=1)  # One-instant events touching this many pixels are showers
        min_motion_sigma = float(default=5.0, min=0)  # Minimum significance of the fitted speed
        min_consistency = float(default=0.4)  # Minimum median per-difference flux relative to the fit
        max_chi2_dof = float(default=3.0, min=0)  # Largest reduced chi-square of an accepted fit
        max_candidates = integer(default=500, min=1)  # Candidate tracks from jump flags fitted per integration at most
        search = boolean(default=True)  # Matched-filter (shift-and-stack) search below the jump threshold
        search_max_speed = float(default=0.5, min=0)  # Top speed (px/group) of the default search
        deep_search = boolean(default=False)  # Search up to deep_search_max_speed instead (slower)
        deep_search_max_speed = float(default=3.0, min=0)  # Top speed (px/group) of the deep search
        search_snr_threshold = float(default=6.0, min=0)  # Coarse shift-and-stack SNR of a search candidate
        grid_loss = float(default=0.1, min=0, max=0.5)  # Largest SNR fraction lost to the velocity grid spacing
        search_max_candidates = integer(default=200, min=1)  # Search candidates refined per integration at most
        trend_order = integer(default=1, min=0, max=2)  # Per-pixel rate trends profiled out (0 constant, 1 drift, 2 curvature)
        psf_fwhm = float(default=None, min=0)  # PSF core FWHM (px); default from the filter
        min_ngroups = integer(default=5, min=3)  # Exposures with fewer groups are skipped
        save_figures = boolean(default=False)  # Write a PNG per detection and a summary beside the catalog
        suffix = string(default='asteroids')  # Output file suffix
        output_ext = string(default='.asdf')  # Output file type
    """  # noqa: E501

    reference_file_types = ["gain", "readnoise", "distortion", "filteroffset", "photom", "area"]
    # References are fetched when used: the sky and flux ones are optional.
    prefetch_references = False

    @staticmethod
    def get_stpipe_loggers():
        """Loggers stpipe configures: jwst's, and this package's."""
        return (*Step.get_stpipe_loggers(), "jwst_asteroid_step")

    # ---- parameters: CRDS first, then the files shipped in crds_params/ ----

    @classmethod
    def _get_config_from_parameters(cls, crds_parameters, crds_observatory):
        config = super()._get_config_from_parameters(crds_parameters, crds_observatory)
        return config if len(config) else shipped_config(crds_parameters)

    @classmethod
    def get_config_from_reference(cls, dataset, disable=None, crds_observatory=None):
        """Parameters from CRDS, or from the shipped file when CRDS has none."""
        config = super().get_config_from_reference(dataset, disable, crds_observatory)
        if len(config):
            return config
        try:
            crds_parameters = dataset if isinstance(dataset, dict) else cls._get_crds_parameters(dataset)[0]
        except (OSError, TypeError, ValueError):
            return config
        return shipped_config(crds_parameters)

    # ---- processing ----

    def process(self, step_input, fitopt=None):
        """Search a ramp for movers.

        Parameters
        ----------
        step_input : str or RampModel
            Jump-flagged ramp.
        fitopt : str or RampFitOutputModel, optional
            The ramp_fit segments; overrides the ``fitopt`` parameter.

        Returns
        -------
        AsteroidCatalogModel
        """
        fitopt = fitopt if fitopt is not None else self.fitopt
        with _open_model(step_input) as model:
            catalog = AsteroidCatalogModel()
            catalog.update(model)
            catalog.meta.filename = _output_name(model.meta.filename)
            catalog.catalog = empty_catalog(0)
            try:
                detections, counts, psf, fitopt_name, products = self._search(model, fitopt)
            except SkipExposure as reason:
                log.warning("asteroid_detect skipped: %s", reason)
                return self._finish(catalog, model, None, {}, status="SKIPPED", notes=str(reason))
            catalog.catalog = detections
            if self.save_figures:
                self._save_figures(catalog, model)
            log.info(
                "Found %d asteroid candidate(s); events: %d cosmic rays, %d showers, "
                "%d mover candidates, %d noisy pixels (%d JUMP_DET cells)",
                len(detections), counts["n_cosmic_rays"], counts["n_showers"],
                counts["n_mover_candidates"], counts["n_pixel_noise"], counts["n_jump_cells"],
            )
            return self._finish(catalog, model, psf, counts, status="COMPLETE", fitopt_name=fitopt_name,
                                products=products)

    def _search(self, model, fitopt):
        _check_searchable(model, self.min_ngroups)
        group_time = float(model.meta.exposure.group_time)
        try:
            psf = psf_for_filter(model.meta.instrument.filter, self.psf_fwhm)
        except ValueError as err:
            raise SkipExposure(str(err)) from err
        fitopt_name = "N/A"
        if fitopt is not None:
            with _open_model(fitopt, datamodels.RampFitOutputModel) as segments:
                check_fitopt(model, segments)
            # ramp_fit names its in-memory product after the ramp; only a file is a file.
            fitopt_name = str(fitopt) if isinstance(fitopt, str | Path) else "in-memory RampFitOutputModel"
        gain, read_noise = self._noise_arrays(model)
        config = DetectionConfig.from_mapping(self.get_pars())
        table, counts = find_movers(
            model.data, model.groupdq, model.pixeldq, group_time, psf, read_noise, gain, config
        )
        detections = detections_to_catalog(
            table,
            exposure_start_mjd=model.meta.exposure.start_time,
            integration_period=_integration_period(model, group_time),
            int_times=getattr(model, "int_times", None),
        )
        detections, sky = add_sky_columns(
            detections, model, distortion=self._optional_reference(model, "distortion"),
            filteroffset=self._optional_reference(model, "filteroffset"),
        )
        detections, photometry = add_flux_columns(
            detections, model, photom=self._optional_reference(model, "photom"),
            area=self._optional_reference(model, "area"),
        )
        products = {"sky": sky, "photometry": photometry["photometry"]}
        return detections, counts, psf, fitopt_name, products

    def _save_figures(self, catalog, model):
        """Per-detection and summary PNGs, in the step's output directory."""
        from .plotting import plot_detections  # matplotlib only when asked

        output_dir = self.search_attr("output_dir") or "."
        root = Path(catalog.meta.filename).stem.removesuffix("_asteroids")
        paths = plot_detections(catalog, ramp_model=model, output_dir=output_dir, root=root)
        log.info("Saved %d figure(s) in %s", len(paths), output_dir)

    def _optional_reference(self, model, reftype):
        """A reference file for sky or flux columns, or "N/A" with a warning."""
        try:
            return self.get_reference_file(model, reftype)
        except Exception as err:  # noqa: BLE001 - CRDS raises many kinds; any means "none"
            log.warning("No %s reference file (%s); the columns it calibrates fall back or stay NaN.",
                        reftype.upper(), str(err).splitlines()[0][:200])
            return "N/A"

    def _noise_arrays(self, model):
        arrays = []
        for reftype, cls in (("gain", datamodels.GainModel), ("readnoise", datamodels.ReadnoiseModel)):
            name = self.get_reference_file(model, reftype)
            log.info("Using %s reference file: %s", reftype.upper(), name)
            with cls(name) as ref:
                if not reffile_utils.ref_matches_sci(model, ref):
                    ref = reffile_utils.get_subarray_model(model, ref)
                arrays.append(np.array(ref.data, dtype=np.float32))
        return arrays

    def _finish(self, catalog, model, psf, counts, status, fitopt_name="N/A", notes="", products=None):
        meta = catalog.meta
        meta.cal_step.asteroid_detect = status
        pars = {k: v for k, v in self.get_pars().items() if not k.endswith("hooks")}
        meta.asteroid_detect.input_file = model.meta.filename or "N/A"
        meta.asteroid_detect.fitopt_file = str(fitopt_name)
        meta.asteroid_detect.parameters = json.dumps(pars, default=str, sort_keys=True)
        meta.asteroid_detect.software = _software_versions()
        meta.asteroid_detect.counts = {"n_detections": len(catalog.catalog), **counts}
        meta.asteroid_detect.wcs_source = products["sky"]["wcs_source"] if products else "none"
        if products:
            meta.asteroid_detect.wcs = products["sky"]["wcs"]
            meta.asteroid_detect.photometry = products["photometry"]
        meta.asteroid_detect.observer = observer_metadata(model)
        if psf is not None:
            meta.asteroid_detect.psf_fwhm = float(psf.fwhm)
        meta.asteroid_detect.notes = notes
        return catalog


def _software_versions():
    import jwst
    import stcal
    import stpipe

    return {
        "jwst_asteroid_step": __version__, "jwst": jwst.__version__, "stcal": stcal.__version__,
        "stpipe": stpipe.__version__, "numpy": np.__version__,
    }


def _output_name(filename):
    root = Path(filename or "asteroid_detect").stem
    for suffix in ("_jump", "_ramp", "_uncal", "_asteroids"):
        if root.endswith(suffix):
            root = root[: -len(suffix)]
            break
    return f"{root}_asteroids.asdf"


def _integration_period(model, group_time):
    period = model.meta.exposure.integration_time
    if period:
        return float(period)
    return group_time * model.data.shape[1]


class _open_model:
    """Open a path as a datamodel, or use a model as given (never modified)."""

    def __init__(self, init, cls=None):
        self.init, self.cls = init, cls
        self.owned = not isinstance(init, datamodels.JwstDataModel)

    def __enter__(self):
        if not self.owned:
            self.model = self.init
        elif self.cls is not None:
            self.model = self.cls(self.init)
        else:
            self.model = datamodels.open(self.init)
        return self.model

    def __exit__(self, *exc):
        if self.owned:
            self.model.close()
        return False


def _check_searchable(model, min_ngroups):
    """Raise SkipExposure with the reason when the ramp cannot be searched."""
    if not isinstance(model, datamodels.RampModel):
        raise SkipExposure(
            f"input is a {type(model).__name__}, not a ramp: asteroid_detect needs the "
            "jump step's RampModel (<root>_jump.fits)"
        )
    inst = model.meta.instrument.name
    exp_type = model.meta.exposure.type
    if inst != "MIRI" or exp_type != "MIR_IMAGE":
        raise SkipExposure(
            f"exposure is {inst} {exp_type}; asteroid_detect searches MIRI imaging (MIR_IMAGE) only"
        )
    if model.meta.cal_step.jump != "COMPLETE":
        raise SkipExposure(
            "the jump step has not been run on this ramp (meta.cal_step.jump is "
            f"{model.meta.cal_step.jump!r}); run calwebb_detector1 through jump first"
        )
    ngroups = model.data.shape[1]
    if ngroups < min_ngroups:
        raise SkipExposure(f"only {ngroups} groups per integration; at least {min_ngroups} are needed")
    group_time = model.meta.exposure.group_time
    if group_time is None or not np.isfinite(group_time) or group_time <= 0:
        raise SkipExposure(f"meta.exposure.group_time is {group_time!r}; it must be a positive number of seconds")
