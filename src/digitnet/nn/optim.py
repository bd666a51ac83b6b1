"""Optimizers: one object updates every parameter of a model, in place."""

from __future__ import annotations

import numpy as np

from ..errors import DigitnetError
from . import parallel


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


class Adam:
    """Adam (Kingma & Ba), PyTorch's convention; ``weight_decay`` adds an L2 term to the gradient::

        g = grad + weight_decay * p
        m = beta1 * m + (1 - beta1) * g          v = beta2 * v + (1 - beta2) * g^2
        p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    Parameters
    ----------
    params, grads : dict[str, ndarray]
        Updated in place, as for :class:`SGD`.
    """

    decoupled = False

    def __init__(self, params: dict, grads: dict, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        if lr <= 0:
            raise DigitnetError(f"lr must be > 0, got {lr}")
        if not all(0 <= b < 1 for b in betas):
            raise DigitnetError(f"betas must be in [0, 1), got {betas}")
        if weight_decay < 0:
            raise DigitnetError(f"weight_decay must be >= 0, got {weight_decay}")
        self.params, self.grads = params, grads
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        self.t = 0
        # As for SGD: parameters packed in one array (Sequential does so) are updated through it, a dozen
        # whole-array operations per step instead of a dozen per parameter and array, and split over
        # digitnet's threads for large models. Each element's arithmetic is the same either way.
        flat_p, flat_g = _flat_view(list(params.values())), _flat_view([grads[k] for k in params])
        if flat_p is not None and flat_g is not None:
            m, v = np.zeros_like(flat_p), np.zeros_like(flat_p)
            self._flat = (flat_p, flat_g, m, v)
            self.m, self.v = _split(m, params), _split(v, params)
        else:
            self._flat = None
            self.m = {k: np.zeros_like(p) for k, p in params.items()}
            self.v = {k: np.zeros_like(p) for k, p in params.items()}

    def step(self) -> None:
        self.t += 1
        if self._flat is None:
            for k, p in self.params.items():
                self._update(p, self.grads[k], self.m[k], self.v[k])
            return
        p, g, m, v = self._flat
        blocks = parallel.parts(len(p), min_size=1 << 20)   # measured: 215k parameters gain nothing from 2 blocks
        parallel.run(lambda sl: self._update(p[sl], g[sl], m[sl], v[sl]), blocks)

    def _update(self, p, g, m, v) -> None:
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        s, u = np.empty_like(p), np.empty_like(p)                   # work arrays
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
        return {"t": np.array(self.t, np.int64), **{f"m.{k}": v for k, v in self.m.items()},
                **{f"v.{k}": v for k, v in self.v.items()}}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.t = int(np.asarray(state["t"]).reshape(-1)[0])
        for k in self.m:
            self.m[k][...] = state[f"m.{k}"]
            self.v[k][...] = state[f"v.{k}"]


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * weight_decay``
    before the Adam step, instead of adding an L2 term to the gradient."""

    decoupled = True

    def __init__(self, params: dict, grads: dict, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        super().__init__(params, grads, lr, betas, eps, weight_decay)


def clip_grad_norm(grads: dict, max_norm: float) -> float:
    """Scale all gradients together so their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping (as ``torch.nn.utils.clip_grad_norm_`` does).
    """
    total = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads.values():
            g *= scale
    return total


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}
