"""Optimizers: one object updates every parameter of a model, in place.

An optimizer takes two flat arrays: all parameters and all their gradients
(``Sequential.flat_params`` and ``Sequential.flat_grads``; the layers hold
views of them). Its state (momentum, Adam's moments) is laid out the same
way, so each step is a few whole-array operations, whatever the number of
layers. Work arrays are allocated once, so a step allocates nothing.
"""

from __future__ import annotations

import numpy as np

from ..errors import DigitnetError


def _check_flat(params: np.ndarray, grads: np.ndarray) -> None:
    if not isinstance(params, np.ndarray) or not isinstance(grads, np.ndarray):
        raise DigitnetError("an optimizer takes two flat arrays, the parameters and their gradients "
                            "(model.flat_params, model.flat_grads)")
    if params.ndim != 1 or params.shape != grads.shape or params.dtype != grads.dtype:
        raise DigitnetError(f"parameters and gradients must be 1-D arrays of one shape and dtype, got "
                            f"{params.shape} {params.dtype} and {grads.shape} {grads.dtype}")


class SGD:
    """Stochastic gradient descent with optional (Nesterov) momentum.

    Follows PyTorch's convention so results are comparable::

        g = grad + weight_decay * p
        v = momentum * v + g
        p -= lr * (g + momentum * v)   if nesterov
        p -= lr * v                    otherwise

    Parameters
    ----------
    params, grads : ndarray
        Flat arrays of every parameter and its gradient (the same arrays
        every step; ``params`` is updated in place). With weight decay,
        ``weight_decay * p`` is added into ``grads``.
    """

    def __init__(self, params: np.ndarray, grads: np.ndarray, lr: float = 0.05, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        _check_flat(params, grads)
        if lr <= 0:
            raise DigitnetError(f"lr must be > 0, got {lr}")
        if not 0 <= momentum < 1:
            raise DigitnetError(f"momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise DigitnetError(f"weight_decay must be >= 0, got {weight_decay}")
        self.params, self.grads = params, grads
        self.lr, self.momentum, self.nesterov, self.weight_decay = lr, momentum, nesterov, weight_decay
        self.velocity = np.zeros_like(params) if momentum else None
        self._s = np.empty_like(params)                 # work array: the step, computed without temporaries

    def step(self) -> None:
        """Update every parameter in place from its gradient."""
        p, g, v, s, lr, mu = self.params, self.grads, self.velocity, self._s, self.lr, self.momentum
        if self.weight_decay:
            g += np.multiply(p, self.weight_decay, out=s)
        if v is not None:
            v *= mu
            v += g                                      # v = mu v + g
            if self.nesterov:
                np.multiply(v, mu, out=s)
                s += g                                  # s = g + mu v
                s *= lr
            else:
                np.multiply(v, lr, out=s)
        else:
            np.multiply(g, lr, out=s)
        p -= s                                          # p -= lr * (update direction)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The state as flat arrays laid out like the parameters."""
        return {} if self.velocity is None else {"velocity": self.velocity}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if self.velocity is not None:
            self.velocity[...] = state["velocity"]


class Adam:
    """Adam (Kingma & Ba), PyTorch's convention; ``weight_decay`` adds an L2 term to the gradient::

        g = grad + weight_decay * p
        m = beta1 * m + (1 - beta1) * g          v = beta2 * v + (1 - beta2) * g^2
        p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    Parameters
    ----------
    params, grads : ndarray
        Flat arrays, updated in place, as for :class:`SGD`.
    """

    decoupled = False

    def __init__(self, params: np.ndarray, grads: np.ndarray, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        _check_flat(params, grads)
        if lr <= 0:
            raise DigitnetError(f"lr must be > 0, got {lr}")
        if not all(0 <= b < 1 for b in betas):
            raise DigitnetError(f"betas must be in [0, 1), got {betas}")
        if weight_decay < 0:
            raise DigitnetError(f"weight_decay must be >= 0, got {weight_decay}")
        self.params, self.grads = params, grads
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        self.t = 0
        self.m, self.v = np.zeros_like(params), np.zeros_like(params)
        self._s, self._u = np.empty_like(params), np.empty_like(params)     # work arrays

    def step(self) -> None:
        """One Adam step over every parameter, in place."""
        self.t += 1
        p, g, m, v, s, u = self.params, self.grads, self.m, self.v, self._s, self._u
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t                 # bias corrections
        if self.weight_decay:
            if self.decoupled:
                p *= 1 - self.lr * self.weight_decay
            else:
                g += np.multiply(p, self.weight_decay, out=s)
        m *= b1
        m += np.multiply(g, 1 - b1, out=s)                          # m = b1 m + (1 - b1) g
        v *= b2
        np.multiply(g, g, out=s)
        s *= 1 - b2
        v += s                                                      # v = b2 v + (1 - b2) g^2
        denom = np.divide(v, c2, out=s)
        np.sqrt(denom, out=denom)
        denom += self.eps
        np.multiply(m, self.lr / c1, out=u)
        u /= denom
        p -= u                                                      # p -= (lr / c1) m / (sqrt(v / c2) + eps)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The step count and the moments (flat arrays laid out like the parameters)."""
        return {"t": np.array(self.t, np.int64), "m": self.m, "v": self.v}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.t = int(np.asarray(state["t"]).reshape(-1)[0])
        self.m[...] = state["m"]
        self.v[...] = state["v"]


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * weight_decay``
    before the Adam step, instead of adding an L2 term to the gradient."""

    decoupled = True

    def __init__(self, params: np.ndarray, grads: np.ndarray, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        super().__init__(params, grads, lr, betas, eps, weight_decay)


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most ``max_norm``.

    ``grads`` maps names to arrays (``Sequential.grads``; the norm is summed
    array by array). Returns the norm before clipping (as
    ``torch.nn.utils.clip_grad_norm_`` does).
    """
    total = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads.values():
            g *= scale
    return total


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}
