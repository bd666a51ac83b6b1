"""The FastAPI app behind ``digitnet serve``: one drawing page and a small JSON API.

Routes::

    GET  /              the drawing page (static/index.html, app.js, style.css)
    POST /api/predict   image upload, raw image body or JSON pixels -> label, probabilities, top-k, 28x28
    GET  /api/model     metadata of the loaded models
    GET  /healthz       liveness
    GET  /docs          API reference rendered from /openapi.json (served locally, no CDN)

Models are loaded once, when the app is created. Inference on one 28x28 image
takes tens of microseconds for the MLP, so it runs directly on the event loop,
and so do JSON pixels. Every uploaded image is decoded and preprocessed in a
small thread pool (:class:`~digitnet.web.pool.DecodePool`), ``image_workers``
at a time, each with a deadline of ``decode_timeout_s``: a hostile upload
costs its request a 422 (or a 503 when the pool is full), never the other
requests their event loop.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..errors import DigitnetError
from ..nn.model import Sequential
from . import schema
from .inputs import check_image_bytes, image_to_mnist, parse_json, parse_multipart, parse_top_k, pixels_to_array
from .limits import BodyLimitMiddleware, DisconnectLogMiddleware
from .pool import DecodePool

MAX_BODY = 2 * 1024 * 1024        # bytes; larger requests get 413
MAX_PIXELS = 2048 * 2048          # uploaded images larger than this are refused from their header
STATIC = resources.files("digitnet.web") / "static"
# The page may load nothing from outside the app (the browser enforces this too).
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                                           "frame-ancestors 'none'; form-action 'self'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
IMAGE_TYPES = ("image/", "application/octet-stream")


def load_models(specs: list[str] | None = None) -> dict[str, Sequential]:
    """Load models by file path or shipped name; the first one is the default.

    With no specs, every shipped model is loaded, ``seed`` first.
    """
    from .. import io
    from pathlib import Path
    if not specs:
        specs = sorted(io.shipped_models(), key=lambda n: (n != "seed", n))
        if not specs:
            raise DigitnetError("no shipped models found and no --model given")
    models: dict[str, Sequential] = {}
    for spec in specs:
        name = Path(str(spec)).stem if Path(str(spec)).suffix else str(spec)
        if name in models:
            raise DigitnetError(f"two models are both named {name!r}; rename one of the files")
        models[name] = io.load(spec)
    return models


def model_summary(name: str, model: Sequential) -> dict:
    """What /api/model says about one model (its saved metadata, minus the per-epoch history)."""
    keep = ("test_accuracy", "seed", "command", "digitnet_version", "train_time_s", "dataset")
    return {"name": name, "architecture": model.architecture(), "input_shape": list(model.input_shape),
            "dtype": model.dtype.name, "n_params": int(model.n_params),
            **{k: model.meta[k] for k in keep if k in model.meta}}


def create_app(models: dict[str, Sequential] | None = None, *, max_body: int = MAX_BODY,
               max_pixels: int = MAX_PIXELS, image_workers: int = 2, decode_timeout_s: float = 4.0,
               cors_origins: list[str] | None = None) -> FastAPI:
    """Build the web app around already-loaded ``models`` (name -> model; the first is the default).

    Parameters
    ----------
    models : dict, optional
        Models by name; default: every shipped model (see :func:`load_models`).
    max_body : int
        Largest accepted request body in bytes; larger ones are answered 413.
    max_pixels : int
        Largest accepted uploaded image (width x height), checked before decoding.
    image_workers : int
        How many uploaded images may be decoded at the same time (twice as many more may wait).
    decode_timeout_s : float
        Seconds an upload may take to decode (waiting for a thread included); longer is a 422.
    cors_origins : list of str, optional
        Origins allowed to call the API from other sites. None (the default): CORS off.
    """
    models = dict(models) if models else load_models()
    default = next(iter(models))
    summaries = [model_summary(n, m) for n, m in models.items()]
    pool = DecodePool(image_workers, decode_timeout_s)

    app = FastAPI(title="digitnet", version=__version__, docs_url=None, redoc_url=None,
                  description="Handwritten-digit recognition by a NumPy network. "
                              "Draw at `/`, read this reference at `/docs`.")
    app.add_middleware(BodyLimitMiddleware, max_body=max_body)
    app.add_middleware(DisconnectLogMiddleware)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["GET", "POST"])
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(DigitnetError)
    async def user_error(request: Request, exc: DigitnetError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError):
        msgs = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(msgs)}, status_code=422)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(str(STATIC / "index.html"), headers=PAGE_HEADERS)

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return FileResponse(str(STATIC / "docs.html"), headers=PAGE_HEADERS)

    @app.get("/healthz", summary="Liveness check", response_model=schema.Health)
    async def healthz():
        return {"status": "ok", "models": list(models)}

    @app.get("/api/model", summary="Metadata of the loaded models", response_model=schema.ModelsInfo)
    async def model_info():
        return {"default": default, "models": summaries}

    async def decode(data: bytes) -> np.ndarray:
        check_image_bytes(data)   # refuses a JPEG scan bomb here, before it takes a thread
        return await pool.run(image_to_mnist, data, max_pixels)

    def pick(name) -> tuple[str, Sequential]:
        if name is None:
            return default, models[default]
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if not isinstance(name, str) or name not in models:
            raise DigitnetError(f"unknown model {str(name)[:40]!r}; loaded: {', '.join(models)}")
        return name, models[name]

    @app.post("/api/predict", summary="Classify one digit", response_model=schema.Prediction,
              responses=schema.PREDICT_ERRORS, openapi_extra={**schema.PREDICT_BODY, **schema.PREDICT_QUERY},
              description=schema.PREDICT_DESCRIPTION)
    async def predict(request: Request):
        # Query parameters are read here, not declared as FastAPI parameters: FastAPI's per-request
        # parameter solving cost more than a quarter of a JSON prediction's CPU. They are documented
        # in schema.PREDICT_QUERY and checked by pick() / parse_top_k() like the body's fields.
        model, top_k = request.query_params.get("model"), request.query_params.get("top_k")
        content_type = request.headers.get("content-type", "")
        kind = content_type.split(";")[0].strip().lower()
        body = await request.body()
        if kind == "application/json":
            obj = parse_json(body)
            name, net = pick(obj.get("model", model))
            k = parse_top_k(obj.get("top_k", top_k or 3))
            bools = b"true" in body or b"false" in body
            x = pixels_to_array(obj["pixels"], obj.get("range", "0-255"), bools)  # float32 (28, 28) in [0, 1]
        elif kind == "multipart/form-data":
            fields = parse_multipart(body, content_type)
            if "file" not in fields:
                raise DigitnetError(f"multipart upload needs a 'file' field with the image; "
                                    f"got fields {', '.join(map(repr, fields)) or 'none'}")
            name, net = pick(fields.get("model", model))
            k = parse_top_k(fields.get("top_k", top_k or 3))
            x = await decode(fields["file"])                                # uint8 (28, 28)
        elif kind.startswith(IMAGE_TYPES):
            name, net = pick(model)
            k = parse_top_k(top_k or 3)
            x = await decode(body)
        else:
            return JSONResponse({"detail": f"unsupported Content-Type {kind[:60]!r}; send application/json, "
                                           "multipart/form-data (field 'file') or an image/* body"},
                                status_code=415)
        proba = net.predict_proba(x[None])[0]                              # (10,)
        top = np.argsort(-proba, kind="stable")[:k]
        seen = x if x.dtype == np.uint8 else np.rint(x * 255).astype(np.uint8)
        return JSONResponse({
            "model": name, "label": int(top[0]),
            "probabilities": [round(float(p), 6) for p in proba],
            "top_k": [{"label": int(c), "probability": round(float(proba[c]), 6)} for c in top],
            "image": seen.tolist(),
        })

    return app
