"""Train a parameter network (estimator) or a source network (reconstructor).

`train_model` streams batches from the HDF5 files of
`astro_delens.training.dataset` (never loading a whole dataset), augments them
on the fly by the eight symmetries of the square grid
(`astro_delens.nn.augment`), normalises them with
`astro_delens.nn.normalization`, and fits the network built from a small dict
of hyperparameters (`astro_delens.nn.architectures`).

The output directory is a model directory (see `astro_delens.nn.registry`):

``config.json``
    kind, architecture hyperparameters, loss, normalisation settings and
    parameter statistics, the preset, and the training provenance.
``model.weights.h5``
    the weights of the epoch with the lowest validation loss.
``card.md``
    the model card (a stub listing the training data until
    ``astro-delens evaluate`` fills it in).
``SHA256SUMS``
    checksums of the three files above.
``history.csv``
    per-epoch losses and learning rate (not part of the checksummed model).
``epochs/epochNNN.weights.h5``
    with ``keep_epochs=True`` only: the weights after each epoch (1-based),
    so that another epoch than the one of the lowest validation loss can be
    chosen afterwards with `select_epoch` (for example the one with the
    lowest RMS of the parameters that matter most).

While training, ``<out>/.training/`` holds the state of the last finished
epoch (weights, optimizer, epoch) and the best weights so far: running the
same command again after an interruption resumes from there. It is removed
when training finishes.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import logging
import math
import os
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .. import lensmodel
from .._version import __version__
from ..nn import normalization as norm
from ..nn.augment import augment_batch, random_masks
from ..files import atomic_write_text, sha256_file, to_json, write_checksums
from ..presets import get_preset, preset_from_dict

__all__ = [
    "KINDS",
    "TRAINING_DEFAULTS",
    "train_model",
    "select_epoch",
    "epoch_weights_path",
    "read_h5_info",
]

logger = logging.getLogger(__name__)

KINDS = ("estimator", "reconstructor")
FORMAT_VERSION = 1
STATE_DIR = ".training"
EPOCHS_DIR = "epochs"

#: Hyperparameters of training itself (may be given in the ``--config`` JSON).
TRAINING_DEFAULTS = {
    # estimator: {"beta": 0.5, "weights": None}; reconstructor: {"alpha": 0.1, "relative": true}
    "loss": {},
    "mask_probability": None,  # None: 0.1 for presets with noise, else 0
    "lens_light_removal": 0.0,  # probability of training on a lens without its light
    "weight_decay": 1e-4,
    "global_clipnorm": 5.0,
    "warmup_epochs": 1,
    # True: batch normalisation runs on its stored statistics and they stay fixed, so
    # training sees what inference sees (for a short fine-tuning of a trained network)
    "freeze_batchnorm": False,
}


# --------------------------------------------------------------------------
# small helpers shared with evaluate / registry
# --------------------------------------------------------------------------
def _attr_str(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_h5_info(path, kind=None) -> dict:
    """Check a dataset file and return its preset, size and attributes.

    Parameters
    ----------
    path : path-like
    kind : {"estimator", "reconstructor"}, optional
        If given, check that the datasets this kind needs are present.

    Returns
    -------
    dict
        ``path``, ``n``, ``preset`` (`Preset`), ``attrs`` (JSON-friendly dict).
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such dataset file")
    need = ["image", "noise_map"]
    if kind == "estimator":
        need.append("params")
    elif kind == "reconstructor":
        need.append("source")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        missing = [k for k in need if k not in f]
        if missing:
            raise ValueError(f"{path}: missing dataset(s) {missing} needed to train a {kind}")
        n = int(f["image"].shape[0])
        attrs = {k: _attr_str(v) for k, v in f.attrs.items()}
        if "complete" in attrs and not bool(attrs["complete"]):
            raise ValueError(f"{path}: the dataset is not complete (attribute complete=False)")
        if "preset_json" in attrs:
            preset = preset_from_dict(json.loads(attrs["preset_json"]))
        elif "preset" in attrs:
            preset = get_preset(attrs["preset"])
        else:
            npix = int(f["image"].shape[-1])
            raise ValueError(f"{path}: no 'preset' attribute (images of {npix} pixels)")
        if f["image"].shape[1:] != (preset.npix, preset.npix):
            raise ValueError(f"{path}: images of shape {f['image'].shape[1:]} do not match "
                             f"preset {preset.name!r} ({preset.npix} pixels)")
        if "source" in f and f["source"].shape[1:] != (preset.source_npix, preset.source_npix):
            raise ValueError(f"{path}: sources of shape {f['source'].shape[1:]} do not match "
                             f"preset {preset.name!r} ({preset.source_npix} pixels)")
    keep = {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v))
            for k, v in attrs.items() if k != "preset_json"}
    return {"path": str(path.resolve()), "n": n, "preset": preset, "attrs": keep}


