"""Several server processes on one port (``serve --workers N``), sharing connections fairly.

Every worker listens on the same socket, as in uvicorn's own multi-process
mode. But an asyncio server accepts up to its backlog's worth of waiting
connections each time it wakes, so a burst of keep-alive connections (a page's,
a load balancer's, a benchmark's) all landed on whichever worker woke first
and the others sat idle: with 8 clients on 2 workers, about half the runs had
one process doing all the work. Here the first workers start accepting together,
once every one has loaded its app and models (a barrier), and a worker accepts
one connection per wake-up (:class:`FairServer`): every idle worker wakes on a
new connection and may take it, and a worker busy computing does not come back
for more until it is free. Which idle worker wins a connection is still chance.

The supervisor is small: it starts the workers, restarts one that dies (not
one that failed to start: that would fail again), and on SIGINT or SIGTERM
asks every worker to shut down gracefully, waiting at most the configured
graceful-shutdown time (plus a margin) before killing it. A worker whose
supervisor is gone (killed) shuts itself down.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading

import uvicorn

STARTUP_FAILURE = 3  # uvicorn's exit status for a worker that could not start serving
logger = logging.getLogger("uvicorn.error")
LISTEN_BACKLOG = 2048  # connections the kernel queues for the workers to accept
READY_TIMEOUT_S = 60.0  # the first workers wait this long at most for each other to load


class FairServer(uvicorn.Server):
    """uvicorn's server, accepting one connection each time its event loop finds some waiting.

    asyncio takes the ``backlog`` given to ``create_server`` both as the listen queue's length and
    as how many connections to accept per wake-up: uvicorn starts it with ``backlog=1`` (see
    :func:`_worker`), and once its servers are listening the queue is made long again.
    """

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        for sock in sockets or []:
            sock.listen(LISTEN_BACKLOG)


def _worker(config, sock: socket.socket, parent: int, ready=None) -> None:
    """One worker process: uvicorn serving ``config``'s app on ``sock``.

    The first workers wait for each other (``ready``, a barrier) once their app is loaded: the
    keep-alive connections made while only one of them listened would stay with that one.

    The worker leaves the terminal's process group, so a Ctrl-C reaches only the supervisor, which
    then sends each worker one SIGTERM (a second signal would make uvicorn skip its graceful
    shutdown); and it stops by itself if the supervisor dies without stopping it.
    """
    os.setpgrp()

    def watch_parent() -> None:
        while os.getppid() == parent:
            threading.Event().wait(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_parent, name="digitnet-parent-watch", daemon=True).start()
    config.configure_logging()
    config.backlog = 1  # one accept per wake-up; FairServer restores the listen queue
    config.load()  # the app and its models: seconds, in which an earlier worker would take every connection
    if ready is not None:  # the first workers start accepting together
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait(READY_TIMEOUT_S)
    FairServer(config).run(sockets=[sock])


class Supervisor:
    """Runs ``n`` worker processes listening on ``sock`` until SIGINT or SIGTERM."""

    def __init__(self, config, sock: socket.socket, n: int):
        self.config, self.sock, self.n = config, sock, n
        self.stop = threading.Event()
        self.failed = False
        self._context = multiprocessing.get_context("spawn")  # no forked copies of the parent's threads

    def _start(self, ready=None):
        process = self._context.Process(target=_worker, args=(self.config, self.sock, os.getpid(), ready), daemon=False)
        process.start()
        return process

    def run(self) -> int:
        """Serve until asked to stop; 0, or 1 when a worker failed to start."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        ready = self._context.Barrier(self.n)
        processes = [self._start(ready) for _ in range(self.n)]
        try:
            while not self.stop.wait(0.5):
                for i, process in enumerate(processes):
                    if process.is_alive():
                        continue
                    if process.exitcode == STARTUP_FAILURE:
                        logger.error("a worker process failed to start; stopping")
                        self.failed = True
                        self.stop.set()
                        break
                    logger.info(f"worker process [{process.pid}] died (exit status {process.exitcode}); restarting it")
                    processes[i] = self._start()
        finally:
            self._shut_down(processes)
        return 1 if self.failed else 0

    def _on_signal(self, _signum, _frame) -> None:
        self.stop.set()

    def _shut_down(self, processes) -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn's graceful shutdown, bounded by the config
        grace = float(self.config.timeout_graceful_shutdown or 0) + 5.0
        for process in processes:
            process.join(grace)
            if process.is_alive():
                process.kill()
                process.join()


def serve_workers(config, host: str, port: int, workers: int, announce) -> int:
    """Serve ``config`` (an app factory import string) in ``workers`` processes on ``host:port``.

    ``announce(port)`` is called once the port is bound, before any worker starts. Returns 0, or 1
    when a worker failed to start.
    """
    from .server import bind

    sock = bind(host, port)
    try:
        announce(sock.getsockname()[1])
        return Supervisor(config, sock, workers).run()
    finally:
        sock.close()
