"""Threads: digitnet's own, for the convolution, pooling and large dense kernels, and NumPy's BLAS threads.

This is the one place thread settings are explained.

NumPy releases the GIL inside its loops and BLAS calls, so Python threads
working on disjoint images of a batch run in parallel. The convolution and
2 x 2 max-pooling kernels (:mod:`digitnet.nn._fast`) hand each thread a
contiguous block of the batch's images through :func:`map_blocks`, and a
fully connected layer's matrix products of at least ``_fast.SPLIT_PRODUCT``
multiply-adds (a convnet's 800 x 256 layer at batch 128) a block of their
output rows; nothing else is split, because elsewhere a thread hand-over
costs about as much as the work it would move. With one thread
(the default, outside a training run) :func:`map_blocks` simply calls the
function once, in the calling thread.

``fit(threads=...)`` / ``digitnet train --threads`` picks the setting for a run:

* ``N``: the kernels split each batch over N of digitnet's threads and the
  BLAS runs on one thread meanwhile, so the two kinds of threads never compete
  for cores.
* ``None`` (``--threads blas``): nothing is changed; the BLAS uses the threads
  ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` or the library chose, and
  everything else runs on one core.
* ``"auto"`` (the default): if one of those variables is set, it is respected
  (as ``None``); otherwise convolutional networks get one of digitnet's
  threads per available core, other networks trained on batches of at least
  :data:`BLAS_BATCH` images (full-batch gradient descent) are left to the
  BLAS (as ``None``), and the rest run on one thread (as ``1``). The BLAS's
  own threads spin while they wait for work, and each matrix product waits
  for its slowest thread: when another process holds a core, a minibatch
  epoch of thousands of small products becomes several times slower, while
  digitnet's threads sleep in a queue and lose only their share of the core.
  A full batch's few large products are waited for a few times a step, not
  thousands of times an epoch: a busy core costs them little, and an idle
  one speeds them up (docs/threads.md has the figures).

Evaluation, prediction and the web server run the BLAS on one thread
(:func:`inference_threads`) unless one of those variables is set: their
matrix products are small, so a second BLAS thread gains little on an idle
machine and costs many times that beside another busy process.

Blocks are fixed by the batch size and the thread count, so a run is
reproducible for a given setting; the setting can change the last bits of
float32 sums, so it is saved with the model's training options, and the
thread counts used in its metadata.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, TypeVar

T = TypeVar("T")

THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
BLAS_NAMES = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS", "flexiblas": "FlexiBLAS"}

_threads: contextvars.ContextVar[int] = contextvars.ContextVar("digitnet_threads", default=1)
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


# -- digitnet's own threads --------------------------------------------------------------------------------
def threads() -> int:
    """How many threads the kernels split a batch over here (1: no splitting)."""
    return _threads.get()


@contextlib.contextmanager
def use_threads(n: int) -> Iterator[None]:
    """Inside the block, kernels called from this thread split their batches over ``n`` threads."""
    global _pool, _pool_size
    n = max(1, int(n))
    if n > 1:
        with _lock:
            if _pool_size < n - 1:  # the calling thread works on one block itself
                if _pool is not None:
                    _pool.shutdown(wait=False)  # calls already under way keep their threads
                _pool, _pool_size = ThreadPoolExecutor(n - 1, thread_name_prefix="digitnet"), n - 1
    token = _threads.set(n)
    try:
        yield
    finally:
        _threads.reset(token)


def blocks(n: int) -> list[slice]:
    """``range(n)`` cut into at most ``threads()`` contiguous, near-equal, non-empty slices."""
    k = max(1, min(threads(), n))
    bounds = [n * i // k for i in range(k + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def map_blocks(fn: Callable[[slice], T], n: int) -> list[T]:
    """``[fn(s) for s in blocks(n)]``, the blocks worked on concurrently; an exception is re-raised."""
    slices = blocks(n)
    pool = _pool
    if len(slices) == 1 or pool is None:
        return [fn(s) for s in slices]
    futures = [pool.submit(fn, s) for s in slices[1:]]
    try:
        first = fn(slices[0])
    except BaseException:
        wait(futures)  # no block may still be writing when the error surfaces
        raise
    return [first] + [f.result() for f in futures]


# -- a training run's setting --------------------------------------------------------------------------------
def blas_info() -> dict | None:
    """``{"library", "version", "threads"}`` of NumPy's BLAS, or None if none is found."""
    from threadpoolctl import threadpool_info

    blas = [d for d in threadpool_info() if d.get("user_api") == "blas"]
    # NumPy's own wheel-bundled BLAS first; otherwise the system BLAS it was linked against
    blas.sort(key=lambda d: "numpy" not in (d.get("filepath") or "").lower())
    if not blas:
        return None
    d = blas[0]
    api = d.get("internal_api") or "BLAS"
    return {"library": BLAS_NAMES.get(api, api), "version": d.get("version"), "threads": d.get("num_threads")}


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def user_chose_blas_threads() -> bool:
    """True when one of the BLAS thread variables is set: the user's choice wins over digitnet's defaults."""
    return any(os.environ.get(v) for v in THREAD_VARIABLES)


BLAS_BATCH = 16384  # "auto": an MLP trained on batches this large (or full batches) uses the BLAS's threads


def resolve(setting: int | str | None, model: Any, batch_size: int = 0) -> int | None:
    """The thread count a training run of ``model`` on ``batch_size``-image batches uses for ``setting``.

    See the module docstring; None leaves the BLAS's threads as they are.
    """
    if setting != "auto":
        return None if setting is None else int(setting)
    if user_chose_blas_threads():
        return None
    from .conv import Conv2D

    if any(isinstance(layer, Conv2D) for layer in model.layers):
        return available_cores()
    return None if batch_size >= BLAS_BATCH else 1


@contextlib.contextmanager
def inference_threads() -> Iterator[None]:
    """One BLAS thread inside the block (evaluate, predict, serve), unless the user chose otherwise."""
    if user_chose_blas_threads():
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@contextlib.contextmanager
def training_threads(n: int | None) -> Iterator[None]:
    """Inside the block: ``n`` threads for digitnet's kernels and one for the BLAS; None changes nothing."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    # BLAS libraries only: an OpenMP runtime in the same process (PyTorch's, say) keeps its own setting
    with threadpool_limits(limits=1, user_api="blas"), use_threads(n):
        yield
