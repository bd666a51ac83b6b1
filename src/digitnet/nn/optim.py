"""Optimizers: one object updates every parameter of a model, in place."""

from __future__ import annotations

import numpy as np

from ..errors import DigitnetError


class SGD:
    """Stochastic gradient descent with optional (Nesterov) momentum.

    Follows PyTorch's convention so results are comparable::

        g = grad + weight_decay * p
        v = momentum * v + g
        p -= lr * (g + momentum * v)   if nesterov
        p -= lr * v                    otherwise

    Parameters
    ----------
    params, grads : dict[str, ndarray]
        The model's parameters and the gradients the backward pass fills
        (the same arrays every step; they are updated in place).
    """

    def __init__(self, params: dict, grads: dict, lr: float = 0.05, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        if lr <= 0:
            raise DigitnetError(f"lr must be > 0, got {lr}")
        if not 0 <= momentum < 1:
            raise DigitnetError(f"momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise DigitnetError(f"weight_decay must be >= 0, got {weight_decay}")
        self.params, self.grads = params, grads
        self.lr, self.momentum, self.nesterov, self.weight_decay = lr, momentum, nesterov, weight_decay
        self.velocity = {k: np.zeros_like(p) for k, p in params.items()} if momentum else {}
        # One work array per parameter: the update is computed without temporaries.
        self._work = {k: np.empty_like(p) for k, p in params.items()}

    def step(self) -> None:
        """Update every parameter in place from its gradient.

        With weight decay, ``weight_decay * p`` is added into the gradient array.
        """
        lr, mu = self.lr, self.momentum
        for k, p in self.params.items():
            g, s = self.grads[k], self._work[k]
            if self.weight_decay:
                g += np.multiply(p, self.weight_decay, out=s)
            if mu:
                v = self.velocity[k]
                v *= mu
                v += g                                   # v = mu v + g
                if self.nesterov:
                    np.multiply(v, mu, out=s)
                    s += g                               # s = g + mu v
                    s *= lr
                else:
                    np.multiply(v, lr, out=s)
            else:
                np.multiply(g, lr, out=s)
            p -= s                                       # p -= lr * (update direction)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {f"velocity.{k}": v for k, v in self.velocity.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for k in self.velocity:
            self.velocity[k][...] = state[f"velocity.{k}"]
