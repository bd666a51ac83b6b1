"""Architectures by name or by spec: ``digitnet.nn.build("cnn")``.

Spec strings
------------
Layers are written left to right, separated by ``-``; sizes of inputs are
inferred, so only what a layer *adds* is written:

==================  ==========================================================
token               layer
==================  ==========================================================
``fc256``           Dense with 256 outputs (``dense256`` also works)
``conv32k5``        Conv2D, 32 filters of 5x5; optional ``s2`` stride, ``p2``
                    zero padding: ``conv64k3s2p1``
``pool``/``pool2``  MaxPool2D 2x2 (``maxpool3s2``: 3x3 windows, stride 2)
``avgpool2``        AvgPool2D;  ``gap``: GlobalAvgPool2D
``flatten``         Flatten (inserted automatically before the first ``fc``
                    after image-shaped layers)
``bn``              BatchNorm1D or BatchNorm2D, whichever the shape needs
``relu`` ``tanh``   activations; also ``sigmoid``, ``gelu``, ``lrelu``
                    (``lrelu0.1`` sets the negative slope)
``drop0.5``         Dropout with p = 0.5 (``dropout0.5`` also works)
==================  ==========================================================

A spec with any convolution or pooling takes (1, 28, 28) images, otherwise
(784,) vectors. ``784-128-64-10``, only numbers, is an MLP with ReLUs between.
A JSON list of layer configs (what ``Sequential.architecture()`` returns,
e.g. ``[{"type": "Conv2D", "out_channels": 8, "kernel_size": 3}, ...]``) is
accepted too; input sizes (``in_features``, ``in_channels``, ``num_features``)
may be left out.

``build`` refuses a network with more parameters, layers or values per
image than :mod:`digitnet.model_check` lets a model file hold, before its
weights are allocated: a run does not train what cannot be loaded again.
"""

from __future__ import annotations

import json
import re
from math import prod

import numpy as np

from .. import model_check
from ..errors import DigitnetError
from . import activations, conv, norm, regularization
from .layers import LAYERS, Dense, Layer
from .model import Sequential

PRESETS: dict[str, str] = {
    "seed": "fc64-relu-fc10",
    "mlp": "fc512-bn-relu-drop0.2-fc512-bn-relu-drop0.2-fc10",
    "cnn": "conv24k5-pool2-bn-relu-conv32k3-pool2-bn-relu-fc256-relu-fc10",
    # the PyTorch reference net that reached 99.56 % in 5 epochs (BASELINES.md), pooling before batch norm
    "cnn-large": "conv32k5p2-pool2-bn-relu-conv64k5p2-pool2-bn-relu-fc256-relu-drop0.3-fc10",
}

IMAGE_SHAPE = (1, 28, 28)
N_CLASSES = 10

_ACT = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "gelu": "GELU"}
_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_PATTERNS = [
    ("dense", re.compile(r"(?:fc|dense)(\d+)")),
    ("conv", re.compile(r"conv(\d+)k(\d+)(?:s(\d+))?(?:p(\d+))?")),
    ("maxpool", re.compile(r"(?:max)?pool(\d+)?(?:s(\d+))?")),
    ("avgpool", re.compile(r"avgpool(\d+)?(?:s(\d+))?")),
    ("gap", re.compile(r"gap")),
    ("flatten", re.compile(r"flatten")),
    ("bn", re.compile(r"bn|batchnorm")),
    ("act", re.compile(r"relu|tanh|sigmoid|gelu")),
    ("lrelu", re.compile(rf"lrelu{_NUM}?")),
    ("drop", re.compile(rf"drop(?:out)?{_NUM}")),
]


def parse_spec(spec: str, n_inputs: int = 784, n_classes: int = N_CLASSES) -> list[tuple[str, tuple]]:
    """Split a spec string into ``(kind, groups)`` tokens; errors name the bad token."""
    tokens = [t.strip().lower() for t in spec.strip().split("-")]
    if not spec.strip() or any(not t for t in tokens):
        raise DigitnetError(f"architecture spec {spec!r} has an empty token; layers are separated by single '-'")
    if all(t.isdigit() for t in tokens):  # 784-128-10: the classic MLP notation
        sizes = [int(t) for t in tokens]
        if len(sizes) < 2 or sizes[0] != n_inputs or sizes[-1] != n_classes:
            raise DigitnetError(f"MLP spec {spec!r} must start with {n_inputs} and end with {n_classes}")
        out: list[tuple[str, tuple]] = []
        for n in sizes[1:-1]:
            out += [("dense", (str(n),)), ("act", ("relu",))]
        return out + [("dense", (str(sizes[-1]),))]
    parsed = []
    for t in tokens:
        for kind, pat in _PATTERNS:
            m = pat.fullmatch(t)
            if m:
                parsed.append((kind, m.groups() if kind != "act" else (t,)))
                break
        else:
            raise DigitnetError(
                f"unknown layer {t!r} in architecture spec {spec!r}; expected tokens like "
                "fc256, conv32k5p2, pool2, avgpool2, gap, flatten, bn, relu, gelu, tanh, "
                "sigmoid, lrelu0.1, drop0.5"
            )
    return parsed


