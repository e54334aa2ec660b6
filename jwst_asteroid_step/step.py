"""``asteroid_detect``: find asteroids in a jump-flagged MIRI imager ramp."""

import json
import logging
from dataclasses import replace
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
from .psf import psf_for_filter, read_psf_file
from .psf.refine import refine_for_ramp
from .ramp.segments import check_fitopt
from .ramp.systematics import SAMPLE_SEED
from .ramp.usable import MAX_ABS_DN, usable_groupdq
from .search.backends import gpu_unavailable_reason
from .sky import add_flux_columns, add_sky_columns, observer_metadata
from .timebase import integration_offsets

__all__ = ["AsteroidDetectStep", "InputFileError"]

log = logging.getLogger(__name__)


class SkipExposure(Exception):
    """The exposure cannot be searched; the message says why."""


class InputFileError(OSError):
    """An input file cannot be read; the message names the file, the problem and the remedy."""


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
        min_motion_sigma = float(default=2.0, min=0)  # Minimum significance of a single-integration fit's speed
        multi_int_min_motion_sigma = float(default=5.0, min=0)  # Minimum significance of a multi-integration fit's speed
        min_consistency = float(default=0.4)  # Minimum median per-difference flux relative to the fit
        max_chi2_dof = float(default=3.0, min=0)  # Largest reduced chi-square of an accepted fit
        max_candidates = integer(default=500, min=1)  # Candidate tracks from jump flags fitted per integration at most
        search = boolean(default=True)  # Matched-filter (shift-and-stack) search below the jump threshold
        search_max_speed = float(default=0.5, min=0)  # Top speed (px/group) of the default search
        deep_search = boolean(default=False)  # Search up to deep_search_max_speed instead (slower)
        deep_search_max_speed = float(default=3.0, min=0)  # Top speed (px/group) of the deep search and of the fast search
        fast_search = boolean(default=True)  # Without deep_search, reach search_max_speed to deep_search_max_speed the cheap way: short windows on coarse grids, confirmed along the ramp (see docs/defaults.md)
        fast_search_window = integer(default=12, min=1)  # Group differences per window of the fast search
        fast_search_snr_threshold = float(default=5.5, min=0)  # SNR within one window that makes a fast-search peak a candidate
        search_snr_threshold = float(default=6.0, min=0)  # Coarse shift-and-stack SNR of a search candidate
        grid_loss = float(default=0.1, min=0, max=0.5)  # Largest SNR fraction lost to the velocity grid spacing
        search_max_candidates = integer(default=200, min=1)  # Search candidates refined per integration at most
        multi_int = boolean(default=True)  # With 3+ integrations, also follow movers too slow to show within one (method multi-int)
        trend_order = option('auto', '0', '1', '2', default='auto')  # Per-pixel rate trends profiled out (0 constant, 1 drift, 2 curvature; auto: a drift only where the ramp's drifts exceed the noise)
        drift_threshold = float(default=1.1, min=1.0)  # Drift spread (1 = noise model) above which trend_order=auto profiles a drift
        residual_flux_ratio = float(default=0.15, min=0, max=1)  # A detection with at most this fraction of a brighter one's flux, within residual_radius_fwhm of its track, is that one's unmodelled light and is dropped (0 keeps all)
        residual_radius_fwhm = float(default=4.0, min=0)  # Reach (PSF FWHMs) of a bright detection's unmodelled light
        search_backend = option('cpu', 'cupy', default='cpu')  # Where the search's scan runs: cpu (numba) or cupy (a CUDA GPU; the CPU, with a note, when none is available)
        psf_fwhm = float(default=None, min=0)  # A core FWHM (px): use two Gaussians of that width instead of psf_model
        psf_model = option('instrument', 'gaussian', default='instrument')  # PSF of the search, the fit and the photometry: the PSF computed from JWST's optics for the filter, or two Gaussians (docs: the PSF page)
        psf_file = string(default=None)  # A PSF FITS file (an ePSF with OVERSAMP, a photutils GriddedPSFModel, or stpsf calc_psf output); overrides psf_model
        psf_refine = boolean(default=True)  # Replace the PSF by an ePSF of the exposure's bright, isolated, unsaturated stars (photutils), normalised with the computed PSF's wing beyond 24 px or 6 FWHM; the model stays when no star is found or the model fits them
        min_ngroups = integer(default=5, min=3)  # Exposures with fewer groups are skipped
        allow_moving_target = boolean(default=False)  # Search exposures that track a moving target (stars then trail and are reported)
        max_jump_fraction = float(default=0.01, min=0, max=1)  # Above this JUMP_DET fraction (a shower storm) an integration is searched without its flags
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
    def _get_crds_parameters(cls, dataset):
        # stpipe reads a file's metadata before process() and tolerates only
        # OSError, TypeError and ValueError; a corrupt file raises many other
        # kinds.  Turn them into InputFileError so the file is reported once,
        # clearly, when process() opens it.
        try:
            return super()._get_crds_parameters(dataset)
        except (OSError, TypeError, ValueError, MemoryError):
            raise
        except Exception as err:  # astropy, asdf, yaml: any kind means unreadable
            raise InputFileError(f"cannot read the metadata of {dataset}: {_describe(err)}") from err

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
        with _open_model(step_input, arrays=("data", "groupdq", "pixeldq")) as model:
            catalog = AsteroidCatalogModel()
            catalog.update(model)
            catalog.meta.filename = _output_name(model.meta.filename)
            catalog.catalog = empty_catalog(0)
            self._notes = []
            self._psf_refinement = ("not reached: the exposure was skipped" if self.psf_refine
                                    else "not asked (psf_refine=False)")
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
                                products=products, notes="; ".join(self._notes))

    def _note(self, message):
        """Log a warning that also goes into ``meta.asteroid_detect.notes``."""
        log.warning(message)
        self._notes.append(message)

    def _search(self, model, fitopt):
        _check_searchable(model, self.min_ngroups, self.allow_moving_target)
        group_time = float(model.meta.exposure.group_time)
        if self.psf_file:
            try:  # the user's own file: an error, not a skip
                psf = read_psf_file(self.psf_file)
            except OSError as err:
                raise InputFileError(str(err)) from err
        else:
            try:
                psf = psf_for_filter(model.meta.instrument.filter, self.psf_fwhm, self.psf_model)
            except ValueError as err:
                raise SkipExposure(str(err)) from err
        fitopt_name = "N/A"
        if fitopt is not None:
            # ramp_fit names its in-memory product after the ramp; only a file is a file.
            fitopt_name = str(fitopt) if isinstance(fitopt, str | Path) else "in-memory RampFitOutputModel"
            with _open_model(fitopt, datamodels.RampFitOutputModel, arrays=("slope",)) as segments:
                try:
                    check_fitopt(model, segments)
                except ValueError as err:
                    raise ValueError(f"{fitopt_name} does not match {_name(model)}: {err}") from err
        gain, read_noise = self._noise_arrays(model)
        groupdq, storm_counts = self._usable_groupdq(model)
        if self.psf_refine:
            prior_name = psf.name
            psf, refinement = refine_for_ramp(psf, model.data, groupdq, model.pixeldq,
                                              model.meta.instrument.filter)
            self._psf_refinement = refinement.describe(prior_name)
            log.info("PSF refinement: %s", self._psf_refinement)
        config = DetectionConfig.from_mapping(self.get_pars())
        if config.search_backend != "cpu" and (reason := gpu_unavailable_reason()):
            self._note(f"search_backend={config.search_backend!r}: {reason}; the search ran on the CPU")
            config = replace(config, search_backend="cpu")
        starts = integration_offsets(model.data.shape[0], _integration_period(model, group_time),
                                     getattr(model, "int_times", None))
        table, counts = find_movers(
            model.data, groupdq, model.pixeldq, group_time, psf, read_noise, gain, config,
            integration_starts=starts,
        )
        for key, value in storm_counts.items():
            counts[key] = counts.get(key, 0) + value
        # A segmented exposure (TSO, long exposures) holds integrations
        # integration_start..integration_end of the exposure.
        first = model.meta.exposure.integration_start
        if first is not None and int(first) > 1:
            table["integration"] += int(first) - 1
        if not _known_start(model):
            self._note("meta.exposure.start_time is missing or not a number and there is no INT_TIMES "
                       "table: the catalog's mjd column is NaN (positions and motions are unaffected)")
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
            with _open_model(name, cls, arrays=("data",)) as ref:
                try:
                    if not reffile_utils.ref_matches_sci(model, ref):
                        ref = reffile_utils.get_subarray_model(model, ref)
                    data = np.array(ref.data, dtype=np.float32)
                except (ValueError, TypeError, IndexError) as err:
                    raise ValueError(
                        f"{_name(model)}: cannot cut the {reftype.upper()} reference file {name} "
                        f"to the ramp's subarray ({_subarray_text(model)}): {_describe(err)}; set meta.subarray to where the "
                        "SCI array lies on the detector"
                    ) from err
            if data.shape != model.data.shape[-2:]:
                raise ValueError(
                    f"{_name(model)}: the {reftype.upper()} reference file {name} cut to the "
                    "ramp's subarray is "
                    f"{data.shape[0]}x{data.shape[1]} pixels but SCI is {model.data.shape[-2]}x"
                    f"{model.data.shape[-1]} ({_subarray_text(model)}); set meta.subarray to where the "
                    "SCI array lies on the detector"
                )
            arrays.append(data)
        return arrays

    def _usable_groupdq(self, model):
        """GROUPDQ as the search should see it (:func:`~.ramp.usable.usable_groupdq`),
        with a note for every read or integration set aside.

        Returns
        -------
        groupdq : ndarray
            ``model.groupdq`` itself when nothing needs changing, else a copy.
        counts : dict
            ``n_storm_integrations`` and the JUMP_DET cells set aside.

        Raises
        ------
        SkipExposure
            When no group difference of any integration is usable.
        """
        flags = usable_groupdq(model.data, model.groupdq, model.pixeldq, self.max_jump_fraction)
        for i, n_jump, n_here in flags.storms:
            self._note(
                f"integration {i + 1}: {n_jump} JUMP_DET differences, {n_jump / n_here:.1%} of the "
                f"usable ones (max_jump_fraction={self.max_jump_fraction}): a shower storm? Its "
                "flagged groups are set aside unclassified and only the matched-filter search "
                "runs there"
            )
        if flags.n_bad_reads:
            self._note(f"{flags.n_bad_reads} SCI reads are NaN, infinite or beyond {MAX_ABS_DN:g} DN; "
                       "they are treated as DO_NOT_USE")
        if flags.n_usable == 0:
            raise SkipExposure(
                "no usable group difference: every group is DO_NOT_USE or SATURATED, every pixel "
                "DO_NOT_USE or a reference pixel, or the SCI reads are not finite"
            )
        return flags.groupdq, {"n_storm_integrations": len(flags.storms),
                               "n_jump_cells": sum(n for _, n, _ in flags.storms)}

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
        meta.asteroid_detect.random_seed = SAMPLE_SEED
        if psf is not None:
            meta.asteroid_detect.psf_fwhm = float(psf.fwhm)
            meta.asteroid_detect.psf_model = psf.name
        meta.asteroid_detect.psf_refinement = self._psf_refinement
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
    """Open a path as a datamodel, or use a model as given (never modified).

    A file that cannot be read, or whose ``arrays`` cannot be loaded (read
    here, not lazily later, so a truncated file fails in one place), raises
    :class:`InputFileError` naming the file and the problem.
    """

    def __init__(self, init, cls=None, arrays=()):
        self.init, self.cls, self.arrays = init, cls, arrays
        self.owned = not isinstance(init, datamodels.JwstDataModel)

    def __enter__(self):
        if not self.owned:
            self.model = self.init
            return self.model
        if not isinstance(self.init, str | Path):
            raise TypeError(
                f"asteroid_detect cannot use a {type(self.init).__name__} as input: pass a file name "
                "or a datamodel (a RampModel after jump, a RampFitOutputModel for fitopt)"
            )
        if not Path(self.init).is_file():
            raise InputFileError(f"input file {self.init} does not exist (or is not a file)")
        self.model = None
        try:
            self.model = self.cls(self.init) if self.cls is not None else datamodels.open(self.init)
            for name in self.arrays:
                try:
                    value = getattr(self.model, name)
                except AttributeError:
                    continue  # not in this kind of model: _check_searchable reports it
                np.asarray(value)  # loads a lazily read array now
        except MemoryError:
            self._close()
            raise
        except Exception as err:  # astropy, asdf, yaml, numpy: any kind means unreadable
            self._close()
            raise InputFileError(
                f"cannot read {self.init}: {_describe(err)}. The file is truncated or corrupt, or "
                "not a JWST data product of the expected kind; write it again (e.g. rerun "
                "calwebb_detector1 with save_results)"
            ) from err
        return self.model

    def _close(self):
        if self.model is not None:
            self.model.close()

    def __exit__(self, *exc):
        if self.owned:
            self._close()
        return False


