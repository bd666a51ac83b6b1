"""Several server processes on one port (``serve --workers N``), sharing connections fairly.

Every worker listens on the same socket, as in uvicorn's own multi-process
mode. But an event loop accepts every connection waiting when it wakes, so a
burst of keep-alive connections (a page's, a load balancer's, a benchmark's)
all landed on whichever worker woke first while the others sat idle: with 8
clients on 2 workers, about half the runs had one process doing all the work.
Here each worker accepts connections itself, one per wake-up
(:class:`FairServer`), and publishes how many it has open in an array the
workers share; a worker with more open connections than another leaves a new
connection to the others, for at most :data:`MAX_DEFER_S` (so a stalled or dead
worker's low count does not hold connections up). The first workers start
accepting together, once every one has loaded its app and models (a barrier).

The supervisor is small: it starts the workers, restarts one that dies (not
one that failed to start: that would fail again), and on SIGINT or SIGTERM
asks every worker to shut down gracefully, waiting at most the configured
graceful-shutdown time (plus a margin) before killing it. A worker whose
supervisor is gone (killed) shuts itself down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time

import uvicorn

STARTUP_FAILURE = 3  # uvicorn's exit status for a worker that could not start serving
logger = logging.getLogger("uvicorn.error")
READY_TIMEOUT_S = 60.0  # the first workers wait this long at most for each other to load
DEFER_S = 0.002  # a worker leaving a connection to the others looks again after this long
MAX_DEFER_S = 0.02  # ... and takes it itself once it has waited this long
NOT_SERVING = 2**30  # the open-connection count of a worker not (yet) accepting: never the fewest


class FairServer(uvicorn.Server):
    """uvicorn's server, accepting connections on ``sock`` itself, fewest-open-connections first.

    ``counts[slot]`` is this worker's number of open connections, read by the other workers;
    a waiting connection is taken by a worker that has no more open than any other (ties: whichever
    wakes first), or by any worker once it has been waiting :data:`MAX_DEFER_S`.
    """

    def __init__(self, config, sock: socket.socket, counts, slot: int):
        super().__init__(config)
        self.sock, self.counts, self.slot = sock, counts, slot
        self._pending = 0  # accepted, not yet a connection uvicorn counts
        self._deferred_since: float | None = None
        self._accepting = False

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=[])  # the app's lifespan; no asyncio server: accepting is ours
        if not self.started:
            return
        config, loop = self.config, asyncio.get_running_loop()

        def create_protocol(_loop=None) -> asyncio.Protocol:  # as uvicorn's own startup makes them
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=_loop
            )

        self._loop, self._create_protocol = loop, create_protocol
        self.sock.setblocking(False)
        self._publish()
        self._listen()

    def _publish(self) -> None:
        self.counts[self.slot] = len(self.server_state.connections) + self._pending

    def _listen(self) -> None:
        if not self._accepting and not self.should_exit:
            self._loop.add_reader(self.sock.fileno(), self._on_waiting)
            self._accepting = True

    def _pause(self, seconds: float) -> None:
        self._loop.remove_reader(self.sock.fileno())
        self._accepting = False
        self._loop.call_later(seconds, self._listen)

    def _on_waiting(self) -> None:
        self._publish()
        mine, now = self.counts[self.slot], time.monotonic()
        if mine > min(self.counts):
            if self._deferred_since is None:
                self._deferred_since = now
            if now - self._deferred_since < MAX_DEFER_S:
                self._pause(DEFER_S)
                return
        self._deferred_since = None
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it
        except OSError as exc:  # out of file descriptors, say: wait rather than spin on the waiting connection
            logger.warning("cannot accept a connection: %s", exc)
            self._pause(0.1)
            return
        conn.setblocking(False)
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pending += 1
        self._publish()
        task = self._loop.create_task(self._loop.connect_accepted_socket(self._create_protocol, conn))
        task.add_done_callback(self._connected)

    def _connected(self, task) -> None:
        self._pending -= 1
        self._publish()
        if not task.cancelled() and task.exception() is not None:
            logger.warning("cannot serve an accepted connection: %s", task.exception())

    async def on_tick(self, counter: int) -> bool:
        self._publish()  # connections closed since the last accept
        return await super().on_tick(counter)

    async def shutdown(self, sockets=None) -> None:
        if self._accepting:
            self._loop.remove_reader(self.sock.fileno())
            self._accepting = False
        self.counts[self.slot] = NOT_SERVING
        await super().shutdown(sockets=sockets)


def _worker(config, sock: socket.socket, parent: int, counts, slot: int, ready=None) -> None:
    """One worker process: uvicorn serving ``config``'s app on ``sock``, as ``counts[slot]``.

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
    config.load()  # the app and its models: seconds, in which an earlier worker would take every connection
    if ready is not None:  # the first workers start accepting together
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait(READY_TIMEOUT_S)
    FairServer(config, sock, counts, slot).run(sockets=[sock])


class Supervisor:
    """Runs ``n`` worker processes listening on ``sock`` until SIGINT or SIGTERM."""

    def __init__(self, config, sock: socket.socket, n: int):
        self.config, self.sock, self.n = config, sock, n
        self.stop = threading.Event()
        self.failed = False
        self._context = multiprocessing.get_context("spawn")  # no forked copies of the parent's threads
        self.counts = self._context.RawArray("i", [NOT_SERVING] * n)  # open connections per worker

    def _start(self, slot: int, ready=None):
        self.counts[slot] = NOT_SERVING  # until it accepts (a dead worker's count would attract connections)
        args = (self.config, self.sock, os.getpid(), self.counts, slot, ready)
        process = self._context.Process(target=_worker, args=args, daemon=False)
        process.start()
        return process

    def run(self) -> int:
        """Serve until asked to stop; 0, or 1 when a worker failed to start."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        ready = self._context.Barrier(self.n)
        processes = [self._start(i, ready) for i in range(self.n)]
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
                    processes[i] = self._start(i)
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
