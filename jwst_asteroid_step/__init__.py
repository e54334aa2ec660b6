"""Find asteroids in JWST MIRI imager ramps.

The stpipe classes are imported lazily so that the pure algorithm modules can be
used without loading the pipeline machinery.
"""

__version__ = "0.1.0"

__all__ = ["AsteroidCatalogModel", "AsteroidDetectStep", "AsteroidDetector1Pipeline", "__version__"]


def __getattr__(name):
    if name == "AsteroidDetectStep":
        from .step import AsteroidDetectStep

        return AsteroidDetectStep
    if name == "AsteroidDetector1Pipeline":
        from .pipeline import AsteroidDetector1Pipeline

        return AsteroidDetector1Pipeline
    if name == "AsteroidCatalogModel":
        from .datamodels import AsteroidCatalogModel

        return AsteroidCatalogModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
