"""The ``cnn`` preset: seconds per epoch and time to 99 % test accuracy, digitnet vs PyTorch.

The torch network is translated from the digitnet model's ``architecture()``
with its weights copied; both train with the same recipe (optimizer, learning
rate schedule evaluated by digitnet's own function every step, batch size),
the same float32 inputs and the same per-epoch permutations. Test accuracy is
measured after every epoch; evaluation is not counted in the training time. The
two runs alternate epoch by epoch, so load changes on a shared machine hit both.
"""

from __future__ import annotations

import time

import numpy as np

import digitnet
from digitnet.nn.threads import resolve as resolve_threads
from digitnet.nn.threads import training_threads

from . import profile, torch_port
from .common import Context, median, ratio_spread, skipped, spread, torch_ready

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
        return {"status": "not available", "reason": "digitnet.nn.build is missing"}
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

    # digitnet trains through fit(); after each of its epochs a callback (not timed by fit) measures digitnet's
    # test accuracy and then runs torch's epoch of the same number, so load changes on a shared machine hit both.
    torch_run = None
    if net is not None:
        cfg = TrainConfig.from_kwargs(**recipe, val_size=0, seed=ctx.seed, progress=False)
        torch_run = _TorchRun(torch, net, model, ctx, cfg, lr_at)
    accs = []

    class Interleave(digitnet.train.Callback):
        def on_epoch_end(self, m, epoch, logs):
            accs.append(float((m.predict(ctx.test.images) == ctx.test.labels).mean()))
            if torch_run is not None:
                torch_run.epoch()

    history = fit(model, ctx.train, None, val_size=0, seed=ctx.seed, progress=False, callbacks=[Interleave()],
                  threads=ctx.fit_threads,
                  **recipe)
    res["digitnet"] = _summary([h["time"] for h in history], accs)
    res["digitnet"]["threads_used"] = {"layers": model.meta.get("layer_threads"),
                                       "blas": (model.meta.get("blas") or {}).get("threads")}
    with training_threads(resolve_threads(ctx.fit_threads, model)):      # the threads fit() trained with
        res["profile"] = profile.layer_times(model, ctx.train, batches=3 if ctx.tiny else 20,
                                             batch_size=recipe["batch_size"], seed=ctx.seed)
        gemms = profile.StepGemms(model, recipe["batch_size"], ctx.seed)
        gemms()                                                          # warm-up: work arrays, threads
        floor = median([gemms() for _ in range(3 if ctx.tiny else 20)])
        res["profile"]["gemm_only_seconds_per_batch"] = floor
        res["profile"]["gemm_only_gflops"] = round(gemms.flop / floor / 1e9, 1)
    res["profile"]["threads"] = res["digitnet"]["threads_used"]
    if torch_run is not None:
        res["torch"] = _summary(torch_run.times, torch_run.accs)
        d, t = res["digitnet"], res["torch"]
        res["ratio_epoch_vs_torch"] = d["seconds_per_epoch"] / t["seconds_per_epoch"]
        res["ratio_spread"] = {"epoch_vs_torch": ratio_spread(d["epoch_seconds"], t["epoch_seconds"])}
        if d["time_to_target"] is not None and t["time_to_target"] is not None:
            res["ratio_time_to_99_vs_torch"] = d["time_to_target"] / t["time_to_target"]
    return res


def _summary(times: list[float], accs: list[float]) -> dict:
    cum = np.cumsum(times)
    hit = next((i for i, a in enumerate(accs) if a >= TARGET), None)
    return {"epoch_seconds": [round(t, 3) for t in times], "epoch_spread": spread(times), "test_accuracy": accs,
            "seconds_per_epoch": median(times), "time_to_target": float(cum[hit]) if hit is not None else None,
            "epochs_to_target": hit + 1 if hit is not None else None}


class _TorchRun:
    """The torch side, one epoch per call: same inputs, permutations, optimizer and per-step learning rate."""

    def __init__(self, torch, net, model, ctx: Context, cfg, lr_at) -> None:
        self.torch, self.net, self.cfg, self.lr_at, self.threads = torch, net, cfg, lr_at, ctx.threads
        self.X = torch.from_numpy(model.prepare(ctx.train.images))        # (N, 1, 28, 28) float32
        self.Y = torch.from_numpy(ctx.train.labels.astype(np.int64))
        self.Xt, self.yt = torch.from_numpy(model.prepare(ctx.test.images)), ctx.test.labels
        self.opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                                     weight_decay=cfg.weight_decay)
        self.n, self.bs = len(self.Y), cfg.batch_size
        self.steps_per_epoch = -(-self.n // self.bs)
        self.total = self.steps_per_epoch * cfg.epochs
        self.rng = np.random.default_rng(cfg.seed)                        # the permutations fit() draws
        self.step, self.times, self.accs = 0, [], []

    def epoch(self) -> None:
        torch, net, opt, F = self.torch, self.net, self.opt, self.torch.nn.functional
        torch.set_num_threads(self.threads)      # runs inside digitnet's fit(): whatever that set, torch gets its own
        net.train()
        t0 = time.perf_counter()
        order = torch.from_numpy(self.rng.permutation(self.n))
        for i in range(0, self.n, self.bs):
            lr = _lr(self.lr_at, self.cfg, self.step, self.total, self.steps_per_epoch)
            for g in opt.param_groups:
                g["lr"] = lr
            idx = order[i:i + self.bs]
            loss = F.cross_entropy(net(self.X.index_select(0, idx)), self.Y.index_select(0, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.step += 1
        self.times.append(time.perf_counter() - t0)
        net.eval()
        with torch.inference_mode():
            pred = torch.cat([net(self.Xt[i:i + 2048]).argmax(1) for i in range(0, len(self.Xt), 2048)]).numpy()
        self.accs.append(float((pred == self.yt).mean()))


def _lr(lr_at, cfg, step, total, steps_per_epoch):
    try:
        return lr_at(cfg, step, total, steps_per_epoch)
    except TypeError:                                               # older lr_at(cfg, step, total)
        return lr_at(cfg, step, total)
