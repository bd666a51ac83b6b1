"""NumPy's BLAS threads: how many there are, and a limit for the length of a training run.

By default digitnet leaves the thread count to the BLAS library and the
environment (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, ...). ``digitnet
train --threads N`` sets it for one run instead. Fewer threads can be faster
for small networks: a BLAS worker thread on another core reads the batch and
writes half of each weight gradient, and the main thread's elementwise work
then waits for those cache lines to travel between the cores (on the project's
2-core machine, 784-64-10 at batch 128 trains about 1.5x faster on one thread;
``python -m benchmarks`` with ``OPENBLAS_NUM_THREADS=1`` shows it). The thread
count can change the last bits of float32 results, so it is saved with the
model's training options.
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
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit BLAS (and OpenMP) libraries to ``n`` threads inside the block; None leaves them as they are."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=int(n)):
        yield
