"""fit(): the training loop, top to bottom, and TrainConfig, its hyperparameters.

Per epoch: reshuffle with the run's generator, walk the mini-batches
(uint8 images converted to float per batch), forward, fused softmax-CE
gradient, backward, optimizer step; then measure validation accuracy and
let the callbacks see the epoch (they may stop training). Early stopping,
checkpoints and the progress bar are callbacks (:mod:`digitnet.callbacks`).
``batch_size="full"`` is the seed notebook's full-batch gradient descent:
one batch of the whole training set, one step per epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from . import checkpoint
from .augment import KINDS as AUGMENTS
from .augment import augment, parse_kinds
from .callbacks import Callback, Checkpoint, EarlyStopping, ProgressBar
from .data import Dataset
from .errors import DigitnetError
from .metrics import accuracy_and_loss
from .nn import threads
from .nn.losses import SoftmaxCrossEntropy
from .nn.model import Sequential
from .nn.optim import SGD, Adam, AdamW, clip_grad_norm
from .nn.schedules import SCHEDULES, lr_at_step

__all__ = ["TrainConfig", "fit", "lr_at", "make_optimizer", "Callback", "AUGMENTS", "OPTIMIZERS", "SCHEDULES"]

OPTIMIZERS = ("sgd", "adam", "adamw")
# Defaults that depend on other options, resolved once by TrainConfig (the CLI leaves them to it).
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3}
FULL_BATCH_LR, FULL_BATCH_EPOCHS = 0.5, 300


@dataclass
class TrainConfig:
    """Hyperparameters; the CLI flags, the API and the saved metadata use these names.

    The defaults are the recipe behind the shipped ``seed`` model. ``lr`` and
    ``epochs`` left as None are filled in from the other options: ``lr`` 0.1
    for SGD and 1e-3 for Adam/AdamW; full-batch runs 300 epochs at lr 0.5.
    """

    epochs: int | None = None  # default 20; full-batch 300
    batch_size: int | str = 128  # an int, or "full" for full-batch gradient descent
    lr: float | None = None  # peak learning rate; default by optimizer (DEFAULT_LR), full-batch 0.5
    optimizer: str = "sgd"  # "sgd", "adam" or "adamw"
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = False
    betas: tuple = (0.9, 0.999)  # Adam/AdamW
    weight_decay: float = 5e-4  # L2 (SGD, Adam) or decoupled decay (AdamW)
    schedule: str = "cosine"  # "constant", "cosine", "step" or "onecycle"
    warmup_epochs: float = 0.0  # linear warm-up before constant/cosine/step
    step_epochs: int = 10  # "step": multiply the lr by step_gamma every step_epochs
    step_gamma: float = 0.1
    clip_norm: float = 0.0  # clip the global gradient norm to this (0: off)
    label_smoothing: float = 0.0
    augment: str = "none"  # "none", "shift", "affine", "elastic", "real", or real-world kinds: augment.py
    negatives: float = 0.0  # fraction of each batch that is generated non-digits (class 10); 0: none
    patience: int = 0  # early stopping: epochs without a better val acc (0: off)
    seed: int = 0
    threads: int | str | None = (
        "auto"  # N: digitnet's threads, BLAS on one; None: BLAS as configured; see nn/threads.py
    )
    val_size: int = 10000  # held out of the training set; 0 disables validation
    checkpoint: str | None = None  # file rewritten (atomically) after every epoch
    progress: bool = True

    def __post_init__(self) -> None:
        """Fill in the defaults that depend on other options, then check every value."""
        full = self.batch_size == "full"
        if self.lr is None:
            self.lr = FULL_BATCH_LR if full else DEFAULT_LR.get(self.optimizer, DEFAULT_LR["sgd"])
        if self.epochs is None:
            self.epochs = FULL_BATCH_EPOCHS if full else 20
        if self.batch_size != "full":
            try:
                self.batch_size = int(self.batch_size)
            except (TypeError, ValueError):
                raise DigitnetError(
                    f"batch_size must be a positive integer or 'full', got {self.batch_size!r}"
                ) from None
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
        parse_kinds(self.augment)
        if not 0 <= self.negatives < 1:
            raise DigitnetError(f"negatives must be a fraction in [0, 1), got {self.negatives}")
        self.betas = tuple(float(b) for b in self.betas)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise DigitnetError(f"betas must be two numbers in [0, 1), got {self.betas}")
        for name in ("warmup_epochs", "clip_norm", "weight_decay", "patience", "val_size"):
            if getattr(self, name) < 0:
                raise DigitnetError(f"{name} must be >= 0, got {getattr(self, name)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise DigitnetError(f"seed must be a non-negative integer, got {self.seed!r}")
        t = self.threads
        if t is not None and t != "auto" and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
            raise DigitnetError(f"threads must be a positive integer, 'auto' or None, got {t!r}")
        if not 0 <= self.label_smoothing < 1:
            raise DigitnetError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.step_epochs < 1 or not 0 < self.step_gamma <= 1:
            raise DigitnetError(
                f"step schedule needs step_epochs >= 1 and 0 < step_gamma <= 1, "
                f"got {self.step_epochs}, {self.step_gamma}"
            )

    @classmethod
    def from_kwargs(cls, **kw) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        bad = set(kw) - names
        if bad:
            raise DigitnetError(f"unknown training option(s) {sorted(bad)}; known: {sorted(names)}")
        return cls(**kw)

    def saved(self) -> dict:
        """The hyperparameters as stored in model metadata (no run plumbing)."""
        return {k: v for k, v in asdict(self).items() if k not in ("progress", "checkpoint")}


NEGATIVE_LABEL = 10  # the "not a digit" output of a model trained with negatives
NEGATIVE_POOL = 20000  # generated once per run; every draw is augmented afresh


def negative_pool(model: Sequential, train: Dataset, cfg: TrainConfig) -> np.ndarray | None:
    """The run's generated non-digits (uint8, (N, 28, 28)), or None without ``negatives``.

    Seeded by the run's seed; the "several digits" family uses the training digits only.
    """
    if not cfg.negatives:
        return None
    if model.output_shape != (NEGATIVE_LABEL + 1,):
        raise DigitnetError(
            f"training with negatives needs a network with {NEGATIVE_LABEL + 1} outputs "
            f"(the last one is 'not a digit', e.g. ...-fc11); this one has {model.output_shape}"
        )
    from . import negatives

    return negatives.generate(min(NEGATIVE_POOL, len(train)), seed=cfg.seed, digits=train.images)


def lr_at(cfg: TrainConfig, step: int, total_steps: int, steps_per_epoch: int = 1) -> float:
    """Learning rate for optimizer step ``step`` of ``total_steps``."""
    assert cfg.lr is not None  # filled in by TrainConfig
    return lr_at_step(
        cfg.schedule,
        cfg.lr,
        step,
        total_steps,
        warmup=round(cfg.warmup_epochs * steps_per_epoch),
        step_size=cfg.step_epochs * steps_per_epoch,
        gamma=cfg.step_gamma,
    )


def make_optimizer(model: Sequential, cfg: TrainConfig) -> SGD | Adam:
    """The optimizer ``cfg`` names, over all of ``model``'s parameters (its flat arrays)."""
    assert cfg.lr is not None  # filled in by TrainConfig
    if cfg.optimizer == "sgd":
        return SGD(
            model.flat_params,
            model.flat_grads,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    cls = Adam if cfg.optimizer == "adam" else AdamW
    return cls(model.flat_params, model.flat_grads, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def fit(
    model: Sequential,
    train: Dataset,
    val: Dataset | None = None,
    config: TrainConfig | None = None,
    callbacks: Sequence[Callback] = (),
    resume: str | None = None,
    **overrides,
) -> list[dict]:
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
    callbacks : list of Callback
        Called after fit's own (early stopping, checkpoint, progress bar);
        ``on_epoch_end`` returning True stops training.
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
    cfg, state = _config(config, overrides, resume)
    if train.labels is None:
        raise DigitnetError(f"{train.name or 'training set'} has no labels: cannot train on it")
    _check_classes(model, train)
    if val is None and cfg.val_size:
        train, val = train.split(cfg.val_size, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    for layer in model.layers:  # Dropout draws its masks from the run's generator
        if hasattr(layer, "rng"):
            layer.rng = rng
    model.loss = SoftmaxCrossEntropy(cfg.label_smoothing)
    opt = make_optimizer(model, cfg)
    batch_size = len(train) if cfg.batch_size == "full" else min(int(cfg.batch_size), len(train))
    steps_per_epoch = math.ceil(len(train) / batch_size)
    assert cfg.epochs is not None  # filled in by TrainConfig
    total_steps = cfg.epochs * steps_per_epoch
    early = EarlyStopping(cfg.patience) if cfg.patience else None
    history = checkpoint.restore(state, model, opt, rng, early) if state else list(model.meta.get("history", []))
    model.meta["history"] = history
    callbacks = _builtin_callbacks(cfg, opt, rng, early, total_steps, steps_per_epoch) + list(callbacks)
    start = len(history)
    end = start if early and early.stopped else cfg.epochs  # a resumed run that had stopped early ends now
    step = start * steps_per_epoch
    pool = negative_pool(model, train, cfg)
    whole = _whole_batch(model, train, batch_size, cfg.augment, pool)  # converted before any epoch's clock starts
    for cb in callbacks:
        cb.on_train_begin(model, cfg)
    with threads.training_threads(threads.resolve(cfg.threads, model, batch_size)):
        # what trained it: the thread counts can change float32's last bits
        model.meta["blas"], model.meta["layer_threads"] = threads.blas_info(), threads.threads()
        try:
            for epoch in range(start + 1, end + 1):
                t0 = time.perf_counter()
                loss_sum, correct, seen = 0.0, 0, 0
                for xb, yb in _batches(model, train, batch_size, cfg.augment, rng, whole, pool, cfg.negatives):
                    opt.lr = lr_at(cfg, step, total_steps, steps_per_epoch)
                    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
                        loss, pred = model.train_step(xb, yb)
                    if not math.isfinite(loss):
                        raise DigitnetError(f"training diverged (loss {loss}) at epoch {epoch}; try a smaller --lr")
                    if cfg.clip_norm:
                        clip_grad_norm(model.grads, cfg.clip_norm)
                    opt.step()
                    loss_sum += loss * len(yb)
                    correct += np.count_nonzero(pred == yb)
                    seen += len(yb)
                    step += 1
                    for cb in callbacks:
                        cb.on_step_end(model, step)
                elapsed = time.perf_counter() - t0
                logs = {
                    "epoch": epoch,
                    "loss": loss_sum / seen,
                    "train_acc": correct / seen,
                    **accuracy_and_loss(model, val, prefix="val_"),
                    "lr": opt.lr,
                    "time": elapsed,
                }
                history.append(logs)
                if any([cb.on_epoch_end(model, epoch, logs) for cb in callbacks]):  # every callback sees it
                    break
        finally:
            model.meta["train_config"], model.meta["seed"] = cfg.saved(), cfg.seed
            for cb in callbacks:
                cb.on_train_end(model, history)
    return history


def _labels_are_digits(train: Dataset) -> bool:
    """Whether label ``d`` is the digit d (MNIST's layout, or folders named 0-9)."""
    return train.classes is None or [str(c) for c in train.classes[:10]] == [str(d) for d in range(10)]


def _check_classes(model: Sequential, train: Dataset) -> None:
    """The labels must index the model's outputs; a dataset's class names become the model's."""
    assert train.labels is not None
    top = int(train.labels.max()) if len(train.labels) else 0
    if top >= model.n_classes:
        raise DigitnetError(
            f"{train.name or 'training set'} has label {top} but the model has only "
            f"{model.n_classes} outputs; build it with n_classes >= {top + 1}"
        )
    if train.classes is not None:
        if len(train.classes) != model.n_classes:
            raise DigitnetError(
                f"{train.name or 'training set'} has {len(train.classes)} classes but the model "
                f"has {model.n_classes} outputs"
            )
        model.classes = train.classes


def _config(config: TrainConfig | None, overrides: dict, resume: str | None) -> tuple[TrainConfig, dict | None]:
    """The run's configuration, and the checkpoint's state when resuming."""
    cfg = TrainConfig.from_kwargs(**{**(asdict(config) if config else {}), **overrides})
    if resume is None:
        return cfg, None
    state = checkpoint.read(resume)
    cfg = TrainConfig.from_kwargs(
        **{
            **state["config"],
            "checkpoint": cfg.checkpoint,
            "progress": cfg.progress,
            **{k: overrides[k] for k in ("epochs", "threads") if k in overrides},
        }
    )
    return cfg, state


def _builtin_callbacks(
    cfg: TrainConfig, opt, rng, early: EarlyStopping | None, total_steps: int, steps_per_epoch: int
) -> list[Callback]:
    """Early stopping, the checkpoint and the progress bar, as ``cfg`` asks; they run before the user's."""
    own: list[Callback] = [early] if early else []
    if cfg.checkpoint:
        own.append(Checkpoint(cfg.checkpoint, opt, rng, cfg, early))
    if cfg.progress:
        own.append(ProgressBar(total_steps, steps_per_epoch))
    return own


def _whole_batch(
    model: Sequential, train: Dataset, batch_size: int, kind: str, pool: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The model-ready ``(x, y)`` of an epoch that is one unchanging batch of the whole set, else None.

    Full-batch training without augmentation or non-digits sees the same batch
    every epoch, so it is converted to floats once per run.
    """
    if batch_size < len(train) or kind != "none" or pool is not None:
        return None
    assert train.labels is not None
    return model.prepare(train.images), train.labels.astype(np.intp)


def _batches(
    model: Sequential,
    train: Dataset,
    batch_size: int,
    kind: str,
    rng: np.random.Generator,
    whole: tuple[np.ndarray, np.ndarray] | None,
    pool: np.ndarray | None = None,
    negatives: float = 0.0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of model-ready ``(x, y)`` batches, in arrays reused from batch to batch.

    Batches are shuffled with ``rng``, given generated non-digits from ``pool``
    (labelled :data:`NEGATIVE_LABEL`, ``negatives`` of the enlarged batch) and
    augmented (``kind``) before they are converted to floats. A single batch of
    the whole set needs no shuffling; ``whole`` is that batch, converted once
    (see :func:`_whole_batch`), when it never changes.
    """
    assert train.labels is not None
    if whole is not None:
        yield whole
        return
    # the labels let ``style`` add digit-specific strokes; a set of other classes keeps them to itself
    digits = _labels_are_digits(train)
    for xb, yb in train.batches(batch_size, rng if batch_size < len(train) else None, reuse=True):
        assert yb is not None  # a labelled set gives labelled batches
        if pool is not None:
            k = round(len(yb) * negatives / (1 - negatives))
            xb = np.concatenate([xb, pool[rng.integers(0, len(pool), k)]])
            yb = np.concatenate([yb, np.full(k, NEGATIVE_LABEL, yb.dtype)])
        if kind != "none":
            xb = augment(xb, rng, kind, labels=yb if digits else None)  # (B, 28, 28) float32 in [0, 1]
        yield model.prepare(xb, reuse=True), yb.astype(np.intp)
