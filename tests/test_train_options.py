"""fit() options beyond plain SGD, and the train/evaluate/predict CLI for architectures and ensembles."""

import json

import numpy as np
import pytest

import digitnet
from digitnet import DigitnetError, TrainConfig
from digitnet.nn import build
from digitnet.train import Callback
from helpers import run, write_npz


@pytest.mark.parametrize("opts", [
    {"optimizer": "adam", "lr": 3e-3, "schedule": "onecycle"},
    {"optimizer": "adamw", "lr": 3e-3, "schedule": "step", "step_epochs": 1, "clip_norm": 1.0},
    {"optimizer": "sgd", "nesterov": True, "warmup_epochs": 1, "label_smoothing": 0.1},
])
def test_optimizers_and_schedules_learn(small, opts):
    model = build("conv4k3-pool-bn-relu-fc10", seed=0)
    h = digitnet.fit(model, small.train, epochs=2, batch_size=64, val_size=500, progress=False, **opts)
    assert h[-1]["val_acc"] > 0.7          # chance is 0.1
    assert model.meta["train_config"]["optimizer"] == opts["optimizer"]


def test_early_stopping_restores_the_best_weights(small):
    seen = {}

    class Record(Callback):
        def on_epoch_end(self, model, epoch, logs):
            seen[epoch] = {k: v.copy() for k, v in model.state_dict().items()}

    model = build("fc16-relu-fc10", seed=0)
    # a learning rate far too high makes validation accuracy fluctuate, so the best epoch is not the last
    h = digitnet.fit(model, small.train, epochs=8, lr=3.0, schedule="constant", patience=2, val_size=500, progress=False,
                  callbacks=[Record()])
    best = max(range(len(h)), key=lambda i: (h[i]["val_acc"], -i)) + 1
    assert len(h) == min(8, best + 2)
    assert all(np.array_equal(model.state_dict()[k], seen[best][k]) for k in seen[best])


def test_checkpoint_of_a_run_is_a_loadable_model(tmp_path, small):
    model = build("fc16-relu-fc10", seed=0)
    digitnet.fit(model, small.train, epochs=2, val_size=500, progress=False, checkpoint=str(tmp_path / "c.ckpt"))
    again = digitnet.load(tmp_path / "c.ckpt")
    assert all(np.array_equal(again.params[k], model.params[k]) for k in model.params)


@pytest.mark.parametrize("kw,message", [
    ({"optimizer": "rmsprop"}, "optimizer"), ({"schedule": "zigzag"}, "schedule"),
    ({"augment": "mixup"}, "augment"), ({"betas": (0.9, 1.5)}, "betas"), ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"clip_norm": -1}, "clip_norm"), ({"patience": -1}, "patience"),
    ({"threads": 0}, "threads"), ({"threads": 1.5}, "threads"), ({"threads": True}, "threads"),
])
def test_bad_options(kw, message):
    with pytest.raises(DigitnetError, match=message):
        TrainConfig(**kw)


def test_threads_limit_blas_during_training_only_and_are_recorded(small):
    from digitnet.nn.threads import blas_info
    before = blas_info()
    assert before is not None and before["threads"] >= 1
    seen = []

    class Threads(Callback):
        def on_epoch_end(self, model, epoch, logs):
            seen.append(blas_info()["threads"])

    model = build("fc16-relu-fc10", seed=0)
    digitnet.fit(model, small.train, epochs=2, val_size=500, progress=False, threads=1, callbacks=[Threads()])
    assert seen == [1, 1]
    assert model.meta["blas"]["threads"] == 1 and model.meta["train_config"]["threads"] == 1
    assert blas_info()["threads"] == before["threads"]          # restored afterwards
    model = build("fc16-relu-fc10", seed=0)
    digitnet.fit(model, small.train, epochs=1, val_size=500, progress=False, threads=None)   # left as the library has it
    assert model.meta["blas"]["threads"] == before["threads"] and model.meta["train_config"]["threads"] is None


@pytest.mark.parametrize("arch,env,batch,expect", [
    ("fc16-relu-fc10", {}, 128, 1),                                     # an MLP: one thread, BLAS included
    ("fc16-relu-fc10", {}, 50000, None),                                # full batch: the BLAS's threads
    ("conv4k3-pool-bn-relu-fc10", {}, 128, "cores"),                    # a convnet: one own thread per core
    ("conv4k3-pool-bn-relu-fc10", {}, 50000, "cores"),
    ("conv4k3-pool-bn-relu-fc10", {"OMP_NUM_THREADS": "1"}, 128, None),  # the user's setting is respected
])
def test_auto_threads(monkeypatch, arch, env, batch, expect):
    from digitnet.nn import threads
    for v in threads.THREAD_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    model = build(arch, seed=0)
    want = threads.available_cores() if expect == "cores" else expect
    assert threads.resolve("auto", model, batch) == want
    assert threads.resolve(3, model, batch) == 3 and threads.resolve(None, model) is None
    assert TrainConfig().threads == "auto"


