"""Threads: NumPy's BLAS threads, and digitnet's own threads for the length of a training run.

By default digitnet leaves the thread count to the BLAS library and the
environment (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ...): matrix
products may use several cores, everything else runs on one. ``digitnet train
--threads N`` (``fit(threads=N)``) instead has the convolution, pooling,
batch-norm, ReLU and large Dense layers split each batch over N threads of
digitnet's own (see :mod:`digitnet.nn.parallel`) and runs the BLAS on one
thread inside each block, so the two kinds of threads never compete for cores
and the elementwise work uses every core too. On the project's 2-core machine
the ``cnn`` preset trains ~1.5x faster that way than on one thread, and ~1.2x
faster than with the BLAS's own two threads. The thread setting can change
the last bits of float32 results, so it is saved with the model's training
options.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


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


@contextlib.contextmanager
def training_threads(n: int | None) -> Iterator[None]:
    """Inside the block: ``n`` threads for digitnet's layers and one for the BLAS; None changes nothing."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    from .nn.parallel import use_threads
    with threadpool_limits(limits=1), use_threads(n):
        yield
