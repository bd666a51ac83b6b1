"""Every fast kernel (nn/_fast.py) against the plain reference code of its layer (``fast = False``)."""

import numpy as np
import pytest

from digitnet.nn import (AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, MaxPool2D, ReLU, SoftmaxCrossEntropy,
                         build)
from digitnet.nn.gradcheck import check_layer


def _pair(make):
    """Two copies of a layer with the same random parameters: one fast, one reference."""
    fast, ref = make(), make()
    for k, p in fast.params.items():
        p[...] = np.random.default_rng(1).standard_normal(p.shape)
        ref.params[k][...] = p
    ref.fast = False
    return fast, ref


def _channels_last(x):
    """The same values as (N, C, H, W) laid out channels-last in memory, as a conv layer's output is."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


CASES = [
    ("dense", lambda: Dense(12, 5, dtype=np.float64), (9, 12), None),
    ("relu", ReLU, (7, 3, 4, 4), None),
    ("relu_channels_last", ReLU, (7, 3, 4, 4), _channels_last),   # its gradient arrives in C order: mixed layouts
    ("conv_one_channel_padded", lambda: Conv2D(1, 4, 5, padding=2, dtype=np.float64), (6, 1, 9, 8), None),
    ("conv_strided", lambda: Conv2D(3, 4, 3, stride=2, padding=1, dtype=np.float64), (5, 3, 9, 10), None),
    ("conv_1x1", lambda: Conv2D(2, 3, 1, dtype=np.float64), (3, 2, 4, 4), None),
    ("maxpool_2x2_odd", lambda: MaxPool2D(2), (6, 3, 7, 9), None),
    ("maxpool_2x2_channels_last", lambda: MaxPool2D(2), (4, 5, 6, 6), _channels_last),
    ("batchnorm1d", lambda: BatchNorm1D(5).astype(np.float64), (9, 5), None),
    ("batchnorm2d", lambda: BatchNorm2D(3).astype(np.float64), (6, 3, 5, 5), _channels_last),
]


def test_relu_keeps_a_channels_last_input_channels_last():
    # the next convolution's patches and a batch norm's reductions then read their input in memory order
    x = _channels_last(np.random.default_rng(0).standard_normal((4, 6, 5, 5)))
    y = ReLU().forward(x, training=True)
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous
    np.testing.assert_array_equal(y, np.maximum(x, 0))


@pytest.mark.parametrize("name,make,shape,layout", CASES, ids=[c[0] for c in CASES])
def test_kernel_matches_reference(name, make, shape, layout):
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 4, shape).astype(np.float64)          # integers: tied maxima for the pooling layer
    if layout is not None:
        x = layout(x)
    fast, ref = _pair(make)
    out = {}
    for layer in (fast, ref):
        for _ in range(2):                                      # a second step reuses the kernels' work arrays
            y = layer.forward(x.copy(order="K"), training=True).copy()
            g = np.random.default_rng(2).standard_normal(y.shape)
            dx = layer.backward(g.copy())
        out[layer.fast] = (y, dx, {k: v.copy() for k, v in layer.grads.items()},
                           {k: v.copy() for k, v in layer.buffers.items()}, layer.forward(x.copy(order="K")))
    (y1, dx1, g1, b1, inf1), (y0, dx0, g0, b0, inf0) = out[True], out[False]
    np.testing.assert_allclose(y1, y0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx1, dx0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(inf1, inf0, rtol=1e-12, atol=1e-12)            # inference
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], rtol=1e-12, atol=1e-12, err_msg=k)
    for k in b0:
        np.testing.assert_allclose(b1[k], b0[k], rtol=1e-12, atol=1e-12, err_msg=k)


REFERENCE_GRADCHECKS = [
    ("dense", lambda: Dense(6, 4, dtype=np.float64), (5, 6)),
    ("relu", ReLU, (4, 7)),
    ("conv", lambda: Conv2D(2, 3, 3, stride=2, padding=1, dtype=np.float64), (2, 2, 6, 5)),
    ("conv_one_channel", lambda: Conv2D(1, 2, 3, padding=1, dtype=np.float64), (2, 1, 5, 5)),
    ("maxpool_2x2", lambda: MaxPool2D(2), (2, 2, 5, 4)),
    ("maxpool_3s2", lambda: MaxPool2D(3, 2), (2, 2, 7, 7)),
    ("avgpool", lambda: AvgPool2D(2), (2, 2, 4, 4)),
    ("batchnorm1d", lambda: BatchNorm1D(4).astype(np.float64), (6, 4)),
    ("batchnorm2d", lambda: BatchNorm2D(2).astype(np.float64), (3, 2, 3, 3)),
]


@pytest.mark.parametrize("name,make,shape", REFERENCE_GRADCHECKS, ids=[c[0] for c in REFERENCE_GRADCHECKS])
def test_reference_code_passes_gradient_checks(name, make, shape):
    layer = make()
    layer.fast = False
    x = np.random.default_rng(3).standard_normal(shape)
    x[np.abs(x) < 1e-3] = 0.5                                   # keep ReLU away from its kink
    assert max(check_layer(layer, x).values()) < 1e-6


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_class_major_softmax_matches_reference(smoothing, dtype):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((37, 10)) * 4).astype(dtype)
    labels = rng.integers(0, 10, 37)
    fast, ref = SoftmaxCrossEntropy(smoothing), SoftmaxCrossEntropy(smoothing)
    ref.fast = False
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert fast.forward(logits, labels) == pytest.approx(ref.forward(logits, labels), rel=tol)
    np.testing.assert_allclose(fast.backward(), ref.backward(), rtol=tol, atol=tol * 1e-2)


def test_a_whole_convnet_step_matches_reference():
    """One training step of the cnn preset with every kernel on, and with the reference code only (float32)."""
    rng = np.random.default_rng(5)
    x, y = rng.random((16, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 16)
    fast, ref = build("cnn", seed=0), build("cnn", seed=0)
    for layer in ref.layers:
        layer.fast = False
    ref.loss.fast = False
    loss1, _ = fast.train_step(x, y)
    loss0, _ = ref.train_step(x, y)
    assert loss1 == pytest.approx(loss0, rel=1e-5)
    g1, g0 = fast.grads, ref.grads
    for k in g0:
        scale = max(float(np.abs(g0[k]).max()), 1e-2)          # conv biases before batch norm: gradient ~ 0
        assert float(np.abs(g1[k] - g0[k]).max()) / scale < 1e-3, k


@pytest.mark.parametrize("shape", [(4096, 32), (18432, 32), (3200, 64)])
def test_batchnorm_on_grouped_rows_is_bit_identical_to_plain_broadcasting(shape):
    """BatchNorm's kernel broadcasts its per-channel rows over groups of rows (long inner loops); the values
    must be exactly those of broadcasting over each row, so training keeps its bits."""
    from digitnet.nn import _fast

    rng = np.random.default_rng(0)
    x, g = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    gamma, beta = (rng.standard_normal(shape[1]).astype(np.float32) for _ in range(2))
    assert _fast._wide(x)[0].shape != shape                          # the grouped path is taken
    m = shape[0]
    mean = _fast._colsum(x) / m
    xc = x - mean
    var = _fast._colsum(xc * xc) / m
    inv_std = 1.0 / np.sqrt(var + 1e-5)
    xh = xc * inv_std
    y, xh_fast, inv_fast, mean_fast, var_fast = _fast.batchnorm_train_forward(x, gamma, beta, 1e-5)
    assert np.array_equal(y, xh * gamma + beta) and np.array_equal(xh_fast, xh)
    assert np.array_equal(inv_fast, inv_std) and np.array_equal(mean_fast, mean) and np.array_equal(var_fast, var)
    dgamma, dbeta = np.zeros_like(gamma), np.zeros_like(beta)
    dx = _fast.batchnorm_backward(g, xh, inv_std, gamma, dgamma, dbeta, True)
    db, dg = _fast._colsum(g), _fast._colsum(g * xh)
    assert np.array_equal(dbeta, db) and np.array_equal(dgamma, dg)
    assert np.array_equal(dx, (g * m - db - xh * dg) * (gamma * inv_std / m))
