"""Export a model to ONNX so it runs anywhere (onnxruntime, browsers, phones).

The graph takes ``input``: float32 pixels already scaled to [0, 1], shape
``(N, *model.input_shape)`` — ``(N, 784)`` for an MLP, ``(N, 1, 28, 28)`` for
a convnet — and returns ``probabilities`` (N, 10) (a Softmax after the
model's logits). Weights are stored as float32.

Each digitnet layer type maps to standard ONNX operators (opset 17):

=================  =================================================
digitnet           ONNX
=================  =================================================
Dense              Gemm (W is (in, out), so no transpose)
ReLU               Relu
LeakyReLU          LeakyRelu(alpha=negative_slope)
Tanh / Sigmoid     Tanh / Sigmoid
GELU (tanh form)   0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) as Mul/Add/Tanh
Conv2D             Conv (W (out, in, k, k), strides, symmetric pads)
MaxPool2D          MaxPool (kernel size, stride)
AvgPool2D          AveragePool (kernel size, stride)
GlobalAvgPool2D    GlobalAveragePool then Flatten: (N, C, H, W) -> (N, C)
Flatten            Flatten(axis=1): C, H, W order like torch.flatten
Dropout            nothing (identity at inference)
BatchNorm1D / 2D   BatchNormalization with the running statistics
=================  =================================================

``onnx`` is needed to export (``pip install "digitnet[onnx]"``);
``onnxruntime`` only to run or check the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import DigitnetError

if TYPE_CHECKING:  # onnx is an optional extra, imported only when a model is exported
    from onnx import NodeProto, TensorProto

OPSET = 17


class _Graph:
    """Collects nodes and weight initializers while layers are converted."""

    def __init__(self, helper, numpy_helper) -> None:
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, hint: str, value) -> str:
        name = self.name(hint)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


# layer type name -> function(graph, layer, input name, index) -> output name
EXPORTERS: dict[str, Callable] = {}


def exporter(*names: str):
    def wrap(fn):
        for n in names:
            EXPORTERS[n] = fn
        return fn

    return wrap


@exporter("Dense")
def _dense(g, layer, x, i):
    return g.op(
        "Gemm", [x, g.const(f"l{i}_W", layer.params["W"]), g.const(f"l{i}_b", layer.params["b"])], f"l{i}_dense"
    )


@exporter("ReLU")
def _relu(g, layer, x, i):
    return g.op("Relu", [x], f"l{i}_relu")


@exporter("LeakyReLU")
def _leaky(g, layer, x, i):
    return g.op("LeakyRelu", [x], f"l{i}_leakyrelu", alpha=float(layer.config()["negative_slope"]))


@exporter("Tanh", "Sigmoid")
def _pointwise(g, layer, x, i):
    op = type(layer).__name__
    return g.op(op, [x], f"l{i}_{op.lower()}")


@exporter("GELU")
def _gelu(g, layer, x, i):
    # 0.5 x (1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2 / pi)
    x3 = g.op("Mul", [g.op("Mul", [x, x]), x])
    inner = g.op("Add", [x, g.op("Mul", [x3, g.const("k", 0.044715)])])
    t = g.op("Tanh", [g.op("Mul", [inner, g.const("c", math.sqrt(2 / math.pi))])])
    half_x = g.op("Mul", [x, g.const("half", 0.5)])
    return g.op("Mul", [half_x, g.op("Add", [t, g.const("one", 1.0)])], f"l{i}_gelu")


@exporter("Conv2D")
def _conv(g, layer, x, i):
    c = layer.config()
    k, s, p = int(c["kernel_size"]), int(c.get("stride", 1)), int(c.get("padding", 0))
    return g.op(
        "Conv",
        [x, g.const(f"l{i}_W", layer.params["W"]), g.const(f"l{i}_b", layer.params["b"])],
        f"l{i}_conv",
        kernel_shape=[k, k],
        strides=[s, s],
        pads=[p, p, p, p],
    )


@exporter("MaxPool2D", "AvgPool2D")
def _pool(g, layer, x, i):
    c = layer.config()
    size = int(c.get("size", 2))
    stride = int(c["stride"]) if c.get("stride") is not None else size
    op = "MaxPool" if type(layer).__name__ == "MaxPool2D" else "AveragePool"
    return g.op(op, [x], f"l{i}_{op.lower()}", kernel_shape=[size, size], strides=[stride, stride])


@exporter("GlobalAvgPool2D")
def _gap(g, layer, x, i):
    return g.op("Flatten", [g.op("GlobalAveragePool", [x])], f"l{i}_gap", axis=1)


@exporter("Flatten")
def _flatten(g, layer, x, i):
    return g.op("Flatten", [x], f"l{i}_flatten", axis=1)


@exporter("Dropout")
def _dropout(g, layer, x, i):
    return x


@exporter("BatchNorm1D", "BatchNorm2D")
def _batchnorm(g, layer, x, i):
    c = layer.config()
    state = {**layer.params, **layer.buffers}
    inputs = [x] + [g.const(f"l{i}_{k}", state[k]) for k in ("gamma", "beta", "running_mean", "running_var")]
    return g.op("BatchNormalization", inputs, f"l{i}_bn", epsilon=float(c.get("eps", 1e-5)))


def to_onnx(model, name: str = "digitnet"):
    """Build an ``onnx.ModelProto`` computing ``softmax(model(input))``.

    Raises
    ------
    DigitnetError
        When a layer type has no ONNX mapping or the ``onnx`` package is missing.
    """
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise DigitnetError('ONNX export needs the onnx package: pip install "digitnet[onnx]"') from None
    g = _Graph(helper, numpy_helper)
    x = "input"
    for i, layer in enumerate(model.layers):
        kind = type(layer).__name__
        if kind not in EXPORTERS:
            raise DigitnetError(f"layer {i} ({kind}) has no ONNX export; exportable: {', '.join(sorted(EXPORTERS))}")
        x = EXPORTERS[kind](g, layer, x, i)
    g.nodes.append(helper.make_node("Softmax", [x], ["probabilities"], name="softmax", axis=1))
    graph = helper.make_graph(
        g.nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *model.input_shape])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", *model.output_shape])],
        g.initializers,
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="digitnet",
        doc_string="input: pixels / 255 in [0, 1]",
    )
    proto.ir_version = min(proto.ir_version, 8)  # readable by older runtimes too
    onnx.checker.check_model(proto)
    return proto


def export(model, path) -> Path:
    """Write ``model`` as an ONNX file; returns the path."""
    from .fsutil import atomic_write

    path = Path(path)
    if path.is_dir():
        raise DigitnetError(f"{path}: is a directory; give a file name like model.onnx")
    return atomic_write(path, to_onnx(model).SerializeToString(), "--onnx")


def run_onnx(path_or_bytes, images: np.ndarray, input_shape) -> np.ndarray:
    """Probabilities from an exported model with onnxruntime (uint8 images are scaled by 1/255)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DigitnetError('running ONNX models needs onnxruntime: pip install "digitnet[onnx]"') from None
    src = str(path_or_bytes) if isinstance(path_or_bytes, (str, Path)) else path_or_bytes
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    x = np.asarray(images)
    x = (x.astype(np.float32) / 255.0) if x.dtype == np.uint8 else x.astype(np.float32)
    x = x.reshape((len(x), *input_shape))
    return sess.run(["probabilities"], {"input": x})[0]
