"""Network architectures, built in code from a small dict of hyperparameters.

Two networks read the normalised two-channel input of
`astro_delens.nn.normalization.normalize_inputs` (``(npix, npix, 2)``):

Parameter network (`build_estimator`)
    A residual CNN: an `~astro_delens.nn.layers.InputFeatures` layer (asinh
    stretch of the image, grid coordinates and radius), a full-resolution stem,
    ``len(widths)`` stages that each halve the resolution with a strided
    residual block followed by ``blocks[i] - 1`` further residual blocks
    (conv-BN-GELU-conv-BN + shortcut, GELU), global average and max pooling,
    and a dense head predicting the means and log-variances of the ``n_params``
    standardised lens parameters: output ``(N, 2 n_params)``, trained with
    `~astro_delens.nn.losses.GaussianNLL`. With ``keypoints > 0``, a 1x1
    convolution on the output of stage ``keypoints_stage`` makes that many heat
    maps, and their expected positions (`~astro_delens.nn.layers.SpatialSoftArgmax`)
    join the pooled features in the head: global pooling forgets where a feature
    is, and the lens centre is a position. With ``cascade`` (grown from a trained
    network, see `cascade_geometry`), a second network of the same shape looks at
    the image shifted so that the first one's lens centre sits on the grid
    centre (`~astro_delens.nn.layers.Recentre`), reads the first one's answer
    in its head, and adds a correction to it; the first network is frozen.
Source network (`build_reconstructor`)
    A U-Net with ``depth`` down-sampling levels of ``base_width * 2**level``
    channels (capped at ``max_width``), two conv-BN-activation layers per level,
    transposed-convolution up-sampling and skip connections, mapping
    ``(npix, npix, 2)`` to the normalised source ``(source_npix, source_npix, 1)``
    (``source_npix == npix`` is required), trained with
    `~astro_delens.nn.losses.SourceLoss`.

Configurations are plain JSON-serialisable dicts; missing keys take the values
of `ESTIMATOR_DEFAULTS` / `RECONSTRUCTOR_DEFAULTS`, and ``TINY_*`` are small
variants for tests. ``npix`` (and ``source_npix`` for the reconstructor) must be
given. Keras is imported by the ``build_*`` functions, not by importing this
module (`resolve_config` works without it).
"""

from __future__ import annotations

import copy

__all__ = [
    "ESTIMATOR_DEFAULTS",
    "RECONSTRUCTOR_DEFAULTS",
    "TINY_ESTIMATOR",
    "TINY_RECONSTRUCTOR",
    "resolve_config",
    "build_estimator",
    "build_reconstructor",
    "build_model",
    "cascade_geometry",
]

#: Default hyperparameters of the parameter network (about 1.4 M weights).
ESTIMATOR_DEFAULTS = {
    "npix": None,
    "channels": 2,
    "n_params": 8,
    "stem_width": 16,
    "widths": [32, 64, 128, 256],
    "blocks": [2, 2, 1, 1],
    "head_units": 256,
    "dropout": 0.1,
    "coords": True,
    "asinh_softening": 0.05,
    "logvar_min": -14.0,
    "logvar_max": 6.0,
    "bn_momentum": 0.9,
    "keypoints": 0,
    "keypoints_stage": -2,
    "cascade": None,
}

#: Default hyperparameters of the source network (about 1.9 M weights).
RECONSTRUCTOR_DEFAULTS = {
    "npix": None,
    "source_npix": None,
    "channels": 2,
    "base_width": 16,
    "depth": 4,
    "max_width": 256,
    "activation": "relu",
    "coords": True,
    "asinh_softening": 0.05,
    "dropout": 0.0,
    "bn_momentum": 0.9,
}

#: A tiny parameter network for tests.
TINY_ESTIMATOR = {"stem_width": 4, "widths": [8, 16], "blocks": [1, 1], "head_units": 16,
                  "dropout": 0.0, "bn_momentum": 0.8}
#: A tiny source network for tests.
TINY_RECONSTRUCTOR = {"base_width": 4, "depth": 2, "max_width": 16, "bn_momentum": 0.8}