@pytest.mark.parametrize("threads", [1, 2])
def test_same_seed_and_threads_give_the_same_weights(small, threads):
    from digitnet.nn.threads import threads as current_threads
    a, b = (build("conv4k3-pool-bn-relu-fc32-relu-fc10", seed=0) for _ in range(2))
    for m in (a, b):
        digitnet.fit(m, small.train, epochs=1, batch_size=64, val_size=500, progress=False, threads=threads)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert a.meta["layer_threads"] == threads and a.meta["blas"]["threads"] == 1
    assert current_threads() == 1                                   # only for the length of the run
    one = build("conv4k3-pool-bn-relu-fc32-relu-fc10", seed=0)
    digitnet.fit(one, small.train, epochs=1, batch_size=64, val_size=500, progress=False, threads=1)
    for k in a.params:                                              # split sums differ only in rounding
        np.testing.assert_allclose(a.params[k], one.params[k], rtol=1e-3, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, mnist):
    return write_npz(tmp_path_factory.mktemp("data"), mnist, 1500, 300)



def test_cli_trains_a_convnet_spec_and_records_it(tmp_path, capsys, tiny_data):
    out = tmp_path / "c.safetensors"
    code, stdout, err = run(capsys, "train", "--data", tiny_data, "--arch", "conv4k5-pool-relu-fc10",
                            "--optimizer", "adam", "--epochs", "1", "--val-size", "300", "--quiet", "-o", out)
    assert code == 0, err
    meta = digitnet.info(out)
    assert meta["arch"] == "conv4k5-pool-relu-fc10" and meta["input_shape"] == [1, 28, 28]
    assert meta["train_config"]["optimizer"] == "adam" and meta["train_config"]["lr"] == 1e-3
    assert "--arch conv4k5-pool-relu-fc10" in meta["command"]
    assert not (tmp_path / "c.safetensors.ckpt").exists()


def test_cli_ensemble_and_averaged_evaluation(tmp_path, capsys, tiny_data):
    out = tmp_path / "e.safetensors"
    code, stdout, err = run(capsys, "train", "--data", tiny_data, "--hidden", "16", "--epochs", "1",
                            "--ensemble", "2", "--seed", "3", "--val-size", "300", "--quiet", "-o", out)
    assert code == 0, err
    files = [tmp_path / "e.0.safetensors", tmp_path / "e.1.safetensors"]
    assert [digitnet.info(f)["seed"] for f in files] == [3, 4]
    assert "ensemble of 2: test accuracy" in stdout
    code, stdout, err = run(capsys, "evaluate", "--data", tiny_data, "--json", "--model", *files)
    assert code == 0, err
    result = json.loads(stdout)
    models = [digitnet.load(f) for f in files]
    data = digitnet.load_mnist(tiny_data).test
    expect = (np.mean([m.predict_proba(data.images) for m in models], axis=0).argmax(1) == data.labels).mean()
    assert result["accuracy"] == pytest.approx(expect)
    img = tmp_path / "d.png"
    from PIL import Image
    Image.fromarray(data.images[0]).save(img)
    code, stdout, err = run(capsys, "predict", "--json", "--model", files[0], "--model", files[1], img)
    assert code == 0 and json.loads(stdout)["label"] in range(10)


