"""``digitnet serve``: the drawing page and the JSON API (the ``web`` extra)."""

from __future__ import annotations

import argparse
import re

from ..errors import DigitnetError
from ._args import port, positive_int


def add_parser(sub, fmt) -> None:
    sv = sub.add_parser(
        "serve",
        help="the drawing web app and JSON API (needs the 'web' extra)",
        formatter_class=fmt,
        description="Serve a page to draw digits on and a JSON API (POST /api/predict, "
        "GET /api/model, GET /healthz; reference at /docs).",
    )
    sv.add_argument(
        "--model",
        action="append",
        metavar="M",
        default=argparse.SUPPRESS,
        help="model file or shipped model name; repeat to offer several (the first is the "
        "default); default: every shipped model, the reader first",
    )
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sv.add_argument("--port", type=port, default=8000, help="TCP port")
    sv.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="server processes sharing the port (one per CPU core uses them all)",
    )
    sv.add_argument("--access-log", action="store_true", help="log every request")
    sv.add_argument(
        "--allow-origin",
        action="append",
        metavar="ORIGIN",
        type=origin,
        help="let web pages from ORIGIN (e.g. http://localhost:3000; * for any) call the API from a browser "
        "(CORS); repeatable; default: only the server's own page",
    )
    sv.add_argument(
        "--collect",
        metavar="DIR",
        help="add a 'wrong? tap the right digit' control to the page that saves the drawing under "
        "DIR/<digit>/ (for digitnet finetune); without it nothing a client sends is written",
    )
    sv.set_defaults(func=run)


def run(args) -> int:
    try:
        import fastapi  # noqa: F401
        import httptools  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise DigitnetError(
            f"digitnet serve needs the 'web' extra ({exc.name} is missing): pip install 'digitnet[web]'"
        ) from None
    from ..web import serve

    serve(
        getattr(args, "model", None),
        host=args.host,
        port=args.port,
        access_log=args.access_log,
        workers=args.workers,
        collect=args.collect,
        cors_origins=args.allow_origin,
    )
    return 0


def origin(text: str) -> str:
    """An origin as browsers send it (scheme://host[:port], nothing after), or ``*``: a typo would match nothing."""
    if text == "*" or re.fullmatch(r"https?://[^/\s?#]+", text):
        return text
    raise argparse.ArgumentTypeError(f"expected an origin like http://localhost:3000 (or *), got {text[:60]!r}")
