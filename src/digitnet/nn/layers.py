"""Layers: each one's forward and backward pass side by side, as the math reads.

Every layer follows the same small protocol:

* ``forward(x, training=False)`` returns the output and remembers what the
  backward pass needs;
* ``backward(grad, input_grad=True)`` takes dLoss/dOutput, fills
  ``self.grads`` (same keys as ``self.params``) and returns dLoss/dInput
  (or ``None`` when ``input_grad`` is false: the first layer's input
  gradient is never used, and skipping it saves a large product);
* ``output_shape(input_shape)`` maps a per-sample shape to the next one;
* ``config()`` returns the JSON-able arguments that rebuild the layer.

``backward`` may overwrite ``grad`` in place: callers pass arrays they own.
Parameters and gradients keep the dtype of the layer (float32 by default;
float64 works everywhere, which the gradient checks use).

The code of ``forward`` and ``backward`` is the reference math. A layer whose
work has a much faster arrangement hands it to a kernel in :mod:`._fast`,
chosen by one line (``if self.fast: ...``); ``layer.fast = False`` runs the
reference, which the tests compare the kernels against. In training mode the
kernels of Dense and ReLU write into arrays reused from batch to batch: such
an output stays valid until the layer's next training step. Inference always
returns fresh arrays.
"""

from __future__ import annotations

import numpy as np

from ..errors import DigitnetError
from . import _fast
from .init import glorot_uniform, he_normal

_ZERO = np.zeros((), np.float32)  # ReLU's 0 as an array: a Python 0 is converted anew on every call


class Layer:
    """Base class: a layer without parameters that passes shapes through."""

    # True: use the layer's kernel in ``_fast`` where it has one; False: the reference code only.
    fast: bool = True

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

    def forward_size(self, input_shape: tuple[int, ...]) -> int:
        """Values per sample in the largest array ``forward`` makes (its output, unless it builds a larger one)."""
        return int(np.prod(self.output_shape(input_shape)))

    def config(self) -> dict:
        return {}

    def astype(self, dtype) -> Layer:
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

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        init: str = "he",
        rng: np.random.Generator | None = None,
        dtype=np.float32,
    ) -> None:
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
        self._x = np.empty((0, in_features), dtype)
        self._work: dict[str, np.ndarray] = {}  # the kernel's reused arrays

    def forward(self, x, training=False):
        self._x = x  # (B, in), kept for dW
        W, b = self.params["W"], self.params["b"]
        if self.fast and training:
            return _fast.dense_forward(x, W, b, self._work)
        y = np.dot(x, W)  # (B, in) -> (B, out): x @ W, with less call overhead for one image
        y += b
        return y

    def backward(self, grad, input_grad=True):
        x, W = self._x, self.params["W"]
        if self.fast:
            _fast.dense_backward(x, grad, self.grads["W"], self.grads["b"])
            return _fast.dense_input_grad(grad, W, self._work) if input_grad else None
        np.matmul(x.T, grad, out=self.grads["W"])  # dW = x.T g: (in, B) @ (B, out)
        np.sum(grad, axis=0, out=self.grads["b"])  # db = g summed over the batch
        if not input_grad:
            return None
        return grad @ W.T  # dx = g W.T: (B, out) -> (B, in)

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
        self._x = np.empty(0)
        self._mask: np.ndarray | None = None  # x > 0, when the kernel kept it
        self._work: dict[str, np.ndarray] = {}

    def forward(self, x, training=False):
        self._x = x
        if self.fast and training:
            out, self._mask = _fast.relu_forward(x, self._work)
            return out
        self._mask = None
        return np.maximum(x, _ZERO)

    def backward(self, grad, input_grad=True):
        if self.fast and self._mask is not None:
            return _fast.relu_backward(grad, self._mask, self._work)
        return np.multiply(grad, self._x > 0, out=grad)  # dx = g where x > 0, else 0


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
