"""``calwebb_detector1_asteroid``: Detector1Pipeline plus the asteroid catalog."""

import logging

from jwst.pipeline import Detector1Pipeline
from jwst.ramp_fitting import RampFitStep
from stdatamodels.jwst import datamodels

from .step import AsteroidDetectStep

__all__ = ["AsteroidDetector1Pipeline", "RampFitSegmentsStep"]

log = logging.getLogger(__name__)


class RampFitSegmentsStep(RampFitStep):
    """RampFitStep that also keeps its fit segments and its input ramp in memory.

    jwst's ramp_fit only builds the per-segment product (``fitopt``) when
    ``save_opt`` is set, and then only to save it.  This subclass always builds
    it, keeps it in ``self.fitopt`` with the jump-flagged ramp in ``self.ramp``,
    and writes the ``_fitopt`` file only if the user asked for it.  Rates are
    unchanged: ``save_opt`` only adds outputs in stcal.
    """

    def process(self, step_input):
        """Fit ramps as RampFitStep does, keeping the segments and the ramp.

        Parameters
        ----------
        step_input : str or RampModel
            Jump-flagged ramp.

        Returns
        -------
        rate, rateints : ImageModel, CubeModel
        """
        self.fitopt = None
        self.ramp = step_input
        if isinstance(step_input, datamodels.RampModel):
            _to_native_byte_order(step_input)
        self._user_save_opt = self.save_opt
        self.save_opt = True
        try:
            return super().process(step_input)
        finally:
            self.save_opt = self._user_save_opt

    def save_model(self, model, suffix=None, *args, **kwargs):
        """Capture the segment products; save them only when the user asked."""
        if suffix == "fitopt":
            self.fitopt = model
        if suffix in ("fitopt", "likely_chisq") and not self._user_save_opt:
            return None
        return super().save_model(model, suffix, *args, **kwargs)


def _to_native_byte_order(model):
    """Give the ramp's arrays native byte order, values unchanged.

    stcal's ramp fitting byte-swaps non-native arrays in place for its C code and
    leaves them swapped, so a big-endian ramp read from FITS would come out of
    ramp_fit holding garbage; the catalog is made from that ramp afterwards.
    """
    for name in ("data", "pixeldq", "groupdq"):
        arr = getattr(model, name)
        if not arr.dtype.isnative:
            setattr(model, name, arr.astype(arr.dtype.newbyteorder("=")))


class AsteroidDetector1Pipeline(Detector1Pipeline):
    """calwebb_detector1, then ``asteroid_detect`` on the in-memory ramp and segments.

    Writes ``_rate``, ``_rateints`` and ``_asteroids`` side by side.  Every
    Detector1Pipeline parameter keeps its meaning (``--steps.jump.*``, ``skip``,
    ``output_dir``); the catalog step is configured as ``--steps.asteroid_detect.*``.
    A failure of the catalog step is logged and recorded, and never costs the
    rate products.
    """

    class_alias = "calwebb_detector1_asteroid"

    step_defs = {
        **Detector1Pipeline.step_defs,
        "ramp_fit": RampFitSegmentsStep,
        "asteroid_detect": AsteroidDetectStep,
    }

    get_stpipe_loggers = staticmethod(AsteroidDetectStep.get_stpipe_loggers)

    @classmethod
    def get_config_from_reference(cls, dataset, disable=None, crds_observatory=None):
        """CRDS parameters, with the shipped asteroid_detect file when CRDS has none."""
        config = super().get_config_from_reference(dataset, disable, crds_observatory)
        if not len(config.get("steps", {}).get("asteroid_detect", {})):
            shipped = AsteroidDetectStep.get_config_from_reference(dataset, disable, crds_observatory)
            if len(shipped):
                config.setdefault("steps", {})["asteroid_detect"] = shipped
        return config

    def process(self, input_data):
        """Run Detector1, then the asteroid search.

        Parameters
        ----------
        input_data : str or RampModel
            Uncalibrated ramp.

        Returns
        -------
        ImageModel
            The rate product, as from Detector1Pipeline.
        """
        result = super().process(input_data)
        ramp = getattr(self.ramp_fit, "ramp", None)
        fitopt = getattr(self.ramp_fit, "fitopt", None)
        self.ramp_fit.ramp = self.ramp_fit.fitopt = None  # release the cube early
        if ramp is None and isinstance(result, datamodels.RampModel):
            ramp = result  # ramp_fit skipped: search the calibrated ramp, no segments
        if self.asteroid_detect.skip:
            log.info("asteroid_detect skipped by request.")
        elif ramp is None:
            log.warning("asteroid_detect not run: no jump-flagged ramp reached ramp_fit.")
        else:
            self._detect(ramp, fitopt)
        return result

    def _detect(self, ramp, fitopt):
        try:
            catalog = self.asteroid_detect.run(ramp, fitopt)
        except Exception:
            log.exception("asteroid_detect failed; the rate products are unaffected.")
            return
        self.save_model(catalog, suffix="asteroids", ext="asdf")
