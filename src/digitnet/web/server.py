"""uvicorn with limits on what a client may hold: time, header bytes, connections.

uvicorn bounds some of this itself (``timeout_keep_alive``, ``limit_concurrency``,
``timeout_graceful_shutdown``); :class:`GuardedHttpToolsProtocol` adds what it
lacks, on its C parser (httptools):

- a deadline for a request's line and headers, counted from the moment the
  connection opens (or the previous response ends): a client that connects and
  says nothing, or sends its headers a byte at a time, is closed;
- a deadline for the body, counted from the end of the headers;
- a cap on the size and number of header lines (431);
- a cap on open connections, checked when a connection is made: the one over
  the cap is answered 503 at once, so a flood of idle sockets cannot use up the
  process's file descriptors;
- a lingering close: when a response ends the connection while the client is
  still sending its body (a 413, a 408), the server half-closes, reads and
  discards up to ``linger_bytes`` for up to ``linger_s``, then closes. A client
  that sends its whole body before reading (Python's urllib does) then reads
  the response instead of a connection reset; nginx and Apache do the same.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..errors import DigitnetError


@dataclass(frozen=True)
class ServerLimits:
    """What one client may cost the server; every field is checked by :class:`GuardedHttpToolsProtocol`."""

    header_timeout_s: float = 10.0  # connection (or end of the last response) -> end of the headers
    body_timeout_s: float = 30.0  # end of the headers -> end of the body (2 MB at ~70 kB/s)
    keep_alive_s: float = 5.0  # an idle kept-alive connection is closed after this
    max_header_bytes: int = 16 * 1024  # request line + header lines
    max_headers: int = 100
    max_connections: int = 500  # open at once, per server process; more are answered 503
    linger_bytes: int = 8 * 1024 * 1024
    linger_s: float = 5.0
    graceful_shutdown_s: float = 10.0  # on Ctrl-C / SIGTERM, running requests get this long to finish


class _LingeringTransport:
    """The transport as a request's response cycle sees it: its ``close`` lingers while the body is unread."""

    def __init__(self, protocol: GuardedHttpToolsProtocol):
        self._protocol = protocol

    def close(self) -> None:
        self._protocol.close_after_response()

    def __getattr__(self, name):
        return getattr(self._protocol.transport, name)


