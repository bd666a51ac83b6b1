"""Accuracy, loss, confusion matrix and per-class precision/recall."""

from __future__ import annotations

import numpy as np

from .data import Dataset
from .errors import DigitnetError
from .nn.losses import log_softmax


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """``cm[t, p]`` counts examples of true class t predicted as p."""
    return np.bincount(
        np.asarray(y_true, np.int64) * n_classes + np.asarray(y_pred, np.int64), minlength=n_classes * n_classes
    ).reshape(n_classes, n_classes)


def evaluate(model, data: Dataset, batch_size: int | None = None) -> dict:
    """Accuracy, mean cross-entropy, per-class precision/recall/F1 and the confusion matrix."""
    if data.labels is None:
        raise DigitnetError(f"{data.name or 'dataset'} has no labels: cannot evaluate accuracy")
    proba = predict_proba(model, data.images, batch_size)
    y = labels_as_outputs(model, data)
    reject, _ = refusal(model)
    scores = proba if reject is None else np.where(np.arange(proba.shape[1]) == reject, -np.inf, proba)
    pred = scores.argmax(axis=1)  # the best real class; a "not a digit" output is counted below
    logp = np.log(np.maximum(proba[np.arange(len(y)), y].astype(np.float64), 1e-300))
    cm = confusion_matrix(y, pred, proba.shape[1])
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
        "classes": class_names(model),
        **_refusals(model, proba, pred == y),
    }


def _refusals(model, proba: np.ndarray, right: np.ndarray) -> dict:
    """For a model that can answer "not a digit": how many inputs it refuses, and its accuracy then."""
    reject, threshold = refusal(model)
    if reject is None:
        return {}
    from .reject import refused

    no = refused(proba, reject, threshold)
    return {"refused": float(no.mean()), "accuracy_answering": float((right & ~no).mean())}


def labels_as_outputs(model, data: Dataset) -> np.ndarray:
    """The labels as the model's output indices (a named data set's classes matched to the model's by name)."""
    if data.labels is None:
        raise DigitnetError(f"{data.name or 'dataset'} has no labels: nothing to match to the model's outputs")
    y = data.labels.astype(np.int64)
    names = class_names(model)
    if data.classes is None or list(data.classes) == names:
        return y
    unknown = [c for c in data.classes if c not in names]
    if unknown:
        raise DigitnetError(
            f"{data.name or 'dataset'} has classes the model does not know: {unknown[:5]}; the model's: {names[:12]}"
        )
    return np.array([names.index(c) for c in data.classes], np.int64)[y]


def class_names(models) -> list[str]:
    """The output names of a model (or of the first of an ensemble)."""
    model = models[0] if isinstance(models, (list, tuple)) else models
    return list(getattr(model, "classes", None) or [str(c) for c in range(10)])


def check_ensemble(models) -> None:
    """Refuse an ensemble whose models' outputs differ: their probabilities cannot be averaged."""
    if len(models) < 2:  # one model: nothing to compare
        return

    def outputs(m):
        return m.output_shape, getattr(m, "reject_class", None), class_names(m)

    if any(outputs(m) != outputs(models[0]) for m in models[1:]):
        raise DigitnetError(
            "the models of an ensemble must have the same outputs: the same classes in the same order, "
            "and a 'not a digit' output in all or none"
        )


def refusal(models) -> tuple[int | None, float]:
    """The "not a digit" output and refusal threshold of one model or an ensemble (its models' highest)."""
    models = models if isinstance(models, (list, tuple)) else [models]
    reject = getattr(models[0], "reject_class", None)
    return reject, max(m.meta.get("reject_threshold", 0.0) for m in models) if reject is not None else 0.0


def predict_proba(models, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """Probabilities of one model, or the mean over a list of models (an ensemble)."""
    if isinstance(models, (list, tuple)):
        check_ensemble(models)
        return np.mean([m.predict_proba(images, batch_size).astype(np.float64) for m in models], axis=0)
    return models.predict_proba(images, batch_size)


def accuracy_and_loss(model, data: Dataset | None, batch_size: int | None = None, prefix: str = "") -> dict:
    """``{prefix}acc`` and ``{prefix}loss`` (mean cross-entropy) in one pass; None values without data."""
    if data is None:
        return {f"{prefix}acc": None, f"{prefix}loss": None}
    if data.labels is None:
        raise DigitnetError(f"{data.name or 'dataset'} has no labels: cannot measure accuracy")
    y = data.labels.astype(np.intp)
    logits = model.logits(data.images, batch_size)
    correct = int((logits.argmax(axis=1) == y).sum())
    loss = -float(log_softmax(logits.astype(np.float64))[np.arange(len(y)), y].sum())
    return {f"{prefix}acc": correct / len(y), f"{prefix}loss": loss / len(y)}


def format_report(result: dict) -> str:
    """Human-readable text: accuracy, loss, per-class table, confusion matrix."""
    lines = [f"accuracy {result['accuracy'] * 100:.2f} %  ({result['n']} images)   loss {result['loss']:.4f}"]
    if "refused" in result:
        lines.append(
            f"refused as 'not a digit' {result['refused'] * 100:.2f} %; accuracy counting those as wrong "
            f"{result['accuracy_answering'] * 100:.2f} %"
        )
    names = result.get("classes") or [str(c) for c in range(len(result["precision"]))]
    w = max(5, *(len(n) for n in names))
    lines += ["", f"{'class':>{w}}  precision  recall     f1"]
    for c, name in enumerate(names):
        lines.append(
            f"{name:>{w}}  {result['precision'][c] * 100:8.2f}%  {result['recall'][c] * 100:6.2f}%  "
            f"{result['f1'][c] * 100:6.2f}%"
        )
    cw = max(6, *(len(n) + 1 for n in names))
    lines += [
        "",
        "confusion matrix (rows: true label, columns: predicted)",
        " " * (w + 1) + "".join(f"{n:>{cw}}" for n in names),
    ]
    for name, row in zip(names, result["confusion_matrix"]):
        lines.append(f"{name:>{w + 1}}" + "".join(f"{v:>{cw}}" for v in row))
    return "\n".join(lines)