def _param_stats(preset, train_paths, n):
    """Prior moments of a known preset, else the moments of the training parameters."""
    if preset.name in lensmodel.PRIORS:
        return norm.param_stats(preset.name), "prior_moments"
    import h5py

    parts, left = [], min(n, 100_000)
    for path in train_paths:
        if left < 1:
            break
        with h5py.File(path, "r") as f:
            parts.append(f["params"][:left])
        left -= len(parts[-1])
    p = np.concatenate(parts)
    mean = p.mean(axis=0)
    std = p.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}, "training_data"


# --------------------------------------------------------------------------
# data pipeline
# --------------------------------------------------------------------------
def _dataset_paths(path) -> list:
    """One path-like or a sequence of them, as a list of `str`."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise ValueError("train: expected at least one dataset file")
    return [os.fspath(p) for p in paths]


class BatchMaker:
    """Read, augment and normalise batches from an HDF5 dataset (NumPy + h5py; no Keras).

    Batch ``b`` of epoch ``e`` is a deterministic function of (seed, e, b):
    the sample order of an epoch is a permutation drawn from ``(seed, e)``,
    and the augmentation of a batch from ``(seed, e, b)``.

    Parameters
    ----------
    path : path-like or sequence of path-like
        One dataset file, or several of the same preset read as one (in the
        order given).
    kind : {"estimator", "reconstructor"}
    n : int
        Use the first ``n`` samples of the file(s).
    batch_size : int
    stats : dict
        Parameter statistics (estimator).
    augment, shuffle, drop_remainder : bool
    mask_probability : float
        Probability of a random mask (`astro_delens.nn.augment.random_masks`).
    lens_light_removal : float
        Probability of subtracting a lens's noiseless light (the file's
        ``lens_light``) from its image. What is left, arcs and noise, is
        exactly the image of the same lens without light (the noise map stays
        right), so the network sees more lenses whose centre it must read from
        the arcs alone.
    seed : int
    """

    def __init__(self, path, kind, n, batch_size, stats=None, augment=False, shuffle=False,
                 drop_remainder=False, mask_probability=0.0, lens_light_removal=0.0, seed=0):
        self.paths = _dataset_paths(path)
        self.kind = kind
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.stats = stats
        self.augment = augment
        self.shuffle = shuffle
        self.drop_remainder = drop_remainder and self.n >= self.batch_size
        self.mask_probability = float(mask_probability)
        self.lens_light_removal = float(lens_light_removal)
        self.seed = int(seed)
        self.epoch = 0
        self._files = None
        self._starts = None
        self._order_epoch = None
        self._order = None

    def _open(self):
        if self._files is None:
            import h5py

            self._files = [h5py.File(p, "r") for p in self.paths]
            sizes = [f["image"].shape[0] for f in self._files]
            self._starts = np.concatenate([[0], np.cumsum(sizes)])
        return self._files

    def _read(self, field, sel):
        """``field`` at the increasing global indices ``sel``, across the files."""
        files = self._open()
        parts = []
        for f, start, stop in zip(files, self._starts[:-1], self._starts[1:]):
            local = sel[(sel >= start) & (sel < stop)] - start
            if local.size:
                parts.append(f[field][local])
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def close(self):
        for f in self._files or ():
            f.close()
        self._files = None

    def __len__(self):
        if self.drop_remainder:
            return self.n // self.batch_size
        return math.ceil(self.n / self.batch_size)

    def order(self):
        if not self.shuffle:
            return np.arange(self.n)
        if self._order_epoch != self.epoch:
            rng = np.random.default_rng([self.seed, 1, self.epoch])
            self._order = rng.permutation(self.n)
            self._order_epoch = self.epoch
        return self._order

    def indices(self, b):
        return np.sort(self.order()[b * self.batch_size:(b + 1) * self.batch_size])

    def get(self, b, epoch=None):
        epoch = self.epoch if epoch is None else epoch
        if not 0 <= b < len(self):
            raise IndexError(f"batch index {b} out of range")
        sel = self.indices(b)
        image = self._read("image", sel)
        noise = self._read("noise_map", sel)
        target = self._read("params" if self.kind == "estimator" else "source", sel)
        rng = np.random.default_rng([self.seed, 2, epoch, b])
        masks = random_masks(rng, len(sel), image.shape[-1], self.mask_probability)
        if self.lens_light_removal > 0:
            dark = rng.random(len(sel)) < self.lens_light_removal
            if dark.any():
                image[dark] -= self._read("lens_light", sel[dark])
        if self.augment:
            if self.kind == "estimator":
                (image, noise, masks), target = augment_batch(rng, [image, noise, masks], target)
            else:
                (image, noise, masks, target), _ = augment_batch(
                    rng, [image, noise, masks, target])
        x, scale = norm.normalize_inputs(image, noise, masks if masks.any() else None)
        if self.kind == "estimator":
            y = norm.normalize_params(target, self.stats)
        else:
            y = norm.normalize_source(target, scale)[..., None]
        return x, y


def _make_pydataset(maker):
    import keras

    class H5Batches(keras.utils.PyDataset):
        """A `keras.utils.PyDataset` over a `BatchMaker` (one reader thread)."""

        def __init__(self, maker):
            super().__init__(workers=1, use_multiprocessing=False, max_queue_size=4)
            self.maker = maker

        def __len__(self):
            return len(self.maker)

        def __getitem__(self, index):
            return self.maker.get(index)

    return H5Batches(maker)


# --------------------------------------------------------------------------
# callbacks
# --------------------------------------------------------------------------
def _read_history(path):
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _callbacks(out, state, monitor_path, patience, log, total_epochs, epoch_model=None):
    import keras

    history_path = out / "history.csv"

    class LogLR(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.time()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                lr = self.model.optimizer.learning_rate
                logs["lr"] = float(keras.ops.convert_to_numpy(lr))
                logs["time_s"] = round(time.time() - self._t0, 2)

    class BestWeights(keras.callbacks.Callback):
        """Keep the weights of the lowest val_loss (resume-aware)."""

        def on_train_begin(self, logs=None):
            rows = _read_history(history_path)
            vals = [float(r["val_loss"]) for r in rows if r.get("val_loss") not in (None, "")]
            self.best = min(vals) if vals else np.inf

        def on_epoch_end(self, epoch, logs=None):
            v = (logs or {}).get("val_loss")
            if v is not None and np.isfinite(v) and v < self.best:
                self.best = float(v)
                self.model.save_weights(str(monitor_path), overwrite=True)

    class Stopper(keras.callbacks.EarlyStopping):
        """EarlyStopping that picks up its count from history.csv on resume."""

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            rows = _read_history(history_path)
            vals = [float(r["val_loss"]) for r in rows if r.get("val_loss") not in (None, "")]
            if vals:
                i = int(np.argmin(vals))
                self.best = vals[i]
                self.best_epoch = i
                self.wait = len(vals) - 1 - i

    class EpochWeights(keras.callbacks.Callback):
        """Write each epoch's weights, without the optimizer state, to OUT/epochs/."""

        def on_epoch_end(self, epoch, logs=None):
            (out / EPOCHS_DIR).mkdir(exist_ok=True)
            epoch_model.set_weights(self.model.get_weights())
            epoch_model.save_weights(str(epoch_weights_path(out, epoch + 1)))

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            parts = [f"{k}={logs[k]:.4g}" for k in ("loss", "val_loss", "mean_mse",
                                                    "val_mean_mse", "lr") if k in logs]
            log(f"epoch {epoch + 1}/{total_epochs} " + " ".join(parts)
                + f" ({logs.get('time_s', 0):.1f} s)")

    return [
        keras.callbacks.BackupAndRestore(str(state / "backup"), save_freq="epoch",
                                         delete_checkpoint=False),
        LogLR(),
        BestWeights(),
        keras.callbacks.CSVLogger(str(history_path), append=True),
        Stopper(monitor="val_loss", patience=int(patience), mode="min"),
        Progress(),
    ] + ([EpochWeights()] if epoch_model is not None else [])


