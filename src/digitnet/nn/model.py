"""Sequential model: a list of layers and a loss."""

from __future__ import annotations

import numpy as np

from ..errors import DigitnetError
from . import threads
from ._fast import scratch
from .layers import Dense, Layer, ReLU, layer_from_config
from .losses import SoftmaxCrossEntropy, softmax

_UINT8 = np.dtype(np.uint8)
PIXEL_SCALE = 1.0 / 255.0  # uint8 pixels -> [0, 1]; the only preprocessing the models expect
# predict's chunk: its largest array at most this size. Measured on 10,000 MNIST images, one thread: the
# shipped convnets ran fastest in chunks of 32 images (their second convolution's patches, 3-4 MB), 5-15 %
# slower at 8 or 64 and about twice as slow at 2,048; the MLP the same from 256 to 1,024 images
CHUNK_BYTES = 4 << 20


class Sequential:
    """Layers applied in order, trained with softmax cross-entropy.

    Parameters
    ----------
    layers : list of Layer
    input_shape : tuple
        Per-sample input shape, e.g. ``(784,)`` for an MLP or ``(1, 28, 28)``
        for a convnet. Images given as uint8 are scaled to [0, 1] and reshaped
        to it.
    dtype : float32 (default) or float64
    classes : list of str, optional
        The name of each output, in output order; by default "0", "1", ...
        (the digits, for a 10-output model). Saved in the model file.
    reject_class : int or None
        Index of an output that means "none of the classes" (e.g. not a
        digit), or None when the model has no such output.
    """

    def __init__(
        self,
        layers: list[Layer],
        input_shape=(784,),
        dtype=np.float32,
        loss: SoftmaxCrossEntropy | None = None,
        classes=None,
        reject_class: int | None = None,
    ) -> None:
        self.layers = list(layers)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise DigitnetError(f"dtype must be float32 or float64, got {self.dtype}")
        self.loss = loss or SoftmaxCrossEntropy()
        for layer in self.layers:
            layer.astype(self.dtype)
        self.output_shape, largest = self._check_shapes()
        # One flat array holds every parameter, another every gradient; the layers keep views of them.
        self.flat_params = self._pack("params")
        self.flat_grads = self._pack("grads")
        self._n_inputs = int(np.prod(self.input_shape))
        self._one_image = (1,) + self.input_shape
        self._pixel_scale = np.asarray(PIXEL_SCALE, self.dtype)  # an array: a Python float is converted per call
        self._work: dict[str, np.ndarray] = {}  # the training loop's reused input batch
        # predict's images per chunk: the largest power of two (16 to 1,024) whose largest array is at most
        # CHUNK_BYTES, so that a chunk's work stays in the CPU's caches (a convnet's patch matrix holds ~100 kB
        # per image, an MLP's input 3 kB)
        per_image = largest * self.dtype.itemsize
        self.inference_batch = 1 << min(10, max(4, (CHUNK_BYTES // per_image).bit_length() - 1))
        self.meta: dict = {}  # filled by digitnet.fit() and io.load(): history, config, ...
        self.classes = classes
        self.reject_class = reject_class

    @property
    def n_classes(self) -> int:
        return int(np.prod(self.output_shape))

    @property
    def classes(self) -> list[str]:
        """Output names in output order (``"0"`` ... ``"9"`` for a digit model)."""
        return self._classes

    @classes.setter
    def classes(self, names) -> None:
        names = [str(i) for i in range(self.n_classes)] if names is None else [str(c) for c in names]
        if len(names) != self.n_classes:
            raise DigitnetError(f"{len(names)} class names given for a model with {self.n_classes} outputs")
        if len(set(names)) != len(names):
            raise DigitnetError(f"class names must be distinct, got {names}")
        self._classes = names

    @property
    def reject_class(self) -> int | None:
        """Index of the "none of these" output, or None."""
        return self._reject_class

    @reject_class.setter
    def reject_class(self, index) -> None:
        if index is not None and (
            isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < self.n_classes
        ):
            raise DigitnetError(f"reject_class must be an output index 0-{self.n_classes - 1} or None, got {index!r}")
        self._reject_class = None if index is None else int(index)

    def _check_shapes(self) -> tuple[tuple[int, ...], int]:
        """The output shape, checked layer by layer, and the most values per sample any layer's forward makes."""
        shape, largest = self.input_shape, int(np.prod(self.input_shape))
        for i, layer in enumerate(self.layers):
            try:
                largest = max(largest, layer.forward_size(shape))
                shape = layer.output_shape(shape)
            except DigitnetError as exc:
                raise DigitnetError(f"layer {i} ({type(layer).__name__}): {exc}") from None
        return shape, largest

    def _pack(self, store: str) -> np.ndarray:
        """Copy every layer's ``params`` (or ``grads``) into one flat array; the layers get views of it.

        Nothing changes for the layers, and an optimizer updates the whole
        model with a few operations on the flat array (see :mod:`.optim`).
        """
        arrays = [(layer, k, v) for layer in self.layers for k, v in getattr(layer, store).items()]
        flat = np.empty(sum(v.size for _, _, v in arrays), self.dtype)
        offset = 0
        for layer, k, v in arrays:
            view = flat[offset : offset + v.size].reshape(v.shape)
            view[...] = v
            getattr(layer, store)[k] = view
            offset += v.size
        return flat

    def unflatten(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Views of ``flat``, an array laid out like ``flat_params``, by parameter name (``"0.W"``, ...)."""
        out, offset = {}, 0
        for k, p in self.params.items():
            out[k] = flat[offset : offset + p.size].reshape(p.shape)
            offset += p.size
        return out

    # -- the math -----------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Logits for a prepared batch ``x`` of shape (B, *input_shape)."""
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, grad: np.ndarray) -> None:
        """Backpropagate dLoss/dlogits through every layer, filling their grads."""
        for i in range(len(self.layers) - 1, -1, -1):
            dx = self.layers[i].backward(grad, input_grad=i > 0)  # None for the first layer
            if dx is not None:
                grad = dx

    def train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Forward + loss + backward on one batch; returns (loss, logits argmax)."""
        logits = self.forward(x, training=True)
        pred = logits.argmax(axis=1)
        loss = self.loss.forward(logits, y)
        self.backward(self.loss.backward())
        return loss, pred

    # -- parameters -----------------------------------------------------------------
    @property
    def params(self) -> dict[str, np.ndarray]:
        """All trainable arrays, named ``"<layer index>.<name>"`` (views, not copies)."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()}

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        """Saved, untrained state such as BatchNorm running statistics."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.buffers.items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {**self.params, **self.buffers}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays into the model; names, shapes must match exactly."""
        own = self.state_dict()
        missing, extra = own.keys() - state.keys(), state.keys() - own.keys()
        if missing or extra:
            raise DigitnetError(
                f"tensors do not match the architecture: missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        for k, dst in own.items():
            src = np.asarray(state[k])
            if src.shape != dst.shape:
                raise DigitnetError(f"tensor {k!r} has shape {src.shape}, architecture needs {dst.shape}")
            dst[...] = src

    @property
    def n_params(self) -> int:
        return sum(p.size for p in self.params.values())

    def architecture(self) -> list[dict]:
        """JSON-able description that ``from_architecture`` rebuilds."""
        return [{"type": type(layer).__name__, **layer.config()} for layer in self.layers]

    @classmethod
    def from_architecture(cls, arch: list[dict], input_shape=(784,), dtype=np.float32) -> Sequential:
        if not isinstance(arch, list) or not all(isinstance(d, dict) and "type" in d for d in arch):
            raise DigitnetError("architecture must be a list of {'type': ..., ...} layer entries")
        layers = [layer_from_config(d["type"], {k: v for k, v in d.items() if k != "type"}) for d in arch]
        return cls(layers, input_shape=input_shape, dtype=dtype)

    # -- inference --------------------------------------------------------------------
    def prepare(self, images: np.ndarray, reuse: bool = False) -> np.ndarray:
        """uint8 images (N, 28, 28) / (N, 784), or floats in [0, 1] -> model input batch.

        uint8 pixels are converted and scaled by 1/255 in one preallocated
        array. With ``reuse=True`` (the training loop) that array belongs to
        the model and is overwritten by the next ``prepare(..., reuse=True)``;
        otherwise it is a fresh array.
        """
        x = np.asarray(images)
        if x.dtype is _UINT8 and x.size == self._n_inputs and (x.ndim == 1 or x.shape[0] == 1) and not reuse:
            # one image, as predict() gets it from the CLI and the web app: the steps below, fewer checks
            out = x.reshape(self._one_image).astype(self.dtype)
            out *= self._pixel_scale
            return out
        n = x.shape[0] if x.ndim > 1 else 1
        shape = (n,) + self.input_shape
        if x.size != n * self._n_inputs:
            raise DigitnetError(f"expected images with {self._n_inputs} pixels each, got array of shape {x.shape}")
        if x.dtype != np.uint8:
            return x.astype(self.dtype, copy=False).reshape(shape)
        if reuse:
            out = scratch(self._work, "input", shape, self.dtype)
            np.copyto(out, x.reshape(shape), casting="unsafe")  # uint8 -> float, no temporary
        else:
            out = x.reshape(shape).astype(self.dtype)
        out *= self._pixel_scale
        return out

    def predict_proba(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities, shape (N, n_classes) (a new array).

        Images go through the network ``batch_size`` at a time (default:
        :attr:`inference_batch`); when there are several such chunks, they are
        shared out over one thread per core (see :func:`.threads.map_split`).
        Each chunk is the same whatever the thread count, so is the result.
        """
        return self._infer(images, batch_size, softmax, self.output_shape, self.dtype)

    def predict(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Predicted output indices, shape (N,) (a new array); ``classes`` names them. Chunks as ``predict_proba``."""
        return self._infer(images, batch_size, lambda z: z.argmax(axis=1), (), np.intp)

    def logits(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """The network's raw outputs, shape (N, n_classes) (a new array). Chunks as ``predict_proba``."""
        return self._infer(images, batch_size, lambda z: z, self.output_shape, self.dtype)

    def _infer(self, images, batch_size: int | None, head, shape: tuple, dtype) -> np.ndarray:
        x = np.asarray(images)
        n = len(x) if x.ndim > 1 else 1
        chunk = n if n == 1 else int(batch_size or self.inference_batch)  # one image: nothing to chunk
        if n <= chunk:
            return head(self.forward(self.prepare(x)))
        out = np.empty((n,) + tuple(shape), dtype)

        def one_chunk(c: int) -> None:
            i = c * chunk
            out[i : i + chunk] = head(self.forward(self.prepare(x[i : i + chunk])))

        threads.map_split(one_chunk, -(-n // chunk))
        return out

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(input_shape={self.input_shape}, dtype={self.dtype.name}, [\n  {inner}\n])"


def MLP(
    hidden=(64,), n_inputs: int = 784, n_classes: int = 10, seed: int = 0, dtype=np.float32, classes=None
) -> Sequential:
    """Multi-layer perceptron ``n_inputs -> hidden... -> n_classes`` with ReLU.

    ``MLP((64,))`` is the seed notebook's 784-64-10 network. He-normal weights,
    zero biases, drawn from ``np.random.default_rng(seed)``. ``classes``
    names the outputs (default ``"0"`` ... ``"<n_classes - 1>"``).
    """
    if isinstance(hidden, int):
        hidden = (hidden,)
    sizes = [n_inputs, *hidden, n_classes]
    if any(int(s) < 1 for s in sizes):
        raise DigitnetError(f"layer sizes must be positive integers, got {sizes}")
    rng = np.random.default_rng(seed)
    layers: list[Layer] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Dense(int(a), int(b), rng=rng, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(ReLU())
    return Sequential(layers, input_shape=(n_inputs,), dtype=dtype, classes=classes)