def resolve_config(kind: str, config: dict | None) -> dict:
    """Complete ``config`` with the defaults of ``kind`` and validate it.

    Parameters
    ----------
    kind : {"estimator", "reconstructor"}
    config : dict or None
        Hyperparameters; unknown keys raise.

    Returns
    -------
    dict
        A new dict with every hyperparameter of ``kind``.
    """
    if kind == "estimator":
        defaults = ESTIMATOR_DEFAULTS
    elif kind == "reconstructor":
        defaults = RECONSTRUCTOR_DEFAULTS
    else:
        raise ValueError(f"kind: expected 'estimator' or 'reconstructor', got {kind!r}")
    config = dict(config or {})
    config.pop("kind", None)
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(f"config: unknown {kind} hyperparameter(s) {unknown}; "
                         f"known: {sorted(defaults)}")
    full = copy.deepcopy(defaults)
    full.update(copy.deepcopy(config))
    if full["npix"] is None or int(full["npix"]) < 4:
        raise ValueError(f"config: 'npix' must be an integer >= 4, got {full['npix']!r}")
    full["npix"] = int(full["npix"])
    if kind == "estimator":
        if len(full["widths"]) != len(full["blocks"]) or not full["widths"]:
            raise ValueError("config: 'widths' and 'blocks' must be non-empty lists of "
                             "the same length")
        if any(int(b) < 1 for b in full["blocks"]):
            raise ValueError("config: every entry of 'blocks' must be >= 1")
        if int(full["keypoints"]) < 0:
            raise ValueError(f"config: 'keypoints' must be >= 0, got {full['keypoints']!r}")
        cascade = full["cascade"]
        if cascade not in (None, True) and (
                not isinstance(cascade, dict) or set(cascade) != {"index", "offset", "per_unit"}):
            raise ValueError("config: 'cascade' must be null, true (to be resolved by "
                             "cascade_geometry) or a dict with keys 'index', 'offset' and "
                             f"'per_unit', got {cascade!r}")
        n_stages = len(full["widths"])
        if full["keypoints"] and not -n_stages <= int(full["keypoints_stage"]) < n_stages:
            raise ValueError(f"config: 'keypoints_stage' must index one of the {n_stages} "
                             f"stages, got {full['keypoints_stage']!r}")
    else:
        if full["source_npix"] is None:
            full["source_npix"] = full["npix"]
        full["source_npix"] = int(full["source_npix"])
        if full["source_npix"] != full["npix"]:
            raise ValueError(
                f"config: the U-Net needs source_npix == npix, got source_npix="
                f"{full['source_npix']} and npix={full['npix']}")
        if full["npix"] % (2 ** int(full["depth"])):
            raise ValueError(f"config: npix={full['npix']} must be divisible by "
                             f"2**depth={2 ** int(full['depth'])}")
    return full


def _conv_bn(x, width, kernel=3, strides=1, activation="gelu", name=None, momentum=0.99):
    from keras import layers

    x = layers.Conv2D(width, kernel, strides=strides, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=name + "_conv")(x)
    x = layers.BatchNormalization(momentum=momentum, name=name + "_bn")(x)
    if activation:
        x = layers.Activation(activation, name=name + "_act")(x)
    return x


def _residual_block(x, width, strides, name, momentum):
    from keras import layers

    shortcut = x
    y = _conv_bn(x, width, 3, strides, "gelu", name=name + "_a", momentum=momentum)
    y = _conv_bn(y, width, 3, 1, None, name=name + "_b", momentum=momentum)
    if strides != 1 or x.shape[-1] != width:
        shortcut = layers.Conv2D(width, 1, strides=strides, padding="same", use_bias=False,
                                 kernel_initializer="he_normal", name=name + "_proj")(x)
        shortcut = layers.BatchNormalization(momentum=momentum, name=name + "_proj_bn")(shortcut)
    y = layers.Add(name=name + "_add")([y, shortcut])
    return layers.Activation("gelu", name=name + "_out")(y)


def cascade_geometry(param_stats: dict, pixel_scale: float) -> dict:
    """The ``cascade`` hyperparameter of an estimator: how to re-centre on its answer.

    Parameters
    ----------
    param_stats : dict
        ``{"mean": [...], "std": [...]}``, the standardisation of the parameters
        (``normalization["params"]`` of a model's config).
    pixel_scale : float
        Arcsec per pixel of the network's grid.

    Returns
    -------
    dict
        Keyword arguments of `~astro_delens.nn.layers.Recentre`: the lens centre
        (x east, y north) lies ``-x / pixel_scale`` columns and ``+y / pixel_scale``
        rows from the grid centre (`astro_delens.lensmodel.angle_to_pixel`).
    """
    from ..lensmodel import PARAMETER_NAMES

    ix, iy = PARAMETER_NAMES.index("center_x"), PARAMETER_NAMES.index("center_y")
    mean, std = param_stats["mean"], param_stats["std"]
    scale = float(pixel_scale)
    return {"index": [ix, iy],
            "offset": [-float(mean[ix]) / scale, float(mean[iy]) / scale],
            "per_unit": [-float(std[ix]) / scale, float(std[iy]) / scale]}


