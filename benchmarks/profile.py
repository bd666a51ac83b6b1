"""GEMM floors: the time an epoch (or iteration) would take with zero overhead outside its matrix products.

Each function runs exactly the matrix products of the corresponding training
step, with the same shapes and layouts as digitnet's Dense layers, into
preallocated arrays, and nothing else. ``measured - floor`` is the overhead
(data gathering and conversion, activations, loss, optimizer, Python).
"""

from __future__ import annotations

import time

import numpy as np

from .common import median


def _mlp_step_gemms(x, W1, W2, h, z, g, gW1, gW2, dh):
    np.matmul(x, W1, out=h)          # (B, 784) @ (784, 64)
    np.matmul(h, W2, out=z)          # (B, 64) @ (64, 10)
    np.matmul(h.T, g, out=gW2)       # dW2
    np.matmul(g, W2.T, out=dh)       # dX of layer 2
    np.matmul(x.T, dh, out=gW1)      # dW1 (no dX for the first layer)


def mlp_epoch_gemm_seconds(n: int, bs: int, repeats: int = 3, dtype=np.float32, seed: int = 0) -> float:
    """Seconds of the matrix products of one 784-64-10 epoch of ``n`` samples at batch ``bs``."""
    rng = np.random.default_rng(seed)
    B = min(bs, n)
    x = rng.random((B, 784), dtype=np.float64).astype(dtype)
    W1, W2 = (rng.standard_normal(s).astype(dtype) * 0.05 for s in ((784, 64), (64, 10)))
    h, z, g, dh = np.empty((B, 64), dtype), np.empty((B, 10), dtype), np.empty((B, 10), dtype), np.empty((B, 64), dtype)
    g[...] = rng.standard_normal(g.shape) * 0.01
    gW1, gW2 = np.empty_like(W1), np.empty_like(W2)
    full, rest = divmod(n, B)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        for _ in range(full):
            _mlp_step_gemms(x, W1, W2, h, z, g, gW1, gW2, dh)
        if rest:
            _mlp_step_gemms(x[:rest], W1, W2, h[:rest], z[:rest], g[:rest], gW1, gW2, dh[:rest])
        times.append(time.perf_counter() - t0)
    return median(times[1:])


def seed_style_gemm_seconds(n: int, repeats: int = 3) -> float:
    """The seed-style float64 iteration's matrix products (column layout, as the notebook has them)."""
    rng = np.random.default_rng(0)
    X = rng.random((784, n))
    W1, W2 = rng.standard_normal((64, 784)) * 0.05, rng.standard_normal((10, 64)) * 0.05
    dZ2 = rng.standard_normal((10, n)) * 0.01
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        A1 = W1.dot(X)
        W2.dot(A1)
        dZ2.dot(A1.T)
        dZ1 = W2.T.dot(dZ2)
        dZ1.dot(X.T)
        times.append(time.perf_counter() - t0)
    return median(times[1:])
