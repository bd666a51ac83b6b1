"""The drawing web app (``digitnet serve``); needs the ``web`` extra (FastAPI, uvicorn, python-multipart).

``create_app(models)`` builds the FastAPI app; ``serve(...)`` runs it under uvicorn.
"""

from __future__ import annotations


def serve(specs: list[str] | None = None, host: str = "127.0.0.1", port: int = 8000,
          access_log: bool = False) -> None:
    """Load the models named in ``specs`` (default: all shipped) and serve the app until interrupted."""
    import uvicorn

    from .app import create_app, load_models
    import sys
    models = load_models(specs)
    app = create_app(models)
    print(f"digitnet: serving {', '.join(models)} at http://{host}:{port}/ (API reference at /docs)",
          file=sys.stderr)
    uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info")
