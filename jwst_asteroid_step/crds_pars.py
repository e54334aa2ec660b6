"""Parameter reference files shipped with the package (``crds_params/``).

They stand in for CRDS ``pars-asteroiddetectstep`` files, which CRDS does not
(yet) serve.  Precedence, highest first: command line or ``call`` keywords > a
user's parameter file > a CRDS pars file > the shipped file that matches the
exposure > the spec defaults.
"""

import importlib.resources
import logging
from pathlib import Path

import asdf
from stpipe import config_parser

__all__ = ["SHIPPED_PARS_PACKAGE", "find_shipped_pars", "shipped_config"]

log = logging.getLogger(__name__)

SHIPPED_PARS_PACKAGE = "jwst_asteroid_step.crds_params"


def _selectors(path):
    with asdf.open(path, lazy_load=False, memmap=False) as af:
        meta = af.tree.get("meta", {})
        step_class = af.tree.get("class", "")
    exp_types = str(meta.get("exposure", {}).get("p_exptype", meta.get("exposure", {}).get("type", "")))
    instrument = meta.get("instrument", {})
    return {
        "class": step_class,
        "instrument": str(instrument.get("name", "")).upper(),
        "exp_types": {e.strip().upper() for e in exp_types.split("|") if e.strip()},
        "filter": str(instrument.get("filter", "ANY")).upper(),
        "readpatt": str(meta.get("exposure", {}).get("readpatt", "ANY")).upper(),
    }


def _value(crds_parameters, *keys):
    for key in keys:
        value = crds_parameters.get(key)
        if value not in (None, ""):
            return str(value).upper()
    return ""


def find_shipped_pars(crds_parameters, step_class="AsteroidDetectStep", directory=None):
    """Pick the shipped parameter file that best matches an exposure.

    A file matches when its instrument and one of its exposure types match; among
    matches, one that names the exposure's filter or readout pattern beats one
    that says ``ANY``.

    Parameters
    ----------
    crds_parameters : dict
        Flattened exposure metadata, as from ``model.get_crds_parameters()``
        (keys such as ``meta.instrument.name``, ``meta.exposure.type``).
    step_class : str
        Step class name the file must be for.
    directory : path-like, optional
        Folder to search instead of the installed ``crds_params``.

    Returns
    -------
    pathlib.Path or importlib.resources.abc.Traversable or None
    """
    instrument = _value(crds_parameters, "meta.instrument.name")
    exp_type = _value(crds_parameters, "meta.exposure.type")
    filt = _value(crds_parameters, "meta.instrument.filter")
    readpatt = _value(crds_parameters, "meta.exposure.readpatt")
    best, best_score = None, -1
    root = Path(directory) if directory is not None else importlib.resources.files(SHIPPED_PARS_PACKAGE)
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".asdf"):
            continue
        with importlib.resources.as_file(entry) as path:
            sel = _selectors(path)
        if not sel["class"].endswith(step_class) or sel["instrument"] != instrument:
            continue
        if exp_type not in sel["exp_types"]:
            continue
        if sel["filter"] not in ("ANY", filt) or sel["readpatt"] not in ("ANY", readpatt):
            continue
        score = (sel["filter"] != "ANY") + (sel["readpatt"] != "ANY")
        if score > best_score:
            best, best_score = entry, score
    return best


def shipped_config(crds_parameters, step_class="AsteroidDetectStep"):
    """Step parameters from the matching shipped file, as a ConfigObj.

    Parameters
    ----------
    crds_parameters : dict
        Flattened exposure metadata.
    step_class : str
        Step class name.

    Returns
    -------
    configobj.ConfigObj
        Empty when no shipped file matches.
    """
    entry = find_shipped_pars(crds_parameters, step_class)
    if entry is None:
        return config_parser.ConfigObj()
    with importlib.resources.as_file(entry) as path:
        log.info("Using shipped parameter file %s (no CRDS parameter file)", entry.name)
        return config_parser.load_config_file(str(path))
