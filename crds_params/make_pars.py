"""Write the shipped ``pars-asteroiddetectstep`` parameter reference files.

Run ``python -m jwst_asteroid_step.crds_params.make_pars`` after changing a default;
each file records the selectors CRDS uses (instrument, exposure type, filter,
readout pattern) in its ``meta``.
"""

from datetime import datetime, timezone
from pathlib import Path

import asdf

#: One entry per shipped file: selectors, then parameters that differ from the spec.
SHIPPED = {
    "jwst_miri_pars-asteroiddetectstep_0001.asdf": {
        "selectors": {"exp_type": "MIR_IMAGE", "filter": "ANY", "readpatt": "ANY"},
        "description": "asteroid_detect defaults for MIRI imaging, all filters and readouts",
        "parameters": {},
    },
}


def write_pars(directory=Path(__file__).parent):
    """Write every file of :data:`SHIPPED` into ``directory``."""
    from jwst_asteroid_step.step import AsteroidDetectStep

    defaults = AsteroidDetectStep().get_pars()
    keep = [k for k in AsteroidDetectStep.load_spec_file() if k not in _NOT_SHIPPED and not k.startswith("override_")]
    for name, entry in SHIPPED.items():
        pars = {k: defaults[k] for k in keep}
        pars.update(entry["parameters"])
        sel = entry["selectors"]
        tree = {
            "class": "jwst_asteroid_step.step.AsteroidDetectStep",
            "name": "asteroid_detect",
            "parameters": pars,
            "meta": {
                "author": "jwst-asteroid-step developers",
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                "description": entry["description"],
                "instrument": {"name": "MIRI", "filter": sel["filter"]},
                "exposure": {"type": sel["exp_type"], "p_exptype": sel["exp_type"] + "|",
                             "readpatt": sel["readpatt"]},
                "origin": "jwst-asteroid-step",
                "pedigree": "GROUND",
                "reftype": "pars-asteroiddetectstep",
                "telescope": "JWST",
                "useafter": "2022-01-01T00:00:00",
            },
        }
        asdf.AsdfFile(tree).write_to(Path(directory) / name)


# Generic stpipe parameters and inputs: never set by a parameter reference file.
_NOT_SHIPPED = {
    "pre_hooks", "post_hooks", "output_file", "output_dir", "output_ext", "output_use_model",
    "output_use_index", "save_results", "skip", "suffix", "search_output_file", "input_dir",
    "fitopt",
    "psf_file",  # a file on the user's machine
    "search_backend",  # where the user's machine runs the scan, not a calibration choice
}


if __name__ == "__main__":
    write_pars()
