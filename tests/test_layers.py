"""Gradient checks (float64, central differences) for every layer, and their forward semantics."""

import numpy as np
import pytest

from digitnet import DigitnetError
from digitnet.nn import (AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GELU,
                         GlobalAvgPool2D, LeakyReLU, MaxPool2D, ReLU, Sigmoid, Tanh)
from digitnet.nn.gradcheck import check_layer

TOL = 1e-6
rng0 = np.random.default_rng(0)

CASES = [
    ("dense", lambda: Dense(5, 4, dtype=np.float64), (3, 5)),
    ("relu", lambda: ReLU(), (4, 6)),
    ("leaky_relu", lambda: LeakyReLU(0.1), (4, 6)),
    ("tanh", lambda: Tanh(), (4, 6)),
    ("sigmoid", lambda: Sigmoid(), (4, 6)),
    ("gelu", lambda: GELU(), (4, 6)),
    ("conv", lambda: Conv2D(2, 3, 3, dtype=np.float64), (2, 2, 6, 6)),
    ("conv_stride_pad", lambda: Conv2D(3, 4, 3, stride=2, padding=1, dtype=np.float64), (2, 3, 7, 7)),
    ("conv_k5_pad2", lambda: Conv2D(2, 3, 5, padding=2, dtype=np.float64), (2, 2, 6, 5)),
    ("conv_one_channel", lambda: Conv2D(1, 3, 3, dtype=np.float64), (2, 1, 6, 5)),
    ("conv_one_channel_stride_pad", lambda: Conv2D(1, 2, 5, stride=2, padding=2, dtype=np.float64), (2, 1, 7, 6)),
    ("maxpool", lambda: MaxPool2D(2), (2, 3, 6, 6)),
    ("maxpool_odd_floor", lambda: MaxPool2D(2), (2, 2, 5, 5)),
    ("maxpool_overlapping", lambda: MaxPool2D(3, stride=2), (2, 2, 7, 7)),
    ("avgpool", lambda: AvgPool2D(2), (2, 3, 6, 6)),
    ("avgpool_overlapping", lambda: AvgPool2D(3, stride=1), (2, 2, 5, 5)),
    ("global_avgpool", lambda: GlobalAvgPool2D(), (2, 3, 4, 5)),
    ("flatten", lambda: Flatten(), (2, 3, 4, 4)),
    ("batchnorm1d_training", lambda: BatchNorm1D(5).astype(np.float64), (6, 5)),
    ("batchnorm2d_training", lambda: BatchNorm2D(3).astype(np.float64), (4, 3, 3, 3)),
]


@pytest.mark.parametrize("name,make,shape", CASES, ids=[c[0] for c in CASES])
def test_gradients_match_central_differences(name, make, shape):
    layer = make()
    # random params too (e.g. BatchNorm's gamma = 1, beta = 0 would hide mistakes)
    for p in layer.params.values():
        p[...] = np.random.default_rng(1).standard_normal(p.shape)
    x = np.random.default_rng(2).standard_normal(shape)
    errors = check_layer(layer, x, training=True)
    assert set(errors) == {"x", *layer.params}
    assert max(errors.values()) < TOL, errors


def test_dropout_gradient_with_a_fixed_mask():
    layer = Dropout(0.4)
    mask = Dropout(0.4).draw_mask((5, 7), np.dtype(np.float64))
    layer.draw_mask = lambda shape, dtype: mask
    errors = check_layer(layer, np.random.default_rng(0).standard_normal((5, 7)), training=True)
    assert errors["x"] < TOL


def test_a_wrong_gradient_is_caught():
    class Broken(Tanh):
        def backward(self, grad, input_grad=True):
            return 1.01 * super().backward(grad)
    assert check_layer(Broken(), np.random.default_rng(0).standard_normal((3, 4)))["x"] > 1e-4


