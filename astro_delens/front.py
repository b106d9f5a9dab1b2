"""What the public classes share: loading a network, its preset and its provenance."""

from __future__ import annotations

import os

__all__ = ["load_network", "model_info", "NetworkFront"]


def load_network(model, kind, verify):
    """A `~astro_delens.nn.registry.LoadedEstimator` or ``LoadedReconstructor``.

    ``model`` is a loaded network of that ``kind``, a shipped family name, a
    model directory (see `astro_delens.nn.registry`) or None (the configured
    default, `astro_delens.config.conf`.default_model).
    """
    from .nn import registry

    if isinstance(model, (registry.LoadedEstimator, registry.LoadedReconstructor)):
        if model.kind != kind:
            raise ValueError(f"model: expected a loaded {kind}, got a {model.kind}")
        return model
    if model is None:
        model = registry.default_model()
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model: expected a model name or a model directory, "
                        f"got {type(model).__name__}")
    loader = registry.load_estimator if kind == "estimator" else registry.load_reconstructor
    return loader(model, verify=verify)


def model_info(loaded) -> dict:
    """Name, version, preset, checksums and path of a loaded network (recorded in results)."""
    return {
        "kind": loaded.kind,
        "name": loaded.name,
        "version": loaded.version,
        "preset": loaded.preset.name,
        "sha256": dict(loaded.sha256),
        "path": str(loaded.path),
    }


class NetworkFront:
    """Base of the public classes: a loaded network (``_model``), batch size and symmetries."""

    def _set_batch_size(self, batch_size, setting):
        """``batch_size``, or the setting of that name (`astro_delens.config`) when None."""
        if batch_size is None:
            from .config import conf

            batch_size = getattr(conf, setting)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")

    def _set_symmetries(self, symmetries):
        """``symmetries``, or the ``symmetries`` setting (`astro_delens.config`) when None."""
        from .nn.augment import symmetries_of_square

        if symmetries is None:
            from .config import conf

            symmetries = conf.symmetries
        symmetries_of_square(symmetries)  # checks the value
        self.symmetries = int(symmetries)

    def _prepare_item(self, item):
        """The prepared cutout of a `~astro_delens.batch.Item` on the model's grid."""
        from .cutout import prepare_cutout

        return prepare_cutout(item.data, self.preset, **item.kwargs)

    @property
    def preset(self):
        """The model's `~astro_delens.presets.Preset`: its image grid and training domain."""
        return self._model.preset

    @property
    def model_info(self) -> dict:
        """Name, version, preset and SHA-256 checksums of the model (recorded in results)."""
        return {**model_info(self._model), "symmetries": self.symmetries}
