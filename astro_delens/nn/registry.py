"""Load trained networks: shipped model families or model directories.

A **model directory** holds

``config.json``
    ``kind`` ("estimator" or "reconstructor"), the architecture
    hyperparameters, the normalisation settings and parameter statistics, the
    preset (image and source grids) and the training provenance;
``model.weights.h5``
    the weights (Keras ``.weights.h5``);
``card.md``
    the model card;
``SHA256SUMS``
    SHA-256 checksums of the files above (``sha256sum`` format).

A **family** is a directory with ``estimator/`` and/or ``reconstructor/``
model directories. Families shipped with the package live in
``astro_delens/models/<family>/`` (e.g. ``survey``, ``seed``).

Every file listed in ``SHA256SUMS`` is checked before a model is loaded; a
mismatch raises `ChecksumError`. Keras is only imported when a model is
actually loaded, never by importing this module or by `list_models`.

Examples
--------
>>> from astro_delens.nn.registry import list_models
>>> isinstance(list_models(), list)
True
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..files import atomic_write_text, sha256_file, to_json, write_checksums
from ..nn import normalization as norm
from ..presets import preset_from_dict
from .augment import inverse_transform_image, inverse_transform_params, symmetries_of_square

__all__ = [
    "MODELS_DIR",
    "KINDS",
    "DEFAULT_SYMMETRIES",
    "ChecksumError",
    "ModelNotFoundError",
    "resolve_model_dir",
    "verify_checksums",
    "read_config",
    "load_estimator",
    "load_reconstructor",
    "load_model",
    "list_models",
    "save_model_dir",
    "LoadedEstimator",
    "LoadedReconstructor",
    "combine_symmetries",
    "stored_scale",
]

#: Where the shipped model families live.
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
KINDS = ("estimator", "reconstructor")

#: The shipped family the public classes and the command line use by default.
DEFAULT_FAMILY = "sky"

#: Default number of symmetries of the square the networks' answers are averaged over
#: (see `LoadedEstimator.predict`): 1 (the network alone), 4 (the rotations) or 8.
DEFAULT_SYMMETRIES = 8

REQUIRED = ("config.json", "model.weights.h5")


class ChecksumError(ValueError):
    """A file of a model directory does not match its SHA-256 checksum."""


class ModelNotFoundError(FileNotFoundError):
    """No shipped model or model directory of that name."""


def shipped_families() -> list[str]:
    """Names of the model families shipped with the package (may be empty)."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir()
                  if p.is_dir() and any((p / k / "config.json").exists() for k in KINDS))


def default_model() -> str:
    """The model used when none is given: ``astro_delens.config.conf.default_model``."""
    from ..config import conf

    return conf.default_model


