"""Accuracy, loss, confusion matrix and per-class precision/recall."""

from __future__ import annotations

import numpy as np

from .data import Dataset
from .errors import DigitnetError
from .nn.losses import log_softmax


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """``cm[t, p]`` counts examples of true class t predicted as p."""
    return np.bincount(np.asarray(y_true, np.int64) * n_classes + np.asarray(y_pred, np.int64),
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def evaluate(model, data: Dataset, batch_size: int = 2048) -> dict:
    """Accuracy, mean cross-entropy, per-class precision/recall/F1 and the confusion matrix."""
    if data.labels is None:
        raise DigitnetError(f"{data.name or 'dataset'} has no labels: cannot evaluate accuracy")
    proba = predict_proba(model, data.images, batch_size)
    y = data.labels.astype(np.int64)
    pred = proba.argmax(axis=1)
    logp = np.log(np.maximum(proba[np.arange(len(y)), y].astype(np.float64), 1e-300))
    cm = confusion_matrix(y, pred)
    tp = np.diag(cm).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(tp / cm.sum(axis=0))
        recall = np.nan_to_num(tp / cm.sum(axis=1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return {
        "n": int(len(y)),
        "accuracy": float((pred == y).mean()),
        "loss": float(-logp.mean()),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "confusion_matrix": cm.tolist(),
    }


def predict_proba(models, images: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """Probabilities of one model, or the mean over a list of models (an ensemble)."""
    if isinstance(models, (list, tuple)):
        return np.mean([m.predict_proba(images, batch_size).astype(np.float64) for m in models], axis=0)
    return models.predict_proba(images, batch_size)


def accuracy_and_loss(model, data: Dataset | None, batch_size: int = 4096, prefix: str = "") -> dict:
    """``{prefix}acc`` and ``{prefix}loss`` (mean cross-entropy) in one pass; None values without data."""
    if data is None:
        return {f"{prefix}acc": None, f"{prefix}loss": None}
    y = data.labels.astype(np.intp)
    correct, loss = 0, 0.0
    for i in range(0, len(y), batch_size):
        logits = model.forward(model.prepare(data.images[i:i + batch_size]))
        yb = y[i:i + batch_size]
        correct += int((logits.argmax(axis=1) == yb).sum())
        loss -= float(log_softmax(logits.astype(np.float64))[np.arange(len(yb)), yb].sum())
    return {f"{prefix}acc": correct / len(y), f"{prefix}loss": loss / len(y)}


def format_report(result: dict) -> str:
    """Human-readable text: accuracy, loss, per-class table, confusion matrix."""
    lines = [f"accuracy {result['accuracy'] * 100:.2f} %  ({result['n']} images)   loss {result['loss']:.4f}", "",
             "class  precision  recall     f1"]
    for c in range(10):
        lines.append(f"{c:>5}  {result['precision'][c] * 100:8.2f}%  {result['recall'][c] * 100:6.2f}%  "
                     f"{result['f1'][c] * 100:6.2f}%")
    lines += ["", "confusion matrix (rows: true label, columns: predicted)",
              "      " + "".join(f"{c:>6}" for c in range(10))]
    for t, row in enumerate(result["confusion_matrix"]):
        lines.append(f"{t:>6}" + "".join(f"{v:>6}" for v in row))
    return "\n".join(lines)
