"""Custom Keras layers of the astro_delens networks (backend-agnostic, `keras.ops` only).

Importing this module imports Keras.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["InputFeatures", "GaussianHead", "SpatialSoftArgmax", "Recentre"]


@keras.saving.register_keras_serializable(package="astro_delens")
class InputFeatures(keras.layers.Layer):
    """Append derived channels to the normalised (image, noise) input.

    Appended, in this order:

    * if ``asinh_softening > 0``: ``asinh(image / a)`` of channel 0, which
      lifts faint arcs next to a bright lens galaxy;
    * if ``coords``: the grid coordinates ``u`` (columns) and ``v`` (rows), both
      in [-1, 1], and the radius ``sqrt(u**2 + v**2)``, so that convolutions can
      tell where they are (lens centre, Einstein radius).

    Parameters
    ----------
    coords : bool
    asinh_softening : float
        Softening ``a`` of the asinh channel; 0 disables it.
    """

    def __init__(self, coords=True, asinh_softening=0.05, **kwargs):
        super().__init__(**kwargs)
        self.coords = bool(coords)
        self.asinh_softening = float(asinh_softening)

    def call(self, inputs):
        parts = [inputs]
        if self.asinh_softening > 0:
            a = self.asinh_softening
            parts.append(ops.arcsinh(inputs[..., 0:1] / a))
        if self.coords:
            h, w = inputs.shape[1], inputs.shape[2]
            v = ops.linspace(-1.0, 1.0, h)
            u = ops.linspace(-1.0, 1.0, w)
            gv, gu = ops.meshgrid(v, u, indexing="ij")
            r = ops.sqrt(gu * gu + gv * gv)
            grid = ops.cast(ops.stack([gu, gv, r], axis=-1), inputs.dtype)
            grid = ops.broadcast_to(grid[None], (ops.shape(inputs)[0], h, w, 3))
            parts.append(grid)
        if len(parts) == 1:
            return inputs
        return ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        extra = (1 if self.asinh_softening > 0 else 0) + (3 if self.coords else 0)
        return tuple(input_shape[:-1]) + (input_shape[-1] + extra,)

    def get_config(self):
        config = super().get_config()
        config.update(coords=self.coords, asinh_softening=self.asinh_softening)
        return config


@keras.saving.register_keras_serializable(package="astro_delens")
class GaussianHead(keras.layers.Layer):
    """Split ``2 n`` raw outputs into ``n`` means and ``n`` bounded log-variances.

    The log-variance ``s`` is kept softly inside ``[logvar_min, logvar_max]``
    (``s = lo + softplus(raw - lo)``, then ``s = hi - softplus(hi - s)``), so its
    gradient never vanishes. The output is ``concat([mean, s])``, shape ``(N, 2 n)``.
    """

    def __init__(self, n_params=8, logvar_min=-14.0, logvar_max=6.0, **kwargs):
        super().__init__(**kwargs)
        self.n_params = int(n_params)
        self.logvar_min = float(logvar_min)
        self.logvar_max = float(logvar_max)

    def call(self, inputs):
        n = self.n_params
        mean = inputs[:, :n]
        raw = inputs[:, n:2 * n]
        s = self.logvar_min + ops.softplus(raw - self.logvar_min)
        s = self.logvar_max - ops.softplus(self.logvar_max - s)
        return ops.concatenate([mean, s], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * self.n_params)

    def get_config(self):
        config = super().get_config()
        config.update(n_params=self.n_params, logvar_min=self.logvar_min,
                      logvar_max=self.logvar_max)
        return config


@keras.saving.register_keras_serializable(package="astro_delens")
class SpatialSoftArgmax(keras.layers.Layer):
    """Expected grid position of each channel, read as a heat map.

    Each of the ``K`` input channels is turned into a probability map by a
    softmax over all pixels, and the layer returns the mean ``(u, v)`` position
    under each map, in the [-1, 1] grid coordinates of `InputFeatures`:
    output ``(N, 2 K)``, ordered ``u_1 .. u_K, v_1 .. v_K``. Unlike global
    pooling, this keeps *where* a feature responds, to sub-pixel precision
    (the "spatial softmax" of Levine et al. 2016, JMLR 17, 1).
    """

    def call(self, inputs):
        h, w, k = inputs.shape[1], inputs.shape[2], inputs.shape[3]
        logits = ops.reshape(inputs, (-1, h * w, k))
        prob = ops.softmax(logits, axis=1)
        v = ops.linspace(-1.0, 1.0, h)
        u = ops.linspace(-1.0, 1.0, w)
        gv, gu = ops.meshgrid(v, u, indexing="ij")
        gu = ops.cast(ops.reshape(gu, (1, h * w, 1)), prob.dtype)
        gv = ops.cast(ops.reshape(gv, (1, h * w, 1)), prob.dtype)
        return ops.concatenate([ops.sum(prob * gu, axis=1), ops.sum(prob * gv, axis=1)],
                               axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[3])


@keras.saving.register_keras_serializable(package="astro_delens")
class Recentre(keras.layers.Layer):
    """Shift each image so that a predicted lens centre lands on the grid centre.

    Called on ``[images, raw]``, where ``raw`` holds a first network's
    standardised means (its first ``n`` columns). The centre's offset in pixels
    from the grid centre is ``offset + per_unit * raw[:, index]``, per axis
    (columns, rows); `astro_delens.nn.architectures.cascade_geometry` derives
    these constants from the parameter statistics and the pixel scale. The
    images are resampled bilinearly, edge values extending outwards; shifts are
    clipped to a quarter of the grid.

    Parameters
    ----------
    index : (int, int)
        Columns of ``raw`` holding the standardised centre_x and centre_y.
    offset, per_unit : (float, float)
        Column and row offsets (pixels) at standardised value 0, and their
        change per standardised unit.
    """

    def __init__(self, index=(4, 5), offset=(0.0, 0.0), per_unit=(1.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        self.index = tuple(int(i) for i in index)
        self.offset = tuple(float(v) for v in offset)
        self.per_unit = tuple(float(v) for v in per_unit)

    def call(self, inputs):
        images, raw = inputs
        raw = ops.stop_gradient(ops.cast(raw, images.dtype))
        limit = images.shape[1] / 4.0
        shifts = [ops.clip(self.offset[a] + self.per_unit[a] * raw[:, self.index[a]],
                           -limit, limit) for a in (0, 1)]
        one, zero = ops.ones_like(shifts[0]), ops.zeros_like(shifts[0])
        # Output pixel (column c, row r) reads the input at (c + shift_col, r + shift_row).
        transform = ops.stack([one, zero, shifts[0], zero, one, shifts[1], zero, zero], axis=-1)
        return ops.image.affine_transform(images, transform, interpolation="bilinear",
                                          fill_mode="nearest", data_format="channels_last")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(index=list(self.index), offset=list(self.offset),
                      per_unit=list(self.per_unit))
        return config