def resolve_model_dir(name_or_path, kind=None) -> Path:
    """The model directory of a shipped family name or of a path.

    Parameters
    ----------
    name_or_path : str, path-like or None
        A shipped family (``"sky"``, ``"survey"``, ``"seed"``), a model directory, or a
        family directory (holding ``estimator/`` and ``reconstructor/``); None:
        `default_model`.
    kind : {"estimator", "reconstructor"}, optional
        Needed for family names and family directories.

    Raises
    ------
    ModelNotFoundError
        If nothing matches.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    text = str(default_model() if name_or_path is None else name_or_path)
    candidates = []
    if kind is not None and "/" not in text and "\\" not in text:
        candidates.append(MODELS_DIR / text / kind)
    path = Path(text).expanduser()
    candidates.append(path)
    if kind is not None:
        candidates.append(path / kind)
    for c in candidates:
        if (c / "config.json").is_file():
            return c
    shipped = shipped_families()
    what = f"{kind} " if kind else ""
    raise ModelNotFoundError(
        f"model: no {what}model called {text!r}: not a shipped family "
        f"({', '.join(shipped) if shipped else 'none shipped yet'}) and not a model directory "
        "with a config.json")


def read_sums(model_dir) -> dict:
    """Parse ``SHA256SUMS`` of a model directory into ``{filename: hex digest}``."""
    path = Path(model_dir) / "SHA256SUMS"
    if not path.is_file():
        raise ChecksumError(f"{model_dir}: no SHA256SUMS file; cannot verify the model")
    sums = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ChecksumError(f"{path}: line {n} is not '<sha256>  <file>'")
        sums[parts[1].strip().lstrip("*")] = parts[0].lower()
    return sums


def verify_checksums(model_dir) -> dict:
    """Check every file listed in ``SHA256SUMS``; return ``{filename: hex digest}``.

    Raises
    ------
    ChecksumError
        If SHA256SUMS is missing or malformed, does not list ``config.json`` and
        ``model.weights.h5``, a listed file is missing, or a digest differs.
    """
    model_dir = Path(model_dir)
    sums = read_sums(model_dir)
    unlisted = [name for name in REQUIRED if name not in sums]
    if unlisted:
        raise ChecksumError(f"{model_dir}: SHA256SUMS does not list {unlisted}")
    for name, digest in sums.items():
        f = model_dir / name
        if not f.is_file():
            raise ChecksumError(f"{f}: listed in SHA256SUMS but missing")
        actual = sha256_file(f)
        if actual != digest:
            raise ChecksumError(
                f"{f}: SHA-256 mismatch (expected {digest[:16]}..., got {actual[:16]}...): "
                "the file is corrupted or was modified; re-install or re-download the model")
    return sums


def read_config(model_dir) -> dict:
    """The ``config.json`` of a model directory (no verification)."""
    path = Path(model_dir) / "config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelNotFoundError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from None
    if cfg.get("kind") not in KINDS:
        raise ValueError(f"{path}: 'kind' must be one of {KINDS}, got {cfg.get('kind')!r}")
    return cfg


def _card(model_dir, cfg) -> dict:
    path = Path(model_dir) / "card.md"
    return {
        "kind": cfg.get("kind"),
        "preset": cfg.get("preset", {}).get("name"),
        "version": cfg.get("version"),
        "status": cfg.get("status"),
        "training": cfg.get("training", {}),
        "evaluation": cfg.get("evaluation"),
        "markdown": path.read_text(encoding="utf-8") if path.is_file() else "",
    }


class _LoadedModel:
    """Common part of `LoadedEstimator` and `LoadedReconstructor`."""

    kind = None

    def __init__(self, model_dir, name=None, verify=True):
        self.path = Path(model_dir)
        self.sha256 = verify_checksums(self.path) if verify else {}
        self.config = read_config(self.path)
        if self.config["kind"] != self.kind:
            raise ValueError(f"model: {self.path} holds a {self.config['kind']}, "
                             f"not a {self.kind}")
        method = self.config.get("normalization", {}).get("method")
        if method != norm.METHOD:
            raise ValueError(f"model: {self.path} uses normalisation {method!r}; this version "
                             f"of astro_delens implements {norm.METHOD!r}")
        self.preset = preset_from_dict(self.config["preset"])
        self.name = name or self.path.name
        self.version = self.config.get("version")
        self.card = _card(self.path, self.config)
        self.model = self._build()

    def _build(self):
        import keras

        from . import architectures

        model = architectures.build_model(self.kind, self.config["architecture"])
        model.load_weights(str(self.path / "model.weights.h5"))
        # Keras' compiled prediction function: 2-3x faster than calling the model
        # eagerly on a CPU, with XLA where the backend has it for every layer
        # (not torch; on TensorFlow, not the cascade's affine resampling).
        backend = keras.backend.backend()
        cascade = bool(self.config["architecture"].get("cascade"))
        model.compile(jit_compile=backend == "jax" or (backend == "tensorflow" and not cascade))
        return model

    def __repr__(self):
        return (f"<{type(self).__name__} {self.name!r} ({self.preset.name} preset, "
                f"{self.preset.npix}x{self.preset.npix} at {self.preset.pixel_scale}\"/px) "
                f"from {self.path}>")

    def _inputs(self, image, noise_map, mask):
        img = np.asarray(image, dtype=np.float64)
        single = img.ndim == 2
        if img.ndim not in (2, 3):
            raise ValueError(f"image: expected shape (H, W) or (N, H, W), got {img.shape}")
        n = self.preset.npix
        if img.shape[-2:] != (n, n):
            raise ValueError(
                f"image: the {self.name!r} model needs {n} x {n} pixels at "
                f"{self.preset.pixel_scale}\"/pixel, got {img.shape[-2:]}; resample first")
        if noise_map is not None:
            noise = np.asarray(noise_map, dtype=np.float64)
            if noise.shape[-2:] != (n, n):
                raise ValueError(f"noise_map: shape {noise.shape} does not match image "
                                 f"shape {img.shape}")
        else:
            noise = None
        x, scale = norm.normalize_inputs(img, noise, mask)
        if single:
            x, scale = x[None], scale[None]
        return x, scale

    def _run(self, x, batch_size):
        """The network's outputs for normalised inputs ``x`` (N, H, W, C), in batches.

        The last batch is padded to a power of two, so that the compiled
        prediction function is built for at most log2(batch_size) + 1 shapes.
        """
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        batch_size = int(batch_size)
        outs = []
        for i in range(0, len(x), batch_size):
            batch = x[i:i + batch_size]
            n = len(batch)
            size = min(batch_size, 1 << (n - 1).bit_length())
            if size > n:
                batch = np.concatenate([batch, np.zeros((size - n, *batch.shape[1:]), batch.dtype)])
            y = self.model.predict_on_batch(batch)
            outs.append(np.asarray(y[:n], dtype=np.float64))
        return np.concatenate(outs, axis=0)

    def _run_symmetries(self, x, batch_size, symmetries):
        """The network's outputs for each symmetry of the square applied to ``x`` (N, H, W, C).

        The turned and flipped copies of a group of images share network
        batches. Yields ``(k, flip, output)``; the output is in the transformed frame.
        """
        transforms = symmetries_of_square(symmetries)
        per_group = max(1, int(batch_size) // len(transforms))
        groups = []
        for i in range(0, len(x), per_group):
            group = x[i:i + per_group]
            # The same operations as augment.transform_image, on the (H, W) axes 1 and 2.
            copies = [np.rot90(np.flip(group, axis=2) if flip else group, k, axes=(1, 2))
                      for k, flip in transforms]
            out = self._run(np.ascontiguousarray(np.concatenate(copies)), batch_size)
            groups.append(out.reshape(len(transforms), len(group), *out.shape[1:]))
        outputs = np.concatenate(groups, axis=1)
        for (k, flip), out in zip(transforms, outputs):
            yield k, flip, out


class LoadedEstimator(_LoadedModel):
    """A loaded parameter network (see `load_estimator`).

    Attributes
    ----------
    preset : `~astro_delens.presets.Preset`
    name, version : str
    sha256 : dict
        File name -> hex digest, as verified.
    card : dict
        ``markdown`` (card.md), ``training``, ``evaluation`` (or None), ...
    config : dict
        The model's config.json.
    model : keras.Model
    """

    kind = "estimator"

    @property
    def stats(self) -> dict:
        """Parameter standardisation statistics ``{"mean": [...], "std": [...]}``."""
        return self.config["normalization"]["params"]

    def sigma_scale(self, symmetries=DEFAULT_SYMMETRIES) -> np.ndarray:
        """Per-parameter factors applied to the sigmas averaged over ``symmetries``.

        Ones when the model is not calibrated; see `astro_delens.training.calibrate`.
        """
        scale = stored_scale(self.config.get("calibration"), symmetries)
        return np.ones(len(self.stats["mean"])) if scale is None else np.asarray(scale, float)

    def predict_symmetries(self, image, noise_map, mask=None, batch_size=256,
                           symmetries=DEFAULT_SYMMETRIES):
        """Uncalibrated estimates from each symmetry of the square, in the input's frame.

        The network sees the image turned and flipped (`astro_delens.nn.augment`);
        its answers are turned back with `~astro_delens.nn.augment.inverse_transform_params`.

        Returns
        -------
        mean, std : numpy.ndarray, shape (symmetries, N, 8)
        """
        x, _ = self._inputs(image, noise_map, mask)
        n = len(self.stats["mean"])
        means, stds = [], []
        for k, flip, out in self._run_symmetries(x, batch_size, symmetries):
            mean = norm.denormalize_params(out[:, :n], self.stats)
            std = np.exp(0.5 * out[:, n:2 * n]) * np.asarray(self.stats["std"], dtype=np.float64)
            means.append(inverse_transform_params(mean, k, flip))
            # The symmetries only permute parameters and change their signs, so the
            # same transform applied to the sigmas is right up to sign.
            stds.append(np.abs(inverse_transform_params(std, k, flip)))
        return np.stack(means), np.stack(stds)

    def predict(self, image, noise_map, mask=None, batch_size=256, calibrated=True,
                symmetries=DEFAULT_SYMMETRIES):
        """Posterior means and standard deviations of the eight lens parameters.

        Parameters
        ----------
        image : array-like, shape (N, H, W) or (H, W)
            Background-subtracted images on the model's grid, north up, east left.
        noise_map : array-like or None
            1-sigma noise per pixel, same shape (None: noise-free).
        mask : array-like of bool, optional
            True where pixels must be ignored.
        batch_size : int
        calibrated : bool
            Apply the model's calibration of the sigmas (`sigma_scale`); False
            gives the network's raw sigmas.
        symmetries : {8, 4, 1}
            Average the network's answers over this many symmetries of the
            square (turns and flips of the image, the answers turned back):
            8 costs 8 network calls and lowers the errors (by about 12% for
            theta_E with the shipped survey model); 1 is the network alone.
            The sigmas are the root mean square of the members' sigmas,
            calibrated for the same number of symmetries.

        Returns
        -------
        mean, std : numpy.ndarray, shape (N, 8)
            In physical units, `astro_delens.lensmodel.PARAMETER_NAMES` order.
        """
        means, stds = self.predict_symmetries(image, noise_map, mask, batch_size, symmetries)
        mean, std = combine_symmetries(means, stds)
        if calibrated:
            std = std * self.sigma_scale(symmetries)
        return mean, std


def stored_scale(calibration, symmetries):
    """The factors of a ``calibration`` entry for ``symmetries``, or None.

    Entries hold one list per number of symmetries (``{"1": [...], "8":
    [...]}``); a plain list, as written before averaging existed, applies to
    every number.
    """
    scale = (calibration or {}).get("sigma_scale")
    if isinstance(scale, dict):
        scale = scale.get(str(int(symmetries)))
    return scale


def combine_symmetries(means, stds):
    """Average estimates ``(M, N, 8)`` from M symmetries: mean of means, RMS of the sigmas.

    The members see the same pixels, so their errors are strongly correlated:
    the sigmas are not divided by sqrt(M); calibration (`sigma_scale`) sets
    their scale.
    """
    return np.mean(means, axis=0), np.sqrt(np.mean(np.square(stds), axis=0))


class LoadedReconstructor(_LoadedModel):
    """A loaded source network (see `load_reconstructor`); attributes as `LoadedEstimator`."""

    kind = "reconstructor"

    def predict_normalized(self, x, batch_size=64, symmetries=DEFAULT_SYMMETRIES):
        """Normalised sources ``(N, S, S)`` from normalised inputs ``x`` (see `normalization`).

        The network's outputs for the ``symmetries`` turns and flips of the
        input are turned back and averaged.
        """
        total = 0.0
        for k, flip, out in self._run_symmetries(x, batch_size, symmetries):
            total = total + inverse_transform_image(out[..., 0], k, flip)
        return total / symmetries

    def predict(self, image, noise_map, mask=None, batch_size=64,
                symmetries=DEFAULT_SYMMETRIES):
        """Reconstruct the unlensed source.

        Parameters
        ----------
        image, noise_map, mask, batch_size, symmetries
            As `LoadedEstimator.predict`; the sources from the symmetries
            are turned back and averaged.

        Returns
        -------
        numpy.ndarray, shape (N, S, S), float32
            Source surface brightness per source-plane pixel
            (``S = preset.source_npix`` pixels of ``preset.source_pixel_scale``,
            centred on the lens centre), in the image's flux units.
        """
        x, scale = self._inputs(image, noise_map, mask)
        return norm.denormalize_source(self.predict_normalized(x, batch_size, symmetries), scale)


def _load(cls, name_or_path, verify):
    model_dir = resolve_model_dir(name_or_path, cls.kind)
    # a family's model directory is named after its kind: the model takes the family's name
    name = model_dir.resolve().parent.name if model_dir.name == cls.kind else model_dir.name
    return cls(model_dir, name=name, verify=verify)


def load_estimator(name_or_path=None, verify=True) -> LoadedEstimator:
    """Load a parameter network.

    Parameters
    ----------
    name_or_path : str, path-like or None
        A shipped family (``"sky"``, ``"survey"``, ``"seed"``), a model directory, or a
        family directory; None: `default_model`.
    verify : bool
        Check the SHA-256 of every file listed in SHA256SUMS first (default).

    Raises
    ------
    ModelNotFoundError, ChecksumError, ValueError
    """
    return _load(LoadedEstimator, name_or_path, verify)


def load_reconstructor(name_or_path=None, verify=True) -> LoadedReconstructor:
    """Load a source network; arguments as `load_estimator`."""
    return _load(LoadedReconstructor, name_or_path, verify)


def load_model(model_dir, verify=True):
    """Load whatever kind of model ``model_dir`` holds (from its config.json)."""
    model_dir = Path(model_dir)
    kind = read_config(model_dir)["kind"]
    cls = LoadedEstimator if kind == "estimator" else LoadedReconstructor
    return cls(model_dir, verify=verify)


def list_models(models_dir=None) -> list[dict]:
    """The shipped model families and their cards (no Keras import, no verification).

    Returns
    -------
    list of dict
        One dict per family: ``name``, ``path``, and ``models``: ``{kind: card}``
        where a card is the dict of `LoadedEstimator.card` plus ``path``.
    """
    root = Path(models_dir) if models_dir is not None else MODELS_DIR
    out = []
    if not root.is_dir():
        return out
    for fam in sorted(p for p in root.iterdir() if p.is_dir()):
        models = {}
        for kind in KINDS:
            d = fam / kind
            if (d / "config.json").is_file():
                try:
                    cfg = read_config(d)
                except ValueError as exc:
                    models[kind] = {"path": str(d), "error": str(exc)}
                    continue
                models[kind] = dict(_card(d, cfg), path=str(d))
        if models:
            out.append({"name": fam.name, "path": str(fam), "models": models})
    return out


def save_model_dir(out, kind, model, architecture, preset, stats=None, card=None, extra=None):
    """Write a model directory from an in-memory Keras model (used by tests and tools).

    Parameters
    ----------
    out : path-like
        Directory to create (or fill).
    kind : {"estimator", "reconstructor"}
    model : keras.Model
        Built with ``architectures.build_model(kind, architecture)``.
    architecture : dict
        Its hyperparameters.
    preset : `~astro_delens.presets.Preset`
    stats : dict, optional
        Parameter statistics (default: the preset's prior moments).
    card : str, optional
        Markdown of card.md (default: a one-line stub).
    extra : dict, optional
        More entries for config.json (e.g. ``training``).
    """
    import warnings

    from .._version import __version__
    from .. import lensmodel
    from .architectures import resolve_config

    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if stats is None:
        stats = norm.param_stats(preset.name)
    cfg = {
        "format_version": 1,
        "kind": kind,
        "version": __version__,
        "status": "trained",
        "architecture": resolve_config(kind, architecture),
        "normalization": dict(norm.description(), params=stats),
        "parameter_names": list(lensmodel.PARAMETER_NAMES),
        "preset": preset.to_dict(),
    }
    cfg.update(extra or {})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept",
                                category=DeprecationWarning)
        model.save_weights(str(out / "model.weights.h5"))
    atomic_write_text(out / "config.json", to_json(cfg, indent=2) + "\n")
    atomic_write_text(out / "card.md", card or f"# astro_delens {kind} ({preset.name} preset)\n")
    write_checksums(out)
    return out