def _int(v, default=None):
    return default if v is None else int(v)


def _layers_from_tokens(spec: str, tokens, rng, dtype, input_shape=None) -> tuple[list[Layer], tuple]:
    image = any(k in ("conv", "maxpool", "avgpool", "gap") for k, _ in tokens)
    shape: tuple = input_shape or (IMAGE_SHAPE if image else (784,))
    first = shape
    layers: list[Layer] = []
    budget = _Budget(len(tokens))
    for (kind, g), text in zip(tokens, _token_texts(spec, tokens)):
        try:
            if kind == "dense" and len(shape) != 1:
                layers.append(conv.Flatten())
                shape = layers[-1].output_shape(shape)
            layer: Layer
            if kind == "dense" or (kind == "conv" and len(shape) == 3):  # weights and bias, before allocating
                budget.add(shape[0], int(g[0]), int(g[1]) if kind == "conv" else 1)
            if kind == "dense":
                layer = Dense(shape[0], int(g[0]), rng=rng, dtype=dtype)
            elif kind == "conv":
                if len(shape) != 3:
                    raise DigitnetError(f"needs image-shaped input, got {shape}")
                layer = conv.Conv2D(shape[0], int(g[0]), int(g[1]), _int(g[2], 1), _int(g[3], 0), rng=rng, dtype=dtype)
            elif kind in ("maxpool", "avgpool"):
                cls = conv.MaxPool2D if kind == "maxpool" else conv.AvgPool2D
                layer = cls(_int(g[0], 2), _int(g[1]))
            elif kind == "gap":
                layer = conv.GlobalAvgPool2D()
            elif kind == "flatten":
                layer = conv.Flatten()
            elif kind == "bn":
                layer = norm.BatchNorm2D(shape[0]) if len(shape) == 3 else norm.BatchNorm1D(shape[0])
            elif kind == "act":
                layer = LAYERS[_ACT[g[0]]]()
            elif kind == "lrelu":
                layer = activations.LeakyReLU(float(g[0]) if g[0] else 0.01)
            else:  # drop
                layer = regularization.Dropout(float(g[0]))
            shape = layer.output_shape(shape)
            budget.outputs(shape)
        except DigitnetError as exc:
            raise DigitnetError(f"layer {text!r} in architecture spec {spec!r}: {exc}") from None
        layers.append(layer)
    return layers, first


class _Budget:
    """The limits a model file must keep to (:mod:`digitnet.model_check`), applied while a network is built."""

    def __init__(self, n_layers: int) -> None:
        if n_layers > model_check.MAX_LAYERS:
            raise DigitnetError(f"{n_layers} layers; a model file holds at most {model_check.MAX_LAYERS}")
        self.n_params = 0

    def add(self, n_in: int, n_out: int, kernel: int = 1) -> None:
        """A Dense (``kernel`` 1) or Conv2D layer's weights and biases: ``n_out`` x (``n_in`` x kernel² + 1)."""
        self.n_params += n_out * (n_in * kernel * kernel + 1)
        if self.n_params > model_check.MAX_PARAMS:
            raise DigitnetError(
                f"the network would have more than {model_check.MAX_PARAMS:,} parameters "
                f"({self.n_params:,} up to this layer), more than a model file may hold"
            )

    def outputs(self, shape: tuple) -> None:
        if prod(shape) > model_check.MAX_ACTIVATION:
            raise DigitnetError(
                f"outputs {prod(shape):,} values per image; a model file allows at most {model_check.MAX_ACTIVATION:,}"
            )


def _sizes(layer: str, settings: dict) -> tuple[int, ...] | None:
    """A Dense or Conv2D entry's (inputs, outputs[, kernel]) for :meth:`_Budget.add`; None for other layers and
    for settings that are not positive integers (the layer refuses those itself)."""
    keys = {"Dense": ("in_features", "out_features"), "Conv2D": ("in_channels", "out_channels", "kernel_size")}
    sizes = tuple(v for v in map(settings.get, keys.get(layer, ())) if type(v) is int and v > 0)
    return sizes if layer in keys and len(sizes) == len(keys[layer]) else None


def _token_texts(spec: str, tokens) -> list[str]:
    texts = [t.strip() for t in spec.split("-")]
    return texts if len(texts) == len(tokens) else [f"{k}{''.join(x for x in g if x)}" for k, g in tokens]


_INPUT_KEYS = {
    "Dense": "in_features",
    "Conv2D": "in_channels",
    "BatchNorm1D": "num_features",
    "BatchNorm2D": "num_features",
}