@pytest.mark.parametrize("C,k,s,p", [(2, 3, 2, 1), (1, 3, 2, 1), (1, 5, 1, 2), (1, 2, 3, 0), (3, 2, 1, 0)])
def test_conv_matches_a_direct_loop(C, k, s, p):
    """Both ways of building the patch matrix: one-channel (a gather) and multi-channel (a window copy)."""
    rng = np.random.default_rng(3)
    conv = Conv2D(C, 3, k, stride=s, padding=p, rng=rng, dtype=np.float64)
    conv.params["b"][...] = rng.standard_normal(3)
    for shape in ((2, C, 6, 5), (3, C, 7, 7)):                # a second input size: cached indices renewed
        x = rng.standard_normal(shape)
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        out = conv.forward(x)
        assert out.shape == (shape[0], *conv.output_shape(shape[1:]))
        W, b = conv.params["W"], conv.params["b"]
        for n, o, i, j in np.ndindex(out.shape):
            expect = np.sum(xp[n, :, s * i:s * i + k, s * j:s * j + k] * W[o]) + b[o]
            assert out[n, o, i, j] == pytest.approx(expect)


def test_pooling_values():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    assert MaxPool2D(2).forward(x)[0, 0].tolist() == [[5, 7], [13, 15]]
    assert AvgPool2D(2).forward(x)[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert GlobalAvgPool2D().forward(x).tolist() == [[7.5]]
    assert Flatten().forward(np.arange(8).reshape(1, 2, 2, 2)).tolist() == [list(range(8))]


def _maxpool_reference(x, k, s, g):
    """Loops over windows: output and input gradient with each window's gradient to its np.argmax."""
    N, C, H, W = x.shape
    Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
    out, dx = np.empty((N, C, Ho, Wo)), np.zeros(x.shape)
    for n, c, i, j in np.ndindex(N, C, Ho, Wo):
        win = x[n, c, i * s:i * s + k, j * s:j * s + k]
        a, b = divmod(int(np.argmax(win)), k)
        out[n, c, i, j] = win[a, b]
        dx[n, c, i * s + a, j * s + b] += g[n, c, i, j]
    return out, dx


@pytest.mark.parametrize("shape", [(3, 4, 6, 6), (2, 3, 7, 5), (1, 2, 5, 8)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (2, 1)])
def test_maxpool_matches_a_loop_over_windows_with_ties(shape, channels_last, k, s):
    """The 2 x 2 fast path and the general path, on conv-like (channels-last) and plain inputs full of ties."""
    rng = np.random.default_rng(sum(shape) + k + s)
    x = rng.integers(0, 3, shape).astype(np.float64)          # three values: many tied windows
    if channels_last:                                           # as a Conv2D output is laid out
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    pool = MaxPool2D(k, stride=s)
    out = pool.forward(x, training=True)
    g = rng.standard_normal(out.shape)
    want_out, want_dx = _maxpool_reference(x, k, s, g)
    assert np.array_equal(out, want_out)
    dx = pool.backward(g.copy())
    if s >= k:                                                  # one contribution per input: exactly equal
        assert np.array_equal(dx, want_dx)
    else:                                                       # overlapping windows sum in another order
        np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-15)
    assert np.array_equal(MaxPool2D(k, stride=s).forward(x), want_out)       # inference path


