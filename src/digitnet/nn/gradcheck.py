"""Central-difference gradient checks, used by the tests for every layer.

For a scalar function f of an array x, ``(f(x + h e_i) - f(x - h e_i)) / 2h``
approximates df/dx_i with error O(h^2). In float64 with h ~ 1e-6 this agrees
with a correct analytic gradient to about 1e-8 relative error; a wrong one is
off by orders of magnitude.
"""

from __future__ import annotations

import numpy as np


def numerical_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """df/dx by central differences; ``f`` is re-evaluated after perturbing ``x`` in place."""
    g = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(|a| + |b|), the usual scale-free comparison."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    denom = np.maximum(np.abs(a) + np.abs(b), 1e-12).max()
    return float(np.abs(a - b).max() / denom)


def check_layer(layer, x: np.ndarray, training: bool = True, seed: int = 0, h: float = 1e-6) -> dict[str, float]:
    """Relative errors of a layer's input and parameter gradients.

    Uses the scalar loss ``L = sum(forward(x) * R)`` for a fixed random ``R``,
    so ``dL/doutput = R``. Returns ``{"x": err, "<param>": err, ...}``.
    Layers with randomness (Dropout) must fix it before calling (e.g. a set mask).
    """
    rng = np.random.default_rng(seed)
    out = layer.forward(x, training)
    R = rng.standard_normal(out.shape)

    def loss():
        return float(np.sum(layer.forward(x, training) * R))

    layer.forward(x, training)
    dx = layer.backward(R.copy())
    analytic = {"x": dx, **{k: v.copy() for k, v in layer.grads.items()}}
    errors = {"x": rel_error(analytic["x"], numerical_grad(loss, x, h))}
    for k, p in layer.params.items():
        errors[k] = rel_error(analytic[k], numerical_grad(loss, p, h))
    return errors
