"""The tuned training path (reused work arrays, in-place updates) against plain NumPy references."""

import numpy as np
import pytest

import digitnet
from digitnet.nn import MLP, SGD, Dense, ReLU, SoftmaxCrossEntropy
from digitnet.nn.gradcheck import check_layer, numerical_grad, rel_error
from digitnet.train import fit


def reference_step(params, x, y, lr, velocity, momentum=0.9, weight_decay=0.0, nesterov=False):
    """Straightforward 784-H-10 SGD step in float64: fresh arrays everywhere, PyTorch's momentum convention."""
    W1, b1, W2, b2 = (params[k].astype(np.float64) for k in ("0.W", "0.b", "2.W", "2.b"))
    x = x.astype(np.float64)
    h = np.maximum(x @ W1 + b1, 0)
    z = h @ W2 + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y]).mean()
    g = p.copy()
    g[np.arange(len(y)), y] -= 1
    g /= len(y)
    grads = {"2.W": h.T @ g, "2.b": g.sum(0)}
    gh = (g @ W2.T) * (h > 0)
    grads.update({"0.W": x.T @ gh, "0.b": gh.sum(0)})
    new = {}
    for k, w in zip(("0.W", "0.b", "2.W", "2.b"), (W1, b1, W2, b2)):
        d = grads[k] + weight_decay * w
        velocity[k] = momentum * velocity[k] + d
        d = d + momentum * velocity[k] if nesterov else velocity[k]
        new[k] = w - lr * d
    return new, loss, grads


