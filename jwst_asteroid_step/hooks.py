"""Add the asteroid catalog to a plain ``calwebb_detector1`` run.

Attach :class:`AsteroidDetectHook` as a pre-hook of ``ramp_fit``: it sees the
jump-flagged ramp on its way into ramp_fit, writes ``<root>_asteroids.asdf``, and
returns nothing, so ramp_fit gets its input untouched and the rate products are
the same as without the hook::

    strun calwebb_detector1 x_uncal.fits \\
        --steps.ramp_fit.pre_hooks="['jwst_asteroid_step.hooks.AsteroidDetectHook']"

or, in a parameter file, ``steps: [{class: ..., name: ramp_fit, parameters:
{pre_hooks: [jwst_asteroid_step.hooks.AsteroidDetectHook]}}]``
(see ``crds_params/README.md`` and the README).
"""

import logging

from .step import AsteroidDetectStep

__all__ = ["AsteroidDetectHook"]

log = logging.getLogger(__name__)


class AsteroidDetectHook(AsteroidDetectStep):
    """``asteroid_detect`` as a ramp_fit pre-hook: saves the catalog, returns None.

    It keeps the ``asteroid_detect`` alias, so the catalog records
    ``meta.cal_step.asteroid_detect`` as the step does; only the step is
    registered with stpipe.
    """

    def process(self, step_input):
        """Search the ramp, save the catalog beside the pipeline's products.

        Parameters
        ----------
        step_input : RampModel
            The ramp entering ramp_fit.

        Returns
        -------
        None
            So that ramp_fit runs on its original input.
        """
        try:
            catalog = super().process(step_input)
        except Exception:
            log.exception("asteroid_detect_hook failed; the pipeline continues unaffected.")
            return None
        top = self
        while top.parent is not None:
            top = top.parent
        if self.save_results or top.save_results:
            top.save_model(catalog, suffix="asteroids", ext="asdf")
        return None

    def get_reference_file(self, input_file, reference_file_type):
        """Use the gain and read noise files of the ramp_fit this hook rides on."""
        parent = self.parent
        if (
            parent is not None
            and self.get_ref_override(reference_file_type) is None
            and reference_file_type in parent.reference_file_types
        ):
            return parent.get_reference_file(input_file, reference_file_type)
        return super().get_reference_file(input_file, reference_file_type)
