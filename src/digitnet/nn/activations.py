"""Elementwise activations beyond ReLU: forward and derivative side by side."""

from __future__ import annotations

import math

import numpy as np

from ..errors import DigitnetError
from .layers import Layer, register


@register
class LeakyReLU(Layer):
    """``x if x > 0 else negative_slope * x``."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if not 0 <= negative_slope < 1:
            raise DigitnetError(f"LeakyReLU negative_slope must be in [0, 1), got {negative_slope}")
        self.negative_slope = float(negative_slope)

    def forward(self, x, training=False):
        self._neg = x < 0
        out = x.copy()
        out[self._neg] *= self.negative_slope
        return out

    def backward(self, grad, input_grad=True):
        grad[self._neg] *= self.negative_slope
        return grad

    def config(self):
        return {"negative_slope": self.negative_slope}


@register
class Tanh(Layer):
    """``tanh(x)``; derivative ``1 - tanh(x)^2``."""

    def forward(self, x, training=False):
        self._y = np.tanh(x)
        return self._y

    def backward(self, grad, input_grad=True):
        return grad * (1 - self._y * self._y)


@register
class Sigmoid(Layer):
    """``1 / (1 + exp(-x))``; derivative ``s (1 - s)``."""

    def forward(self, x, training=False):
        # 0.5 (1 + tanh(x/2)) is the same function and never overflows
        self._y = 0.5 * (1 + np.tanh(0.5 * x))
        return self._y

    def backward(self, grad, input_grad=True):
        return grad * self._y * (1 - self._y)


@register
class GELU(Layer):
    """Gaussian error linear unit, tanh approximation (as in BERT/GPT-2):

    ``0.5 x (1 + tanh(c (x + 0.044715 x^3)))`` with ``c = sqrt(2/pi)``.
    """

    C = math.sqrt(2 / math.pi)

    def forward(self, x, training=False):
        self._x = x
        self._t = np.tanh(self.C * (x + 0.044715 * x**3))
        return 0.5 * x * (1 + self._t)

    def backward(self, grad, input_grad=True):
        x, t = self._x, self._t
        dy = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * self.C * (1 + 3 * 0.044715 * x * x)
        return grad * dy
