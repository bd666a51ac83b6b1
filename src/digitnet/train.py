"""fit(): the training loop, top to bottom.

Per epoch: reshuffle with the run's generator, walk the mini-batches
(uint8 images converted to float per batch), forward, fused softmax-CE
gradient, backward, optimizer step; then measure validation accuracy and
let callbacks see the epoch (they may stop training). ``batch_size="full"``
is the seed notebook's full-batch gradient descent: one step per epoch over
the whole training set.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .data import Dataset
from .errors import DigitnetError
from .metrics import accuracy, accuracy_and_loss  # noqa: F401
from .nn.model import Sequential
from .nn.optim import SGD

SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """Hyperparameters; the CLI flags, the API and the saved metadata use these names.

    The defaults are the recipe behind the shipped ``seed`` model.
    """

    epochs: int = 20
    batch_size: int | str = 128         # an int, or "full" for full-batch gradient descent
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"            # "constant" or "cosine" (decay to 0 over the run)
    seed: int = 0
    val_size: int = 10000               # held out of the training set; 0 disables validation
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size != "full":
            try:
                self.batch_size = int(self.batch_size)
            except (TypeError, ValueError):
                raise DigitnetError(f"batch_size must be a positive integer or 'full', got {self.batch_size!r}") from None
            if self.batch_size < 1:
                raise DigitnetError(f"batch_size must be a positive integer or 'full', got {self.batch_size}")
        if int(self.epochs) < 1:
            raise DigitnetError(f"epochs must be >= 1, got {self.epochs}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise DigitnetError(f"lr must be a positive number, got {self.lr}")
        if self.schedule not in SCHEDULES:
            raise DigitnetError(f"schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}")
        if self.val_size < 0:
            raise DigitnetError(f"val_size must be >= 0, got {self.val_size}")

    @classmethod
    def from_kwargs(cls, **kw) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        bad = set(kw) - names
        if bad:
            raise DigitnetError(f"unknown training option(s) {sorted(bad)}; known: {sorted(names)}")
        return cls(**kw)


def lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate for optimizer step ``step`` of ``total_steps``."""
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
    return cfg.lr


class Callback:
    """Hooks into fit(). ``on_epoch_end`` returning True stops training."""

    def on_train_begin(self, model, cfg) -> None: ...

    def on_epoch_end(self, model, epoch: int, logs: dict) -> bool | None: ...

    def on_train_end(self, model, history: list[dict]) -> None: ...


def fit(model: Sequential, train: Dataset, val: Dataset | None = None, config: TrainConfig | None = None,
        callbacks=(), **overrides) -> list[dict]:
    """Train ``model`` in place and return the per-epoch history.

    Parameters
    ----------
    model : Sequential
    train : Dataset
        Training images (uint8) and labels.
    val : Dataset, optional
        Validation set; when omitted, ``config.val_size`` examples are held
        out of ``train`` (seeded by ``config.seed``).
    config : TrainConfig, optional; keyword overrides are applied on top.

    Returns
    -------
    list of dict
        One entry per epoch: ``epoch, loss, train_acc, val_acc, val_loss, lr, time``.
        Also stored in ``model.meta["history"]`` with the config.
    """
    cfg = TrainConfig.from_kwargs(**{**(asdict(config) if config else {}), **overrides})
    if train.labels is None:
        raise DigitnetError(f"{train.name or 'training set'} has no labels: cannot train on it")
    if val is None and cfg.val_size:
        train, val = train.split(cfg.val_size, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    full = cfg.batch_size == "full" or cfg.batch_size >= len(train)
    steps_per_epoch = 1 if full else math.ceil(len(train) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    opt = SGD(model.params, model.grads, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
              weight_decay=cfg.weight_decay)
    # Full-batch GD reuses one converted array; mini-batches convert uint8 per batch.
    x_full = model.prepare(train.images) if full else None
    y_full = train.labels.astype(np.intp) if full else None

    history: list[dict] = list(model.meta.get("history", []))
    start_epoch = len(history)
    for cb in callbacks:
        cb.on_train_begin(model, cfg)
    bar = _progress(cfg, total_steps, start_epoch * steps_per_epoch)
    step = start_epoch * steps_per_epoch
    try:
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            loss_sum, correct, seen = 0.0, 0, 0
            batches = [(x_full, y_full)] if full else train.batches(cfg.batch_size, rng, reuse=True)
            for xb, yb in batches:
                opt.lr = lr_at(cfg, step, total_steps)
                if not full:
                    xb, yb = model.prepare(xb, reuse=True), yb.astype(np.intp)  # into reused arrays
                with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
                    loss, pred = model.train_step(xb, yb)
                if not math.isfinite(loss):
                    raise DigitnetError(f"training diverged (loss {loss}) at epoch {epoch}; try a smaller --lr")
                opt.step()
                n = len(yb)
                loss_sum += loss * n
                correct += np.count_nonzero(pred == yb)
                seen += n
                step += 1
                if bar is not None:
                    bar.update(1)
            elapsed = time.perf_counter() - t0
            logs = {"epoch": epoch, "loss": loss_sum / seen, "train_acc": correct / seen,
                    **accuracy_and_loss(model, val, prefix="val_"),
                    "lr": opt.lr, "time": elapsed}
            history.append(logs)
            model.meta["history"] = history
            if bar is not None:
                _epoch_line(bar, logs, cfg.epochs)
            stop = [cb.on_epoch_end(model, epoch, logs) for cb in callbacks]
            if any(stop):
                break
    finally:
        if bar is not None:
            bar.close()
    model.meta["train_config"] = {k: v for k, v in asdict(cfg).items() if k != "progress"}
    model.meta["seed"] = cfg.seed
    for cb in callbacks:
        cb.on_train_end(model, history)
    return history


def _progress(cfg: TrainConfig, total: int, initial: int):
    if not cfg.progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, unit="batch", file=sys.stderr, leave=False,
                dynamic_ncols=True, mininterval=0.25)


def _epoch_line(bar, logs: dict, epochs: int) -> None:
    val = f"  val acc {logs['val_acc'] * 100:6.2f} %" if logs["val_acc"] is not None else ""
    bar.write(f"epoch {logs['epoch']:>3}/{epochs}  loss {logs['loss']:.4f}  "
              f"train acc {logs['train_acc'] * 100:6.2f} %{val}  ({logs['time']:.2f} s)", file=sys.stderr)
