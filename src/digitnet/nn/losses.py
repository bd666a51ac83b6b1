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
from .layers import scratch

_TINY = {np.dtype(t).char: np.finfo(t).tiny for t in (np.float32, np.float64)}


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
        self._work: dict[str, np.ndarray] = {}   # probabilities / gradient array, reused per batch
        self._samples = np.arange(0)

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """Return the mean loss; remembers the probabilities for ``backward``.

        ``logits`` is left unchanged. The probabilities are kept class-major,
        shape (K, B), in an array the loss reuses for the next batch: with
        only K = 10 classes, NumPy reduces over the rows of a (K, B) array
        several times faster than along the short rows of a (B, K) one.
        """
        B, K = logits.shape
        pt = scratch(self._work, "probs", (K, B), logits.dtype)
        np.copyto(pt, logits.T)                          # (B, K) -> (K, B)
        pt -= pt.max(axis=0)                             # each sample's largest logit is now 0
        np.exp(pt, out=pt)
        pt /= pt.sum(axis=0)                             # pt now holds the softmax probabilities
        if len(self._samples) < B:
            self._samples = np.arange(B)
        self._probs, self._labels, self._index = pt, labels, self._samples[:B]
        # log p_y, clipped so a probability that underflowed to 0 gives a large finite loss
        logp_y = pt[labels, self._index]
        np.maximum(logp_y, _TINY.get(pt.dtype.char) or np.finfo(pt.dtype).tiny, out=logp_y)
        np.log(logp_y, out=logp_y)
        eps = self.label_smoothing
        if eps == 0.0:
            return -float(logp_y.sum()) / B
        logp = log_softmax(logits)
        return float(-((1 - eps) * logp_y + eps * logp.mean(axis=1)).mean())

    def backward(self) -> np.ndarray:
        """dLoss/dlogits = (p - t) / B, shape (B, K), written over the probabilities.

        The result is a transposed view (Fortran-ordered), which NumPy and
        BLAS use directly.
        """
        gt = self._probs                                 # (K, B)
        K, B = gt.shape
        eps = self.label_smoothing
        if eps:
            gt -= eps / K
        gt[self._labels, self._index] -= 1.0 - eps
        gt /= B
        return gt.T                                      # (K, B) -> (B, K) view

    def config(self) -> dict:
        return {"label_smoothing": self.label_smoothing}
