"""The seed notebook's full-batch gradient descent, per iteration.

``seed_style_step`` is written the way the notebook (and most from-scratch
tutorials) write it: float64, one column per image (X is (784, m)), a fresh
array for every intermediate result. digitnet runs the same recipe through
``digitnet.fit(batch_size="full")`` in float32. Both start from the same weights.
"""

from __future__ import annotations

import time

import numpy as np

import digitnet
from digitnet.train import fit

from . import profile, torch_port
from .common import Context, median, ratio_spread, reference_threads, spread

LR = 0.5


def seed_style_step(W1, b1, W2, b2, X, Y, lr):
    """One gradient-descent iteration, notebook style (float64, columns are samples)."""
    m = X.shape[1]
    Z1 = W1.dot(X) + b1                         # (64, m)
    A1 = np.maximum(Z1, 0)
    Z2 = W2.dot(A1) + b2                        # (10, m)
    E = np.exp(Z2 - Z2.max(axis=0))
    A2 = E / E.sum(axis=0)
    one_hot = np.zeros_like(A2)
    one_hot[Y, np.arange(m)] = 1
    dZ2 = A2 - one_hot
    dW2 = dZ2.dot(A1.T) / m
    db2 = dZ2.sum(axis=1, keepdims=True) / m
    dZ1 = W2.T.dot(dZ2) * (Z1 > 0)
    dW1 = dZ1.dot(X.T) / m
    db1 = dZ1.sum(axis=1, keepdims=True) / m
    return W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2


def fullbatch_case(ctx: Context) -> dict:
    model = digitnet.MLP((64,), seed=ctx.seed)
    p = {k: v.copy() for k, v in model.params.items()}
    W1, b1 = p["0.W"].T.astype(np.float64), p["0.b"].astype(np.float64)[:, None]
    W2, b2 = p["2.W"].T.astype(np.float64), p["2.b"].astype(np.float64)[:, None]
    X = ctx.train.images.reshape(len(ctx.train), 784).T / 255.0      # (784, m) float64, as the notebook loads it
    Y = ctx.train.labels.astype(np.intp)
    res = {"n_train": len(Y), "lr": LR,
           "init_fingerprint": {"digitnet": torch_port.fingerprint(p),
                                "seed_style": torch_port.fingerprint({"0.W": W1.T, "0.b": b1[:, 0],
                                                                      "2.W": W2.T, "2.b": b2[:, 0]})}}
    digitnet_times, seed_times, f32_gemms, f64_gemms = [], [], [], []
    gemm32, gemm64 = profile.MLPEpochGemms(len(Y), len(Y)), profile.SeedStyleGemms(len(Y))
    for i in range(ctx.repeats + 1):                                  # interleaved; i = 0 is a warm-up
        with reference_threads(ctx):                                  # the BLAS floors at the references' threads
            f32_gemms.append(gemm32())
            f64_gemms.append(gemm64())
        model.meta.pop("history", None)
        history = fit(model, ctx.train, None, epochs=1, batch_size="full", lr=LR, momentum=0.0, weight_decay=0.0,
                      threads=ctx.fit_threads,
                      schedule="constant", val_size=0, progress=False)
        digitnet_times.append(history[0]["time"])
        with reference_threads(ctx):
            t0 = time.perf_counter()
            W1, b1, W2, b2 = seed_style_step(W1, b1, W2, b2, X, Y, LR)
            seed_times.append(time.perf_counter() - t0)
    after = {"0.W": W1.T, "0.b": b1[:, 0], "2.W": W2.T, "2.b": b2[:, 0]}
    res["max_param_diff_after"] = torch_port.max_abs_diff(model.params, after)   # float32 vs float64 rounding only
    res["seconds_per_iteration"] = {"digitnet": median(digitnet_times[1:]),
                                    "seed_style_float64": median(seed_times[1:])}
    res["all_seconds"] = {"digitnet": [round(t, 5) for t in digitnet_times[1:]],
                          "seed_style_float64": [round(t, 5) for t in seed_times[1:]]}
    s = res["seconds_per_iteration"]
    res["ratio_vs_seed_style"] = s["digitnet"] / s["seed_style_float64"]
    res["spread"] = {"digitnet": spread(digitnet_times[1:]), "seed_style_float64": spread(seed_times[1:])}
    res["ratio_spread"] = {"vs_seed_style": ratio_spread(digitnet_times[1:], seed_times[1:])}
    f32, f64 = median(f32_gemms[1:]), median(f64_gemms[1:])
    res["profile"] = {"gemm_only_seconds": {"digitnet_float32": f32, "seed_style_float64": f64},
                      "gemm_only_ratio": f32 / f64,
                      "overhead_share": {"digitnet": round(max(s["digitnet"] - f32, 0) / s["digitnet"], 3),
                                         "seed_style_float64": round(max(s["seed_style_float64"] - f64, 0)
                                                                     / s["seed_style_float64"], 3)}}
    res["notes"] = "digitnet.fit(batch_size='full') float32 vs notebook-style float64 NumPy, same initial weights, lr 0.5"
    return res
