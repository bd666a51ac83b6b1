"""Convolution, pooling and flattening layers for NCHW image batches.

Conv2D is one big matrix multiply ("im2col"): every k x k patch of the
padded input becomes a row of a matrix ``X``, the filters the rows of a
matrix ``F`` of the same width, and ``Y = X @ F.T + b``. The backward pass
is two more products, ``dF = dY.T @ X`` and ``dX = dY @ F``, and "col2im"
adds each row of ``dX`` back onto the input pixels its patch came from, one
strided add per kernel offset (k * k of them), never a Python loop over pixels.

Pooling uses the same windows: max pooling keeps each window's maximum and
sends the gradient to it; average pooling shares it equally.

The fast kernels (:mod:`._fast`) compute the same: Conv2D with a channels-last
patch layout, and 2 x 2 max pooling in two pairwise steps, both split over
digitnet's threads.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import DigitnetError
from . import _fast
from .init import he_normal
from .layers import Layer, register


def _out_size(n: int, k: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - k) // stride + 1


def _check_chw(layer: str, shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise DigitnetError(f"{layer} expects (channels, height, width) input, got {tuple(shape)}")
    C, H, W = (int(d) for d in shape)
    return C, H, W


def windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """Every k x k window of (N, C, H, W) images at stride s: a (N, C, Ho, Wo, k, k) view, no copy."""
    return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]


def add_windows(d: np.ndarray, shape: tuple[int, ...], k: int, s: int) -> np.ndarray:
    """The adjoint of :func:`windows`: add (N, C, Ho, Wo, k, k) window values back into a (N, C, H, W) array."""
    Ho, Wo = d.shape[2:4]
    dx = np.zeros(shape, d.dtype)
    for i in range(k):
        for j in range(k):
            dx[:, :, i : i + s * (Ho - 1) + 1 : s, j : j + s * (Wo - 1) + 1 : s] += d[..., i, j]
    return dx


@register
class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in PyTorch) with stride and zero padding.

    ``W`` has shape (out_channels, in_channels, k, k), ``b`` (out_channels,).
    Input (N, C, H, W) -> output (N, O, Ho, Wo) with
    ``Ho = (H + 2 padding - k) // stride + 1``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        rng: np.random.Generator | None = None,
        dtype=np.float32,
    ) -> None:
        super().__init__()
        for name, v, lo in (
            ("in_channels", in_channels, 1),
            ("out_channels", out_channels, 1),
            ("kernel_size", kernel_size, 1),
            ("stride", stride, 1),
            ("padding", padding, 0),
        ):
            if int(v) != v or v < lo:
                raise DigitnetError(f"Conv2D {name} must be an integer >= {lo}, got {v!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        rng = rng if rng is not None else np.random.default_rng(0)
        k = self.kernel_size
        fan_in = self.in_channels * k * k
        self.params = {
            "W": he_normal(rng, fan_in, (self.out_channels, self.in_channels, k, k), dtype),
            "b": np.zeros(self.out_channels, dtype),
        }
        self.grads = {n: np.zeros_like(v) for n, v in self.params.items()}
        self._cache: tuple | None = None  # what backward needs from the last training forward pass

    def forward(self, x, training=False):
        W, b, k, s, p = self.params["W"], self.params["b"], self.kernel_size, self.stride, self.padding
        if self.fast:
            y, cache = _fast.conv2d_forward(x, W, b, s, p)
            self._cache = cache if training else None  # the patches: a batch's worth, needed only for backward
            return y
        N = len(x)
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))  # zero padding
        win = windows(xp, k, s)  # (N, C, Ho, Wo, k, k) view
        Ho, Wo = win.shape[2:4]
        X = win.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, -1)  # (N Ho Wo, C k k): a patch per row
        F = W.reshape(self.out_channels, -1)  # (O, C k k): a filter per row
        Y = X @ F.T + b  # (N Ho Wo, O)
        self._cache = (X, xp.shape)
        return Y.reshape(N, Ho, Wo, -1).transpose(0, 3, 1, 2)  # (N, O, Ho, Wo)

    def backward(self, grad, input_grad=True):
        W, k, s, p = self.params["W"], self.kernel_size, self.stride, self.padding
        if self._cache is None:
            raise DigitnetError("Conv2D.backward needs a forward pass with training=True first")
        if self.fast:
            return _fast.conv2d_backward(self._cache, grad, W, self.grads["W"], self.grads["b"], input_grad)
        X, padded_shape = self._cache
        N, O, Ho, Wo = grad.shape
        dY = grad.transpose(0, 2, 3, 1).reshape(-1, O)  # (N Ho Wo, O)
        F = W.reshape(O, -1)  # (O, C k k)
        self.grads["W"][...] = (dY.T @ X).reshape(W.shape)  # dF = dY.T X
        self.grads["b"][...] = dY.sum(axis=0)  # db = dY summed over every pixel
        if not input_grad:
            return None
        dX = (dY @ F).reshape(N, Ho, Wo, -1, k, k)  # (N, Ho, Wo, C, k, k): dL/dpatch
        dxp = add_windows(dX.transpose(0, 3, 1, 2, 4, 5), padded_shape, k, s)  # col2im: (N, C, Hp, Wp)
        H, Wd = padded_shape[2] - 2 * p, padded_shape[3] - 2 * p
        return dxp[:, :, p : p + H, p : p + Wd]  # (N, C, H, W)

    def output_shape(self, input_shape):
        C, H, W = _check_chw("Conv2D", input_shape)
        if C != self.in_channels:
            raise DigitnetError(f"Conv2D expects {self.in_channels} input channels, got {C}")
        Ho, Wo = (_out_size(n, self.kernel_size, self.stride, self.padding) for n in (H, W))
        if Ho < 1 or Wo < 1:
            raise DigitnetError(
                f"Conv2D kernel {self.kernel_size} does not fit a {H}x{W} input (padding {self.padding})"
            )
        return (self.out_channels, Ho, Wo)

    def forward_size(self, input_shape):
        _, Ho, Wo = self.output_shape(input_shape)
        return Ho * Wo * (self.kernel_size**2 * self.in_channels + 1)  # the patch matrix, a row per output pixel

    def config(self):
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
        }


class _Pool2D(Layer):
    """Shared window bookkeeping for max and average pooling (no padding, floor mode)."""

    def __init__(self, size: int = 2, stride: int | None = None) -> None:
        super().__init__()
        if int(size) != size or size < 1 or (stride is not None and (int(stride) != stride or stride < 1)):
            raise DigitnetError(
                f"{type(self).__name__} size and stride must be integers >= 1, got size={size!r}, stride={stride!r}"
            )
        self.size, self.stride = int(size), None if stride is None else int(stride)

    @property
    def step(self) -> int:
        """The stride actually used: ``stride``, or ``size`` when it is None."""
        return self.size if self.stride is None else self.stride

    def output_shape(self, input_shape):
        C, H, W = _check_chw(type(self).__name__, input_shape)
        if H < self.size or W < self.size:
            raise DigitnetError(f"{type(self).__name__} window {self.size} is larger than the {H}x{W} input")
        return (C, (H - self.size) // self.step + 1, (W - self.size) // self.step + 1)

    def config(self):
        return {"size": self.size, "stride": self.stride}


@register
class MaxPool2D(_Pool2D):
    """Maximum over each k x k window; the gradient goes to the (first) maximal input."""

    _training = False  # whether the last forward pass kept what backward needs

    def forward(self, x, training=False):
        k, s = self.size, self.step
        self._in_shape, self._training = x.shape, training
        self._fast2x2 = self.fast and k == 2 and s == 2
        if self._fast2x2:
            y, self._cache = _fast.maxpool2x2_forward(x, training)
            return y
        win = windows(x, k, s)  # (N, C, Ho, Wo, k, k) view
        win = win.reshape(win.shape[:4] + (k * k,))  # (N, C, Ho, Wo, k k) copy
        self._argmax = win.argmax(axis=-1)  # the first maximum of each window
        return win.max(axis=-1)  # (N, C, Ho, Wo)

    def backward(self, grad, input_grad=True):
        if not self._training:
            raise RuntimeError("MaxPool2D.backward needs a forward pass with training=True")
        if self._fast2x2:
            return _fast.maxpool2x2_backward(self._cache, grad)
        k = self.size
        d = np.zeros(grad.shape + (k * k,), grad.dtype)  # (N, C, Ho, Wo, k k)
        np.put_along_axis(d, self._argmax[..., None], grad[..., None], axis=-1)  # all to each window's max
        return add_windows(d.reshape(grad.shape + (k, k)), self._in_shape, k, self.step)


@register
class AvgPool2D(_Pool2D):
    """Mean over each k x k window."""

    def forward(self, x, training=False):
        k = self.size
        self._in_shape = x.shape
        win = windows(x, k, self.step)  # (N, C, Ho, Wo, k, k) view
        return win.reshape(win.shape[:4] + (k * k,)).mean(axis=-1)  # (N, C, Ho, Wo)

    def backward(self, grad, input_grad=True):
        k = self.size
        share = np.broadcast_to((grad / (k * k))[..., None, None], grad.shape + (k, k))  # each input's share
        return add_windows(share, self._in_shape, k, self.step)


@register
class GlobalAvgPool2D(Layer):
    """(N, C, H, W) -> (N, C): the mean of each channel."""

    def forward(self, x, training=False):
        self._in_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, grad, input_grad=True):
        _, _, H, W = self._in_shape
        return np.broadcast_to((grad / (H * W))[:, :, None, None], self._in_shape).copy()

    def output_shape(self, input_shape):
        C, _, _ = _check_chw("GlobalAvgPool2D", input_shape)
        return (C,)


@register
class Flatten(Layer):
    """(N, C, H, W) -> (N, C H W) in C, H, W order (like ``torch.flatten(x, 1)``)."""

    def forward(self, x, training=False):
        self._in_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad, input_grad=True):
        return grad.reshape(self._in_shape)

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)