def test_maxpool_gradient_goes_to_the_first_maximum_of_a_tie():
    """Zero image backgrounds make whole windows equal: only the first (as argmax, and PyTorch) gets the gradient."""
    x = np.array([[[[1., 1., 0., 2.], [1., 1., 2., 2.], [3., 0., 4., 4.], [0., 3., 4., 4.]]]])
    pool = MaxPool2D(2)
    assert pool.forward(x, training=True)[0, 0].tolist() == [[1, 2], [3, 4]]
    dx = pool.backward(np.array([[[[10., 20.], [30., 40.]]]]))[0, 0]
    assert dx.tolist() == [[10, 0, 0, 20], [0, 0, 0, 0], [30, 0, 40, 0], [0, 0, 0, 0]]
    pool.forward(np.array([[[[3., 5.], [5., 0.]]]]), training=True)   # tie off the first offset: row-major first
    assert pool.backward(np.array([[[[1.]]]]))[0, 0].tolist() == [[0, 1], [0, 0]]
    over = MaxPool2D(3, stride=2)                       # overlapping windows: the shared maximum gets all four
    y = np.zeros((1, 1, 5, 5))
    y[0, 0, 2, 2] = 5.0
    over.forward(y, training=True)
    expect = np.zeros((5, 5))
    expect[2, 2] = 1 + 2 + 3 + 4
    assert np.array_equal(over.backward(np.array([[[[1., 2.], [3., 4.]]]]))[0, 0], expect)
    over.forward(np.ones((1, 1, 5, 5)), training=True)  # all tied: each window's top-left
    assert over.backward(np.ones((1, 1, 2, 2)))[0, 0].tolist() == \
        [[1, 0, 1, 0, 0], [0, 0, 0, 0, 0], [1, 0, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    wide = MaxPool2D(17)                                # more window offsets than a byte can count
    z = np.zeros((1, 1, 17, 17))
    z[0, 0, 16, 15] = 1.0
    wide.forward(z, training=True)
    assert np.argwhere(wide.backward(np.ones((1, 1, 1, 1)))[0, 0]).tolist() == [[16, 15]]
    with pytest.raises(RuntimeError, match="training=True"):
        MaxPool2D(2).backward(np.ones((1, 1, 2, 2)))


def test_batchnorm_running_statistics_and_inference():
    bn = BatchNorm2D(2, momentum=0.5).astype(np.float64)
    x = np.random.default_rng(0).standard_normal((8, 2, 3, 3)) * 3 + 1
    y = bn.forward(x, training=True)
    assert np.allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12) and np.allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-4)
    m = 8 * 9
    assert np.allclose(bn.buffers["running_mean"], 0.5 * x.mean(axis=(0, 2, 3)))
    assert np.allclose(bn.buffers["running_var"], 0.5 + 0.5 * x.var(axis=(0, 2, 3)) * m / (m - 1))
    bn.buffers["running_mean"][...], bn.buffers["running_var"][...] = 1.0, 4.0
    assert np.allclose(bn.forward(x, training=False), (x - 1) / np.sqrt(4 + 1e-5))


def test_dropout_is_identity_at_inference_and_keeps_the_mean_in_training():
    d = Dropout(0.5)
    x = np.ones((200, 100), np.float32)
    assert d.forward(x, training=False) is x
    y = d.forward(x, training=True)
    assert set(np.unique(y)) == {0.0, 2.0} and abs(y.mean() - 1) < 0.05


def test_activation_values():
    x = np.array([[-2.0, 0.5]])
    assert np.allclose(LeakyReLU(0.1).forward(x), [[-0.2, 0.5]])
    assert np.allclose(Sigmoid().forward(x), 1 / (1 + np.exp(-x)))
    assert np.allclose(Tanh().forward(x), np.tanh(x))
    assert np.allclose(GELU().forward(np.array([[0.0, 1.0]])), [[0.0, 0.8411920]], atol=1e-6)


@pytest.mark.parametrize("make,message", [
    (lambda: Conv2D(1, 8, 0), "kernel_size"),
    (lambda: MaxPool2D(0), "size"),
    (lambda: Dropout(1.0), "Dropout p"),
    (lambda: BatchNorm1D(0), "num_features"),
    (lambda: LeakyReLU(-1), "negative_slope"),
])
def test_bad_layer_arguments(make, message):
    with pytest.raises(DigitnetError, match=message):
        make()


