"""astro_delens: neural lens-parameter estimation and source reconstruction for
galaxy-scale strong gravitational lenses, checked against the physics.

The public classes are imported lazily so that ``import astro_delens`` stays fast
and does not import Keras or TensorFlow.
"""

from ._version import __version__

__all__ = ["__version__", "LensParameterEstimator", "SourceReconstructor"]

_LAZY = {
    "LensParameterEstimator": "astro_delens.estimator",
    "SourceReconstructor": "astro_delens.reconstructor",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'astro_delens' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
