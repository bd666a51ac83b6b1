"""The drawing web app (``digitnet serve``); needs the ``web`` extra (FastAPI, uvicorn, python-multipart).

``create_app(models)`` builds the FastAPI app; ``serve(...)`` runs it under uvicorn.
"""

from __future__ import annotations

SPECS_ENV = "DIGITNET_SERVE_MODELS"  # how `serve --workers N` tells its worker processes what to load
COLLECT_ENV = "DIGITNET_SERVE_COLLECT"  # ... and where to collect drawings (serve --collect)
CORS_ENV = "DIGITNET_SERVE_CORS"  # ... and which other sites' pages may call the API (serve --allow-origin)


def serve(
    specs: list[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    access_log: bool = False,
    workers: int = 1,
    limits=None,
    collect=None,
    cors_origins: list[str] | None = None,
) -> None:
    """Load the models named in ``specs`` (default: all shipped) and serve the app until interrupted.

    With ``workers`` > 1, that many server processes share the one port (one per CPU core is usual:
    one Python process computes on one core at a time, whatever its threads), started together and
    each accepting one connection per wake-up (:mod:`digitnet.web.workers`).
    ``limits`` (a :class:`digitnet.web.server.ServerLimits`) bounds what each client may hold.
    The port is bound before anything is announced: a taken port is a DigitnetError.
    ``collect``: a folder for corrected drawings (``serve --collect``); None: nothing is written.
    ``cors_origins``: other sites whose pages may call the API (``serve --allow-origin``); None: none.
    """
    import json
    import os
    import sys

    import uvicorn

    from ..errors import DigitnetError
    from .app import create_app, load_models
    from .server import ServerLimits, bind, uvicorn_config
    from .workers import serve_workers

    limits = limits or ServerLimits()
    models = load_models(specs)  # here too with workers: a bad model fails now, with one clear message
    if collect is not None:
        from .collect import Collector

        Collector(collect, 1)  # a bad folder fails now too
        print(f"digitnet: saving corrected drawings under {collect}/<digit>/", file=sys.stderr)

    def announce(bound_port: int) -> None:
        print(
            f"digitnet: serving {', '.join(models)} at http://{host}:{bound_port}/ (API reference "
            f"at /docs){f' with {workers} worker processes' if workers > 1 else ''}",
            file=sys.stderr,
        )

    if workers == 1:
        sock = bind(host, port)
        try:
            announce(sock.getsockname()[1])
            config = uvicorn_config(
                create_app(models, collect=collect, cors_origins=cors_origins),
                limits,
                access_log=access_log,
                log_level="info",
            )
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()
        return
    os.environ[SPECS_ENV] = json.dumps([str(s) for s in specs] if specs else [])
    if collect is not None:
        os.environ[COLLECT_ENV] = str(collect)
    os.environ[CORS_ENV] = json.dumps(cors_origins or [])
    config = uvicorn_config(
        "digitnet.web:app_from_env", limits, factory=True, workers=workers, access_log=access_log, log_level="info"
    )
    if serve_workers(config, host, port, workers, announce):
        raise DigitnetError("a server process failed to start (its error is above)")


def app_from_env():
    """The app of one worker process of ``serve(..., workers=N)``: models named in ``$DIGITNET_SERVE_MODELS``."""
    import json
    import os

    from ..nn.threads import user_chose_blas_threads
    from .app import create_app, load_models

    if not user_chose_blas_threads():  # as the one-process server, run inside inference_threads()
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
    return create_app(
        load_models(json.loads(os.environ.get(SPECS_ENV, "[]")) or None),
        collect=os.environ.get(COLLECT_ENV) or None,
        cors_origins=json.loads(os.environ.get(CORS_ENV, "[]")) or None,
    )
