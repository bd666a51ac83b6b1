"""Optimizer steps and learning-rate schedules against values worked out by hand."""

import numpy as np
import pytest

from digitnet import DigitnetError
from digitnet.nn import SGD, Adam, AdamW
from digitnet.nn.losses import SoftmaxCrossEntropy
from digitnet.nn.optim import clip_grad_norm
from digitnet.nn.schedules import lr_at_step


def run(opt_cls, grads, **kw):
    p, g = np.array([1.0]), np.zeros(1)
    opt = opt_cls(p, g, **kw)
    out = []
    for value in grads:
        g[...] = value
        opt.step()
        out.append(float(p[0]))
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
    p2, g2 = np.array([out[-1]]), np.array([0.3])
    twin = Adam(p2, g2, lr=0.1)
    twin.load_state_dict(opt.state_dict())
    opt.grads[...] = 0.3
    opt.step(), twin.step()
    assert p2[0] == opt.params[0]


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
        make(np.zeros(1), np.zeros(1))


def adam_reference(p, g, m, v, t, lr, b1, b2, eps, wd, decoupled):
    """Adam / AdamW as the papers write it, float64, fresh arrays everywhere."""
    if decoupled:
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps), m, v


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_on_a_models_flat_arrays_matches_the_formula(name):
    """The optimizer updates a Sequential's flat parameter array in place; each element as the formula says."""
    from digitnet.nn import build, optim
    model = build("conv4k3-pool-bn-relu-fc10", seed=0)
    cls = optim.OPTIMIZERS[name]
    opt = cls(model.flat_params, model.flat_grads, lr=3e-3, weight_decay=1e-2)
    p = model.flat_params.astype(np.float64)
    m, v = np.zeros_like(p), np.zeros_like(p)
    rng = np.random.default_rng(0)
    for t in range(1, 5):
        g = rng.standard_normal(p.shape).astype(np.float32)
        for k, view in model.grads.items():                             # the layers' gradient views fill the flat array
            view[...] = model.unflatten(g)[k]
        assert np.array_equal(model.flat_grads, g)
        opt.step()
        p, m, v = adam_reference(p, g.astype(np.float64), m, v, t, 3e-3, 0.9, 0.999, 1e-8, 1e-2, cls.decoupled)
    np.testing.assert_allclose(model.flat_params, p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opt.m, m, rtol=1e-4, atol=1e-7)
    assert np.shares_memory(model.params["0.W"], model.flat_params)    # the layers still see the updated values


def test_optimizers_take_flat_arrays():
    with pytest.raises(DigitnetError, match="flat arrays"):
        SGD({"w": np.zeros(2)}, {"w": np.zeros(2)})
    with pytest.raises(DigitnetError, match="1-D arrays of one shape"):
        Adam(np.zeros(3), np.zeros(2))
