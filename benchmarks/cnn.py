"""The ``cnn`` preset: seconds per epoch and time to 99 % test accuracy, digitnet vs PyTorch.

The torch network is translated from the digitnet model's ``architecture()``
with its weights copied; both train with the same recipe (optimizer, learning
rate schedule evaluated by digitnet's own function every step, batch size),
the same float32 inputs and the same per-epoch permutations. Test accuracy is
measured after every epoch; evaluation is not counted in the training time.
"""

from __future__ import annotations

import time

import numpy as np

import digitnet

from . import torch_port
from .common import Context, median, skipped, torch_ready

RECIPE = dict(optimizer="adamw", lr=3e-3, weight_decay=1e-4, schedule="onecycle", batch_size=128)
TARGET = 0.99


def _build():
    try:
        from digitnet.nn import build
    except ImportError:
        return None
    return build


def cnn_case(ctx: Context) -> dict:
    build = _build()
    if build is None:
        return {"status": "not available", "reason": "digitnet.nn.build is missing (convolution layers not merged)"}
    from digitnet.train import TrainConfig, fit, lr_at
    model = build("cnn", seed=ctx.seed)
    epochs = ctx.cnn_epochs
    recipe = {**RECIPE, "epochs": epochs}
    res = {"architecture": model.architecture(), "recipe": recipe, "n_train": len(ctx.train),
           "n_test": len(ctx.test), "init_fingerprint": {"digitnet": torch_port.fingerprint(model.state_dict())}}
    torch = torch_ready(ctx)
    net = None
    if torch is not None:
        try:
            net = torch_port.to_torch(model)
        except torch_port.NotTranslatable as exc:
            res["torch"] = skipped(str(exc))
        else:
            res["init_fingerprint"]["torch"] = torch_port.fingerprint(
                torch_port.torch_state_in_digitnet_layout(net, model))
    else:
        res["torch"] = skipped("torch not installed (pip install '.[bench]')")

    # digitnet: the real training loop, test accuracy after each epoch (outside the timed loop)
    accs = []

    class TestAccuracy(digitnet.train.Callback):
        def on_epoch_end(self, m, epoch, logs):
            accs.append(float((m.predict(ctx.test.images) == ctx.test.labels).mean()))

    history = fit(model, ctx.train, None, val_size=0, seed=ctx.seed, progress=False, callbacks=[TestAccuracy()],
                  **recipe)
    res["digitnet"] = _summary([h["time"] for h in history], accs)

    if net is not None:
        cfg = TrainConfig.from_kwargs(**recipe, val_size=0, seed=ctx.seed, progress=False)
        res["torch"] = _torch_run(torch, net, model, ctx, cfg, lr_at)
        d, t = res["digitnet"], res["torch"]
        res["ratio_epoch_vs_torch"] = d["seconds_per_epoch"] / t["seconds_per_epoch"]
        if d["time_to_target"] is not None and t["time_to_target"] is not None:
            res["ratio_time_to_99_vs_torch"] = d["time_to_target"] / t["time_to_target"]
    return res


def _summary(times: list[float], accs: list[float]) -> dict:
    cum = np.cumsum(times)
    hit = next((i for i, a in enumerate(accs) if a >= TARGET), None)
    return {"epoch_seconds": [round(t, 3) for t in times], "test_accuracy": accs,
            "seconds_per_epoch": median(times), "time_to_target": float(cum[hit]) if hit is not None else None,
            "epochs_to_target": hit + 1 if hit is not None else None}


def _torch_run(torch, net, model, ctx: Context, cfg, lr_at) -> dict:
    F = torch.nn.functional
    X = torch.from_numpy(model.prepare(ctx.train.images))          # (N, 1, 28, 28) float32
    Y = torch.from_numpy(ctx.train.labels.astype(np.int64))
    Xt = torch.from_numpy(model.prepare(ctx.test.images))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    n, bs = len(Y), cfg.batch_size
    steps = -(-n // bs)
    total = steps * cfg.epochs
    rng = np.random.default_rng(cfg.seed)                           # the permutations fit() draws
    times, accs, step = [], [], 0
    for _ in range(cfg.epochs):
        net.train()
        t0 = time.perf_counter()
        order = torch.from_numpy(rng.permutation(n))
        for i in range(0, n, bs):
            for g in opt.param_groups:
                g["lr"] = _lr(lr_at, cfg, step, total, steps)
            idx = order[i:i + bs]
            loss = F.cross_entropy(net(X.index_select(0, idx)), Y.index_select(0, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        times.append(time.perf_counter() - t0)
        net.eval()
        with torch.inference_mode():
            pred = torch.cat([net(Xt[i:i + 2048]).argmax(1) for i in range(0, len(Xt), 2048)]).numpy()
        accs.append(float((pred == ctx.test.labels).mean()))
    return _summary(times, accs)


def _lr(lr_at, cfg, step, total, steps_per_epoch):
    try:
        return lr_at(cfg, step, total, steps_per_epoch)
    except TypeError:                                               # older lr_at(cfg, step, total)
        return lr_at(cfg, step, total)
