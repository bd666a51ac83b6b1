"""Weight initialisation. Every function takes an explicit generator."""

from __future__ import annotations

import numpy as np


def he_normal(rng: np.random.Generator, fan_in: int, shape, dtype=np.float32) -> np.ndarray:
    """N(0, 2/fan_in): keeps activation variance constant through ReLU layers."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int, shape, dtype=np.float32) -> np.ndarray:
    """U(-a, a) with a = sqrt(6/(fan_in+fan_out)): for tanh/sigmoid/linear layers."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)
