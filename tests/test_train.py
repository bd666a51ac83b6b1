"""Training: determinism, an accuracy floor, full-batch GD, callbacks, bad options."""

import numpy as np
import pytest

import digitnet
from digitnet import DigitnetError, TrainConfig
from digitnet.nn import MLP
from digitnet.train import Callback, lr_at


def test_same_seed_same_weights_different_seed_differs(small):
    runs = []
    for seed in (7, 7, 8):
        m = MLP((32,), seed=seed)
        digitnet.fit(m, small.train, epochs=2, seed=seed, val_size=500, progress=False)
        runs.append(m.params)
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not np.array_equal(runs[0]["0.W"], runs[2]["0.W"])


def test_one_epoch_reaches_94_percent(mnist):
    model = MLP((64,), seed=0)
    history = digitnet.fit(model, mnist.train, epochs=1, seed=0, progress=False)
    assert len(history) == 1
    assert set(history[0]) == {"epoch", "loss", "train_acc", "val_acc", "val_loss", "lr", "time"}
    assert 0 < history[0]["val_loss"] < 0.5
    assert history[0]["val_acc"] >= 0.94
    assert digitnet.evaluate(model, mnist.test)["accuracy"] >= 0.94


def test_full_batch_gradient_descent_learns(small):
    model = MLP((64,), seed=0)
    history = digitnet.fit(model, small.train, batch_size="full", epochs=40, lr=0.5, momentum=0.9, val_size=500,
                        progress=False)
    assert len(history) == 40
    assert history[-1]["loss"] < history[0]["loss"] / 3
    assert history[-1]["val_acc"] > 0.8


def test_history_and_config_stored_in_model(small):
    model = MLP((16,), seed=0)
    history = digitnet.fit(model, small.train, epochs=2, seed=3, val_size=0, progress=False)
    assert history[0]["val_acc"] is None
    assert model.meta["history"] == history
    assert model.meta["train_config"]["seed"] == 3 and model.meta["seed"] == 3


def test_loss_decreases_and_float64_works(small):
    model = MLP((32,), seed=0, dtype=np.float64)
    history = digitnet.fit(model, small.train, epochs=3, val_size=500, progress=False)
    assert history[-1]["loss"] < history[0]["loss"]
    assert model.params["0.W"].dtype == np.float64


def test_callback_can_stop_training(small):
    class StopAfterTwo(Callback):
        def on_epoch_end(self, model, epoch, logs):
            return epoch >= 2

    history = digitnet.fit(MLP((16,), seed=0), small.train, epochs=10, val_size=500, progress=False,
                                     callbacks=[StopAfterTwo()])
    assert len(history) == 2


def test_divergence_is_a_clear_error(small):
    with pytest.raises(DigitnetError, match="diverged"):
        digitnet.fit(MLP((16,), seed=0), small.train, epochs=3, lr=1e6, schedule="constant", val_size=500, progress=False)


def test_cosine_schedule_values():
    cfg = TrainConfig(lr=0.2, schedule="cosine")
    assert lr_at(cfg, 0, 100) == pytest.approx(0.2)
    assert lr_at(cfg, 50, 100) == pytest.approx(0.1)
    assert lr_at(cfg, 100, 100) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(TrainConfig(lr=0.2, schedule="constant"), 70, 100) == 0.2


@pytest.mark.parametrize("kw, message", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": "half"}, "batch_size"), ({"epochs": 0}, "epochs"),
    ({"lr": -1.0}, "lr"), ({"schedule": "zigzag"}, "schedule"), ({"bogus": 1}, "unknown training option"),
])
def test_bad_config_is_rejected(kw, message):
    with pytest.raises(DigitnetError, match=message):
        TrainConfig.from_kwargs(**kw)


def test_unlabelled_training_set_is_rejected(small):
    with pytest.raises(DigitnetError, match="no labels"):
        digitnet.fit(MLP(), digitnet.Dataset(small.train.images, None, "x"), epochs=1, progress=False)