# --------------------------------------------------------------------------
# main entry point
# --------------------------------------------------------------------------
def _init_config(init, kind, preset) -> dict:
    """The config.json of a model directory to start from, checked against ``kind``/``preset``.

    The model's preset may differ from ``preset`` only outside the image and
    source grids (its networks then read and write the same arrays).
    """
    path = Path(init)
    cfg_path, weights = path / "config.json", path / "model.weights.h5"
    if not (cfg_path.is_file() and weights.is_file()):
        raise FileNotFoundError(f"init: {str(path)!r} is not a model directory "
                                "(config.json and model.weights.h5 expected)")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("kind") != kind:
        raise ValueError(f"init: {str(path)!r} is not a {kind} model (its kind is "
                         f"{cfg.get('kind')!r})")
    # a model may be fine-tuned on another preset with the same grids (e.g. survey -> sky)
    init_preset = preset_from_dict(cfg["preset"]).to_dict()
    grid = ("npix", "pixel_scale", "source_npix", "source_pixel_scale", "source_reference_fwhm")
    if any(init_preset[k] != preset.to_dict()[k] for k in grid):
        raise ValueError(f"init: the grids of the model's preset {cfg['preset'].get('name')!r} "
                         f"differ from those of the training set's {preset.name!r}")
    return cfg


