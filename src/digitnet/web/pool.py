"""A small pool of threads that decode uploaded images, away from the event loop, each with a deadline.

A Python thread cannot be stopped, so a deadline only lets the *request* give
up: the decode that overran keeps its thread until it ends. That is why the
work is bounded as well (pixels and JPEG scans are checked before decoding, see
:mod:`digitnet.web.inputs`), and why the pool counts every decode still running,
given up on or not: when all ``workers`` are taken and ``queue`` more wait,
the next upload is answered 503 at once instead of adding to a pile that
would starve the event loop of CPU.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from starlette.exceptions import HTTPException

from ..errors import DigitnetError
from ..nn.threads import one_thread_here


class PoolBusy(HTTPException):
    """Every decoding thread is taken (and the queue full), or the upload waited past its deadline: 503."""

    def __init__(self, detail: str):
        super().__init__(503, detail, headers={"Retry-After": "1"})


class DecodePool:
    """Run ``fn(*args)`` in one of ``workers`` threads; give up on it after ``timeout_s``.

    Parameters
    ----------
    workers : int
        Threads decoding at the same time.
    timeout_s : float
        Seconds a request waits for its decode (queueing included).
    queue : int
        Decodes that may wait for a free thread; one more is refused with 503.
    """

    def __init__(self, workers: int = 2, timeout_s: float = 4.0, queue: int | None = None):
        if workers < 1 or timeout_s <= 0:
            raise ValueError(f"need workers >= 1 and timeout_s > 0, got {workers} and {timeout_s}")
        self.workers, self.timeout_s = workers, timeout_s
        # waiting uploads: eight per thread, so a closed loop of 16 clients that all land on one server
        # process waits instead of being shed; few enough that the bodies held (2 MB each at most) stay
        # small, and each waits at most timeout_s
        self.queue = 8 * workers if queue is None else queue
        # a server process reads on one core (its model's predictions do not split over threads)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="digitnet-decode", initializer=one_thread_here)
        self._lock = threading.Lock()
        self._pending = 0  # submitted and not finished, including those whose request gave up

    @property
    def pending(self) -> int:
        return self._pending

    def _finished(self, _future) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, fn, *args):
        """``fn(*args)`` in a worker thread; 503 when the pool is full, 422 when the decode overruns."""
        with self._lock:
            if self._pending >= self.workers + self.queue:
                raise PoolBusy(f"server busy: {self._pending} images are being decoded; retry in a moment")
            self._pending += 1
        future = self._executor.submit(fn, *args)
        future.add_done_callback(self._finished)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except asyncio.TimeoutError:
            if future.cancel():  # it never got a thread: the server is busy, not the image bad
                raise PoolBusy(
                    f"server busy: no decoding thread free within {self.timeout_s:g} s; retry in a moment"
                ) from None
            raise DigitnetError(
                f"the image took longer than {self.timeout_s:g} s to decode; send a smaller or simpler image"
            ) from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
