"""Shared pieces: the run context, optional imports, timing helpers."""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

# The comparison recipe (BASELINES.md): SGD, momentum 0.9 in PyTorch's convention, lr 0.05,
# no weight decay, constant rate, float32, pixels / 255, reshuffled every epoch.
LR, MOMENTUM = 0.05, 0.9


@dataclass
class Context:
    train: object              # digitnet Dataset used for training cases
    test: object               # digitnet Dataset used for accuracy / inference
    repeats: int
    seed: int
    threads: int               # BLAS threads NumPy uses; torch is given the same number
    tiny: bool
    quick: bool
    cnn_epochs: int
    out_dir: str
    digitnet_threads: int | None = None   # `digitnet train --threads N` mode (layers split batches), or None
    fit_threads: int | str | None = "auto"  # what every digitnet training run is given: N, "auto" or None (blas)


def optional(name: str):
    """Import ``name`` or return None (the case then reports why it was skipped)."""
    try:
        return __import__(name)
    except ImportError:
        return None


def torch_ready(ctx: Context):
    torch = optional("torch")
    if torch is not None:
        torch.set_num_threads(ctx.threads)
    return torch


def reference_threads(ctx: Context):
    """Context for the code that is not digitnet's (seed-style NumPy, scikit-learn).

    In ``--threads N`` mode digitnet's BLAS is held at one thread while its own N threads work; the
    references then get N BLAS threads, so every library uses the same number of cores.
    """
    if not ctx.digitnet_threads:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=ctx.digitnet_threads)


def median(xs) -> float:
    return float(statistics.median(xs))


def spread(xs) -> dict:
    """``{"min", "median", "max"}`` of repeated measurements: a wide range says the machine was noisy."""
    xs = [float(x) for x in xs]
    return {"min": min(xs), "median": median(xs), "max": max(xs)}


def ratio_spread(ours, theirs) -> dict:
    """min / median / max of ``ours[i] / theirs[i]``: each repeat's two timings were taken back to back."""
    return spread([a / b for a, b in zip(ours, theirs)])


def per_call(fn, calls: int) -> float:
    """Seconds per call of ``fn`` averaged over ``calls`` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def skipped(reason: str) -> dict:
    return {"status": "skipped", "reason": reason}


def epoch_gflop(n_samples: int) -> float:
    """FLOPs of one 784-64-10 epoch: 2 GEMMs for layer 1 (no dX), 3 for layer 2."""
    return n_samples * 2 * (2 * 784 * 64 + 3 * 64 * 10) / 1e9


def write_table(out: str, lines: list[str]) -> None:
    """A script's printed table as ``out`` with the suffix .md, its folder made if need be."""
    path = Path(out).with_suffix(".md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
