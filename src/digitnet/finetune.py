"""Fine-tune a model on one person's own digits without forgetting MNIST.

A person's samples come as a class-per-folder tree, ``FOLDER/0/*.png`` ...
``FOLDER/9/*.png`` (what ``digitnet serve --collect`` writes), and go through
the same preprocessing as ``digitnet predict`` (:func:`digitnet.preprocess.to_mnist`).

A few dozen samples are far too few to train on alone: the network would
learn them and forget the rest (catastrophic forgetting). So training here is
gentle and mixed:

- a small learning rate and few epochs (the weights move a little from where
  MNIST put them);
- every epoch also replays a random sample of MNIST training digits, several
  times as many as the person's own, so the old task keeps pulling the
  weights back;
- the person's samples are repeated so that they make up ``own_share`` of each
  epoch, whatever their number.

A part of the person's samples (``holdout``, per class) is kept out of
training; accuracy on it and on the MNIST test set is reported before and
after, so the gain and the cost are both visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import Dataset
from .errors import DigitnetError
from .predict import IMAGE_SUFFIXES

MAX_SAMPLES = 100_000  # more images than this in a person's folder is not "a person's samples"


@dataclass
class FinetuneConfig:
    """How gently to fine-tune; names match the ``digitnet finetune`` flags."""

    epochs: int = 4
    lr: float = 0.01  # SGD with momentum (cosine decay); training from scratch uses ~0.1
    batch_size: int = 64
    replay: int = 4  # MNIST training digits replayed per own sample (at least replay_min)
    replay_min: int = 5000
    own_share: float = 0.5  # fraction of each epoch that is the person's samples (repeated as needed)
    holdout: float = 0.25  # fraction of each class's samples kept out for measuring
    augment: str | None = None  # None: the base model's own (its training's), else "none", "shift", "affine", ...
    label_smoothing: float | None = None  # None: the base model's own (a different loss moves every weight)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.replay < 0 or self.replay_min < 0:
            raise DigitnetError("epochs and batch_size must be >= 1, replay and replay_min >= 0")
        if not 0 < self.lr < 1:
            raise DigitnetError(f"lr must be in (0, 1) for fine-tuning, got {self.lr}")
        if not 0 < self.own_share < 1:
            raise DigitnetError(f"own_share must be in (0, 1), got {self.own_share}")
        if not 0 <= self.holdout < 1:
            raise DigitnetError(f"holdout must be in [0, 1), got {self.holdout}")


def load_folder(folder) -> Dataset:
    """A person's labelled images, ``FOLDER/<digit>/*.png``, preprocessed like ``digitnet predict``.

    Raises DigitnetError when the folder is missing, has no digit subfolders
    with images, or an image cannot be read (the message names the file).
    """
    from .preprocess import open_image, to_mnist

    root = Path(folder)
    if not root.is_dir():
        raise DigitnetError(f"{root}: no such folder (expected {root}/0/*.png ... {root}/9/*.png)")
    files = []
    for d in range(10):
        sub = root / str(d)
        if sub.is_dir():
            files += [
                (f, d)
                for f in sorted(sub.iterdir())  # dot-files: hidden, or a write in progress
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
            ]
        if len(files) > MAX_SAMPLES:
            raise DigitnetError(f"{root}: more than {MAX_SAMPLES:,} images; fine-tuning expects a person's samples")
    if not files:
        raise DigitnetError(f"{root}: no images in digit folders (expected {root}/0/*.png ... {root}/9/*.png)")
    images = np.empty((len(files), 28, 28), np.uint8)
    for i, (f, _) in enumerate(files):
        try:
            images[i] = to_mnist(open_image(f))
        except DigitnetError as exc:
            msg = str(exc)
            raise DigitnetError(msg if msg.startswith(str(f)) else f"{f}: {msg}") from None
    return Dataset(images, np.array([d for _, d in files], np.uint8), str(root))


def holdout_split(data: Dataset, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset | None]:
    """(train, held out): ``fraction`` of each class held out, at least one where a class has two or more."""
    if fraction == 0:
        return data, None
    if data.labels is None:
        raise DigitnetError(f"{data.name or 'dataset'} has no labels: cannot hold out part of each class")
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(data.labels):
        idx = rng.permutation(np.nonzero(data.labels == c)[0])
        if len(idx) >= 2:
            held += idx[: max(1, int(round(fraction * len(idx))))].tolist()
    if not held:
        return data, None
    mask = np.zeros(len(data), bool)
    mask[held] = True
    return data.subset(np.nonzero(~mask)[0], f"{data.name}[train]"), data.subset(
        np.nonzero(mask)[0], f"{data.name}[held out]"
    )


def mixed_training_set(own: Dataset, mnist_train: Dataset, cfg: FinetuneConfig) -> Dataset:
    """The person's samples (repeated to ``own_share`` of the set) plus a random sample of MNIST."""
    if own.labels is None:
        raise DigitnetError("fine-tuning needs labelled samples")
    if mnist_train.labels is None:
        raise DigitnetError(f"{mnist_train.name or 'the MNIST training set'} has no labels: nothing to train on")
    rng = np.random.default_rng(cfg.seed)
    n_replay = min(len(mnist_train), max(cfg.replay_min, cfg.replay * len(own)))
    replay = rng.choice(len(mnist_train), n_replay, replace=False)
    repeats = max(1, int(round(cfg.own_share / (1 - cfg.own_share) * n_replay / len(own))))
    images = np.concatenate([np.tile(own.images, (repeats, 1, 1)), mnist_train.images[replay]])
    labels = np.concatenate([np.tile(own.labels, repeats), mnist_train.labels[replay]])
    return Dataset(images, labels, f"{own.name} x{repeats} + {n_replay} MNIST")


