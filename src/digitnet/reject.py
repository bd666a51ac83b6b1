"""Answering "not a digit": the decision rule and its calibration.

A model trained with generated non-digits (``digitnet train --negatives``)
has one output more than the digits: ``model.reject_class``. An input is
refused when that output wins, or when the best digit's probability is under
``model.reject_threshold``. The threshold is calibrated on held-out digits so
that only a small, chosen fraction of real digits is refused; the fraction of
held-out non-digits refused at it is recorded next to it. Models without a
reject class (``seed``, ``cnn``) never refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIGITS = [str(d) for d in range(10)]
NOT_A_DIGIT = "not a digit"
MAX_REFUSED = 0.003  # calibration: at most this fraction of held-out digits refused


@dataclass
class Decision:
    """What a model answers for one input."""

    label: int | None  # the digit, or None for "not a digit"
    guess: int  # the best digit, even when refused
    reason: str  # why it was refused, e.g. "not a digit (93 %)"; "" when not


def answer_columns(n_outputs: int, reject_class: int | None) -> list[int]:
    """The outputs that are answers (the digits, or a data set's classes): all but the reject class."""
    return [i for i in range(n_outputs) if i != reject_class]


def top_classes(proba: np.ndarray, k: int, reject_class: int | None = None) -> list[int]:
    """The ``k`` most likely outputs of one row of probabilities, most likely first (ties: lower index).

    A "not a digit" output is left out: it is no answer (the label says it).
    """
    return [int(c) for c in np.argsort(-proba, kind="stable") if c != reject_class][:k]


def decide(
    proba: np.ndarray, classes=DIGITS, reject_class: int | None = None, threshold: float = 0.0
) -> list[Decision]:
    """Decisions for probabilities ``proba`` (N, n_classes); a label is an output index."""
    proba = np.atleast_2d(proba)
    cols = answer_columns(proba.shape[1], reject_class)
    answers = proba[:, cols]
    best = answers.argmax(axis=1)
    p_best = answers.max(axis=1)
    names = list(classes)
    out = []
    for i in range(len(proba)):
        guess = int(cols[best[i]])
        if reject_class is not None and proba[i, reject_class] > p_best[i]:
            reason = f"not a digit ({proba[i, reject_class] * 100:.0f} %)"
        elif reject_class is not None and p_best[i] < threshold:
            reason = f"not a digit: no digit is likely enough (best {names[guess]} at {p_best[i] * 100:.0f} %)"
        else:
            out.append(Decision(guess, guess, ""))
            continue
        out.append(Decision(None, guess, reason))
    return out


def refused(proba: np.ndarray, reject_class: int | None, threshold: float) -> np.ndarray:
    """Boolean mask of the inputs refused (vectorised :func:`decide`)."""
    proba = np.atleast_2d(proba)
    if reject_class is None:
        return np.zeros(len(proba), bool)
    p_best = proba[:, answer_columns(proba.shape[1], reject_class)].max(axis=1)
    return (p_best < threshold) | (proba[:, reject_class] > p_best)


def calibrate(
    proba_digits: np.ndarray, proba_negatives: np.ndarray, reject_class: int, max_refused: float = MAX_REFUSED
) -> dict:
    """The highest threshold that refuses at most ``max_refused`` of the held-out digits.

    Parameters
    ----------
    proba_digits : (N, 11) probabilities of held-out digits
    proba_negatives : (M, 11) probabilities of held-out non-digits
    reject_class : index of the "not a digit" output

    Returns
    -------
    dict with ``threshold`` and the fractions refused at it: ``digits_refused``, ``negatives_refused``.
    """
    p_best = proba_digits[:, answer_columns(proba_digits.shape[1], reject_class)].max(axis=1)
    by_class = proba_digits[:, reject_class] > p_best
    budget = int(np.floor(max_refused * len(p_best))) - int(by_class.sum())
    if budget <= 0:
        threshold = 0.0
    else:
        rest = np.sort(p_best[~by_class])
        threshold = float(rest[min(budget, len(rest) - 1)])  # the ``budget`` lowest fall under it
    return {
        "threshold": threshold,
        "digits_refused": float(refused(proba_digits, reject_class, threshold).mean()),
        "negatives_refused": float(refused(proba_negatives, reject_class, threshold).mean()),
        "max_refused": max_refused,
        "n_digits": int(len(proba_digits)),
        "n_negatives": int(len(proba_negatives)),
    }
