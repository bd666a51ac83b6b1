"""A request-body size limit, quiet client disconnects and HEAD requests, as plain ASGI middleware.

The limit is enforced before the body is read: a ``Content-Length`` over the
limit is answered 413 at once, without receiving a byte of the body; a body
without a length (chunked) is counted as it streams in and cut off with 413
the moment it passes the limit. So no request can make the server buffer more
than ``max_body`` bytes.
"""

from __future__ import annotations

import json
import logging

from starlette.exceptions import HTTPException


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the streamed body passes the limit.

    An HTTPException, so whatever layer it crosses (FastAPI's body reading,
    Starlette's exception middleware) turns it into a 413 rather than a 400/500.
    """

    def __init__(self, limit: int):
        # close: the rest of the body is not read (the server drains a bounded amount before closing)
        super().__init__(
            413, f"request body too large: at most {limit:,} bytes are accepted", headers={"connection": "close"}
        )


async def _send_json(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_body`` bytes with 413 Payload Too Large."""

    def __init__(self, app, max_body: int = 2 * 1024 * 1024):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not (length.isdigit() and len(length) < 20):
                return await _send_json(send, 400, f"bad Content-Length header {length[:30].decode('latin-1')!r}")
            if int(length) > self.max_body:
                return await _send_json(send, 413, BodyTooLarge(self.max_body).detail)

        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if not started:
                await _send_json(send, 413, exc.detail)


class DisconnectLogMiddleware:
    """A client that goes away before its request is read is one warning line, not a traceback.

    Starlette raises ``ClientDisconnect`` from ``request.body()`` then; nothing can be answered, so
    the request ends here, quietly for uvicorn (which would log the exception as a server error).
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        from starlette.requests import ClientDisconnect

        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            if "digitnet.refused" in scope:  # the server cut it off (a deadline) and said so already
                return
            client = scope.get("client")
            logging.getLogger("uvicorn.error").warning(
                "%s - client went away before sending its whole request (%s %s)",
                "{}:{}".format(*client) if client else "?",
                scope["method"],
                scope["path"][:100],
            )


class HeadMiddleware:
    """``HEAD`` answered as ``GET`` would be, headers only.

    HTTP servers answer HEAD wherever they answer GET (uptime monitors and
    ``curl -I`` send it); FastAPI's routes take only the methods they name.
    The request goes on as a GET and the response's body is dropped, so its
    headers (``content-length`` included) are the GET's.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def headers_only(message):
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
