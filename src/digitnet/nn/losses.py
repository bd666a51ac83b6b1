"""Softmax + cross-entropy, fused.

Fusing the two is both cheaper and numerically stable: with ``p = softmax(z)``
the gradient of the mean cross-entropy w.r.t. the logits is simply
``(p - t) / B`` for one-hot (or smoothed) targets ``t``, and the log of the
softmax is computed as ``z - max(z) - log(sum(exp(z - max(z))))`` so that no
exponent overflows and no log sees a zero.
"""

from __future__ import annotations

import numpy as np

from ..errors import DigitnetError
from . import _fast


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of logits ``z`` of shape (B, K)."""
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits ``z`` of shape (B, K)."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits) against integer labels.

    Parameters
    ----------
    label_smoothing : float
        Mix the one-hot target with the uniform distribution:
        ``t = (1 - eps) * onehot + eps / K``. 0 gives plain cross-entropy.
    """

    # True: the class-major kernel in ``_fast``; False: the reference code below.
    fast: bool = True

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise DigitnetError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self._work: dict[str, np.ndarray] = {}   # the kernel's reused arrays

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """The mean loss over the batch; remembers what ``backward`` needs. ``logits`` is left unchanged."""
        if self.fast:
            loss, self._state = _fast.softmax_ce_forward(logits, labels, self.label_smoothing, self._work)
            return loss
        B, K = logits.shape
        eps = self.label_smoothing
        t = np.full((B, K), eps / K, logits.dtype)                  # the (smoothed) one-hot targets
        t[np.arange(B), labels] += 1 - eps
        logp = log_softmax(logits)                                  # (B, K)
        self._state = (np.exp(logp), t)
        return float(-(t * logp).sum(axis=1).mean())

    def backward(self) -> np.ndarray:
        """dLoss/dlogits = (p - t) / B, shape (B, K)."""
        if self.fast:
            return _fast.softmax_ce_backward(self._state, self.label_smoothing)
        p, t = self._state
        return (p - t) / len(p)

    def config(self) -> dict:
        return {"label_smoothing": self.label_smoothing}