#: Architecture hyperparameters a warm start may add to a model that lacks them,
#: each group under the key that switches it on: the head grows a branch
#: (``keypoints``) or a second, re-centred network (``cascade``);
#: `astro_delens.nn.transfer` starts them so that the answers do not change.
_GROWABLE = {"estimator": {"keypoints": ("keypoints", "keypoints_stage"),
                           "cascade": ("cascade",)}}


def _merge_init_config(init_cfg, config, kind) -> dict:
    """The initial model's architecture and training setup, updated by ``config``.

    Training settings (`TRAINING_DEFAULTS`: loss, masks, regularisation) may
    change; architecture hyperparameters may only repeat the initial model's,
    except that an estimator without keypoints may be given some (its head
    grows a branch), and one without a cascade may be given one.
    ``freeze_batchnorm`` is not inherited: it is a choice of one fine-tuning
    step, given anew each time.
    """
    from ..nn.architectures import resolve_config

    arch = resolve_config(kind, init_cfg["architecture"])
    inherited = dict(init_cfg.get("training_setup", {}))
    inherited.pop("freeze_batchnorm", None)
    merged = {**arch, **inherited}
    growable = [key for switch, keys in _GROWABLE.get(kind, {}).items()
                if not arch.get(switch) for key in keys]
    for key, value in (config or {}).items():
        if (key not in TRAINING_DEFAULTS and key not in growable and key in merged
                and merged[key] != value):
            raise ValueError(f"config: {key}={value!r} differs from the initial model's "
                             f"{merged[key]!r}; a warm start keeps the architecture"
                             + (f" (it may only add {', '.join(growable)})"
                                if growable else ""))
        merged[key] = value
    return merged


def _initialise_from(model, architecture, init, init_cfg, kind):
    """Load the weights of the model directory ``init`` into ``model``.

    ``architecture`` is the resolved architecture of ``model``. Returns the
    names of layers that are new in ``model`` (empty unless it grew).
    """
    from ..nn.architectures import build_model, resolve_config
    from ..nn.transfer import transfer_weights

    weights = str(Path(init) / "model.weights.h5")
    if resolve_config(kind, init_cfg["architecture"]) == architecture:
        model.load_weights(weights)
        return []
    source = build_model(kind, init_cfg["architecture"])
    source.load_weights(weights)
    return transfer_weights(source, model)


