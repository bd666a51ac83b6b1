"""digitnet's own threads: a layer splits its batch into parts and works on them concurrently.

NumPy releases the GIL inside its loops and BLAS calls, so Python threads
working on disjoint parts of a batch run in parallel. Conv2D, MaxPool2D,
BatchNorm, ReLU, Dense (large batches only) and Adam use :func:`run` over
:func:`parts` of their work; with one thread (outside a training run, or
``--threads 1``) ``run`` simply calls the function once, in the calling thread.

``fit(threads=N)`` (``digitnet train --threads N``, and ``--threads auto`` for
convnets, see :mod:`digitnet.threads`) turns this on for the length of a
training run and holds the BLAS at one thread meanwhile, so the two kinds of
threads never compete for cores. Splits are fixed by the batch size and the
thread count, so a run is reproducible for a given ``N``. Handing a part to
another thread costs ~50 us here, so layers split only work that repays it.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait

_threads: contextvars.ContextVar[int] = contextvars.ContextVar("digitnet_threads", default=1)
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


def threads() -> int:
    """How many threads layers split their work over here (1: no splitting)."""
    return _threads.get()


@contextlib.contextmanager
def use_threads(n: int) -> Iterator[None]:
    """Inside the block, layers called from this thread split their batches over ``n`` threads."""
    global _pool, _pool_size
    n = max(1, int(n))
    if n > 1:
        with _lock:
            if _pool_size < n - 1:                 # the calling thread does one part itself
                if _pool is not None:
                    _pool.shutdown(wait=False)          # calls already under way keep their threads
                _pool, _pool_size = ThreadPoolExecutor(n - 1, thread_name_prefix="digitnet"), n - 1
    token = _threads.set(n)
    try:
        yield
    finally:
        _threads.reset(token)


def parts(n: int, min_size: int = 1) -> list[slice]:
    """``range(n)`` cut into at most ``threads()`` contiguous, near-equal slices of at least ``min_size``."""
    k = max(1, min(threads(), n // max(min_size, 1)))
    bounds = [n * i // k for i in range(k + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def run(fn: Callable[[slice], object], slices: list[slice]) -> list:
    """``[fn(s) for s in slices]``, the slices worked on concurrently; exceptions are re-raised."""
    if len(slices) == 1 or _pool is None:
        return [fn(s) for s in slices]
    futures = [_pool.submit(fn, s) for s in slices[1:]]
    try:
        first = fn(slices[0])
    except BaseException:
        wait(futures)                              # no part may still be writing when the error surfaces
        raise
    return [first] + [f.result() for f in futures]
