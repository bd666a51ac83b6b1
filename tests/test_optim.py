"""Optimizer steps and learning-rate schedules against values worked out by hand."""

import numpy as np
import pytest

from digitnet import DigitnetError
from digitnet.nn import SGD, Adam, AdamW
from digitnet.nn.losses import SoftmaxCrossEntropy
from digitnet.nn.optim import clip_grad_norm
from digitnet.nn.schedules import lr_at_step


def run(opt_cls, grads, **kw):
    p, g = {"w": np.array([1.0])}, {"w": np.zeros(1)}
    opt = opt_cls(p, g, **kw)
    out = []
    for value in grads:
        g["w"][...] = value
        opt.step()
        out.append(float(p["w"][0]))
    return out, opt


def test_sgd_nesterov_by_hand():
    # v = 0.5, p = 1 - 0.1 (0.5 + 0.9 * 0.5) = 0.905; v = 0.9*0.5 + 0.5 = 0.95, p -= 0.1 (0.5 + 0.855)
    out, _ = run(SGD, [0.5, 0.5], lr=0.1, momentum=0.9, nesterov=True)
    assert out == pytest.approx([0.905, 0.7695])


def test_adam_by_hand():
    # step 1: m = 0.05, v = 0.00025, m^ = 0.5, v^ = 0.25 -> p = 1 - 0.1 * 0.5 / 0.5 = 0.9
    # step 2 (g = -0.25): m = 0.02, v = 0.00031225, m^ = 0.02 / 0.19, v^ = 0.00031225 / 0.001999
    #   p = 0.9 - 0.1 * 0.1052631579 / 0.3952254 = 0.8733663
    out, opt = run(Adam, [0.5, -0.25], lr=0.1)
    assert out == pytest.approx([0.9, 0.8733663], abs=1e-7)
    assert opt.t == 2


def test_adam_l2_versus_adamw_decoupled_decay():
    # Adam: g = 0.5 + 0.1 * 1 = 0.6, first step moves by lr exactly -> 0.9
    out, _ = run(Adam, [0.5], lr=0.1, weight_decay=0.1)
    assert out == pytest.approx([0.9])
    # AdamW: p = 1 * (1 - 0.1 * 0.1) = 0.99, then the Adam step of 0.1 -> 0.89
    out, _ = run(AdamW, [0.5], lr=0.1, weight_decay=0.1)
    assert out == pytest.approx([0.89])


def test_optimizer_state_round_trip():
    out, opt = run(Adam, [0.5, -0.25], lr=0.1)
    p2, g2 = {"w": np.array([out[-1]])}, {"w": np.array([0.3])}
    twin = Adam(p2, g2, lr=0.1)
    twin.load_state_dict(opt.state_dict())
    opt.grads["w"][...] = 0.3
    opt.step(), twin.step()
    assert p2["w"][0] == opt.params["w"][0]


def test_clip_grad_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([4.0])}
    assert clip_grad_norm(grads, 1.0) == pytest.approx(5.0)
    assert np.allclose(grads["a"], [0.6, 0]) and np.allclose(grads["b"], [0.8])
    assert clip_grad_norm(grads, 10.0) == pytest.approx(1.0) and np.allclose(grads["b"], [0.8])


def test_label_smoothing_loss_and_gradient_by_hand():
    loss = SoftmaxCrossEntropy(label_smoothing=0.1)
    logits = np.zeros((1, 10))                    # uniform p = 0.1
    assert loss.forward(logits, np.array([3])) == pytest.approx(np.log(10))
    g = loss.backward()                            # p - t, t = 0.9 onehot + 0.01
    assert g[0, 3] == pytest.approx(0.1 - 0.91) and g[0, 0] == pytest.approx(0.1 - 0.01)


@pytest.mark.parametrize("schedule,step,expected", [
    ("constant", 77, 1.0),
    ("cosine", 0, 1.0), ("cosine", 50, 0.5), ("cosine", 100, 0.0),
    ("step", 9, 1.0), ("step", 10, 0.1), ("step", 25, 0.01),
    ("onecycle", 0, 1 / 25), ("onecycle", 24, 1.0), ("onecycle", 99, 1 / 25 / 1e4),
])
def test_schedule_values(schedule, step, expected):
    assert lr_at_step(schedule, 1.0, step, 100, step_size=10) == pytest.approx(expected, abs=1e-12)


def test_linear_warmup_then_cosine():
    lrs = [lr_at_step("cosine", 1.0, s, 104, warmup=4) for s in (0, 1, 3, 4, 54)]
    assert lrs == pytest.approx([0.25, 0.5, 1.0, 1.0, 0.5])


@pytest.mark.parametrize("make,message", [
    (lambda p, g: Adam(p, g, lr=0), "lr"), (lambda p, g: Adam(p, g, betas=(0.9, 1.0)), "betas"),
    (lambda p, g: AdamW(p, g, weight_decay=-1), "weight_decay"),
])
def test_bad_optimizer_arguments(make, message):
    with pytest.raises(DigitnetError, match=message):
        make({"w": np.zeros(1)}, {"w": np.zeros(1)})


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_on_packed_parameters_matches_per_array_updates(name, monkeypatch):
    """The whole-array update (a Sequential's packed parameters) does each element's arithmetic as per array."""
    from digitnet.nn import build, optim, parallel
    packed, loose = build("conv4k3-pool-bn-relu-fc10", seed=0), build("conv4k3-pool-bn-relu-fc10", seed=0)
    params = {k: v.copy() for k, v in loose.params.items()}            # separate arrays: the per-array path
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    cls = optim.OPTIMIZERS[name]
    a, b = cls(packed.params, packed.grads, lr=3e-3, weight_decay=1e-2), cls(params, grads, lr=3e-3, weight_decay=1e-2)
    assert a._flat is not None and b._flat is None
    rng = np.random.default_rng(0)
    for step in range(4):
        for k in params:
            g = rng.standard_normal(params[k].shape).astype(np.float32)
            packed.grads[k][...] = g
            grads[k][...] = g
        if step == 3:                                                   # and split over threads
            monkeypatch.setattr(parallel, "parts", lambda n, min_size=1: [slice(0, n // 3), slice(n // 3, n)])
        with parallel.use_threads(2 if step == 3 else 1):
            a.step()
        b.step()
    assert all(np.array_equal(packed.params[k], params[k]) for k in params)
    assert all(np.array_equal(a.m[k], b.m[k]) and np.array_equal(a.v[k], b.v[k]) for k in params)
