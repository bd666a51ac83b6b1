"""Batch normalisation (PyTorch semantics), for (N, F) and (N, C, H, W) input.

Training: normalise with the batch mean and (biased) variance over every axis
but the feature/channel axis, then scale by ``gamma`` and shift by ``beta``;
update the running statistics as ``r = (1 - momentum) r + momentum * batch``
(the running variance uses the unbiased estimate). Inference uses the
running statistics, which are saved with the model as buffers.

Backward, with ``xh`` the normalised input, ``g`` dL/dy and M values per feature:
``dgamma = sum(g xh)``, ``dbeta = sum(g)``,
``dx = gamma / (M sigma) * (M g - sum(g) - xh sum(g xh))``.
"""

from __future__ import annotations

import numpy as np

from ..errors import DigitnetError
from . import _fast
from .layers import Layer, register


class _BatchNorm(Layer):
    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        if int(num_features) != num_features or num_features < 1:
            raise DigitnetError(f"{type(self).__name__} num_features must be a positive integer, got {num_features!r}")
        if not 0 <= momentum <= 1 or not eps > 0:
            raise DigitnetError(
                f"{type(self).__name__} needs 0 <= momentum <= 1 and eps > 0, got momentum={momentum}, eps={eps}"
            )
        self.num_features, self.momentum, self.eps = int(num_features), float(momentum), float(eps)
        F = self.num_features
        self.params = {"gamma": np.ones(F, np.float32), "beta": np.zeros(F, np.float32)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.buffers = {"running_mean": np.zeros(F, np.float32), "running_var": np.ones(F, np.float32)}

    def astype(self, dtype):
        super().astype(dtype)
        for k, v in self.buffers.items():
            self.buffers[k] = v.astype(dtype)
        return self

    def forward(self, x, training=False):
        # x: (M, F); BatchNorm2D passes its (N, C, H, W) input as (N H W, C)
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not training:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
        elif self.fast:
            y, self._xh, self._inv_std, mean, var = _fast.batchnorm_train_forward(x, gamma, beta, self.eps)
            self._update_running(mean, var, len(x))
            return y
        else:
            mean, var = x.mean(axis=0), x.var(axis=0)  # (F,) each: the batch's statistics
            self._update_running(mean, var, len(x))
        # locals first: threads predicting with one model at once each get their own result
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xh = (x - mean) * inv_std  # the normalised input
        self._inv_std, self._xh = inv_std, xh
        return xh * gamma + beta

    def _update_running(self, mean, var, m: int) -> None:
        r = self.buffers
        r["running_mean"] *= 1 - self.momentum
        r["running_mean"] += self.momentum * mean
        r["running_var"] *= 1 - self.momentum
        r["running_var"] += self.momentum * var * (m / max(m - 1, 1))  # the unbiased variance

    def backward(self, grad, input_grad=True):
        xh, inv_std, gamma = self._xh, self._inv_std, self.params["gamma"]
        dgamma, dbeta = self.grads["gamma"], self.grads["beta"]
        if self.fast:
            return _fast.batchnorm_backward(grad, xh, inv_std, gamma, dgamma, dbeta, input_grad)
        M = len(grad)
        dbeta[...] = grad.sum(axis=0)  # (M, F) -> (F,)
        dgamma[...] = (grad * xh).sum(axis=0)
        if not input_grad:
            return None
        return gamma * inv_std / M * (M * grad - dbeta - xh * dgamma)  # (M, F)

    def config(self):
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps}


@register
class BatchNorm1D(_BatchNorm):
    """Batch norm over the batch axis of (N, F) input."""

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.num_features,):
            raise DigitnetError(f"BatchNorm1D expects ({self.num_features},) input, got {tuple(input_shape)}")
        return tuple(input_shape)


@register
class BatchNorm2D(_BatchNorm):
    """Batch norm per channel over (N, H, W) of (N, C, H, W) input."""

    # Normalise as an (N H W, C) matrix: for convolution outputs, which are
    # channels-last in memory, the transposes are free and the reductions fast.
    def forward(self, x, training=False):
        N, C, H, W = x.shape
        out = super().forward(x.transpose(0, 2, 3, 1).reshape(-1, C), training)  # (N H W, C)
        return out.reshape(N, H, W, C).transpose(0, 3, 1, 2)  # (N, C, H, W) view

    def backward(self, grad, input_grad=True):
        N, C, H, W = grad.shape
        dx = super().backward(grad.transpose(0, 2, 3, 1).reshape(-1, C), input_grad)
        return None if dx is None else dx.reshape(N, H, W, C).transpose(0, 3, 1, 2)

    def output_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[0] != self.num_features:
            raise DigitnetError(f"BatchNorm2D expects ({self.num_features}, H, W) input, got {tuple(input_shape)}")
        return tuple(input_shape)
