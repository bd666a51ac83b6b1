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
from dataclasses import asdict, dataclass, fields

import numpy as np

from . import checkpoint
from .augment import KINDS as AUGMENTS
from .augment import augment
from .data import Dataset
from .errors import DigitnetError
from .metrics import accuracy, accuracy_and_loss  # noqa: F401
from .nn import parallel
from .nn.losses import SoftmaxCrossEntropy
from .nn.model import Sequential
from .nn.optim import SGD, Adam, AdamW, clip_grad_norm
from .nn.schedules import SCHEDULES, lr_at_step
from .threads import blas_info, training_threads
from .threads import resolve as resolve_threads

OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass
class TrainConfig:
    """Hyperparameters; the CLI flags, the API and the saved metadata use these names.

    The defaults are the recipe behind the shipped ``seed`` model.
    """

    epochs: int = 20
    batch_size: int | str = 128         # an int, or "full" for full-batch gradient descent
    lr: float = 0.1                     # peak learning rate
    optimizer: str = "sgd"              # "sgd", "adam" or "adamw"
    momentum: float = 0.9               # SGD momentum
    nesterov: bool = False
    betas: tuple = (0.9, 0.999)         # Adam/AdamW
    weight_decay: float = 5e-4          # L2 (SGD, Adam) or decoupled decay (AdamW)
    schedule: str = "cosine"            # "constant", "cosine", "step" or "onecycle"
    warmup_epochs: float = 0.0          # linear warm-up before constant/cosine/step
    step_epochs: int = 10               # "step": multiply the lr by step_gamma every step_epochs
    step_gamma: float = 0.1
    clip_norm: float = 0.0              # clip the global gradient norm to this (0: off)
    label_smoothing: float = 0.0
    augment: str = "none"               # "none", "shift", "affine" or "elastic"
    patience: int = 0                   # early stopping: epochs without a better val acc (0: off)
    seed: int = 0
    threads: int | str | None = "auto"  # N: digitnet's threads, BLAS on one; None: BLAS as configured; see threads.py
    val_size: int = 10000               # held out of the training set; 0 disables validation
    checkpoint: str | None = None       # file rewritten (atomically) after every epoch
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
        if self.optimizer not in OPTIMIZERS:
            raise DigitnetError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise DigitnetError(f"schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}")
        if self.augment not in AUGMENTS:
            raise DigitnetError(f"augment must be one of {', '.join(AUGMENTS)}; got {self.augment!r}")
        self.betas = tuple(float(b) for b in self.betas)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise DigitnetError(f"betas must be two numbers in [0, 1), got {self.betas}")
        for name in ("warmup_epochs", "clip_norm", "weight_decay", "patience", "val_size"):
            if getattr(self, name) < 0:
                raise DigitnetError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.threads is not None and self.threads != "auto":
            if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
                raise DigitnetError(f"threads must be a positive integer, 'auto' or None, got {self.threads!r}")
        if not 0 <= self.label_smoothing < 1:
            raise DigitnetError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.step_epochs < 1 or not 0 < self.step_gamma <= 1:
            raise DigitnetError(f"step schedule needs step_epochs >= 1 and 0 < step_gamma <= 1, "
                                f"got {self.step_epochs}, {self.step_gamma}")

    @classmethod
    def from_kwargs(cls, **kw) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        bad = set(kw) - names
        if bad:
            raise DigitnetError(f"unknown training option(s) {sorted(bad)}; known: {sorted(names)}")
        return cls(**kw)

    def saved(self) -> dict:
        """The hyperparameters as stored in model metadata (no run plumbing)."""
        return {k: v for k, v in asdict(self).items() if k not in ("progress", "checkpoint")}


def lr_at(cfg: TrainConfig, step: int, total_steps: int, steps_per_epoch: int = 1) -> float:
    """Learning rate for optimizer step ``step`` of ``total_steps``."""
    return lr_at_step(cfg.schedule, cfg.lr, step, total_steps,
                      warmup=round(cfg.warmup_epochs * steps_per_epoch),
                      step_size=cfg.step_epochs * steps_per_epoch, gamma=cfg.step_gamma)