def _describe(err):
    """One line: the exception's kind and first line of its message."""
    text = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _name(model):
    """The input's file name, for messages."""
    return model.meta.filename or "the input ramp"


def _subarray_text(model):
    sub = model.meta.subarray
    return (f"meta.subarray name={sub.name}, xstart={sub.xstart}, ystart={sub.ystart}, "
            f"xsize={sub.xsize}, ysize={sub.ysize}; SCI is {model.data.shape[-2]} rows x "
            f"{model.data.shape[-1]} columns")


def _known_start(model):
    """Whether the catalog can give times as MJD: a start time or an INT_TIMES table."""
    start = model.meta.exposure.start_time
    try:
        if start is not None and np.isfinite(float(start)):
            return True
    except (TypeError, ValueError):
        pass
    int_times = getattr(model, "int_times", None)
    return int_times is not None and len(int_times) > 0


def _check_searchable(model, min_ngroups, allow_moving_target=False):
    """Raise SkipExposure with the reason when the ramp cannot be searched.

    Raises ValueError instead when the file contradicts itself (its subarray
    keywords and its SCI shape disagree): a skip would hide a damaged product.
    """
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
    if model.meta.target.type == "MOVING" and not allow_moving_target:
        raise SkipExposure(
            "the exposure tracks a moving target (TARGTYPE MOVING), so the stars trail across the "
            "detector and would be reported as movers; set allow_moving_target=True to search it "
            "anyway (velocities are then relative to the tracked target)"
        )
    if np.ndim(model.data) != 4:
        raise ValueError(
            f"{_name(model)}: SCI has shape {np.shape(model.data)}; a ramp is "
            "(nints, ngroups, rows, columns): pass the jump step's RampModel (<root>_jump.fits)"
        )
    sub = model.meta.subarray
    if sub.xsize is not None and sub.ysize is not None and (sub.ysize, sub.xsize) != model.data.shape[-2:]:
        raise ValueError(
            f"{_name(model)}: the subarray keywords and the SCI array disagree "
            f"({_subarray_text(model)}): the file is damaged or was edited; set meta.subarray to match the SCI array"
        )
    ngroups = model.data.shape[1]
    if ngroups < min_ngroups:
        raise SkipExposure(f"only {ngroups} groups per integration; at least {min_ngroups} are needed")
    group_time = model.meta.exposure.group_time
    if group_time is None or not np.isfinite(group_time) or group_time <= 0:
        raise SkipExposure(f"meta.exposure.group_time is {group_time!r}; it must be a positive number of seconds")