def _estimator_trunk(inputs, c, prefix="", context=None):
    """The layers of one parameter network, from the input to the raw ``2 n`` outputs.

    Layer names start with ``prefix``; ``context`` (a tensor) joins the pooled
    features in the head. The last layer starts at zero.
    """
    from keras import layers

    from .layers import InputFeatures, SpatialSoftArgmax

    x = InputFeatures(coords=c["coords"], asinh_softening=c["asinh_softening"],
                      name=prefix + "features")(inputs)
    mom = float(c["bn_momentum"])
    x = _conv_bn(x, int(c["stem_width"]), 3, 1, "gelu", name=prefix + "stem", momentum=mom)
    stage_outputs = []
    for i, (width, nblocks) in enumerate(zip(c["widths"], c["blocks"])):
        for j in range(int(nblocks)):
            x = _residual_block(x, int(width), 2 if j == 0 else 1,
                                name=f"{prefix}stage{i}_block{j}", momentum=mom)
        stage_outputs.append(x)
    pooled = [layers.GlobalAveragePooling2D(name=prefix + "avg_pool")(x),
              layers.GlobalMaxPooling2D(name=prefix + "max_pool")(x)]
    if int(c["keypoints"]):
        maps = layers.Conv2D(int(c["keypoints"]), 1, name=prefix + "keypoint_maps")(
            stage_outputs[int(c["keypoints_stage"])])
        pooled.append(SpatialSoftArgmax(name=prefix + "keypoints")(maps))
    if context is not None:
        pooled.append(context)
    x = layers.Concatenate(name=prefix + "pool")(pooled)
    x = layers.Dense(int(c["head_units"]), activation="gelu", name=prefix + "head")(x)
    if c["dropout"]:
        x = layers.Dropout(float(c["dropout"]), name=prefix + "head_dropout")(x)
    last = "delta" if prefix else "raw"
    return layers.Dense(2 * int(c["n_params"]), name=prefix + last,
                        kernel_initializer="zeros")(x)


#: Name prefix of the second network's layers in a cascade.
CASCADE_PREFIX = "cascade_"


def build_estimator(config: dict):
    """Build the (uncompiled) parameter network.

    Parameters
    ----------
    config : dict
        Hyperparameters (see `ESTIMATOR_DEFAULTS`); ``npix`` is required.

    Returns
    -------
    keras.Model
        Input ``(npix, npix, channels)``, output ``(N, 2 n_params)``: means then
        log-variances of the standardised parameters. In a cascade, the first
        network's layers are not trainable.
    """
    import keras
    from keras import layers

    from .layers import GaussianHead, Recentre

    c = resolve_config("estimator", config)
    if c["cascade"] is True:
        raise ValueError("config: 'cascade' is true but unresolved; give the dict of "
                         "cascade_geometry (astro-delens train does this)")
    npix = c["npix"]
    inputs = keras.Input((npix, npix, c["channels"]), name="image_noise")
    raw = _estimator_trunk(inputs, c)
    if c["cascade"]:
        centred = Recentre(**c["cascade"], name=CASCADE_PREFIX + "recentre")([inputs, raw])
        delta = _estimator_trunk(centred, c, prefix=CASCADE_PREFIX, context=raw)
        raw = layers.Add(name=CASCADE_PREFIX + "add")([raw, delta])
    outputs = GaussianHead(c["n_params"], c["logvar_min"], c["logvar_max"],
                           name="gaussian")(raw)
    model = keras.Model(inputs, outputs, name="astro_delens_estimator")
    if c["cascade"]:
        for layer in model.layers:
            if not layer.name.startswith(CASCADE_PREFIX):
                layer.trainable = False
    return model


def build_reconstructor(config: dict):
    """Build the (uncompiled) source network (a U-Net).

    Parameters
    ----------
    config : dict
        Hyperparameters (see `RECONSTRUCTOR_DEFAULTS`); ``npix`` is required and
        ``source_npix`` (default ``npix``) must equal it.

    Returns
    -------
    keras.Model
        Input ``(npix, npix, channels)``, output ``(N, source_npix, source_npix, 1)``.
    """
    import keras
    from keras import layers

    from .layers import InputFeatures

    c = resolve_config("reconstructor", config)
    npix, depth, act = c["npix"], int(c["depth"]), c["activation"]

    def width(level):
        return int(min(c["base_width"] * 2 ** level, c["max_width"]))

    mom = float(c["bn_momentum"])

    def double_conv(x, w, name):
        x = _conv_bn(x, w, 3, 1, act, name=name + "_1", momentum=mom)
        return _conv_bn(x, w, 3, 1, act, name=name + "_2", momentum=mom)

    inputs = keras.Input((npix, npix, c["channels"]), name="image_noise")
    x = InputFeatures(coords=c["coords"], asinh_softening=c["asinh_softening"],
                      name="features")(inputs)
    skips = []
    for level in range(depth):
        x = double_conv(x, width(level), f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = double_conv(x, width(depth), "bottom")
    if c["dropout"]:
        x = layers.Dropout(float(c["dropout"]), name="bottom_dropout")(x)
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(width(level), 2, strides=2, padding="same",
                                   name=f"up{level}_tconv")(x)
        x = layers.Concatenate(name=f"up{level}_concat")([x, skips[level]])
        x = double_conv(x, width(level), f"up{level}")
    outputs = layers.Conv2D(1, 1, name="source")(x)
    return keras.Model(inputs, outputs, name="astro_delens_reconstructor")


def build_model(kind: str, config: dict):
    """`build_estimator` or `build_reconstructor` according to ``kind``."""
    if kind == "estimator":
        return build_estimator(config)
    if kind == "reconstructor":
        return build_reconstructor(config)
    raise ValueError(f"kind: expected 'estimator' or 'reconstructor', got {kind!r}")
