"""Losses and metrics of the astro_delens networks (backend-agnostic, `keras.ops` only).

Importing this module imports Keras.

`GaussianNLL`
    Negative log-likelihood of the standardised lens parameters under the
    diagonal Gaussian predicted by the parameter network (``y_pred`` = means
    and log-variances, shape ``(N, 2 n)``), optionally with the beta-NLL
    weighting of Seitzer et al. (2022, ICLR), which keeps hard parameters
    (slope, ellipticity) from being given up for a large variance.
`SourceLoss`
    ``MSE + alpha * (1 - SSIM)`` between true and predicted normalised
    sources, both computed per image relative to the **peak of the true source**
    (the SSIM data range is that peak), so that faint and bright sources weigh
    alike.
"""

from __future__ import annotations

import numpy as np

import keras
from keras import ops

__all__ = ["GaussianNLL", "SourceLoss", "ssim", "mean_mse", "mean_sigma"]


@keras.saving.register_keras_serializable(package="astro_delens")
class GaussianNLL(keras.losses.Loss):
    """Gaussian negative log-likelihood with predicted means and log-variances.

    Per sample: ``mean_k c_k w_k * 0.5 * [exp(-s_k) (y_k - mu_k)**2 + s_k]``
    where ``y_pred = concat([mu, s])``, ``w_k = stop_gradient(exp(beta s_k))``
    (beta-NLL; ``beta = 0`` is the plain NLL) and ``c_k`` are fixed
    per-parameter weights (default 1). Neither kind of weight moves the
    optimum of ``mu`` or ``s`` for any one parameter: the predicted variances
    stay calibrated; they only set how a network of limited capacity shares
    it between the parameters.

    Parameters
    ----------
    beta : float
        beta-NLL exponent in [0, 1].
    weights : sequence of float, optional
        Positive weight of each parameter, in the order of the targets.
    """

    def __init__(self, beta=0.5, weights=None, name="gaussian_nll",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 <= float(beta) <= 1.0:
            raise ValueError(f"beta: expected a value in [0, 1], got {beta!r}")
        self.beta = float(beta)
        if weights is not None:
            weights = [float(w) for w in np.ravel(weights)]
            if not weights or not all(np.isfinite(w) and w > 0 for w in weights):
                raise ValueError(f"weights: expected positive finite numbers, got {weights!r}")
        self.weights = weights

    def call(self, y_true, y_pred):
        y_true = ops.convert_to_tensor(y_true)
        y_pred = ops.convert_to_tensor(y_pred)
        n = y_true.shape[-1]
        mu = y_pred[..., :n]
        s = y_pred[..., n:2 * n]
        y_true = ops.cast(y_true, y_pred.dtype)
        nll = 0.5 * (ops.exp(-s) * ops.square(y_true - mu) + s)
        if self.beta > 0:
            nll = nll * ops.stop_gradient(ops.exp(self.beta * s))
        if self.weights is not None:
            if len(self.weights) != n:
                raise ValueError(f"weights: expected {n} values, one per parameter, "
                                 f"got {len(self.weights)}")
            nll = nll * ops.convert_to_tensor(np.asarray(self.weights), dtype=nll.dtype)
        return ops.mean(nll, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(beta=self.beta)
        if self.weights is not None:
            config.update(weights=list(self.weights))
        return config


@keras.saving.register_keras_serializable(package="astro_delens")
def mean_mse(y_true, y_pred):
    """Mean squared error of the predicted means (first half of ``y_pred``)."""
    n = y_true.shape[-1]
    y_pred = ops.convert_to_tensor(y_pred)
    return ops.mean(ops.square(ops.cast(y_true, y_pred.dtype) - y_pred[..., :n]), axis=-1)


@keras.saving.register_keras_serializable(package="astro_delens")
def mean_sigma(y_true, y_pred):
    """Mean predicted standard deviation (in standardised units)."""
    n = y_true.shape[-1]
    return ops.mean(ops.exp(0.5 * y_pred[..., n:2 * n]), axis=-1)


def _gaussian_kernel(size, sigma):
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * (x / sigma) ** 2)
    g /= g.sum()
    return np.outer(g, g).astype(np.float32)[:, :, None, None]


def ssim(image1, image2, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03):
    """Mean SSIM (Wang et al. 2004) of single-channel images ``(N, H, W, 1)``.

    ``max_val`` (the data range) may be a scalar or a tensor broadcastable to
    ``(N, 1, 1, 1)``. Gaussian window of ``filter_size`` pixels and
    ``filter_sigma``; "valid" filtering, as `keras.ops.image.ssim`.
    """
    image1 = ops.convert_to_tensor(image1)
    image2 = ops.cast(ops.convert_to_tensor(image2), image1.dtype)
    kernel = ops.cast(ops.convert_to_tensor(_gaussian_kernel(filter_size, filter_sigma)),
                      image1.dtype)

    def blur(t):
        return ops.conv(t, kernel, strides=1, padding="valid")

    c1 = (k1 * max_val) ** 2
    c2 = (k2 * max_val) ** 2
    mu1, mu2 = blur(image1), blur(image2)
    s11 = blur(image1 * image1) - mu1 * mu1
    s22 = blur(image2 * image2) - mu2 * mu2
    s12 = blur(image1 * image2) - mu1 * mu2
    num = (2.0 * mu1 * mu2 + c1) * (2.0 * s12 + c2)
    den = (mu1 * mu1 + mu2 * mu2 + c1) * (s11 + s22 + c2)
    return ops.mean(num / den, axis=(1, 2, 3))


@keras.saving.register_keras_serializable(package="astro_delens")
class SourceLoss(keras.losses.Loss):
    """``error + alpha (1 - SSIM)`` relative to each true source.

    For every image the true and predicted sources ``(N, S, S, 1)`` are divided
    by ``peak = max(max |y_true|, eps)``; the SSIM is computed on those with data
    range 1 (i.e. the data range of the SSIM is the true source's peak). The
    error term is, with ``energy=True`` (recommended), the normalised squared
    error ``sum (p - t)^2 / sum t^2``: a source that covers a few per cent of
    the grid then weighs as much as a large one, and predicting an empty source
    costs 1. With ``energy=False`` it is the MSE over the grid (relative to the
    peak, or as is with ``relative=False``), which a compact source on a mostly
    empty grid lets the network minimise by predicting nothing.

    Parameters
    ----------
    alpha : float
        Weight of the ``1 - SSIM`` term (>= 0).
    relative : bool
    energy : bool
    filter_size, filter_sigma : int, float
        The SSIM's Gaussian window.
    eps : float
        Smallest peak (avoids dividing by zero for an empty source).
    """

    def __init__(self, alpha=0.1, relative=True, filter_size=11, filter_sigma=1.5, eps=1e-4,
                 energy=False, name="source_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.energy = bool(energy)
        if float(alpha) < 0:
            raise ValueError(f"alpha: must be >= 0, got {alpha!r}")
        self.alpha = float(alpha)
        self.relative = bool(relative)
        self.filter_size = int(filter_size)
        self.filter_sigma = float(filter_sigma)
        self.eps = float(eps)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
        peak = ops.maximum(ops.max(ops.abs(y_true), axis=(1, 2, 3), keepdims=True), self.eps)
        t = y_true / peak
        p = y_pred / peak
        if self.energy:
            mse = (ops.sum(ops.square(t - p), axis=(1, 2, 3))
                   / ops.maximum(ops.sum(ops.square(t), axis=(1, 2, 3)), self.eps))
        elif self.relative:
            mse = ops.mean(ops.square(t - p), axis=(1, 2, 3))
        else:
            mse = ops.mean(ops.square(y_true - y_pred), axis=(1, 2, 3))
        if self.alpha == 0:
            return mse
        if hasattr(ops, "image") and hasattr(ops.image, "ssim"):
            s = ops.image.ssim(t, p, max_val=1.0, filter_size=self.filter_size,
                               filter_sigma=self.filter_sigma, data_format="channels_last")
        else:  # pragma: no cover - Keras < 3.13
            s = ssim(t, p, 1.0, self.filter_size, self.filter_sigma)
        return mse + self.alpha * (1.0 - s)

    def get_config(self):
        config = super().get_config()
        config.update(alpha=self.alpha, relative=self.relative, energy=self.energy,
                      filter_size=self.filter_size,
                      filter_sigma=self.filter_sigma, eps=self.eps)
        return config
