"""GEMM floors: the time an epoch (or iteration) would take with zero overhead outside its matrix products.

Each class runs exactly the matrix products of the corresponding training
step, with the same shapes and layouts as digitnet's Dense layers, into
preallocated arrays, and nothing else. ``measured - floor`` is the overhead
(data gathering and conversion, activations, loss, optimizer, Python).
"""

from __future__ import annotations

import time

import numpy as np



def _mlp_step_gemms(x, W1, W2, h, z, g, gW1, gW2, dh):
    np.matmul(x, W1, out=h)          # (B, 784) @ (784, 64)
    np.matmul(h, W2, out=z)          # (B, 64) @ (64, 10)
    np.matmul(h.T, g, out=gW2)       # dW2
    np.matmul(g, W2.T, out=dh)       # dX of layer 2
    np.matmul(x.T, dh, out=gW1)      # dW1 (no dX for the first layer)


class MLPEpochGemms:
    """The matrix products of one 784-64-10 epoch of ``n`` samples at batch ``bs``; call to time one epoch."""

    def __init__(self, n: int, bs: int, dtype=np.float32, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        B = min(bs, n)
        self.x = rng.random((B, 784), dtype=np.float64).astype(dtype)
        self.W1, self.W2 = (rng.standard_normal(s).astype(dtype) * 0.05 for s in ((784, 64), (64, 10)))
        self.h, self.z, self.dh = np.empty((B, 64), dtype), np.empty((B, 10), dtype), np.empty((B, 64), dtype)
        self.g = (rng.standard_normal((B, 10)) * 0.01).astype(dtype)
        self.gW1, self.gW2 = np.empty_like(self.W1), np.empty_like(self.W2)
        self.full, self.rest = divmod(n, B)

    def __call__(self) -> float:
        x, W1, W2, h, z, g, gW1, gW2, dh = (self.x, self.W1, self.W2, self.h, self.z, self.g, self.gW1, self.gW2,
                                            self.dh)
        t0 = time.perf_counter()
        for _ in range(self.full):
            _mlp_step_gemms(x, W1, W2, h, z, g, gW1, gW2, dh)
        r = self.rest
        if r:
            _mlp_step_gemms(x[:r], W1, W2, h[:r], z[:r], g[:r], gW1, gW2, dh[:r])
        return time.perf_counter() - t0


class SeedStyleGemms:
    """The seed-style float64 iteration's matrix products (column layout, as the notebook has them)."""

    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        self.X = rng.random((784, n))
        self.W1, self.W2 = rng.standard_normal((64, 784)) * 0.05, rng.standard_normal((10, 64)) * 0.05
        self.dZ2 = rng.standard_normal((10, n)) * 0.01

    def __call__(self) -> float:
        X, W1, W2, dZ2 = self.X, self.W1, self.W2, self.dZ2
        t0 = time.perf_counter()
        A1 = W1.dot(X)
        W2.dot(A1)
        dZ2.dot(A1.T)
        dZ1 = W2.T.dot(dZ2)
        dZ1.dot(X.T)
        return time.perf_counter() - t0