@pytest.mark.parametrize("weight_decay, nesterov", [(0.0, False), (5e-4, False), (1e-3, True)])
def test_training_steps_match_a_plain_numpy_reference(rng, weight_decay, nesterov):
    model = MLP((32,), seed=1)
    opt = SGD(model.flat_params, model.flat_grads, lr=0.05, momentum=0.9, weight_decay=weight_decay, nesterov=nesterov)
    ref = {k: v.astype(np.float64) for k, v in model.params.items()}
    vel = {k: np.zeros_like(v) for k, v in ref.items()}
    for bs in (64, 64, 17, 64):                        # a smaller batch in between reuses the work arrays
        images = rng.integers(0, 256, (bs, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, bs)
        x = model.prepare(images, reuse=True)
        loss, pred = model.train_step(x, y)
        ref_before = {k: v.copy() for k, v in ref.items()}
        ref, ref_loss, ref_grads = reference_step(ref, images.reshape(bs, 784) / 255.0, y, 0.05, vel, 0.9,
                                                  weight_decay, nesterov)
        assert loss == pytest.approx(ref_loss, rel=1e-5)
        for k, g in model.grads.items():
            assert rel_error(g, ref_grads[k]) < 1e-5, k
        opt.step()
        for k, p in model.params.items():
            assert np.allclose(p, ref[k], atol=1e-6), k
        assert not all(np.array_equal(ref[k], ref_before[k]) for k in ref)


def test_fit_matches_a_plain_training_loop(small):
    """fit() (gathered, converted and updated in reused arrays) == the obvious loop, batch by batch."""
    train = small.train.subset(slice(0, 1000))
    model = MLP((16,), seed=4)
    W = {k: v.astype(np.float64) for k, v in model.params.items()}
    vel = {k: np.zeros_like(v) for k, v in W.items()}
    fit(model, train, None, epochs=2, batch_size=96, lr=0.05, momentum=0.9, weight_decay=0.0,
        schedule="constant", val_size=0, seed=9, progress=False)
    rng = np.random.default_rng(9)
    for _ in range(2):
        order = rng.permutation(len(train))
        for i in range(0, len(train), 96):                       # 1000 = 10 * 96 + 40: a short last batch
            idx = order[i:i + 96]
            W, _, _ = reference_step(W, train.images[idx].reshape(-1, 784) / 255.0, train.labels[idx].astype(int),
                                     0.05, vel)
    for k, p in model.params.items():
        assert np.allclose(p, W[k], atol=2e-5), (k, np.abs(p - W[k]).max())


def test_predictions_are_fresh_arrays(rng):
    model = MLP((16,), seed=0)
    a_img, b_img = (rng.integers(0, 256, (5, 28, 28), dtype=np.uint8) for _ in range(2))
    pa, la = model.predict_proba(a_img), model.predict(a_img)
    keep_pa, keep_la = pa.copy(), la.copy()
    model.predict_proba(b_img), model.predict(b_img)
    x = model.prepare(b_img, reuse=True)
    model.train_step(x, np.arange(5))                          # training reuses its own arrays
    assert np.array_equal(pa, keep_pa) and np.array_equal(la, keep_la)
    assert not np.shares_memory(model.prepare(a_img), model.prepare(a_img))
    assert np.array_equal(model.predict(np.concatenate([a_img] * 3), batch_size=4), np.tile(la, 3))


def test_prepare_reuse_gives_the_same_values(rng):
    model = MLP((8,), seed=0)
    images = rng.integers(0, 256, (7, 784), dtype=np.uint8)
    fresh = model.prepare(images)
    assert np.array_equal(model.prepare(images, reuse=True), fresh)
    assert np.array_equal(fresh, (images / np.float32(255)).astype(np.float32)) or \
        np.allclose(fresh, images / 255.0, atol=1e-7)
    floats = fresh.astype(np.float64)
    assert model.prepare(floats).dtype == np.float32


def test_reused_batches_equal_fresh_batches(small):
    ds = small.train.subset(slice(0, 300))
    fresh = [(x.copy(), y.copy()) for x, y in ds.batches(64, np.random.default_rng(3))]
    reused = [(x.copy(), y.copy()) for x, y in ds.batches(64, np.random.default_rng(3), reuse=True)]
    assert len(fresh) == len(reused) == 5 and len(reused[-1][1]) == 300 - 4 * 64
    for (xa, ya), (xb, yb) in zip(fresh, reused):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    in_order = list(ds.batches(128))
    assert np.array_equal(np.concatenate([y for _, y in in_order]), ds.labels)


def test_gradients_stay_correct_with_work_arrays_across_batch_sizes(rng):
    """Cached layer outputs must stay valid for backward, whatever batch came before."""
    model = MLP((6, 5), n_inputs=8, n_classes=4, seed=3, dtype=np.float64)
    for p in model.params.values():
        p += 0.1 * rng.standard_normal(p.shape)
    for B in (9, 3, 9):
        x, y = rng.standard_normal((B, 8)), rng.integers(0, 4, B)
        model.train_step(x, y)
        analytic = {k: g.copy() for k, g in model.grads.items()}
        for name, p in model.params.items():
            num = numerical_grad(lambda: model.loss.forward(model.forward(x), y), p)
            assert rel_error(analytic[name], num) < 1e-6, (B, name)


def test_training_mode_layers_pass_gradient_checks(rng):
    dense = Dense(7, 5, rng=rng, dtype=np.float64)
    dense.params["b"][:] = rng.standard_normal(5)
    assert max(check_layer(dense, rng.standard_normal((4, 7)), training=True).values()) < 1e-6
    assert max(check_layer(dense, rng.standard_normal((4, 7)), training=False).values()) < 1e-6
    x = rng.standard_normal((6, 9))
    x[np.abs(x) < 1e-3] = 0.5
    assert check_layer(ReLU(), x, training=True)["x"] < 1e-6
    assert check_layer(ReLU(), x, training=False)["x"] < 1e-6


def test_loss_leaves_logits_alone_and_gradient_is_fortran_view(rng):
    loss = SoftmaxCrossEntropy()
    z = rng.standard_normal((6, 10)).astype(np.float32)
    keep = z.copy()
    loss.forward(z, rng.integers(0, 10, 6))
    assert np.array_equal(z, keep)
    g = loss.backward()
    assert g.shape == (6, 10) and np.allclose(g.sum(axis=1), 0, atol=1e-6)


def test_one_epoch_of_real_training_still_learns(small):
    model = digitnet.MLP((32,), seed=0)
    fit(model, small.train, None, epochs=2, batch_size=64, lr=0.05, val_size=0, progress=False)
    assert digitnet.evaluate(model, small.test)["accuracy"] > 0.8


@pytest.mark.parametrize("momentum, nesterov, weight_decay", [(0.0, False, 0.0), (0.9, False, 1e-3), (0.9, True, 0.0)])
def test_sgd_on_the_flat_arrays_updates_every_layer(rng, momentum, nesterov, weight_decay):
    """Sequential packs parameters and gradients into two flat arrays; SGD updates the whole model through them."""
    model = MLP((8,), n_inputs=12, n_classes=3, seed=0)
    assert all(np.shares_memory(p, model.flat_params) for p in model.params.values())
    assert all(np.shares_memory(g, model.flat_grads) for g in model.grads.values())
    loose = {k: v.astype(np.float64) for k, v in model.params.items()}
    vel = {k: np.zeros_like(v) for k, v in loose.items()}
    opt = SGD(model.flat_params, model.flat_grads, lr=0.1, momentum=momentum, nesterov=nesterov,
              weight_decay=weight_decay)
    for _ in range(3):
        for k, g in model.grads.items():
            g[...] = rng.standard_normal(g.shape)
            d = g + weight_decay * loose[k]                        # PyTorch's convention, per array
            vel[k] = momentum * vel[k] + d
            loose[k] = loose[k] - 0.1 * (d + momentum * vel[k] if nesterov else vel[k] if momentum else d)
        opt.step()
    for k in loose:
        assert np.allclose(model.params[k], loose[k], atol=1e-6)
        if momentum:
            assert np.allclose(model.unflatten(opt.velocity)[k], vel[k], atol=1e-6)
    assert set(opt.state_dict()) == ({"velocity"} if momentum else set())