def _layers_from_json(entries, rng, dtype, input_shape=None) -> tuple[list[Layer], tuple]:
    if (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(e, dict) and isinstance(e.get("type"), str) for e in entries)
    ):
        raise DigitnetError('a JSON architecture must be a non-empty list of {"type": ..., ...} objects')
    image = any(
        e["type"] in ("Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "BatchNorm2D", "Flatten") for e in entries
    )
    shape: tuple = input_shape or (IMAGE_SHAPE if image else (784,))
    first = shape
    layers: list[Layer] = []
    budget = _Budget(len(entries))
    for i, e in enumerate(entries):
        name, kw = e["type"], {k: v for k, v in e.items() if k != "type"}
        cls = LAYERS.get(name)
        if cls is None:
            raise DigitnetError(
                f"JSON architecture entry {i}: unknown layer type {name!r}; known: {', '.join(sorted(LAYERS))}"
            )
        if name in _INPUT_KEYS and _INPUT_KEYS[name] not in kw:
            kw[_INPUT_KEYS[name]] = shape[0]
        if name in ("Dense", "Conv2D"):
            kw.update(rng=rng, dtype=dtype)
        try:
            sizes = _sizes(name, kw)
            if sizes is not None:  # weights and bias, counted before they are allocated
                budget.add(*sizes)
            layer = cls(**kw)
            shape = layer.output_shape(shape)
            budget.outputs(shape)
        except TypeError as exc:
            raise DigitnetError(f"JSON architecture entry {i} ({name}): {exc}") from None
        except DigitnetError as exc:
            raise DigitnetError(f"JSON architecture entry {i} ({name}): {exc}") from None
        layers.append(layer)
    return layers, first


def build(
    arch: str | list, seed: int = 0, dtype=np.float32, classes=None, n_classes: int | None = None, input_shape=None
) -> Sequential:
    """A fresh model from a preset name, a spec string, or a JSON list of layer configs.

    Parameters
    ----------
    arch : str or list
        ``"seed"``, ``"mlp"``, ``"cnn"``, ``"cnn-large"`` (see ``PRESETS``), a spec
        such as ``"conv32k5p2-bn-relu-pool2-fc128-relu-fc10"``, a JSON string, or
        the list itself.
    seed : int
        Weights are drawn from ``np.random.default_rng(seed)``, layer by layer.
    dtype : float32 or float64
    classes : list of str, optional
        Output names; their number sets ``n_classes``.
    n_classes : int, optional
        Number of outputs (default: ``len(classes)``, else 10). A preset's
        last layer is sized to it; a spec must end with that many outputs.
    input_shape : tuple, optional
        Per-sample input shape; default (1, 28, 28) for specs with
        convolutions or pooling, else (784,).

    Returns
    -------
    Sequential
        Its ``meta["arch"]`` records ``arch`` as given.
    """
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if n_classes is None:
        n_classes = N_CLASSES if classes is None else len(classes)
    if input_shape is not None:
        input_shape = tuple(int(d) for d in input_shape)
    if isinstance(arch, str) and arch.strip().startswith("["):
        try:
            arch = json.loads(arch)
        except ValueError as exc:
            raise DigitnetError(f"architecture looks like JSON but does not parse: {exc}") from None
    if isinstance(arch, list):
        layers, input_shape = _layers_from_json(arch, rng, dtype, input_shape)
        name = json.dumps(arch)
    elif isinstance(arch, str):
        name = arch.strip()
        spec = PRESETS.get(name.lower(), name)
        if name.lower() in PRESETS:  # a preset's output layer: one unit per class
            spec = spec.rsplit("-", 1)[0] + f"-fc{n_classes}"
        n_inputs = int(np.prod(input_shape)) if input_shape else 784
        layers, input_shape = _layers_from_tokens(spec, parse_spec(spec, n_inputs, n_classes), rng, dtype, input_shape)
    else:
        raise DigitnetError(f"architecture must be a preset name, spec string or list, got {type(arch).__name__}")
    model = Sequential(layers, input_shape=input_shape, dtype=dtype)
    if model.output_shape != (n_classes,):
        raise DigitnetError(
            f"architecture {name!r} ends with output shape {model.output_shape}; "
            f"it must end with {n_classes} outputs (e.g. ...-fc{n_classes})"
        )
    model.classes = classes
    model.meta["arch"] = name
    return model


def mlp_spec(hidden, n_classes: int = N_CLASSES) -> str:
    """The spec of an MLP with ReLU hidden layers: ``(128, 64)`` -> ``fc128-relu-fc64-relu-fc10``."""
    return "-".join([f"fc{h}-relu" for h in hidden] + [f"fc{n_classes}"])


__all__ = ["PRESETS", "build", "parse_spec", "mlp_spec"]
