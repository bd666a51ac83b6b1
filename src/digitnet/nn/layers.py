"""Layers: each one's forward and backward pass side by side.

Every layer follows the same small protocol:

* ``forward(x, training=False)`` returns the output and remembers what the
  backward pass needs;
* ``backward(grad, input_grad=True)`` takes dLoss/dOutput, fills
  ``self.grads`` (same keys as ``self.params``) and returns dLoss/dInput
  (or ``None`` when ``input_grad`` is false: the first layer's input
  gradient is never used, and skipping it saves a large GEMM);
* ``output_shape(input_shape)`` maps a per-sample shape to the next one;
* ``config()`` returns the JSON-able arguments that rebuild the layer.

``backward`` may overwrite ``grad`` in place: callers pass arrays they own.
Parameters and gradients keep the dtype of the layer (float32 by default;
float64 works everywhere, which the gradient checks use).

Work arrays. In training mode (``forward(x, training=True)`` and the
``backward`` that follows) Dense and ReLU write their outputs and input
gradients into arrays they keep and reuse from batch to batch (see
:func:`scratch`), so a training step allocates almost nothing. Such an
array stays valid until the layer's next training step; callers that keep
one longer must copy it. Inference (``training=False``) always returns fresh
arrays, so ``predict`` results and anything a user keeps are never
overwritten later.
"""

from __future__ import annotations

import numpy as np

from ..errors import DigitnetError
from . import parallel
from .init import glorot_uniform, he_normal

# A layer splits its batch over digitnet's threads only in blocks of at least this much work: handing a
# block to another thread costs ~50 us on the 2-core development machine (a thread pool round trip), which
# only blocks of comparable work repay.
PARALLEL_MIN_ELEMENTS = 1 << 16      # elementwise work (ReLU, BatchNorm): ~1 ns per element
PARALLEL_MIN_MACS = 1 << 23          # matrix products (Dense): measured, 784-64-10 gains from two blocks only
                                     # at batch 512; at 128 the halves' cache traffic costs more than it saves


