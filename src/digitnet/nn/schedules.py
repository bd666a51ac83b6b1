"""Learning-rate schedules: the learning rate as a pure function of the step.

Being pure functions of ``step`` (not objects with state) they need nothing
saved in checkpoints: a resumed run recomputes the same values.

* ``constant``: ``lr``.
* ``cosine``: ``lr * (1 + cos(pi t / T)) / 2``, from ``lr`` down to 0.
* ``step``: ``lr * gamma ** floor(t / step_size)`` (``step_size`` in steps).
* ``onecycle``: PyTorch's OneCycleLR (cosine annealing): from ``lr / div_factor``
  up to ``lr`` over the first ``pct_start`` of the run, then down to
  ``lr / (div_factor * final_div_factor)``.

Linear warm-up (``warmup`` steps, from ``lr / warmup`` to ``lr``) can precede
``constant``, ``cosine`` and ``step``; ``t`` and ``T`` then count the steps after it.
"""

from __future__ import annotations

import math

from ..errors import DigitnetError

SCHEDULES = ("constant", "cosine", "step", "onecycle")


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))


def lr_at_step(
    schedule: str,
    lr: float,
    step: int,
    total: int,
    *,
    warmup: int = 0,
    step_size: int = 1,
    gamma: float = 0.1,
    pct_start: float = 0.25,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total``."""
    if schedule not in SCHEDULES:
        raise DigitnetError(f"schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}")
    if schedule == "onecycle":
        up = max(pct_start * total - 1, 1)
        lo = lr / div_factor
        if step <= up:
            return _cos_anneal(lo, lr, step / up)
        return _cos_anneal(lr, lo / final_div_factor, min((step - up) / max(total - 1 - up, 1), 1.0))
    if step < warmup:
        return lr * (step + 1) / warmup
    t, T = step - warmup, max(total - warmup, 1)
    if schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * min(t / T, 1.0)))
    if schedule == "step":
        return lr * gamma ** (t // max(step_size, 1))
    return lr
