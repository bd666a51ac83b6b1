"""Several server processes on one port, each with its own listening socket (``serve --workers N``).

uvicorn's own multi-process mode hands every worker the same listening
socket. An asyncio server accepts every connection waiting when it wakes,
so a burst of keep-alive connections (a page's, a load balancer's, a
benchmark's) all land on whichever worker woke first, and the others sit
idle: with 8 clients on 2 workers, about half the runs had one process doing
all the work at half the throughput. Here each worker listens on a socket of
its own, all bound to the port with ``SO_REUSEPORT``, and the kernel spreads
new connections over them.

Where the kernel does not spread them (``SO_REUSEPORT`` missing or, outside
Linux, without load balancing) :func:`serve_workers` falls back to uvicorn's
shared socket.

The supervisor is small: it starts one process per socket, restarts a worker
that dies (not one that failed to start: that would fail again), and on
SIGINT or SIGTERM asks every worker to shut down gracefully, waiting at most
the configured graceful-shutdown time (plus a margin) before killing it. A
worker whose supervisor is gone (killed) shuts itself down.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading

from ..errors import DigitnetError

STARTUP_FAILURE = 3  # uvicorn's exit status for a worker that could not start serving
logger = logging.getLogger("uvicorn.error")


def balanced() -> bool:
    """Whether this system spreads connections over sockets sharing a port (Linux's SO_REUSEPORT)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind_group(host: str, port: int, n: int) -> list[socket.socket]:
    """``n`` listening sockets on one ``host:port`` (SO_REUSEPORT), or a DigitnetError if the port is taken.

    The port is first bound once without SO_REUSEPORT: that fails when anyone holds it, another
    ``digitnet serve`` included (whose sockets would otherwise share the port with these).
    """
    from .server import bind

    probe = bind(host, port)
    port = probe.getsockname()[1]  # port 0: the free port the system chose
    probe.close()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            sock = socket.socket(family, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(2048)
    except OSError as exc:
        for sock in socks:
            sock.close()
        raise DigitnetError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return socks


def _worker(config, sock: socket.socket, parent: int) -> None:
    """One worker process: uvicorn serving ``config``'s app on ``sock`` alone.

    The worker leaves the terminal's process group, so a Ctrl-C reaches only the supervisor, which
    then sends each worker one SIGTERM (a second signal would make uvicorn skip its graceful
    shutdown); and it stops by itself if the supervisor dies without stopping it.
    """
    import os

    import uvicorn

    os.setpgrp()

    def watch_parent() -> None:
        while os.getppid() == parent:
            threading.Event().wait(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_parent, name="digitnet-parent-watch", daemon=True).start()
    config.configure_logging()
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """Runs one worker process per socket until SIGINT or SIGTERM."""

    def __init__(self, config, socks: list[socket.socket]):
        self.config, self.socks = config, socks
        self.stop = threading.Event()
        self.failed = False
        self._context = multiprocessing.get_context("spawn")  # no forked copies of the parent's threads

    def _start(self, sock: socket.socket):
        process = self._context.Process(target=_worker, args=(self.config, sock, os.getpid()), daemon=False)
        process.start()
        return process

    def run(self) -> int:
        """Serve until asked to stop; 0, or 1 when a worker failed to start."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        processes = [self._start(sock) for sock in self.socks]
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
                    processes[i] = self._start(self.socks[i])
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

    ``announce(port)`` is called once the port is bound, before any worker starts.
    """
    if not balanced():
        from uvicorn.supervisors import Multiprocess

        from .server import bind

        sock = bind(host, port)
        sock.set_inheritable(True)
        try:
            announce(sock.getsockname()[1])
            Multiprocess(config, sockets=[sock]).run()
        finally:
            sock.close()
        return 0
    socks = bind_group(host, port, workers)
    try:
        announce(socks[0].getsockname()[1])
        return Supervisor(config, socks).run()
    finally:
        for sock in socks:
            sock.close()
