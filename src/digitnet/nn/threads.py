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
machine and costs many times that beside another busy process. A prediction
over many images (``Sequential.predict``, ``predict_proba``, ``logits``:
more than one chunk of images) instead shares its chunks out over one of
digitnet's threads per core (:func:`map_split`), each chunk converted,
passed through the network and reduced by one thread, the BLAS on one
thread meanwhile: the whole pipeline runs on every core, not only the
products. Inside :func:`use_threads` (a training run's validation) the
run's count is used; a web server's threads keep to one (:func:`one_thread_here`).

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

_threads: contextvars.ContextVar[int | None] = contextvars.ContextVar("digitnet_threads", default=None)
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


# -- digitnet's own threads --------------------------------------------------------------------------------
def threads() -> int:
    """How many threads the kernels split a batch over here (1: no splitting)."""
    return _threads.get() or 1


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
                # a pool thread never splits work again: it would wait for the pool it is part of
                _pool = ThreadPoolExecutor(n - 1, thread_name_prefix="digitnet", initializer=one_thread_here)
                _pool_size = n - 1
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


def one_thread_here() -> None:
    """From now on, work called in this thread does not split over digitnet's threads (a thread pool's
    initializer: a web server's threads, each process serving on one core, and digitnet's own pool)."""
    _threads.set(1)


# -- inference over many images -------------------------------------------------------------------------------
def inference_count() -> int:
    """Threads :func:`map_split` uses here: :func:`use_threads`'s count inside its block; elsewhere one per
    core, or one when the user set a BLAS thread variable (their choice of threads wins, as in training)."""
    n = _threads.get()
    if n is not None:
        return n
    return 1 if user_chose_blas_threads() else available_cores()


def map_split(fn: Callable[[int], object], n: int) -> None:
    """``fn(i)`` for every ``i`` in ``range(n)``, in contiguous blocks over :func:`inference_count` threads.

    Meanwhile the BLAS runs on one thread (the two kinds of threads would
    compete for cores), and kernels called inside ``fn`` do not split their
    own work again. ``fn`` writes its results itself. When one block fails or
    is interrupted (Ctrl-C), the others stop before their next ``i``.
    """
    k = min(inference_count(), n)
    if k <= 1:
        for i in range(n):
            fn(i)
        return
    stop = threading.Event()

    def block(sl: slice) -> None:
        token = _threads.set(1)
        try:
            for i in range(sl.start, sl.stop):
                if stop.is_set():
                    return
                fn(i)
        except BaseException:
            stop.set()
            raise
        finally:
            _threads.reset(token)

    with use_threads(k), _one_blas_thread():
        try:
            map_blocks(block, n)
        except BaseException:  # also an interrupt while this thread waited for the others
            stop.set()
            raise


_blas_lock = threading.Lock()
_blas_users = 0  # map_split calls under way, in any thread: the first sets the BLAS to one thread, the last undoes it
_blas_limiter: Any = None
_blas_controller: Any = None


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    global _blas_users, _blas_limiter, _blas_controller
    with _blas_lock:
        if _blas_users == 0:
            if _blas_controller is None:  # finding the loaded libraries takes ~0.5 ms; limiting them ~10 us
                from threadpoolctl import ThreadpoolController

                _blas_controller = ThreadpoolController()
            _blas_limiter = _blas_controller.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


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