@contextlib.contextmanager
def _quiet_numpy2_warning():
    """Silence the NumPy 2 DeprecationWarning TensorFlow variables raise when Keras saves them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept",
                                category=DeprecationWarning)
        yield


def _freeze_batchnorm(model):
    """Make every batch normalisation of ``model`` use, and keep, its stored statistics.

    A frozen Keras ``BatchNormalization`` layer runs in inference mode even
    while the rest of the network trains. Fine-tuning a trained network this
    way removes the gap between its answers in training (statistics of each
    batch) and in inference (stored statistics).
    """
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def _split_config(kind, config):
    """Separate architecture hyperparameters from training ones in a user config."""
    config = dict(config or {})
    training = json.loads(json.dumps(TRAINING_DEFAULTS))
    for key in list(config):
        if key in TRAINING_DEFAULTS:
            training[key] = config.pop(key)
    return config, training


def _check_lens_light_removal(probability, train_path):
    """Refuse a ``lens_light_removal`` that is not a probability or that the data cannot serve."""
    import h5py

    if not (isinstance(probability, (int, float)) and 0 <= probability <= 1):
        raise ValueError(f"config: lens_light_removal must be a probability in [0, 1], got "
                         f"{probability!r}")
    if probability > 0:
        with h5py.File(train_path, "r") as f:
            if "lens_light" not in f:
                raise ValueError(f"config: lens_light_removal needs the lens light of every "
                                 f"training lens, and {train_path} has no 'lens_light' field")


def _hardware():
    import keras

    info = {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }
    try:  # backend version, without touching the backend's API
        import importlib

        mod = importlib.import_module({"tensorflow": "tensorflow", "jax": "jax",
                                       "torch": "torch"}.get(info["backend"], "numpy"))
        info["backend_version"] = getattr(mod, "__version__", None)
    except Exception:  # pragma: no cover
        pass
    return info


def epoch_weights_path(model_dir, epoch) -> Path:
    """Where ``keep_epochs=True`` writes the weights after ``epoch`` (1-based)."""
    return Path(model_dir) / EPOCHS_DIR / f"epoch{int(epoch):03d}.weights.h5"


def select_epoch(model_dir, epoch, why, *, calibrate=True, log=None) -> dict:
    """Make a model trained with ``keep_epochs=True`` use the weights of another epoch.

    Training keeps the epoch of the lowest validation loss; the loss weighs
    every parameter, and the epoch that estimates a few of them best can be
    another. The chosen epoch and the reason are recorded in ``config.json``
    (``training.kept_epoch``) and on the card; the evaluation, which measured
    other weights, is removed from both (the card's hand-written sections
    are kept): run ``astro-delens evaluate`` again.

    Parameters
    ----------
    model_dir : path-like
        A model directory written by `train_model` with ``keep_epochs=True``.
    epoch : int
        The epoch (1-based, as in the card and ``history.csv`` row order).
    why : str
        Why this epoch, for the card (e.g. "the lowest e1 / e2 RMS on the
        validation set"). Choose on a validation set, never the test set.
    calibrate : bool
        For an estimator, calibrate the uncertainties again on the
        validation file recorded in ``config.json`` (the old calibration
        belongs to other weights and is removed in any case).
    log : callable, optional
        Called with status lines (default: this module's logger, at INFO level).

    Returns
    -------
    dict
        The new ``config.json`` contents.
    """
    from .evaluate import _kept_sections

    model_dir = Path(model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    weights = epoch_weights_path(model_dir, epoch)
    if not weights.exists():
        kept = sorted(p.name for p in (model_dir / EPOCHS_DIR).glob("epoch*.weights.h5"))
        raise ValueError(f"epoch: no weights of epoch {epoch!r} in {model_dir / EPOCHS_DIR} "
                         f"(found: {', '.join(kept) or 'none; train with keep_epochs=True'})")
    if not (isinstance(why, str) and why.strip()):
        raise ValueError(f"why: expected a sentence saying why epoch {epoch} is kept, got {why!r}")
    val = cfg["training"]["val"]
    calibrate = calibrate and cfg["kind"] == "estimator" and val["n"] >= 100
    if calibrate and not Path(val["path"]).exists():
        raise FileNotFoundError(f"calibrate: the validation file {val['path']} is not there; "
                                "pass calibrate=False and run astro-delens calibrate")
    shutil.copyfile(weights, model_dir / "model.weights.h5")
    cfg["training"]["kept_epoch"] = {"epoch": int(epoch), "why": why.strip()}
    cfg["status"] = "trained"
    cfg.pop("evaluation", None)  # both measured other weights
    cfg.pop("calibration", None)
    atomic_write_text(model_dir / "config.json", to_json(cfg, indent=2) + "\n")
    write_checksums(model_dir)  # calibrating loads the model, which verifies them
    if calibrate:
        from .calibrate import calibrate_estimator

        cfg["calibration"] = calibrate_estimator(model_dir, val["path"], log=log)
    atomic_write_text(model_dir / "card.md",
                      _card_stub(cfg) + _kept_sections(model_dir / "card.md"))
    write_checksums(model_dir)
    return cfg


def _train_files(recorded) -> list:
    """The training files a config records (a list; older models record one file as a dict)."""
    return [recorded] if isinstance(recorded, dict) else list(recorded)


def _files_text(recorded) -> str:
    return " + ".join(f"`{Path(info['path']).name}`" for info in _train_files(recorded))


def _n_samples(recorded) -> int:
    return sum(int(info["n"]) for info in _train_files(recorded))


def _card_stub(cfg) -> str:
    t = cfg["training"]
    lines = [
        f"# astro_delens {cfg['kind']} ({cfg['preset']['name']} preset), model version "
        f"{cfg['version']}",
        "",
        f"Package version {t.get('package_version', cfg['version'])}; trained {t['finished']} in "
        f"{t['wall_time_s'] / 60:.1f} min on {t['hardware']['processor']} "
        f"({t['hardware']['cpu_count']} CPUs, Keras {t['hardware']['keras']} / "
        f"{t['hardware']['backend']}).",
        "",
        "## Training data",
        "",
        f"* training set: {_files_text(t['train'])} ({t['n_train']} of "
        f"{_n_samples(t['train'])} samples used; preset {cfg['preset']['name']})",
        f"* validation set: `{Path(t['val']['path']).name}` ({t['n_val']} of "
        f"{t['val']['n']} samples used)",
        f"* epochs: {t['epochs_run']} (best {t['best_epoch']}, validation loss "
        f"{t['best_val_loss']:.4g}); batch size {t['batch_size']}; seed {t['seed']}",
        *([f"* weights kept: those after epoch {t['kept_epoch']['epoch']}, "
           f"{t['kept_epoch']['why']}"] if t.get("kept_epoch") else []),
        f"* augmentation: {'8 grid symmetries' if t['augment'] else 'none'}; random masks "
        f"with probability {t['mask_probability']}"
        + (f"; lens light removed with probability {t['lens_light_removal']}"
           if t.get("lens_light_removal") else ""),
    ]
    init = t.get("initialised_from")
    if init:
        # a hand-written description where the path no longer holds those weights
        source = init.get("description") or f"`{init['path']}`"
        lines.append(f"* warm start from {source} (weights SHA-256 "
                     f"{init['sha256'][:12]}...; that model was trained by "
                     f"`{init.get('command')}`); the time above is this run's only")
    cal = cfg.get("calibration")
    if cal:
        from ..nn.registry import DEFAULT_SYMMETRIES, stored_scale

        scale = stored_scale(cal, DEFAULT_SYMMETRIES)
        scales = ", ".join(f"{n} {v:.2f}" for n, v in zip(cal["parameter_names"], scale))
        lines.append(f"* uncertainties calibrated on `{Path(cal['data']['path']).name}` "
                     f"({cal['data']['n']} lenses): sigma multiplied by {scales} "
                     f"(answers averaged over {DEFAULT_SYMMETRIES} symmetries; the factors "
                     f"for 1 and 4 are in config.json)")
    lines += [
        "",
        "## Evaluation",
        "",
        "Not evaluated yet: run `astro-delens evaluate --model DIR --data test.h5 --report DIR`.",
        "",
    ]
    return "\n".join(lines)


def _optimizer(lr, lr_schedule, epochs, steps, training):
    """AdamW with its learning-rate schedule.

    Cosine: a linear warm-up over ``training["warmup_epochs"]`` (at most a
    tenth of the run), then a cosine decay; otherwise constant (the plateau
    schedule is a callback).
    """
    import keras

    if lr_schedule == "cosine":
        warm = int(min(training["warmup_epochs"] * steps, max(epochs * steps // 10, 0)))
        decay = max(epochs * steps - warm, 1)
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=lr * 0.1 if warm else lr, decay_steps=decay, alpha=0.01,
            warmup_target=lr if warm else None, warmup_steps=warm)
    else:
        schedule = float(lr)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule,
                                       weight_decay=float(training["weight_decay"]),
                                       global_clipnorm=float(training["global_clipnorm"]))
    return optimizer


def _prepare_output(out, state, kind, arch, training, overwrite) -> bool:
    """Make ``out`` ready for training; True when it holds a run of this configuration to resume.

    An interrupted run of another configuration, or a finished model, is
    refused unless ``overwrite``.
    """
    from ..nn.architectures import resolve_config

    resume = False
    if out.exists() and any(out.iterdir()):
        prev_cfg = out / "config.json"
        if state.exists() and prev_cfg.exists() and not overwrite:
            prev = json.loads(prev_cfg.read_text())
            same = (prev.get("kind") == kind
                    and resolve_config(kind, prev.get("architecture")) == arch
                    and {**TRAINING_DEFAULTS, **prev.get("training_setup", {})} == training)
            if not same:
                raise ValueError(f"out: {out} holds an interrupted run of a different "
                                 "configuration; use another directory or --overwrite")
            resume = True
        elif overwrite:
            shutil.rmtree(out)
        else:
            raise ValueError(f"out: {out} is not empty (it holds a model or other files); "
                             "use another directory or --overwrite")
    return resume


def train_model(kind, train, val, out, config=None, *, epochs=50, batch_size=32, lr=1e-3,
                seed=0, max_samples=None, max_val_samples=None, patience=8,
                lr_schedule="cosine", augment=True, overwrite=False, verbose="auto",
                log=None, command=None, init=None, calibrate=True, keep_epochs=False) -> dict:
    """Train a network and write a model directory.

    Parameters
    ----------
    kind : {"estimator", "reconstructor"}
    train : path-like or sequence of path-like
        Training HDF5 file(s) (layout of `astro_delens.training.dataset`);
        several files of the same preset are read as one training set, e.g.
        to add a second simulation run with another seed.
    val : path-like
        Validation HDF5 file, of the same preset.
    out : path-like
        Output model directory. If it holds an interrupted training run of the
        same configuration, training resumes; a finished model is only replaced
        with ``overwrite=True``.
    config : dict, optional
        Architecture hyperparameters (see `astro_delens.nn.architectures`) and
        optionally training ones (`TRAINING_DEFAULTS`: ``loss``,
        ``mask_probability``, ``lens_light_removal`` (see `BatchMaker`),
        ``weight_decay``, ``global_clipnorm``, ``warmup_epochs``).
    epochs, batch_size, lr, seed, patience : int, int, float, int, int
        Maximum epochs, batch size, peak learning rate, random seed, and the
        early-stopping patience (epochs without a better validation loss).
    max_samples, max_val_samples : int, optional
        Use only the first samples of the training file(s) / validation file.
    lr_schedule : {"cosine", "plateau", "constant"}
        Cosine decay after a linear warm-up, or reduce-on-plateau, or constant.
    augment : bool
        Random flips and quarter turns of every training sample.
    verbose : "auto", 0, 1 or 2
        Keras progress output ("auto": a bar on a terminal, else one line per epoch).
    log : callable, optional
        Called with one line per epoch and status messages (default: this module's
        logger, at INFO level).
    command : str, optional
        The command line, recorded in the provenance.
    init : path-like, optional
        A model directory of the same kind to start from (warm start, e.g. to
        continue training a shipped model on more data): its architecture,
        training setup and parameter normalisation are used and its weights
        initialise the network; ``config`` may change the training settings
        (`TRAINING_DEFAULTS`) but only repeat the architecture. Its path,
        checksum and training command are recorded in the provenance.
    calibrate : bool
        For an estimator, calibrate its uncertainties on the whole validation
        file when training ends (`astro_delens.training.calibrate`; needs at
        least 100 validation samples).
    keep_epochs : bool
        Also write the weights after every epoch to ``<out>/epochs/`` (see
        the module doc and `select_epoch`).

    Returns
    -------
    dict
        The final ``config.json`` contents.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr: expected a positive number, got {lr!r}")
    if lr_schedule not in ("cosine", "plateau", "constant"):
        raise ValueError(f"lr_schedule: expected cosine, plateau or constant, got {lr_schedule!r}")
    if log is None:
        log = logger.info

    t_start = time.time()
    out = Path(out)
    state = out / STATE_DIR
    info_train = [read_h5_info(path, kind) for path in _dataset_paths(train)]
    info_val = read_h5_info(val, kind)
    preset = info_train[0]["preset"]
    for name, info in [("train", i) for i in info_train[1:]] + [("val", info_val)]:
        if info["preset"].to_dict() != preset.to_dict():
            raise ValueError(f"{name}: preset {info['preset'].name!r} of {info['path']} differs "
                             f"from the first training file's {preset.name!r}")
    train_paths = [info["path"] for info in info_train]
    n_available = sum(info["n"] for info in info_train)
    n_train = n_available if max_samples is None else min(int(max_samples), n_available)
    n_val = (info_val["n"] if max_val_samples is None
             else min(int(max_val_samples), info_val["n"]))
    if n_train < 1 or n_val < 1:
        raise ValueError("max_samples: no training or validation samples left")

    init_cfg = _init_config(init, kind, preset) if init is not None else None
    if init_cfg is not None:
        config = _merge_init_config(init_cfg, config, kind)
    arch_user, training = _split_config(kind, config)
    arch_user.setdefault("npix", preset.npix)
    if kind == "reconstructor":
        arch_user.setdefault("source_npix", preset.source_npix)
    from ..nn.architectures import resolve_config

    arch = resolve_config(kind, arch_user)
    if arch["npix"] != preset.npix:
        raise ValueError(f"config: npix={arch['npix']} but the data have {preset.npix} pixels")
    if arch.get("cascade") is True and init_cfg is None:
        raise ValueError("config: a cascade grows from a trained estimator; give --init")
    mask_p = training["mask_probability"]
    if mask_p is None:
        mask_p = 0.1 if preset.noise else 0.0
    training["mask_probability"] = float(mask_p)
    for path in train_paths:
        _check_lens_light_removal(training["lens_light_removal"], path)
    stats, stats_source = _param_stats(preset, train_paths, n_train)
    if init_cfg is not None:
        stats = init_cfg["normalization"]["params"]
        stats_source = f"initial model {init}"
    if arch.get("cascade") is True:
        from ..nn.architectures import cascade_geometry

        arch["cascade"] = cascade_geometry(stats, preset.pixel_scale)

    resume = _prepare_output(out, state, kind, arch, training, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    state.mkdir(exist_ok=True)

    cfg = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "version": __version__,
        "status": "training",
        "architecture": arch,
        "training_setup": training,
        "normalization": dict(norm.description(), params=stats, params_source=stats_source),
        "parameter_names": list(lensmodel.PARAMETER_NAMES),
        "preset": preset.to_dict(),
    }
    if not resume:
        atomic_write_text(out / "config.json", to_json(cfg, indent=2) + "\n")
        for stale in ("history.csv",):
            if (out / stale).exists():
                (out / stale).unlink()

    import keras

    from ..nn.architectures import build_model
    from ..nn.losses import GaussianNLL, SourceLoss, mean_mse, mean_sigma

    keras.utils.set_random_seed(int(seed))
    model = build_model(kind, arch)
    if init_cfg is not None and not resume:
        new_layers = _initialise_from(model, arch, init, init_cfg, kind)
        log(f"initialised from {init}"
            + (f"; new layers {', '.join(new_layers)}" if new_layers else ""))
    if training["freeze_batchnorm"]:
        _freeze_batchnorm(model)
    train_maker = BatchMaker(train_paths, kind, n_train, batch_size, stats, augment=augment,
                             shuffle=True, drop_remainder=True, mask_probability=mask_p,
                             lens_light_removal=training["lens_light_removal"], seed=seed)
    val_maker = BatchMaker(info_val["path"], kind, n_val, batch_size, stats, seed=seed)
    train_ds = _make_pydataset(train_maker)
    val_ds = _make_pydataset(val_maker)
    steps = len(train_maker)

    optimizer = _optimizer(lr, lr_schedule, epochs, steps, training)
    loss_cfg = dict(training.get("loss") or {})
    if kind == "estimator":
        loss = GaussianNLL(**loss_cfg)
        metrics = [mean_mse, mean_sigma]
    else:
        loss = SourceLoss(**loss_cfg)
        metrics = []
    cfg["loss"] = {"class": type(loss).__name__, **loss.get_config()}
    for key in ("name", "reduction", "dtype"):
        cfg["loss"].pop(key, None)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)

    best_path = state / "best.weights.h5"
    callbacks = _callbacks(out, state, best_path, patience, log, epochs,
                           epoch_model=build_model(kind, arch) if keep_epochs else None)

    class EpochSetter(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            train_maker.epoch = epoch

    callbacks.insert(1, EpochSetter())
    if lr_schedule == "plateau":
        callbacks.insert(2, keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(1, int(patience) // 3), min_lr=lr / 100))
    if verbose == "auto":
        verbose = 1 if sys.stderr.isatty() and sys.stdout.isatty() else 0
    log(f"{'resuming' if resume else 'training'} {kind} ({model.count_params():,} weights) on "
        f"{n_train} samples ({steps} batches of {batch_size}), validating on {n_val}; "
        f"output {out}")
    try:
        with _quiet_numpy2_warning():
            model.fit(train_ds, validation_data=val_ds, epochs=int(epochs), callbacks=callbacks,
                      verbose=verbose)
    finally:
        train_maker.close()
        val_maker.close()
        for cb in callbacks:  # Keras closes the CSV log only when training ends normally
            f = getattr(cb, "csv_file", None)
            if f is not None and not f.closed:
                f.close()

    rows = _read_history(out / "history.csv")
    vals = [float(r["val_loss"]) for r in rows if r.get("val_loss") not in (None, "")]
    if not best_path.exists() or not vals:
        raise RuntimeError("training produced no finite validation loss; no model written")
    best_epoch = int(np.argmin(vals)) + 1

    # a clean copy of the best weights (no optimizer state)
    clean = build_model(kind, arch)
    clean.load_weights(str(best_path))
    with _quiet_numpy2_warning():
        clean.save_weights(str(out / "model.weights.h5"))

    epoch_times = [float(r["time_s"]) for r in rows if r.get("time_s") not in (None, "")]
    wall = max(sum(epoch_times), time.time() - t_start)
    cfg["status"] = "trained"
    cfg["training"] = {
        "train": [{k: v for k, v in info.items() if k != "preset"} for info in info_train],
        "val": {k: v for k, v in info_val.items() if k != "preset"},
        "n_train": n_train,
        "n_val": n_val,
        "epochs_requested": int(epochs),
        "epochs_run": len(rows),
        "best_epoch": best_epoch,
        "best_val_loss": float(min(vals)),
        "final_train_loss": float(rows[-1]["loss"]) if rows else None,
        "batch_size": int(batch_size),
        "learning_rate": float(lr),
        "lr_schedule": lr_schedule,
        "patience": int(patience),
        "optimizer": "AdamW",
        "augment": bool(augment),
        "mask_probability": float(mask_p),
        "lens_light_removal": float(training["lens_light_removal"]),
        "seed": int(seed),
        "resumed": bool(resume),
        "wall_time_s": round(wall, 1),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hardware": _hardware(),
        "package_version": __version__,
        "command": command,
        "n_weights": int(clean.count_params()),
    }
    if init_cfg is not None:
        cfg["training"]["initialised_from"] = {
            "path": str(init),
            "sha256": sha256_file(Path(init) / "model.weights.h5"),
            "command": (init_cfg.get("training") or {}).get("command"),
        }
    atomic_write_text(out / "config.json", to_json(cfg, indent=2) + "\n")
    atomic_write_text(out / "card.md", _card_stub(cfg))
    write_checksums(out)
    shutil.rmtree(state, ignore_errors=True)
    log(f"done: best epoch {best_epoch} (val_loss {min(vals):.4g}); model written to {out}")
    if kind == "estimator" and calibrate:
        if info_val["n"] >= 100:
            from .calibrate import calibrate_estimator

            cfg["calibration"] = calibrate_estimator(out, info_val["path"], log=log)
        else:
            log("not calibrating the uncertainties: fewer than 100 validation samples")
    return cfg
