"""The ramp_fit segment product (``fitopt``) and its agreement with the ramp."""

import numpy as np

__all__ = ["check_fitopt"]

# Exposure identifiers two products of one exposure share.
_IDENTITY_KEYS = (
    ("exposure", "start_time"),
    ("observation", "program_number"),
    ("observation", "observation_number"),
    ("observation", "visit_number"),
    ("observation", "exposure_number"),
    ("instrument", "detector"),
    ("instrument", "filter"),
)


def check_fitopt(ramp, fitopt):
    """Check that a fitopt product belongs to a ramp.

    Parameters
    ----------
    ramp : RampModel
        The jump-flagged ramp.
    fitopt : RampFitOutputModel
        The ramp_fit segments.

    Raises
    ------
    ValueError
        If the shapes disagree or the exposure metadata differ, naming what
        differs and the remedy.
    """
    nints, _, ny, nx = ramp.data.shape
    shape = np.shape(fitopt.slope)
    if len(shape) != 4 or (shape[0], shape[2], shape[3]) != (nints, ny, nx):
        raise ValueError(
            f"fitopt slope has shape {shape}, but the ramp has {nints} integration(s) of "
            f"{ny}x{nx} pixels: pass the _fitopt file made by ramp_fit from this ramp"
        )
    for section, key in _IDENTITY_KEYS:
        a = getattr(getattr(ramp.meta, section), key, None)
        b = getattr(getattr(fitopt.meta, section), key, None)
        if a is not None and b is not None and a != b:
            raise ValueError(
                f"fitopt is from a different exposure: meta.{section}.{key} is {b!r} there "
                f"and {a!r} in the ramp; pass the _fitopt file made from this ramp"
            )
