"""Data augmentation, vectorised over a batch: one affine (+ elastic) resampling.

Every image of a batch gets its own random rotation, scale and shift (and,
for ``elastic``, a smooth random displacement field as in Simard et al. 2003);
all of them are applied together by computing, for every output pixel, where
to read in the source image, and reading there with bilinear interpolation
(zeros outside). No Python loop over images or pixels. Labels are unchanged.
"""

from __future__ import annotations

import numpy as np

from .errors import DigitnetError

KINDS = ("none", "shift", "affine", "elastic")
SIZE = 28


def _gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix G such that ``G @ a @ G.T`` blurs a (n, n) image with a Gaussian of ``sigma``."""
    i = np.arange(n)
    G = np.exp(-0.5 * ((i[:, None] - i[None, :]) / sigma) ** 2)
    return G / G.sum(axis=1, keepdims=True)


def sample_bilinear(images: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Read ``images`` (B, H, W) at float positions ``ys, xs`` (B, H, W); zero outside."""
    B, H, W = images.shape
    padded = np.zeros((B, H + 2, W + 2), np.float32)       # a zero border to read from outside
    padded[:, 1:-1, 1:-1] = images
    flat = padded.reshape(B, -1)
    ys, xs = np.clip(ys, -1, H), np.clip(xs, -1, W)
    y0, x0 = np.minimum(np.floor(ys), H - 1), np.minimum(np.floor(xs), W - 1)
    wy, wx = (ys - y0).astype(np.float32), (xs - x0).astype(np.float32)
    base = ((y0 + 1) * (W + 2) + (x0 + 1)).astype(np.intp).reshape(B, -1)

    def at(offset):
        return np.take_along_axis(flat, base + offset, axis=1).reshape(B, H, W)

    top = at(0) * (1 - wx) + at(1) * wx
    bottom = at(W + 2) * (1 - wx) + at(W + 3) * wx
    return top * (1 - wy) + bottom * wy


def augment(images: np.ndarray, rng: np.random.Generator, kind: str = "affine", *, max_shift: float = 2.0,
            max_rotate: float = 10.0, max_scale: float = 0.1, elastic_alpha: float = 1.5,
            elastic_sigma: float = 3.0) -> np.ndarray:
    """Randomly transformed copies of a batch of digits.

    Parameters
    ----------
    images : (B, 28, 28) uint8 (0-255) or float array in [0, 1]
    rng : np.random.Generator
        The only source of randomness: same generator state, same output.
    kind : "none", "shift", "affine" or "elastic"
        ``shift``: random translations up to ``max_shift`` pixels;
        ``affine``: plus rotation up to ``max_rotate`` degrees and scaling by
        up to ``max_scale``; ``elastic``: plus a Gaussian-smoothed random
        displacement field of ``elastic_alpha`` pixels (smoothness ``elastic_sigma``).

    Returns
    -------
    (B, 28, 28) float32 in [0, 1]
    """
    if kind not in KINDS:
        raise DigitnetError(f"augment must be one of {', '.join(KINDS)}; got {kind!r}")
    x = np.asarray(images)
    if x.ndim != 3 or x.shape[1:] != (SIZE, SIZE):
        x = x.reshape(len(x), SIZE, SIZE) if x.size == len(x) * SIZE * SIZE else None
        if x is None:
            raise DigitnetError(f"augment expects images of shape (B, 28, 28), got {np.shape(images)}")
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if kind == "none":
        return x
    B = len(x)
    shift = rng.uniform(-max_shift, max_shift, size=(B, 2))
    if kind == "shift":
        angle, scale = np.zeros(B), np.ones(B)
    else:
        angle = np.deg2rad(rng.uniform(-max_rotate, max_rotate, size=B))
        scale = 1 + rng.uniform(-max_scale, max_scale, size=B)
    # Output pixel p reads source position c + R(-angle) (p - c - shift) / scale.
    c = (SIZE - 1) / 2
    grid = np.arange(SIZE, dtype=np.float64) - c
    gy, gx = grid[None, :, None] - shift[:, 0, None, None], grid[None, None, :] - shift[:, 1, None, None]
    cos, sin = (np.cos(angle) / scale)[:, None, None], (np.sin(angle) / scale)[:, None, None]
    ys = c + cos * gy - sin * gx                            # (B, 28, 28)
    xs = c + sin * gy + cos * gx
    if kind == "elastic":
        G = _gaussian_matrix(SIZE, elastic_sigma)
        field = rng.uniform(-1, 1, size=(2, B, SIZE, SIZE))
        field = G @ field @ G.T                             # smooth each field: (2, B, 28, 28)
        field *= elastic_alpha / np.maximum(np.abs(field).max(axis=(2, 3), keepdims=True), 1e-12)
        ys, xs = ys + field[0], xs + field[1]
    return np.clip(sample_bilinear(x, ys, xs), 0.0, 1.0)
