"""Entry points: stpipe step discovery and the asdf schema resource mapping."""

import importlib.resources

__all__ = ["get_resource_mappings", "get_steps"]

SCHEMA_URI_PREFIX = "asdf://jwst-asteroid-step/schemas/"


def get_steps():
    """Describe the stpipe classes of this package (``stpipe.steps`` entry point).

    Returns
    -------
    list of tuple (str, str, bool)
        Fully-qualified class name, alias, and whether it is a Pipeline.
    """
    return [
        ("jwst_asteroid_step.step.AsteroidDetectStep", "asteroid_detect", False),
        ("jwst_asteroid_step.pipeline.AsteroidDetector1Pipeline", "calwebb_detector1_asteroid", True),
    ]


def get_resource_mappings():
    """Map the package's schema URIs to its schema files (``asdf.resource_mappings``).

    Returns
    -------
    list of asdf.resource.DirectoryResourceMapping
    """
    from asdf.resource import DirectoryResourceMapping

    root = importlib.resources.files("jwst_asteroid_step.datamodels") / "schemas"
    return [DirectoryResourceMapping(root, SCHEMA_URI_PREFIX)]
