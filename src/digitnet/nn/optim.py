"""Optimizers: one object updates every parameter of a model, in place."""

from __future__ import annotations

import numpy as np

from ..errors import DigitnetError


def _flat_view(arrays: list[np.ndarray]) -> np.ndarray | None:
    """The 1-D array that ``arrays`` exactly tile, back to back and in order, or None."""
    if not arrays:
        return None
    base = arrays[0].base
    if base is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    pos = base.__array_interface__["data"][0]
    for a in arrays:
        if a.base is not base or not a.flags.c_contiguous or a.__array_interface__["data"][0] != pos:
            return None
        pos += a.nbytes
    if pos != base.__array_interface__["data"][0] + base.nbytes:
        return None
    return base


def _split(flat: np.ndarray, like: dict) -> dict[str, np.ndarray]:
    """Views of ``flat`` shaped like the arrays of ``like``, in order."""
    out, offset = {}, 0
    for k, p in like.items():
        out[k] = flat[offset:offset + p.size].reshape(p.shape)
        offset += p.size
    return out


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
        # Parameters and gradients that each fill one contiguous array (Sequential packs them so)
        # are updated through those arrays: 4 whole-array operations per step instead of 4 per parameter.
        self._flat = None
        flat_p, flat_g = _flat_view(list(params.values())), _flat_view([grads[k] for k in params])
        if flat_p is not None and flat_g is not None:
            work, vel = np.empty_like(flat_p), np.zeros_like(flat_p) if momentum else None
            self._flat = (flat_p, flat_g, vel, work)
            self.velocity = _split(vel, params) if momentum else {}
            self._work = _split(work, params)
        else:
            self.velocity = {k: np.zeros_like(p) for k, p in params.items()} if momentum else {}
            # One work array per parameter: the update is computed without temporaries.
            self._work = {k: np.empty_like(p) for k, p in params.items()}

    def step(self) -> None:
        """Update every parameter in place from its gradient.

        With weight decay, ``weight_decay * p`` is added into the gradient array.
        """
        if self._flat is not None:
            self._update(*self._flat)
            return
        for k, p in self.params.items():
            self._update(p, self.grads[k], self.velocity.get(k), self._work[k])

    def _update(self, p, g, v, s) -> None:
        lr, mu = self.lr, self.momentum
        if self.weight_decay:
            g += np.multiply(p, self.weight_decay, out=s)
        if mu:
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