def make_optimizer(model: Sequential, cfg: TrainConfig):
    """The optimizer ``cfg`` names, over all of ``model``'s parameters."""
    if cfg.optimizer == "sgd":
        return SGD(model.params, model.grads, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                   weight_decay=cfg.weight_decay)
    cls = Adam if cfg.optimizer == "adam" else AdamW
    return cls(model.params, model.grads, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


class Callback:
    """Hooks into fit(). ``on_epoch_end`` returning True stops training."""

    def on_train_begin(self, model, cfg) -> None: ...

    def on_epoch_end(self, model, epoch: int, logs: dict) -> bool | None: ...

    def on_train_end(self, model, history: list[dict]) -> None: ...


def fit(model: Sequential, train: Dataset, val: Dataset | None = None, config: TrainConfig | None = None,
        callbacks=(), resume: str | None = None, **overrides) -> list[dict]:
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
    resume : path, optional
        A checkpoint written by an earlier run (``config.checkpoint``): its
        weights, optimizer state, random-generator state, history and
        configuration are restored, and training continues exactly where it
        stopped (the ``config`` given here is ignored except ``epochs``,
        ``checkpoint`` and ``progress``; ``threads`` given as a keyword
        overrides the checkpoint's).

    Returns
    -------
    list of dict
        One entry per epoch: ``epoch, loss, train_acc, val_acc, val_loss, lr, time``.
        Also stored in ``model.meta["history"]`` with the config.
    """
    cfg = TrainConfig.from_kwargs(**{**(asdict(config) if config else {}), **overrides})
    state = None
    if resume is not None:
        state = checkpoint.read(resume)
        cfg = TrainConfig.from_kwargs(**{**state["config"], "checkpoint": cfg.checkpoint, "progress": cfg.progress,
                                         **{k: overrides[k] for k in ("epochs", "threads") if k in overrides}})
    if train.labels is None:
        raise DigitnetError(f"{train.name or 'training set'} has no labels: cannot train on it")
    _check_classes(model, train)
    if val is None and cfg.val_size:
        train, val = train.split(cfg.val_size, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    for layer in model.layers:              # Dropout draws its masks from the run's generator
        if hasattr(layer, "rng"):
            layer.rng = rng
    model.loss = SoftmaxCrossEntropy(cfg.label_smoothing)
    full = cfg.batch_size == "full" or cfg.batch_size >= len(train)
    steps_per_epoch = 1 if full else math.ceil(len(train) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    opt = make_optimizer(model, cfg)
    # Full-batch GD reuses one converted array; mini-batches convert uint8 per batch.
    x_full = model.prepare(train.images) if full and cfg.augment == "none" else None
    y_full = train.labels.astype(np.intp) if full else None

    history: list[dict] = list(model.meta.get("history", []))
    best = {"val_acc": -1.0, "epoch": 0, "weights": None}
    if state is not None:
        history = checkpoint.restore(state, model, opt, rng, best)
    start_epoch = len(history)
    for cb in callbacks:
        cb.on_train_begin(model, cfg)
    bar = _progress(cfg, total_steps, start_epoch * steps_per_epoch)
    step = start_epoch * steps_per_epoch
    with training_threads(resolve_threads(cfg.threads, model)):
        # what trained it: the thread counts can change float32's last bits
        model.meta["blas"], model.meta["layer_threads"] = blas_info(), parallel.threads()
        try:
            last_epoch = start_epoch if best.get("stopped") else cfg.epochs    # a resumed run that had stopped early
            for epoch in range(start_epoch + 1, last_epoch + 1):
                t0 = time.perf_counter()
                loss_sum, correct, seen = 0.0, 0, 0
                batches = [(train.images, y_full)] if full else train.batches(cfg.batch_size, rng, reuse=True)
                for xb, yb in batches:
                    opt.lr = lr_at(cfg, step, total_steps, steps_per_epoch)
                    if x_full is not None:
                        xb = x_full
                    else:
                        if cfg.augment != "none":
                            xb = augment(xb, rng, cfg.augment)      # (B, 28, 28) float32 in [0, 1]
                        xb, yb = model.prepare(xb, reuse=True), yb.astype(np.intp)  # into reused arrays
                    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
                        loss, pred = model.train_step(xb, yb)
                    if not math.isfinite(loss):
                        raise DigitnetError(f"training diverged (loss {loss}) at epoch {epoch}; try a smaller --lr")
                    if cfg.clip_norm:
                        clip_grad_norm(opt.grads, cfg.clip_norm)
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
                stop = best["stopped"] = _early_stopping(cfg, model, logs, best)
                if cfg.checkpoint:
                    checkpoint.write(cfg.checkpoint, model, opt, rng, cfg, history, best)
                stop = [cb.on_epoch_end(model, epoch, logs) for cb in callbacks] + [stop]
                if any(stop):
                    break
        finally:
            if bar is not None:
                bar.close()
    if best["weights"] is not None and best["epoch"] != len(history):
        model.load_state_dict(best["weights"])      # early stopping: keep the best epoch's weights
        model.meta["best_epoch"] = best["epoch"]
    model.meta["train_config"] = cfg.saved()
    model.meta["seed"] = cfg.seed
    for cb in callbacks:
        cb.on_train_end(model, history)
    return history


def _check_classes(model: Sequential, train: Dataset) -> None:
    """The labels must index the model's outputs; a dataset's class names become the model's."""
    top = int(train.labels.max()) if len(train.labels) else 0
    if top >= model.n_classes:
        raise DigitnetError(f"{train.name or 'training set'} has label {top} but the model has only "
                            f"{model.n_classes} outputs; build it with n_classes >= {top + 1}")
    if train.classes is not None:
        if len(train.classes) != model.n_classes:
            raise DigitnetError(f"{train.name or 'training set'} has {len(train.classes)} classes but the model "
                                f"has {model.n_classes} outputs")
        model.classes = train.classes


def _early_stopping(cfg: TrainConfig, model: Sequential, logs: dict, best: dict) -> bool:
    """Track the best validation accuracy; True when ``patience`` epochs brought nothing better."""
    if not cfg.patience or logs["val_acc"] is None:
        return False
    if logs["val_acc"] > best["val_acc"]:
        best.update(val_acc=logs["val_acc"], epoch=logs["epoch"],
                    weights={k: v.copy() for k, v in model.state_dict().items()})
    return logs["epoch"] - best["epoch"] >= cfg.patience


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
