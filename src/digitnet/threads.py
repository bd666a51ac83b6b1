"""Threads: NumPy's BLAS threads, and digitnet's own threads for the length of a training run.

``fit(threads=...)`` / ``digitnet train --threads``:

* ``N``: the convolution, pooling, batch-norm, ReLU and large Dense layers split
  each batch over N threads of digitnet's own (see :mod:`digitnet.nn.parallel`)
  and the BLAS runs on one thread inside each block, so the two kinds of
  threads never compete for cores and the elementwise work uses every core too.
* ``None`` (``--threads blas``): nothing is changed; the BLAS uses the threads
  ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` or the library chose, and
  everything else runs on one core.
* ``"auto"`` (the default): if any of those variables is set, they are
  respected (as ``None``); otherwise convolutional networks get one of
  digitnet's threads per available core, and other networks run on one
  thread (as ``1``). The BLAS's own threads spin while they wait for work;
  when another process holds a core, the spinning thread and the busy core
  fight over it and a small network's epoch becomes many times slower, while
  digitnet's threads sleep in a queue and lose only their share of the core.
The setting can change the last bits of float32 results, so it is saved with
the model's training options and the thread counts actually used in its
metadata; the same seed, setting and machine give the same weights.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


NAMES = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS", "flexiblas": "FlexiBLAS"}


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
    return {"library": NAMES.get(api, api), "version": d.get("version"), "threads": d.get("num_threads")}


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def user_chose_blas_threads() -> bool:
    """True when one of the BLAS thread variables is set: the user's choice wins over digitnet's defaults."""
    return any(os.environ.get(v) for v in THREAD_VARIABLES)


@contextlib.contextmanager
def inference_threads() -> Iterator[None]:
    """One BLAS thread inside the block (evaluate, predict, serve), unless the user chose otherwise.

    A prediction's matrix products are small, so a second BLAS thread gains little when the machine
    is idle and, spinning beside another busy process, costs many times that when it is not.
    """
    if user_chose_blas_threads():
        yield
        return
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def resolve(threads: int | str | None, model) -> int | None:
    """The thread count a training run of ``model`` uses for ``threads`` (see the module docstring)."""
    if threads != "auto":
        return threads
    if user_chose_blas_threads():
        return None
    from .nn.conv import Conv2D
    if not any(isinstance(layer, Conv2D) for layer in model.layers):
        return 1
    return available_cores()


@contextlib.contextmanager
def training_threads(n: int | None) -> Iterator[None]:
    """Inside the block: ``n`` threads for digitnet's layers and one for the BLAS; None changes nothing."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    from .nn.parallel import use_threads
    # BLAS libraries only: an OpenMP runtime in the same process (PyTorch's, say) keeps its own setting
    with threadpool_limits(limits=1, user_api="blas"), use_threads(n):
        yield
