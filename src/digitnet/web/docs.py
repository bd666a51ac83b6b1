"""``/docs``: the API reference, rendered from ``/openapi.json`` by Swagger UI.

Swagger UI's files come from the ``fastapi-offline`` package (part of the
``web`` extra; a Swagger UI recent enough for OpenAPI 3.1, which FastAPI
writes) and are served by the app itself under ``/docs-assets``, so
the page works offline and loads nothing from a CDN. The page's own script
(``static/docs.js``) only starts Swagger UI: the page's Content-Security-Policy
allows no inline scripts.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = resources.files("digitnet.web") / "static"


def mount(app: FastAPI, headers: dict) -> None:
    """Serve Swagger UI's assets at ``/docs-assets`` and the reference page at ``/docs``."""
    assets = resources.files("fastapi_offline") / "static"  # swagger-ui-bundle.js, swagger-ui.css, favicon
    app.mount("/docs-assets", StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return FileResponse(str(STATIC / "docs.html"), headers=headers)
