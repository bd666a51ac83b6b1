"""Dropout: randomly zero activations while training."""

from __future__ import annotations

import numpy as np

from ..errors import DigitnetError
from .layers import Layer, register


@register
class Dropout(Layer):
    """Inverted dropout: in training, zero each value with probability ``p`` and
    scale the survivors by ``1 / (1 - p)`` so the expected activation is
    unchanged; at inference it is the identity.

    The random mask comes from ``self.rng``; ``fit()`` points it at the run's
    generator so training stays reproducible and resumable.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise DigitnetError(f"Dropout p must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = np.random.default_rng(0)

    def draw_mask(self, shape, dtype) -> np.ndarray:
        """The scaled keep-mask: 0 or 1/(1-p) per value."""
        keep = self.rng.random(shape, dtype=np.float32) >= self.p
        return keep.astype(dtype) * dtype.type(1 / (1 - self.p))

    def forward(self, x, training=False):
        if not training or self.p == 0:
            self._mask = None
            return x
        self._mask = self.draw_mask(x.shape, x.dtype)
        return x * self._mask

    def backward(self, grad, input_grad=True):
        return grad if self._mask is None else grad * self._mask

    def config(self):
        return {"p": self.p}
