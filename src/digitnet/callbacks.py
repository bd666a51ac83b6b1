"""Callbacks: code that ``fit()`` calls at fixed points of a training run.

Early stopping, checkpoints and the progress bar are callbacks like the ones
users write. Subclass :class:`Callback` and override the hooks you need::

    class PrintAccuracy(digitnet.Callback):
        def on_epoch_end(self, model, epoch, logs):
            print(epoch, logs["val_acc"])
            return logs["val_acc"] is not None and logs["val_acc"] > 0.99   # True stops training

    digitnet.fit(model, mnist.train, epochs=20, callbacks=[PrintAccuracy()])

``fit()`` runs its own callbacks first (early stopping, checkpoint, progress
bar), then the ones it is given, in order.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from . import checkpoint


class Callback:
    """Hooks into ``fit()``; each does nothing unless overridden.

    * ``on_train_begin(model, config)``: once, before the first epoch
      (``config`` is the resolved :class:`~digitnet.train.TrainConfig`).
    * ``on_step_end(model, step)``: after each optimizer step (``step`` counts
      steps from the start of the run, 1-based).
    * ``on_epoch_end(model, epoch, logs) -> bool | None``: after each epoch.
      ``epoch`` is 1-based; ``logs`` is the epoch's history entry:
      ``epoch, loss, train_acc, val_acc, val_loss, lr, time`` (``val_*`` are
      None without a validation set). Returning True stops training.
    * ``on_train_end(model, history)``: once, when training stops, normally
      or by an error (then before the error propagates), so that a callback
      can release what it holds.
    """

    def on_train_begin(self, model, config) -> None:
        pass

    def on_step_end(self, model, step: int) -> None:
        pass

    def on_epoch_end(self, model, epoch: int, logs: dict) -> bool | None:
        return None

    def on_train_end(self, model, history: list[dict]) -> None:
        pass


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without a better validation accuracy; keep the best epoch's weights."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_val_acc, self.best_epoch = -1.0, 0
        self.best_weights: dict[str, np.ndarray] | None = None
        self.stopped = False                    # a resumed run that had stopped only restores the best weights

    def on_epoch_end(self, model, epoch, logs):
        if logs["val_acc"] is None:
            return None
        if logs["val_acc"] > self.best_val_acc:
            self.best_val_acc, self.best_epoch = logs["val_acc"], epoch
            self.best_weights = {k: v.copy() for k, v in model.state_dict().items()}
        self.stopped = epoch - self.best_epoch >= self.patience
        return self.stopped

    def on_train_end(self, model, history):
        if self.best_weights is not None and self.best_epoch != len(history):
            model.load_state_dict(self.best_weights)
            model.meta["best_epoch"] = self.best_epoch


class Checkpoint(Callback):
    """Rewrite the checkpoint file after every epoch (see :mod:`digitnet.checkpoint`)."""

    def __init__(self, path: str, optimizer: Any, rng: np.random.Generator, config: Any,
                 early: EarlyStopping | None) -> None:
        self.path, self.optimizer, self.rng, self.config, self.early = path, optimizer, rng, config, early

    def on_epoch_end(self, model, epoch, logs):
        checkpoint.write(self.path, model, self.optimizer, self.rng, self.config, model.meta["history"], self.early)
        return None


class ProgressBar(Callback):
    """A progress bar over the run's steps and one line per epoch, on stderr."""

    def __init__(self, total_steps: int, steps_per_epoch: int) -> None:
        self.total, self.steps_per_epoch = total_steps, steps_per_epoch
        self.bar: Any = None

    def on_train_begin(self, model, config):
        from tqdm.auto import tqdm
        self.epochs = config.epochs
        done = len(model.meta.get("history", [])) * self.steps_per_epoch
        self.bar = tqdm(total=self.total, initial=done, unit="batch", file=sys.stderr, leave=False,
                        dynamic_ncols=True, mininterval=0.25)

    def on_step_end(self, model, step):
        self.bar.update(1)

    def on_epoch_end(self, model, epoch, logs):
        val = f"  val acc {logs['val_acc'] * 100:6.2f} %" if logs["val_acc"] is not None else ""
        self.bar.write(f"epoch {epoch:>3}/{self.epochs}  loss {logs['loss']:.4f}  "
                       f"train acc {logs['train_acc'] * 100:6.2f} %{val}  ({logs['time']:.2f} s)", file=sys.stderr)
        return None

    def on_train_end(self, model, history):
        if self.bar is not None:
            self.bar.close()