def _accuracy(model, data: Dataset | None) -> float | None:
    if data is None or len(data) == 0:
        return None
    return float((model.predict(data.images) == data.labels).mean())


def finetune(
    model,
    own: Dataset,
    config: FinetuneConfig | None = None,
    *,
    heldout: Dataset | None = None,
    mnist=None,
    progress: bool = False,
) -> dict:
    """Fine-tune ``model`` in place on a person's samples; returns accuracies before and after.

    Parameters
    ----------
    model : Sequential
    own : Dataset
        The person's labelled samples (e.g. from :func:`load_folder`).
    config : FinetuneConfig, optional
    heldout : Dataset, optional
        Samples to measure on; default: ``config.holdout`` of ``own``, per class.
    mnist : MNIST, optional
        Replay and test data; default: the bundled MNIST.

    Returns
    -------
    dict
        ``own_before``, ``own_after`` (accuracy on the held-out samples, None
        without any), ``mnist_before``, ``mnist_after``, ``n_train``, ``n_heldout``.
    """
    from .data import load_mnist
    from .train import TrainConfig, fit

    cfg = config or FinetuneConfig()
    if own.labels is None or len(own) == 0:
        raise DigitnetError("fine-tuning needs labelled samples")
    train = own
    if heldout is None:
        train, heldout = holdout_split(own, cfg.holdout, cfg.seed)
    mnist = mnist or load_mnist()
    report = {
        "n_train": len(train),
        "n_heldout": 0 if heldout is None else len(heldout),
        "own_before": _accuracy(model, heldout),
        "mnist_before": _accuracy(model, mnist.test),
    }
    mixed = mixed_training_set(train, mnist.train, cfg)
    base = model.meta.get("train_config") if isinstance(model.meta.get("train_config"), dict) else {}
    augment = cfg.augment if cfg.augment is not None else base.get("augment", "none")
    smoothing = cfg.label_smoothing if cfg.label_smoothing is not None else base.get("label_smoothing", 0.0)
    tc = TrainConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        optimizer="sgd",
        momentum=0.9,
        weight_decay=0.0,
        schedule="cosine",
        augment=augment,
        label_smoothing=smoothing,
        seed=cfg.seed,
        val_size=0,
        progress=progress,
    )
    meta_before = {k: model.meta[k] for k in ("history", "train_config", "seed") if k in model.meta}
    model.meta.pop("history", None)
    fit(model, mixed, None, tc)
    model.meta["finetune"] = {
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "samples": len(train),
        "data": own.name,
        "finetune_history": model.meta.pop("history", []),
    }
    model.meta.update(meta_before)  # the base model's own training record stays
    report.update(own_after=_accuracy(model, heldout), mnist_after=_accuracy(model, mnist.test))
    model.meta["finetune"]["report"] = report
    if report["mnist_after"] is not None:
        model.meta["test_accuracy"] = report["mnist_after"]
    return report
