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
from . import parallel
from .layers import Layer, register, row_blocks


class _BatchNorm(Layer):

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        if int(num_features) != num_features or num_features < 1:
            raise DigitnetError(f"{type(self).__name__} num_features must be a positive integer, got {num_features!r}")
        if not 0 <= momentum <= 1 or not eps > 0:
            raise DigitnetError(f"{type(self).__name__} needs 0 <= momentum <= 1 and eps > 0, "
                                f"got momentum={momentum}, eps={eps}")
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

    # Per-feature sums as (1, M) @ (M, F) products: much faster than sum(axis=0) on tall matrices.
    @staticmethod
    def _colsum(a: np.ndarray) -> np.ndarray:
        return np.ones(a.shape[0], a.dtype) @ a

    def forward(self, x, training=False):
        # x: (M, F); BatchNorm2D passes its (N, C, H, W) input as (N H W, C)
        if training:
            return self._forward_training(x, row_blocks(len(x), row_elements=x.shape[1]) or [slice(None)])
        xc = x - self.buffers["running_mean"]
        inv_std = 1.0 / np.sqrt(self.buffers["running_var"] + self.eps)
        xc *= inv_std
        self._xh, self._inv_std = xc, inv_std                          # xh: normalised input
        return xc * self.params["gamma"] + self.params["beta"]

    def _update_running(self, mean, var, m: int) -> None:
        r = self.buffers
        r["running_mean"] *= 1 - self.momentum
        r["running_mean"] += self.momentum * mean
        r["running_var"] *= 1 - self.momentum
        r["running_var"] += self.momentum * var * (m / max(m - 1, 1))

    def _forward_training(self, x, blocks):
        """Normalise with the batch statistics, the rows in ``blocks`` (digitnet's threads; one block without).

        Per-feature sums are added up over the blocks, so one block computes exactly the unsplit sums.
        """
        m = x.shape[0]
        mean = sum(parallel.run(lambda sl: self._colsum(x[sl]), blocks)) / m
        xc = np.empty_like(x)

        def centre(sl):
            np.subtract(x[sl], mean, out=xc[sl])
            return self._colsum(xc[sl] * xc[sl])
        var = sum(parallel.run(centre, blocks)) / m
        self._update_running(mean, var, m)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        out = np.empty_like(x)

        def scale(sl):
            xc[sl] *= inv_std
            np.multiply(xc[sl], self.params["gamma"], out=out[sl])
            out[sl] += self.params["beta"]
        parallel.run(scale, blocks)
        self._xh, self._inv_std = xc, inv_std                          # xh: normalised input
        return out

    def backward(self, grad, input_grad=True):
        xh = self._xh
        m = grad.shape[0]
        blocks = row_blocks(m, row_elements=grad.shape[1]) or [slice(None)]
        sums = parallel.run(lambda sl: (self._colsum(grad[sl]), self._colsum(grad[sl] * xh[sl])), blocks)
        self.grads["beta"][...] = sum(b for b, _ in sums)
        self.grads["gamma"][...] = sum(g for _, g in sums)
        if not input_grad:
            return None
        scale = self.params["gamma"] * self._inv_std / m
        dbeta, dgamma = self.grads["beta"], self.grads["gamma"]
        dx = np.empty_like(grad)

        def rows(sl):
            d = dx[sl]
            np.multiply(grad[sl], m, out=d)
            d -= dbeta
            d -= xh[sl] * dgamma
            d *= scale
        parallel.run(rows, blocks)
        return dx

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
        out = super().forward(x.transpose(0, 2, 3, 1).reshape(-1, C), training)    # (N H W, C)
        return out.reshape(N, H, W, C).transpose(0, 3, 1, 2)                        # (N, C, H, W) view

    def backward(self, grad, input_grad=True):
        N, C, H, W = grad.shape
        dx = super().backward(grad.transpose(0, 2, 3, 1).reshape(-1, C), input_grad)
        return None if dx is None else dx.reshape(N, H, W, C).transpose(0, 3, 1, 2)

    def output_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[0] != self.num_features:
            raise DigitnetError(f"BatchNorm2D expects ({self.num_features}, H, W) input, got {tuple(input_shape)}")
        return tuple(input_shape)
