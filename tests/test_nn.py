"""Gradient checks and basic behaviour of the core network pieces."""

import numpy as np
import pytest

from digitnet import DigitnetError
from digitnet.nn import MLP, Dense, ReLU, Sequential, SoftmaxCrossEntropy, softmax
from digitnet.nn.gradcheck import check_layer, numerical_grad, rel_error

TOL = 1e-6


def test_dense_gradients(rng):
    layer = Dense(7, 5, rng=rng, dtype=np.float64)
    layer.params["b"][:] = rng.standard_normal(5)
    errors = check_layer(layer, rng.standard_normal((4, 7)))
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < TOL, errors


def test_relu_gradients(rng):
    x = rng.standard_normal((6, 9))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink where the derivative is undefined
    errors = check_layer(ReLU(), x)
    assert errors["x"] < TOL


def test_gradcheck_catches_a_wrong_gradient(rng):
    """The checker itself must be able to fail."""
    class BadReLU(ReLU):
        def backward(self, grad, input_grad=True):
            return grad  # forgets the mask

    x = rng.standard_normal((6, 9))
    assert check_layer(BadReLU(), x)["x"] > 1e-2


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy_gradient(rng, smoothing):
    loss = SoftmaxCrossEntropy(label_smoothing=smoothing)
    z = rng.standard_normal((5, 10)) * 3
    y = rng.integers(0, 10, 5)
    loss.forward(z.copy(), y)
    g = loss.backward().copy()
    num = numerical_grad(lambda: loss.forward(z, y), z)
    assert rel_error(g, num) < TOL


def test_softmax_cross_entropy_value_and_stability():
    loss = SoftmaxCrossEntropy()
    z = np.array([[1000.0, 0.0, -1000.0]])
    assert loss.forward(z, np.array([0])) == pytest.approx(0.0, abs=1e-12)
    assert np.isfinite(loss.forward(z, np.array([2])))  # exp(-2000) underflows; loss stays finite
    z = np.log(np.array([[0.2, 0.3, 0.5]]))
    assert loss.forward(z, np.array([1])) == pytest.approx(-np.log(0.3))
    assert softmax(z) == pytest.approx(np.array([[0.2, 0.3, 0.5]]))


def test_whole_model_gradient(rng):
    model = MLP((6,), n_inputs=8, n_classes=4, seed=3, dtype=np.float64)
    for p in model.params.values():  # non-zero biases so their gradients are exercised
        p += 0.1 * rng.standard_normal(p.shape)
    x = rng.standard_normal((5, 8))
    y = rng.integers(0, 4, 5)
    model.train_step(x, y)
    analytic = {k: g.copy() for k, g in model.grads.items()}

    def f():
        return model.loss.forward(model.forward(x), y)

    for name, p in model.params.items():
        assert rel_error(analytic[name], numerical_grad(f, p)) < TOL, name


def test_mlp_shapes_dtypes_and_predict(rng):
    model = MLP((128, 64), seed=0)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "ReLU", "Dense", "ReLU", "Dense"]
    assert model.n_params == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert all(p.dtype == np.float32 for p in model.params.values())
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    proba = model.predict_proba(images)
    assert proba.shape == (7, 10) and proba.dtype == np.float32
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(model.predict(images), proba.argmax(axis=1))
    m64 = MLP((128, 64), seed=0, dtype=np.float64)
    assert m64.predict_proba(images).dtype == np.float64
    assert np.allclose(m64.predict_proba(images), proba, atol=1e-5)


def test_same_seed_same_init_different_seed_differs():
    a, b, c = MLP(seed=5), MLP(seed=5), MLP(seed=6)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["0.W"], c.params["0.W"])


def test_he_init_scale():
    w = MLP((256,), seed=0).params["0.W"]
    assert w.std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)


def test_bad_shapes_raise_clear_errors():
    model = MLP()
    with pytest.raises(DigitnetError, match="784 pixels"):
        model.predict(np.zeros((3, 27, 27), np.uint8))
    with pytest.raises(DigitnetError, match="expects input of shape"):
        Sequential([Dense(784, 10), Dense(20, 10)])
    with pytest.raises(DigitnetError, match="positive"):
        MLP((0,))
    with pytest.raises(DigitnetError, match="dtype"):
        MLP(dtype=np.int32)
