"""Neural networks of astro_delens: normalisation, architectures, losses, augmentation, registry.

Submodules are imported lazily: ``import astro_delens.nn`` (and
`astro_delens.nn.normalization`, `astro_delens.nn.augment`,
`astro_delens.nn.architectures`) do not import Keras; building a network does,
and so do `astro_delens.nn.losses` and `astro_delens.nn.layers`. The registry (`load_estimator`,
`load_reconstructor`, `list_models`) imports Keras only when a model is loaded.
"""

__all__ = ["load_estimator", "load_reconstructor", "list_models"]

_LAZY = {
    "load_estimator": "astro_delens.nn.registry",
    "load_reconstructor": "astro_delens.nn.registry",
    "list_models": "astro_delens.nn.registry",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'astro_delens.nn' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