def scratch(store: dict, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A reusable work array of ``shape`` and ``dtype`` kept in ``store[name]``.

    The array is allocated on first use and again only when a larger batch
    (or another shape or dtype) arrives; a smaller batch, such as the last
    one of an epoch, gets a view of the leading rows of the cached array.
    Its contents are whatever the previous step left: callers overwrite it.
    """
    buf = store.get(name)
    if buf is None or buf.dtype != dtype or buf.shape[1:] != shape[1:] or len(buf) < shape[0]:
        buf = store[name] = np.empty(shape, dtype)
    return buf if len(buf) == shape[0] else buf[:shape[0]]


def row_blocks(n: int, row_elements: int = 0, row_macs: int = 0) -> list[slice] | None:
    """Blocks of a batch's ``n`` rows for digitnet's threads (``nn.parallel``), or None to work in one piece.

    Each block gets enough rows of ``row_elements`` elementwise work or ``row_macs`` multiply-adds to repay
    the hand-over (``PARALLEL_MIN_ELEMENTS``, ``PARALLEL_MIN_MACS``).
    """
    if parallel.threads() == 1:
        return None
    min_rows = (PARALLEL_MIN_MACS // row_macs if row_macs else PARALLEL_MIN_ELEMENTS // max(row_elements, 1)) + 1
    return parallel.parts(n, min_size=min_rows) if n >= 2 * min_rows else None


class Layer:
    """Base class: a layer without parameters that passes shapes through."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        # State saved with the model but not trained (e.g. BatchNorm running means).
        self.buffers: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def config(self) -> dict:
        return {}

    def astype(self, dtype) -> "Layer":
        """Cast parameters and gradients to ``dtype`` in place; returns self."""
        for store in (self.params, self.grads):
            for k, v in store.items():
                store[k] = v.astype(dtype)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """Fully connected layer: ``y = x @ W + b``.

    W has shape (in_features, out_features) so a batch of row vectors is
    multiplied on the left, which is the layout BLAS likes for (B, in) input.

    Backward, for ``g = dL/dy`` of shape (B, out):
    ``dW = x.T @ g``, ``db = sum_rows(g)``, ``dx = g @ W.T``.
    """

    def __init__(self, in_features: int, out_features: int, *, init: str = "he",
                 rng: np.random.Generator | None = None, dtype=np.float32) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise DigitnetError(f"Dense needs positive sizes, got {in_features}->{out_features}")
        rng = rng if rng is not None else np.random.default_rng(0)
        shape = (in_features, out_features)
        if init == "he":
            W = he_normal(rng, in_features, shape, dtype)
        elif init == "glorot":
            W = glorot_uniform(rng, in_features, out_features, shape, dtype)
        else:
            raise DigitnetError(f"unknown init {init!r}; expected 'he' or 'glorot'")
        self.in_features, self.out_features, self.init = in_features, out_features, init
        self.params = {"W": W, "b": np.zeros(out_features, dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._x: np.ndarray | None = None
        self._work: dict[str, np.ndarray] = {}          # training-mode output / dx arrays

    def forward(self, x, training=False):
        self._x = x                                     # (B, in), kept for dW
        W, b = self.params["W"], self.params["b"]
        parts = row_blocks(len(x), row_macs=self.in_features * self.out_features)
        if parts is None:
            if training:                                # write into the reused output array
                out = np.matmul(x, W, out=scratch(self._work, "out", (len(x), self.out_features), W.dtype))
            else:
                out = x @ W                             # (B, in) -> (B, out)
            out += b
            return out
        out = (scratch(self._work, "out", (len(x), self.out_features), W.dtype) if training
               else np.empty((len(x), self.out_features), np.result_type(x, W)))

        def rows(sl):
            np.matmul(x[sl], W, out=out[sl])
            out[sl] += b
        parallel.run(rows, parts)
        return out

    def backward(self, grad, input_grad=True):
        x, W = self._x, self.params["W"]
        parts = row_blocks(len(x), row_macs=self.in_features * self.out_features)
        dx = scratch(self._work, "dx", x.shape, grad.dtype) if input_grad else None
        if parts is None:
            np.matmul(x.T, grad, out=self.grads["W"])   # (in, B) @ (B, out)
            np.sum(grad, axis=0, out=self.grads["b"])
            return None if dx is None else np.matmul(grad, W.T, out=dx)  # (B, out) -> (B, in)

        def rows(sl):                                   # this block's share of dW, db, and its rows of dx
            if dx is not None:
                np.matmul(grad[sl], W.T, out=dx[sl])
            return x[sl].T @ grad[sl], grad[sl].sum(axis=0)
        shares = parallel.run(rows, parts)
        np.add.reduce([w for w, _ in shares], out=self.grads["W"])
        np.add.reduce([b for _, b in shares], out=self.grads["b"])
        return dx

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.in_features,):
            raise DigitnetError(f"Dense expects input of shape ({self.in_features},), got {tuple(input_shape)}")
        return (self.out_features,)

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "init": self.init}


class ReLU(Layer):
    """``max(x, 0)``; the gradient passes where the input was positive.

    Never works in place on its input: the layer before may still need it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._x = self._mask = None
        self._work: dict[str, np.ndarray] = {}

    def forward(self, x, training=False):
        self._x = x
        if not training:                  # inference: no mask to keep, a fresh output
            self._mask = None
            return np.maximum(x, 0)
        out = scratch(self._work, "out", x.shape, x.dtype)
        mask = self._mask = scratch(self._work, "mask", x.shape, np.bool_)
        blocks = row_blocks(len(x), row_elements=x[0].size)
        if blocks is None:                # one piece, without the per-call cost of splitting
            np.maximum(x, 0, out=out)
            np.greater(x, 0, out=mask)
            return out

        def rows(sl):
            np.maximum(x[sl], 0, out=out[sl])
            np.greater(x[sl], 0, out=mask[sl])
        parallel.run(rows, blocks)
        return out

    def backward(self, grad, input_grad=True):
        mask = self._mask if self._mask is not None else self._x > 0
        blocks = row_blocks(len(grad), row_elements=grad[0].size)
        if blocks is None:
            return np.multiply(grad, mask, out=grad)
        parallel.run(lambda sl: np.multiply(grad[sl], mask[sl], out=grad[sl]), blocks)
        return grad


# Name -> class, used to rebuild a model from the architecture in its metadata.
# Other modules register their layers here too.
LAYERS: dict[str, type[Layer]] = {"Dense": Dense, "ReLU": ReLU}


def register(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make a layer rebuildable from saved metadata."""
    LAYERS[cls.__name__] = cls
    return cls


def layer_from_config(name: str, config: dict, dtype=np.float32) -> Layer:
    """Rebuild one layer from its saved ``config()`` (parameters are zero/initial)."""
    cls = LAYERS.get(name)
    if cls is None:
        raise DigitnetError(f"unknown layer type {name!r} in model architecture")
    try:
        layer = cls(**config)
    except TypeError as exc:
        raise DigitnetError(f"bad configuration for layer {name}: {exc}") from None
    return layer.astype(dtype)