@pytest.mark.parametrize("argv,message", [
    (["train", "--arch", "conv8k5-poool-fc10"], "'poool'"),
    (["train", "--arch", "mlp", "--hidden", "64"], "either --arch or --hidden"),
    (["train", "--optimizer", "rmsprop"], "invalid choice"),
    (["train", "--betas", "0.9"], "two numbers"),
    (["train", "--augment", "mixup"], "invalid choice"),
    (["evaluate", "--model", "seed", "/nonexistent.safetensors"], "cannot read model"),
])
def test_cli_errors(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1


def test_cli_resume_rejects_other_data(tmp_path, capsys, tiny_data, small):
    model = build("fc8-relu-fc10")
    model.meta["dataset_sha256"] = "0" * 64
    digitnet.fit(model, small.train, epochs=1, val_size=0, progress=False, checkpoint=str(tmp_path / "x.ckpt"))
    code, _, err = run(capsys, "train", "--data", tiny_data, "--resume", tmp_path / "x.ckpt")
    assert code == 2 and "other data" in err


def test_resuming_a_run_that_stopped_early_does_not_train_on(tmp_path, small):
    kw = dict(epochs=8, lr=3.0, schedule="constant", patience=1, val_size=500, progress=False)
    done = build("fc16-relu-fc10", seed=0)
    h = digitnet.fit(done, small.train, checkpoint=str(tmp_path / "s.ckpt"), **kw)
    assert len(h) < 8                               # it did stop early
    again = digitnet.checkpoint.load_model(tmp_path / "s.ckpt")
    h2 = digitnet.fit(again, small.train, resume=str(tmp_path / "s.ckpt"), progress=False)
    assert h2 == h and all(np.array_equal(again.state_dict()[k], done.state_dict()[k]) for k in done.state_dict())


def test_resume_keeps_the_checkpoints_threads_unless_given(tmp_path, small):
    ckpt = str(tmp_path / "t.ckpt")
    digitnet.fit(build("fc16-relu-fc10", seed=0), small.train, epochs=1, val_size=500, progress=False, threads=1,
                                        checkpoint=ckpt)
    kept = build("fc16-relu-fc10", seed=0)
    digitnet.fit(kept, small.train, resume=ckpt, epochs=2, progress=False)
    assert kept.meta["train_config"]["threads"] == 1 and kept.meta["blas"]["threads"] == 1
    changed = build("fc16-relu-fc10", seed=0)
    digitnet.fit(changed, small.train, resume=ckpt, epochs=2, progress=False, threads=2)
    assert changed.meta["train_config"]["threads"] == 2


def test_cli_threads_are_saved_and_a_resume_keeps_them_unless_given(tmp_path, capsys, tiny_data):
    ckpt, out = tmp_path / "r.ckpt", tmp_path / "r.safetensors"
    code, _, err = run(capsys, "train", "--data", tiny_data, "--hidden", "16", "--epochs", "1", "--val-size", "300",
                       "--threads", "1", "--checkpoint", ckpt, "--quiet", "-o", out)
    assert code == 0, err
    assert digitnet.info(out)["train_config"]["threads"] == 1
    code, _, err = run(capsys, "train", "--data", tiny_data, "--resume", ckpt, "--epochs", "2", "--quiet", "-o", out)
    assert code == 0, err
    assert digitnet.info(out)["train_config"]["threads"] == 1             # the checkpoint's setting
    code, _, err = run(capsys, "train", "--data", tiny_data, "--resume", ckpt, "--epochs", "3", "--threads", "blas",
                       "--quiet", "-o", out)
    assert code == 0, err
    assert digitnet.info(out)["train_config"]["threads"] is None          # given again: it wins


def test_own_threads_limit_only_the_blas(small):
    """fit(threads=N) holds the BLAS at one thread but leaves an OpenMP runtime (PyTorch's) as it was."""
    torch = pytest.importorskip("torch", reason="torch not installed (an optional reference)")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []

    class Record(Callback):
        def on_epoch_end(self, model, epoch, logs):
            seen.append(torch.get_num_threads())
    try:
        digitnet.fit(build("conv4k3-pool-bn-relu-fc10", seed=0), small.train, epochs=1, val_size=500, progress=False,
                                                         threads=2, callbacks=[Record()])
    finally:
        torch.set_num_threads(before)
    assert seen == [2]


def test_inference_runs_on_one_blas_thread_unless_the_user_chose(monkeypatch):
    from digitnet.nn import threads
    from digitnet.nn.threads import blas_info
    if blas_info() is None:
        pytest.skip("no BLAS found by threadpoolctl")
    for v in threads.THREAD_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    before = blas_info()["threads"]
    with threads.inference_threads():
        assert blas_info()["threads"] == 1
    assert blas_info()["threads"] == before
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", str(before))
    with threads.inference_threads():
        assert blas_info()["threads"] == before


@pytest.mark.parametrize("given,lr,epochs", [
    ({}, 0.1, 20), ({"optimizer": "adam"}, 1e-3, 20), ({"optimizer": "adamw"}, 1e-3, 20),
    ({"batch_size": "full"}, 0.5, 300), ({"optimizer": "adam", "lr": 0.01, "epochs": 3}, 0.01, 3),
])
def test_config_fills_in_defaults_that_depend_on_other_options(given, lr, epochs):
    cfg = TrainConfig(**given)
    assert (cfg.lr, cfg.epochs) == (lr, epochs)


def test_fit_and_the_cli_resolve_the_same_adam_defaults(tmp_path, capsys, tiny_data, small):
    model = build("fc16-relu-fc10", seed=0)
    digitnet.fit(model, small.train.subset(slice(0, 300)), epochs=1, optimizer="adam", val_size=0, progress=False)
    out = tmp_path / "a.safetensors"
    code, _, err = run(capsys, "train", "--data", tiny_data, "--hidden", "16", "--optimizer", "adam", "--epochs", "1",
                       "--val-size", "0", "--quiet", "-o", out)
    assert code == 0, err
    assert digitnet.info(out)["train_config"]["lr"] == model.meta["train_config"]["lr"] == 1e-3
