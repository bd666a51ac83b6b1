"""ONNX export: every layer type has a mapping, and onnxruntime agrees with NumPy to 1e-5."""

import numpy as np
import pytest

import digitnet
from digitnet import DigitnetError
from digitnet.cli import main
from digitnet.nn import LAYERS, MLP, Sequential
from digitnet.nn.layers import Layer

onnx = pytest.importorskip("onnx", reason="onnx not installed (pip install '.[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')")

from digitnet.onnx_export import EXPORTERS, export, run_onnx, to_onnx  # noqa: E402

# Small example networks for each layer type of the shared contract. A case runs when all its layer
# types are registered in digitnet.nn.LAYERS.
CONV = (1, 28, 28)
CASES = {
    "mlp-deep": ((784,), [("Dense", dict(in_features=784, out_features=32)), ("ReLU", {}),
                          ("Dense", dict(in_features=32, out_features=16)), ("ReLU", {}),
                          ("Dense", dict(in_features=16, out_features=10))]),
    "activations": ((784,), [("Dense", dict(in_features=784, out_features=24)), ("LeakyReLU", dict(negative_slope=0.1)),
                             ("Dense", dict(in_features=24, out_features=24)), ("Tanh", {}),
                             ("Dense", dict(in_features=24, out_features=24)), ("Sigmoid", {}),
                             ("Dense", dict(in_features=24, out_features=24)), ("GELU", {}),
                             ("Dropout", dict(p=0.5)),
                             ("Dense", dict(in_features=24, out_features=10))]),
    "batchnorm1d": ((784,), [("Dense", dict(in_features=784, out_features=32)), ("BatchNorm1D", dict(num_features=32)),
                             ("ReLU", {}), ("Dense", dict(in_features=32, out_features=10))]),
    "cnn-maxpool": (CONV, [("Conv2D", dict(in_channels=1, out_channels=4, kernel_size=3, padding=1)), ("ReLU", {}),
                           ("MaxPool2D", dict(size=2)),
                           ("Conv2D", dict(in_channels=4, out_channels=6, kernel_size=5, stride=2)),
                           ("BatchNorm2D", dict(num_features=6)), ("ReLU", {}),
                           ("Flatten", {}), ("Dense", dict(in_features=6 * 5 * 5, out_features=10))]),
    "cnn-avgpool-gap": (CONV, [("Conv2D", dict(in_channels=1, out_channels=4, kernel_size=3)), ("ReLU", {}),
                               ("AvgPool2D", dict(size=3, stride=2)),
                               ("Conv2D", dict(in_channels=4, out_channels=8, kernel_size=3, padding=1)),
                               ("GlobalAvgPool2D", {}), ("Dense", dict(in_features=8, out_features=10))]),
}


def build_case(name: str, seed: int = 0) -> Sequential:
    shape, layers = CASES[name]
    missing = sorted({t for t, _ in layers} - set(LAYERS))
    if missing:
        pytest.skip(f"layer types not in this build yet: {', '.join(missing)}")
    model = Sequential.from_architecture([{"type": t, **cfg} for t, cfg in layers], input_shape=shape)
    rng = np.random.default_rng(seed)
    for k, v in model.state_dict().items():   # random weights and statistics, so nothing is trivially zero/one
        v[...] = rng.uniform(0.5, 1.5, v.shape) if k.endswith(("running_var", "gamma")) else \
            rng.normal(0, 1 / np.sqrt(max(1, v.size // v.shape[0])), v.shape)
    return model


def buildable_models():
    """Every network the package can build here: shipped models, the MLP factory, presets (when they exist)."""
    models = {f"shipped:{n}": (lambda n=n: digitnet.load(n)) for n in digitnet.io.shipped_models()}
    models["MLP(64)"] = lambda: MLP((64,), seed=1)
    models["MLP(128,64) float64"] = lambda: MLP((128, 64), seed=2, dtype=np.float64)
    build, presets = getattr(digitnet.nn, "build", None), getattr(digitnet.nn, "PRESETS", {})
    for p in presets:
        models[f"preset:{p}"] = lambda p=p: build(p, seed=0)
    return models


def test_every_registered_layer_type_has_an_exporter():
    missing = sorted(set(LAYERS) - set(EXPORTERS))
    assert not missing, f"layer types without an ONNX exporter: {missing}"


def test_every_registered_layer_type_is_exercised_by_a_round_trip_case():
    covered = {t for _, layers in CASES.values() for t, _ in layers}
    assert not sorted(set(LAYERS) - covered), f"add a CASES entry using {sorted(set(LAYERS) - covered)}"


def assert_round_trip(model, images, tmp_path):
    path = export(model, tmp_path / "m.onnx")
    onnx.checker.check_model(str(path))
    got = run_onnx(path, images, model.input_shape)
    want = model.predict_proba(images).astype(np.float64)
    assert got.shape == want.shape == (len(images), len(model.classes))   # 11 with a "not a digit" output
    assert np.abs(got - want).max() <= 1e-5
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.999


@pytest.mark.parametrize("name", list(buildable_models()))
def test_buildable_models_round_trip(name, mnist, tmp_path):
    model = buildable_models()[name]()
    assert_round_trip(model, mnist.test.images[:1000], tmp_path)


@pytest.mark.parametrize("name", list(CASES))
def test_each_layer_type_round_trips(name, mnist, tmp_path):
    assert_round_trip(build_case(name), mnist.test.images[:1000], tmp_path)


def test_exported_graph_uses_standard_ops():
    ops = [n.op_type for n in to_onnx(MLP((64,))).graph.node]
    assert ops == ["Gemm", "Relu", "Gemm", "Softmax"]


def test_unknown_layer_type_is_a_clear_error():
    class Mystery(Layer):
        def forward(self, x, training=False):
            return x

    model = Sequential([digitnet.nn.Dense(784, 10), Mystery()])
    with pytest.raises(DigitnetError, match="Mystery.*no ONNX export"):
        to_onnx(model)


def test_cli_export(tmp_path, capsys, mnist):
    out = tmp_path / "seed.onnx"
    assert main(["export", "--model", "seed", "--onnx", str(out)]) == 0
    assert "max abs difference" in capsys.readouterr().out
    got = run_onnx(out, mnist.test.images[:100], (784,))
    assert (got.argmax(1) == digitnet.load("seed").predict(mnist.test.images[:100])).all()
    assert main(["export", "--onnx", str(tmp_path)]) == 2             # a directory, not a file
    assert "directory" in capsys.readouterr().err
    assert main(["export", "--model", "nope", "--onnx", str(out)]) == 2
