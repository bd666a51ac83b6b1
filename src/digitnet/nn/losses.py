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

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise DigitnetError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """Return the mean loss; remembers the probabilities for ``backward``."""
        B, K = logits.shape
        z = logits - logits.max(axis=1, keepdims=True)   # (B, K), max is 0
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)                # z now holds softmax probabilities
        self._probs, self._labels = z, labels
        rows = np.arange(B)
        # log p_y, clipped so a probability that underflowed to 0 gives a large finite loss
        logp_y = np.log(np.maximum(z[rows, labels], np.finfo(z.dtype).tiny))
        eps = self.label_smoothing
        if eps == 0.0:
            return float(-logp_y.mean())
        logp = log_softmax(logits)
        return float(-((1 - eps) * logp_y + eps * logp.mean(axis=1)).mean())

    def backward(self) -> np.ndarray:
        """dLoss/dlogits = (p - t) / B, shape (B, K)."""
        g = self._probs                                  # reuse the buffer: forward made it
        B, K = g.shape
        eps = self.label_smoothing
        if eps:
            g -= eps / K
        g[np.arange(B), self._labels] -= 1.0 - eps
        g /= B
        return g

    def config(self) -> dict:
        return {"label_smoothing": self.label_smoothing}
