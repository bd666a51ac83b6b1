"""Architectures by preset name, spec string and JSON; saving and loading every one of them."""

import json

import numpy as np
import pytest

import digitnet
from digitnet import DigitnetError
from digitnet.nn import PRESETS, build


@pytest.mark.parametrize("spec,input_shape,n_layers,types", [
    ("fc64-relu-fc10", (784,), 3, ["Dense", "ReLU", "Dense"]),
    ("784-128-64-10", (784,), 5, ["Dense", "ReLU", "Dense", "ReLU", "Dense"]),
    ("conv8k5-pool-conv16k3p1-relu-fc10", (1, 28, 28), 6,
     ["Conv2D", "MaxPool2D", "Conv2D", "ReLU", "Flatten", "Dense"]),
    ("conv8k3s2p1-bn-lrelu0.2-avgpool2-gap-fc10", (1, 28, 28), 6,
     ["Conv2D", "BatchNorm2D", "LeakyReLU", "AvgPool2D", "GlobalAvgPool2D", "Dense"]),
    ("fc32-bn-gelu-drop0.25-fc16-tanh-fc10-sigmoid", (784,), 8,
     ["Dense", "BatchNorm1D", "GELU", "Dropout", "Dense", "Tanh", "Dense", "Sigmoid"]),
])
def test_spec_strings_build_the_expected_layers(spec, input_shape, n_layers, types):
    model = build(spec)
    assert model.input_shape == input_shape and model.output_shape == (10,)
    assert [type(layer).__name__ for layer in model.layers] == types


def test_shapes_are_inferred():
    model = build("conv8k5-pool-conv16k3p1-relu-fc10")
    conv1, _, conv2, _, _, fc = model.layers
    assert conv1.params["W"].shape == (8, 1, 5, 5)          # 28 -> 24 -> pool 12
    assert conv2.params["W"].shape == (16, 8, 3, 3)         # padding 1 keeps 12
    assert fc.in_features == 16 * 12 * 12
    assert model.forward(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    assert build("conv4k3s2p1-fc10").layers[-1].in_features == 4 * 14 * 14


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_save_and_load(name, tmp_path):
    model = build(name, seed=1)
    assert model.output_shape == (10,)
    x = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    path = digitnet.save(model, tmp_path / f"{name}.safetensors")
    again = digitnet.load(path)
    assert again.architecture() == model.architecture() and again.input_shape == model.input_shape
    assert np.array_equal(again.predict_proba(x), model.predict_proba(x))


def test_trained_convnet_with_batchnorm_round_trips(tmp_path, small):
    model = build("conv4k3-bn-relu-pool-drop0.1-fc10", seed=0)
    digitnet.fit(model, small.train.subset(slice(0, 256)), epochs=1, batch_size=64, val_size=0, progress=False)
    assert not np.allclose(model.layers[1].buffers["running_var"], 1)
    again = digitnet.load(digitnet.save(model, tmp_path / "m.safetensors"))
    assert np.array_equal(again.layers[1].buffers["running_mean"], model.layers[1].buffers["running_mean"])
    assert np.array_equal(again.predict(small.test.images), model.predict(small.test.images))


def test_seed_preset_is_the_classic_mlp():
    a, b = build("seed", seed=4), digitnet.MLP((64,), seed=4)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in b.params)


def test_json_architecture_with_inferred_inputs():
    arch = [{"type": "Conv2D", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"type": "ReLU"},
            {"type": "MaxPool2D", "size": 2}, {"type": "Flatten"}, {"type": "Dense", "out_features": 10}]
    model = build(json.dumps(arch))
    assert model.input_shape == (1, 28, 28) and model.layers[-1].in_features == 4 * 14 * 14
    assert build(model.architecture()).architecture() == model.architecture()


def test_same_seed_same_weights():
    a, b, c = build("cnn", seed=3), build("cnn", seed=3), build("cnn", seed=4)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["0.W"], c.params["0.W"])


@pytest.mark.parametrize("spec,message", [
    ("conv32k5-pool-fc256-dropp-fc10", "'dropp'"),
    ("fc64--fc10", "empty token"),
    ("fc64-relu-fc7", "10 outputs"),
    ("fc64-conv8k3-fc10", "'conv8k3'"),
    ("conv8k29-fc10", "'conv8k29'"),
    ("conv8k3-pool32-fc10", "'pool32'"),
    ("fc64-softmaxx-fc10", "'softmaxx'"),
    ("784-64", "784 and end with 10"),
    ("[{\"type\": \"Nope\"}]", "unknown layer type 'Nope'"),
    ("[{\"type\": \"Dense\", \"out_features\": 10, \"bogus\": 1}]", "bogus"),
    ("[1, 2", "JSON"),
    # beyond what a model file may hold (digitnet.model_check): refused before the weights are allocated
    ("fc99999999-fc10", "more than 20,000,000 parameters"),
    ("fc30000-relu-fc10", "more than 20,000,000 parameters"),
    ("[{\"type\": \"Dense\", \"out_features\": 99999999}, {\"type\": \"Dense\", \"out_features\": 10}]",
     "more than 20,000,000 parameters"),
    ("conv9999k5-fc10", "5,759,424 values per image"),
    ("-".join(["relu"] * 300) + "-fc10", "301 layers; a model file holds at most 256"),
])
def test_invalid_specs_name_the_problem(spec, message):
    with pytest.raises(DigitnetError, match=message):
        build(spec)


def test_shipped_cnn_model(mnist):
    assert "cnn" in digitnet.io.shipped_models()
    model = digitnet.load("cnn")
    assert model.input_shape == (1, 28, 28) and model.meta["arch"] == "cnn" and model.meta["seed"] == 0
    assert model.meta["command"].startswith("digitnet train --arch cnn ")
    assert model.meta["test_accuracy"] >= 0.993
    sample = mnist.test.subset(slice(0, 2000))
    assert digitnet.evaluate(model, sample)["accuracy"] >= 0.99