def test_whole_convnet_gradient_through_batchnorm_and_pooling():
    from digitnet.nn import build
    from digitnet.nn.gradcheck import numerical_grad, rel_error
    model = build("conv2k3s2p1-bn-relu-pool-conv3k3p1-gap-fc10", seed=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    for p in model.params.values():
        p += 0.1 * rng.standard_normal(p.shape)
    x, y = rng.standard_normal((3, 1, 28, 28)), rng.integers(0, 10, 3)
    model.train_step(x, y)
    analytic = {k: g.copy() for k, g in model.grads.items()}

    def f():
        return model.loss.forward(model.forward(x, training=True), y)

    for name, p in model.params.items():
        numeric = numerical_grad(f, p)
        # the first conv's bias is cancelled by batch norm: both gradients are 0 (up to rounding)
        assert rel_error(analytic[name], numeric) < TOL or np.abs(analytic[name] - numeric).max() < 1e-9, name


THREAD_CASES = [
    ("conv_one_channel", lambda: Conv2D(1, 4, 5, padding=2, dtype=np.float64), (6, 1, 9, 8)),
    ("conv", lambda: Conv2D(3, 4, 3, stride=2, dtype=np.float64), (5, 3, 9, 9)),
    ("maxpool_2x2", lambda: MaxPool2D(2), (6, 3, 7, 8)),
    ("dense_large", lambda: Dense(1024, 256, dtype=np.float64), (64, 1024)),   # at _fast.SPLIT_PRODUCT
]


@pytest.mark.parametrize("name,make,shape", THREAD_CASES, ids=[c[0] for c in THREAD_CASES])
def test_kernels_split_over_threads_match_one_piece(name, make, shape):
    """With digitnet's threads the conv and pooling kernels split their batch; outputs and gradients stay the same."""
    from digitnet.nn import threads
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 4, shape).astype(np.float64)           # integers: tied maxima for the pooling layer
    results = []
    for n in (1, 3):
        layer = make()
        for k, p in layer.params.items():
            p[...] = np.random.default_rng(1).standard_normal(p.shape)
        with threads.use_threads(n):
            assert len(threads.blocks(shape[0])) == n
            out = layer.forward(x.copy(), training=True).copy()
            g = np.random.default_rng(2).standard_normal(out.shape)
            dx = layer.backward(g.copy())
            results.append((out, dx, {k: v.copy() for k, v in layer.grads.items()}))
    (out1, dx1, g1), (out3, dx3, g3) = results
    np.testing.assert_allclose(out3, out1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx3, dx1, rtol=1e-12, atol=1e-12)
    for k in g1:
        np.testing.assert_allclose(g3[k], g1[k], rtol=1e-12, atol=1e-12)


def test_a_large_dense_product_splits_over_threads_and_a_small_one_does_not(monkeypatch):
    """A convnet's fully connected layers use digitnet's threads (the BLAS runs on one), where it pays."""
    from digitnet.nn import _fast, threads
    calls = []
    real = threads.map_blocks
    monkeypatch.setattr(threads, "map_blocks", lambda fn, n: calls.append(n) or real(fn, n))
    rng = np.random.default_rng(0)
    for n_in, n_out, expected in ((800, 256, [128, 800, 128]), (784, 64, [])):   # forward, dW, dx rows
        calls.clear()
        layer = Dense(n_in, n_out)
        with threads.use_threads(2):
            y = layer.forward(rng.random((128, n_in), dtype=np.float32), training=True)
            layer.backward(rng.standard_normal(y.shape).astype(np.float32))
        assert calls == expected
        assert (n_in * n_out * 128 >= _fast.SPLIT_PRODUCT) == bool(expected)


def test_thread_blocks_and_errors():
    from digitnet.nn import threads
    assert threads.blocks(10) == [slice(0, 10)]                  # one thread: one piece
    with threads.use_threads(3):
        assert threads.threads() == 3
        assert threads.blocks(10) == [slice(0, 3), slice(3, 6), slice(6, 10)]
        assert threads.blocks(2) == [slice(0, 1), slice(1, 2)]
        assert threads.map_blocks(lambda sl: sl.stop - sl.start, 10) == [3, 3, 4]
        done = []

        def part(sl):
            if sl.start == 0:
                raise ValueError("boom")
            done.append(sl)
        with pytest.raises(ValueError, match="boom"):
            threads.map_blocks(part, 9)
        assert len(done) == 2                                    # the other blocks finished before the error surfaced
    assert threads.threads() == 1


def test_conv_inference_keeps_no_patches_and_backward_needs_a_training_pass():
    """Patches are a whole batch's worth of memory: an inference pass (a server's) must not hold on to them."""
    from digitnet.errors import DigitnetError
    conv = Conv2D(1, 4, 3, padding=1)
    x = np.random.default_rng(0).random((64, 1, 28, 28)).astype(np.float32)
    with pytest.raises(DigitnetError, match="training=True"):
        conv.backward(np.ones((64, 4, 28, 28), np.float32))
    conv.forward(x)
    assert conv._cache is None
    conv.forward(x, training=True)
    assert conv._cache is not None and conv.backward(np.ones((64, 4, 28, 28), np.float32)).shape == x.shape


def _blas_threads():
    from digitnet.nn.threads import blas_info
    return blas_info()["threads"]


