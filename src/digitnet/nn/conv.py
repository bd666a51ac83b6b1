"""Convolution, pooling and flattening layers for NCHW image batches.

Conv2D is one big matrix multiply ("im2col"): every k x k patch of the
padded input becomes a row of a matrix, and the filters a matrix of the
same width. NumPy's ``sliding_window_view`` builds the patch view without
copying; a single reshape copies it into the GEMM operand. The backward
pass scatters the patch gradients back ("col2im") with one small matrix
product and one strided add per kernel offset (k * k of them), never a
Python loop over pixels.

Internally the patch matrix is laid out channels-last, ``(N, Ho, Wo, k, k, C)``,
so each strided add in col2im touches contiguous channel vectors, and it ends
in a column of ones that carries the bias through the same product. With
digitnet's threads (:mod:`digitnet.nn.parallel`) each thread builds and
multiplies the patches of its share of the batch's images.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import DigitnetError
from . import parallel
from .init import he_normal
from .layers import Layer, register


def _out_size(n: int, k: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - k) // stride + 1


def _check_chw(layer: str, shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise DigitnetError(f"{layer} expects (channels, height, width) input, got {tuple(shape)}")
    return tuple(int(d) for d in shape)


@register
class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in PyTorch) with stride and zero padding.

    ``W`` has shape (out_channels, in_channels, k, k), ``b`` (out_channels,).
    Input (N, C, H, W) -> output (N, O, Ho, Wo) with
    ``Ho = (H + 2 padding - k) // stride + 1``.

    With the patch matrix ``X`` (N Ho Wo, k k C) and filters ``F`` (O, k k C):
    ``Y = X @ F.T + b``; backward ``dF = dY.T @ X``, ``db = sum(dY)``,
    ``dX = dY @ F`` scattered back to the input positions.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, *, rng: np.random.Generator | None = None, dtype=np.float32) -> None:
        super().__init__()
        for name, v, lo in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                            ("kernel_size", kernel_size, 1), ("stride", stride, 1), ("padding", padding, 0)):
            if int(v) != v or v < lo:
                raise DigitnetError(f"Conv2D {name} must be an integer >= {lo}, got {v!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        rng = rng if rng is not None else np.random.default_rng(0)
        k = self.kernel_size
        fan_in = self.in_channels * k * k
        self.params = {"W": he_normal(rng, fan_in, (self.out_channels, self.in_channels, k, k), dtype),
                       "b": np.zeros(self.out_channels, dtype)}
        self.grads = {n: np.zeros_like(v) for n, v in self.params.items()}

    def _fill_patches(self, x: np.ndarray, cols: np.ndarray) -> None:
        """Write the patch matrix of (n, C, H, W) images ``x`` into ``cols`` (n Ho Wo, k k C + 1).

        The last column is ones: it carries the bias through the same matrix
        product as the filters (``[X 1] @ [F b].T``), and ``dY.T @ [X 1]`` then
        gives the bias gradient with the filters' (no separate add or sum).
        """
        n, C, H, W = x.shape
        k, s, p = self.kernel_size, self.stride, self.padding
        K = k * k * C
        if C == 1:
            # Copying a window view of a one-channel image moves k pixels per inner loop; one
            # gather with precomputed flat indices (into each padded image followed by a 1)
            # moves every pixel in a single loop, ~2x faster.
            Hp, Wp = H + 2 * p, W + 2 * p
            flat = np.empty((n, Hp * Wp + 1), cols.dtype)
            flat[:, -1] = 1
            img = flat[:, :-1].reshape(n, Hp, Wp)
            if p:
                img[...] = 0
            img[:, p:p + H, p:p + W] = x[:, 0]
            np.take(flat, self._gather_index(H, W), axis=1, out=cols.reshape(n, -1), mode="clip")
            return
        cols[:, K] = 1
        xh = x.transpose(0, 2, 3, 1)                                   # (n, H, W, C) view
        if p:
            xh = np.pad(xh, ((0, 0), (p, p), (p, p), (0, 0)))
        win = sliding_window_view(xh, (k, k), axis=(1, 2))[:, ::s, ::s]  # (n, Ho, Wo, C, k, k) view
        # one copy into the columns before the ones (reshaping that view only splits axes: still a view)
        cols[:, :K].reshape(n, *win.shape[1:3], k, k, C)[...] = win.transpose(0, 1, 2, 4, 5, 3)

    def _gather_index(self, H: int, W: int) -> np.ndarray:
        """Flat indices of every patch pixel in a padded one-channel image, then of its trailing 1."""
        k, s, p = self.kernel_size, self.stride, self.padding
        Hp, Wp = H + 2 * p, W + 2 * p
        if getattr(self, "_gather_key", None) != (Hp, Wp):
            Ho, Wo = _out_size(H, k, s, p), _out_size(W, k, s, p)
            r = np.arange(Ho)[:, None, None, None] * s + np.arange(k)[None, None, :, None]    # (Ho, 1, k, 1)
            c = np.arange(Wo)[None, :, None, None] * s + np.arange(k)[None, None, None, :]    # (1, Wo, 1, k)
            idx = (r * Wp + c).reshape(Ho, Wo, k * k)
            ones = np.full((Ho, Wo, 1), Hp * Wp)
            self._gather_idx, self._gather_key = np.concatenate([idx, ones], axis=2).ravel(), (Hp, Wp)
        return self._gather_idx

    def _filters(self) -> np.ndarray:
        """[F b]: the filters as rows (O, k k C) with the bias appended, (O, k k C + 1)."""
        W = self.params["W"]
        Fb = np.empty((self.out_channels, W[0].size + 1), W.dtype)
        Fb[:, :-1] = W.transpose(0, 2, 3, 1).reshape(self.out_channels, -1)
        Fb[:, -1] = self.params["b"]
        return Fb

    def forward(self, x, training=False):
        N, C, H, W = x.shape
        _, Ho, Wo = self.output_shape(x.shape[1:])
        if C == 1:
            self._gather_index(H, W)                                    # cached before any thread needs it
        P = Ho * Wo                                                     # patch rows per image
        cols = np.empty((N * P, self.kernel_size ** 2 * C + 1), np.result_type(x, self.params["W"]))
        out = np.empty((N * P, self.out_channels), cols.dtype)
        FbT = self._filters().T

        def images(sl):                                                 # patches and product of some images
            rows = slice(sl.start * P, sl.stop * P)
            self._fill_patches(x[sl], cols[rows])
            np.matmul(cols[rows], FbT, out=out[rows])                   # (n Ho Wo, O), bias included
        parallel.run(images, parallel.parts(N))
        self._cols, self._in_shape = cols, x.shape
        return out.reshape(N, Ho, Wo, self.out_channels).transpose(0, 3, 1, 2)  # (N, O, Ho, Wo) view

    def backward(self, grad, input_grad=True):
        N, C, H, W = self._in_shape
        k, s, p, O = self.kernel_size, self.stride, self.padding, self.out_channels
        Ho, Wo = grad.shape[2:]
        P = Ho * Wo
        g = grad.transpose(0, 2, 3, 1).reshape(-1, O)                  # (N Ho Wo, O)
        cols = self._cols
        # [dF db] = dY.T @ [X 1], a sum over every patch row: each thread sums its images, then the parts add up
        dFb = sum(parallel.run(lambda sl: g[sl.start * P:sl.stop * P].T @ cols[sl.start * P:sl.stop * P],
                               parallel.parts(N)))                      # (O, k k C + 1)
        self.grads["W"][...] = dFb[:, :-1].reshape(O, k, k, C).transpose(0, 3, 1, 2)
        self.grads["b"][...] = dFb[:, -1]
        if not input_grad:
            return None
        # col2im, one kernel offset at a time: dX[window (i, j)] += dY @ W[:, :, i, j]. Each product
        # lands in one contiguous (n, Ho, Wo, C) array, so the strided add reads memory in order
        # (twice as fast as one big product scattered from its (k, k, C)-interleaved columns).
        Wt = np.ascontiguousarray(self.params["W"].transpose(2, 3, 0, 1))   # (k, k, O, C), BLAS-ready
        dxp = np.empty((N, H + 2 * p, W + 2 * p, C), g.dtype)           # channels-last, padded

        def images(sl):
            d = dxp[sl]
            d[...] = 0
            gi = g[sl.start * P:sl.stop * P]
            part = np.empty((len(gi), C), g.dtype)
            for i in range(k):
                for j in range(k):
                    np.matmul(gi, Wt[i, j], out=part)
                    d[:, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s] += part.reshape(-1, Ho, Wo, C)
        parallel.run(images, parallel.parts(N))
        return dxp[:, p:p + H, p:p + W].transpose(0, 3, 1, 2)          # (N, C, H, W) view

    def output_shape(self, input_shape):
        C, H, W = _check_chw("Conv2D", input_shape)
        if C != self.in_channels:
            raise DigitnetError(f"Conv2D expects {self.in_channels} input channels, got {C}")
        Ho, Wo = (_out_size(n, self.kernel_size, self.stride, self.padding) for n in (H, W))
        if Ho < 1 or Wo < 1:
            raise DigitnetError(f"Conv2D kernel {self.kernel_size} does not fit a {H}x{W} input "
                                f"(padding {self.padding})")
        return (self.out_channels, Ho, Wo)

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}


class _Pool2D(Layer):
    """Shared window bookkeeping for max and average pooling (no padding, floor mode)."""

    def __init__(self, size: int = 2, stride: int | None = None) -> None:
        super().__init__()
        if int(size) != size or size < 1 or (stride is not None and (int(stride) != stride or stride < 1)):
            raise DigitnetError(f"{type(self).__name__} size and stride must be integers >= 1, "
                                f"got size={size!r}, stride={stride!r}")
        self.size, self.stride = int(size), None if stride is None else int(stride)

    @property
    def _s(self) -> int:
        return self.size if self.stride is None else self.stride

    def _windows(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, C, Ho, Wo, k k), a contiguous copy."""
        k, s = self.size, self._s
        win = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # (N, C, Ho, Wo, k, k) view
        return win.reshape(win.shape[:4] + (k * k,))

    def _scatter(self, weights: np.ndarray) -> np.ndarray:
        """Sum per-offset contributions ``weights`` (N, C, Ho, Wo, k k) into an input-shaped array."""
        k, s = self.size, self._s
        Ho, Wo = weights.shape[2:4]
        dx = np.zeros(self._in_shape, weights.dtype)
        for i in range(k):
            for j in range(k):
                dx[:, :, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s] += weights[..., i * k + j]
        return dx

    def output_shape(self, input_shape):
        C, H, W = _check_chw(type(self).__name__, input_shape)
        if H < self.size or W < self.size:
            raise DigitnetError(f"{type(self).__name__} window {self.size} is larger than the {H}x{W} input")
        return (C, (H - self.size) // self._s + 1, (W - self.size) // self._s + 1)

    def config(self):
        return {"size": self.size, "stride": self.stride}


@register
class MaxPool2D(_Pool2D):
    """Maximum over each k x k window; the gradient goes to the (first) maximal input.

    Computed as a running maximum over the k * k strided views of the input
    (one per window offset), which keeps the input's memory layout and
    avoids copying every window.
    """

    def _offsets(self, Ho: int, Wo: int):
        k, s = self.size, self._s
        for i in range(k):
            for j in range(k):
                yield i * k + j, (slice(None), slice(None), slice(i, i + s * (Ho - 1) + 1, s),
                                  slice(j, j + s * (Wo - 1) + 1, s))

    def forward(self, x, training=False):
        self._in = x                                           # for dx's shape and memory layout
        self._winner = self._bits = None
        if self.size == 2 and self._s == 2:
            return self._forward_2x2(x, training)
        _, Ho, Wo = self.output_shape(x.shape[1:])
        out = winner = None                                    # winner: offset of each window's maximum
        for o, sl in self._offsets(Ho, Wo):
            v = x[sl]                                          # (N, C, Ho, Wo) strided view
            if out is None:
                out = v.copy(order="K")                        # keep the input's memory layout
                if training:
                    winner = np.zeros_like(out, dtype=np.uint8 if self.size ** 2 <= 256 else np.int32)
            else:
                if training:                                   # strictly greater: the first maximum wins
                    np.copyto(winner, o, where=v > out)
                np.maximum(out, v, out=out)
        self._winner = winner
        return out

    def _forward_2x2(self, x, training):
        """The common 2 x 2, stride 2 case in two pairwise steps, each over the channels-last view.

        First the maximum of each horizontal pair, then of each vertical pair of
        those. The channel axis stays innermost, so for a conv layer's
        channels-last output the second step runs over whole contiguous rows;
        the strided per-offset loop of the general case makes 12 passes with
        24-element inner loops. Ties: a pair's second element wins only if
        strictly greater, so the gradient goes to the first maximum in
        row-major window order, exactly as in the general case (and PyTorch).
        """
        N, C, H, W = x.shape
        Ho, Wo = H // 2, W // 2
        xh = x.transpose(0, 2, 3, 1)[:, :2 * Ho, :2 * Wo]            # (N, H', W', C) view; odd edges dropped
        out = np.empty((N, Ho, Wo, C), x.dtype)
        if training:                                                 # which of each pair won
            right_won, bottom_won = np.empty((N, 2 * Ho, Wo, C), bool), np.empty((N, Ho, Wo, C), bool)
            self._bits = (right_won, bottom_won)

        def images(sl):
            left, right = xh[sl, :, 0::2], xh[sl, :, 1::2]           # (n, H', Wo, C) each
            rows = np.maximum(left, right)                           # each horizontal pair's maximum
            top, bottom = rows[:, 0::2], rows[:, 1::2]               # (n, Ho, Wo, C) each
            np.maximum(top, bottom, out=out[sl])
            if training:
                np.greater(right, left, out=right_won[sl])
                np.greater(bottom, top, out=bottom_won[sl])
        parallel.run(images, parallel.parts(N))
        return out.transpose(0, 3, 1, 2)                             # (N, C, Ho, Wo) view, channels-last

    def _backward_2x2(self, grad):
        right_won, bottom_won = self._bits
        N, C, H, W = self._in.shape
        Ho, Wo = grad.shape[2:]
        g = grad.transpose(0, 2, 3, 1)                               # (N, Ho, Wo, C)
        dx = np.empty((N, H, W, C), grad.dtype)                      # channels-last, like the forward input

        def images(sl):
            gs, d = g[sl], dx[sl]
            g_rows = np.empty((len(gs), 2 * Ho, Wo, C), grad.dtype)  # gradient of each pair maximum
            np.multiply(gs, bottom_won[sl], out=g_rows[:, 1::2])
            np.subtract(gs, g_rows[:, 1::2], out=g_rows[:, 0::2])    # g - g * won: exactly g or 0
            np.multiply(g_rows, right_won[sl], out=d[:, :2 * Ho, 1:2 * Wo:2])
            np.subtract(g_rows, d[:, :2 * Ho, 1:2 * Wo:2], out=d[:, :2 * Ho, 0:2 * Wo:2])
            if H % 2:
                d[:, -1] = 0                                         # the dropped odd row and column
            if W % 2:
                d[:, :, -1] = 0
        parallel.run(images, parallel.parts(N))
        return dx.transpose(0, 3, 1, 2)                              # (N, C, H, W) view

    def backward(self, grad, input_grad=True):
        if getattr(self, "_bits", None) is not None:
            return self._backward_2x2(grad)
        # The gradient goes to the first offset holding the maximum (as argmax would pick),
        # found in the forward pass: comparing one byte per window beats comparing the inputs again.
        winner = getattr(self, "_winner", None)
        if winner is None:
            raise RuntimeError("MaxPool2D.backward needs a forward pass with training=True")
        dx = np.zeros_like(self._in, dtype=grad.dtype)
        Ho, Wo = grad.shape[2:]
        overlap = self._s < self.size
        for o, sl in self._offsets(Ho, Wo):
            if overlap:
                dx[sl] += grad * (winner == o)
            else:
                np.multiply(grad, winner == o, out=dx[sl])
        return dx


@register
class AvgPool2D(_Pool2D):
    """Mean over each k x k window."""

    def forward(self, x, training=False):
        self._in_shape = x.shape
        return self._windows(x).mean(axis=-1)                 # (N, C, Ho, Wo)

    def backward(self, grad, input_grad=True):
        kk = self.size * self.size
        share = np.broadcast_to((grad / kk)[..., None], grad.shape + (kk,))
        return self._scatter(share)


@register
class GlobalAvgPool2D(Layer):
    """(N, C, H, W) -> (N, C): the mean of each channel."""

    def forward(self, x, training=False):
        self._in_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, grad, input_grad=True):
        N, C, H, W = self._in_shape
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