class _StopParsing(Exception):
    """Raised from a parser callback to stop httptools reading more of this connection."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines, header limits, a connection cap and lingering close.

    The limits come from ``config.digitnet_limits`` (a :class:`ServerLimits`), set by :func:`uvicorn_config`.
    """

    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ServerLimits = getattr(config, "digitnet_limits", ServerLimits())
        self._timer: asyncio.TimerHandle | None = None
        self._in_headers = True  # between requests, or reading a request line and headers
        self._in_body = False  # headers read, body not yet complete
        self._requests = 0  # requests whose headers were read
        self._raw_bytes = 0  # bytes received while reading this request's headers
        self._parsed_bytes = 0  # request line + header lines as parsed
        self._header_count = 0
        self._lingering = False
        self._drained = 0

    # ------------------------------------------------------------------ deadlines
    def _arm(self, seconds: float, callback) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_too_slow(self) -> None:
        self._timer = None
        if self._raw_bytes == 0 and self._parsed_bytes == 0:  # idle, as after a keep-alive: just close
            self.transport.close()
        else:
            self._refuse(408, f"request headers not received within {self.limits.header_timeout_s:g} s")

    def _body_too_slow(self) -> None:
        self._timer = None
        if self.cycle is not None and self.cycle.response_complete:  # answered already (a 413): just end it
            self.transport.close()
        elif self._in_body:
            self._refuse(408, f"request body not received within {self.limits.body_timeout_s:g} s")

    # ------------------------------------------------------------------ refusing and closing
    def _refuse(self, status: int, detail: str, linger_s: float | None = None) -> None:
        """Answer ``status`` with a one-line JSON detail, outside the app, and close (lingering)."""
        if self.transport.is_closing() or self._lingering:
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() returns http.disconnect, its send() is dropped
            cycle.message_event.set()
            # logged here, so DisconnectLogMiddleware need not log the disconnect the app now sees
            cycle.scope["digitnet.refused"] = status  # type: ignore[typeddict-unknown-key]
            if cycle.response_started:  # half a response is out: nothing else can be said
                self.transport.close()
                return
        self.logger.warning("%s%d: %s", "{}:{} - ".format(*self.client) if self.client else "", status, detail)
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}[status]
        body = json.dumps({"detail": detail}).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self._linger(self.limits.linger_s if linger_s is None else linger_s)

    def close_after_response(self) -> None:
        """What the response cycle's ``transport.close()`` does: linger while the client is still sending."""
        if self._in_body:
            self._linger(self.limits.linger_s)
        else:
            self.transport.close()

    def _linger(self, seconds: float) -> None:
        if self._lingering or self.transport.is_closing():
            return
        self._lingering = True
        self.connections.discard(self)  # no longer counts against max_connections
        self._unset_keepalive_if_required()
        self._arm(seconds, self.transport.close)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the response is complete: say so now
        self.flow.resume_reading()

    def _drain(self, data: bytes) -> None:
        self._drained += len(data)
        if self._drained > self.limits.linger_bytes:
            self.transport.close()
            return
        try:
            self.parser.feed_data(data)  # only to see where the body ends: on_message_complete closes
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self.transport.close()

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, f"server busy: {self.limits.max_connections} connections open; retry later", linger_s=1.0)
            return
        self._arm(self.limits.header_timeout_s, self._headers_too_slow)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def eof_received(self) -> None:
        if self._lingering:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._lingering:
            self._drain(data)
            return
        # uvicorn's data_received, but a parse stopped by a limit here is not also answered 400
        self._unset_keepalive_if_required()
        was_in_headers, requests = self._in_headers, self._requests
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if not (self._lingering or self.transport.is_closing()):
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if was_in_headers and self._in_headers and requests == self._requests:
            # httptools buffers an unfinished header line itself: count what arrives, too
            self._raw_bytes += len(data)
            if self._raw_bytes > self.limits.max_header_bytes:
                self._refuse(431, f"request headers over {self.limits.max_header_bytes:,} bytes")

    def shutdown(self) -> None:
        if self._in_body or self._lingering:  # a client still sending must not hold the shutdown up
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.disconnected = True
                self.cycle.message_event.set()
            self.transport.close()
        else:
            super().shutdown()

    # ------------------------------------------------------------------ httptools callbacks
    def on_message_begin(self) -> None:
        if self._lingering:
            return
        super().on_message_begin()
        self._header_count = 0
        if self._timer is None:  # a pipelined request, begun while the last one runs
            self._arm(self.limits.header_timeout_s, self._headers_too_slow)

    def on_url(self, url: bytes) -> None:
        if self._lingering:
            return
        self._count_header(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._lingering:
            return
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refuse(431, f"more than {self.limits.max_headers} header lines")
            raise _StopParsing
        self._count_header(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_header(self, n: int) -> None:
        self._parsed_bytes += n
        if self._parsed_bytes > self.limits.max_header_bytes:
            self._refuse(431, f"request headers over {self.limits.max_header_bytes:,} bytes")
            raise _StopParsing

    def on_headers_complete(self) -> None:
        if self._lingering:
            return
        self._in_headers, self._in_body = False, True
        self._requests += 1
        self._raw_bytes = self._parsed_bytes = 0
        self._arm(self.limits.body_timeout_s, self._body_too_slow)
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = _LingeringTransport(self)  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        if not self._lingering:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._lingering:
            self.transport.close()
            raise _StopParsing
        self._in_body, self._in_headers = False, True
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._lingering:
            return
        super().on_response_complete()
        idle = self.cycle is None or self.cycle.response_complete  # else a pipelined request has started
        if idle and self._in_headers and self._timer is None and not self.transport.is_closing():
            # the next request must be in within keep-alive + header time, however slowly it trickles
            self._arm(self.limits.keep_alive_s + self.limits.header_timeout_s, self._headers_too_slow)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a DigitnetError saying why not (port taken, no such address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart may reuse the port
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = "already in use" if exc.errno == 98 else (exc.strerror or str(exc))
        raise DigitnetError(f"cannot listen on {host}:{port}: {why}") from None
    sock.set_inheritable(True)  # uvicorn's worker processes listen on it too
    return sock


def uvicorn_config(app, limits: ServerLimits = ServerLimits(), **kwargs):
    """A ``uvicorn.Config`` for ``app`` with :class:`GuardedHttpToolsProtocol` and ``limits``."""
    import uvicorn

    # uvicorn's timeouts are typed int but used as call_later / wait_for seconds: a float works
    config = uvicorn.Config(
        app,
        http=GuardedHttpToolsProtocol,
        ws="none",
        timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]
        limit_concurrency=limits.max_connections + 1,  # tasks; connections are capped above
        timeout_graceful_shutdown=limits.graceful_shutdown_s,  # type: ignore[arg-type]
        **kwargs,
    )
    config.digitnet_limits = limits  # type: ignore[attr-defined]  # read by each connection (pickled to workers)
    return config