def test_predict_shares_its_chunks_over_threads_with_the_same_result(monkeypatch):
    """Many images: chunks over one thread per core, the BLAS on one thread meanwhile and restored after."""
    import digitnet
    from digitnet.nn import threads
    for var in threads.THREAD_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 3)
    layers = [Conv2D(1, 4, 3), MaxPool2D(2), BatchNorm2D(4), ReLU(), Flatten(), Dense(13 * 13 * 4, 10)]
    model = digitnet.Sequential(layers, input_shape=(1, 28, 28))
    images = np.random.default_rng(0).integers(0, 256, (150, 28, 28), dtype=np.uint8)
    seen = []                                                     # (thread count here, kernels' count, BLAS threads)
    real_forward = model.forward
    monkeypatch.setattr(model, "forward", lambda x: seen.append(
        (threads.inference_count(), threads.threads(), _blas_threads())) or real_forward(x))
    before = _blas_threads()
    assert threads.inference_count() == 3
    proba = model.predict_proba(images, batch_size=16)           # 10 chunks over 3 threads
    assert len(seen) == 10 and all(s == (1, 1, 1) for s in seen)
    assert _blas_threads() == before
    seen.clear()
    with threads.use_threads(1):                                 # a run's own setting wins: one thread, same chunks
        one = model.predict_proba(images, batch_size=16)
    assert len(seen) == 10 and all(s[2] == before for s in seen)
    assert np.array_equal(proba, one)
    assert np.array_equal(model.predict(images, batch_size=16), proba.argmax(axis=1))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")                   # the user's choice of threads: no split
    assert threads.inference_count() == 1


def test_concurrent_and_nested_predictions_finish_and_restore_the_blas():
    """Callers in several threads, and a call from inside digitnet's own pool, neither hang nor leave the BLAS
    on one thread (the first caller in limits it, the last out restores it)."""
    import threading
    import digitnet
    from digitnet.nn import threads
    model = digitnet.MLP((8,), seed=0)
    images = np.random.default_rng(0).integers(0, 256, (64, 784), dtype=np.uint8)
    expected = model.predict(images, batch_size=4)
    before, results = _blas_threads(), []

    def caller():
        for _ in range(20):
            results.append(np.array_equal(model.predict(images, batch_size=4), expected))
        with threads.use_threads(2):                             # the pool's thread predicting: no split of its own
            results.extend(threads.map_blocks(lambda sl: np.array_equal(
                model.predict(images, batch_size=4), expected), 2))
    workers = [threading.Thread(target=caller, daemon=True) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not any(w.is_alive() for w in workers)
    assert len(results) == 4 * 22 and all(results)
    assert _blas_threads() == before


def test_predict_chunks_keep_their_largest_array_near_the_cache_budget():
    import digitnet
    from digitnet.nn import _fast, model as model_module
    conv = Conv2D(1, 24, 5)
    x = np.zeros((3, 1, 28, 28), np.float32)
    _, (cols, *_) = _fast.conv2d_forward(x, conv.params["W"], conv.params["b"], 1, 0)
    assert conv.forward_size((1, 28, 28)) * 3 == cols.size        # the patch matrix is the conv's largest array
    assert Dense(784, 64).forward_size((784,)) == 64
    mlp = digitnet.MLP((64,))
    assert mlp.inference_batch == 1024                            # 784 float32 inputs a image: capped
    net = digitnet.Sequential([conv, Flatten(), Dense(24 * 24 * 24, 10)], input_shape=(1, 28, 28))
    per_image = conv.forward_size((1, 28, 28)) * 4
    n = net.inference_batch
    assert n * per_image <= model_module.CHUNK_BYTES < 2 * n * per_image


def test_a_failing_block_stops_the_others_at_their_next_chunk(monkeypatch):
    """An error or Ctrl-C in one thread of a long prediction must not wait for the other threads' whole blocks."""
    import time
    from digitnet.nn import threads
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    for var in threads.THREAD_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    done = []

    def chunk(i):
        if i == 0:
            time.sleep(0.05)                                     # the other block is under way by then
            raise KeyboardInterrupt
        time.sleep(0.01)
        done.append(i)
    with pytest.raises(KeyboardInterrupt):
        threads.map_split(chunk, 200)                            # blocks 0-99 and 100-199
    time.sleep(0.05)
    assert all(i >= 100 for i in done) and len(done) < 30        # not the other 100 chunks
