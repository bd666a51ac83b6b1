"""The FastAPI app behind ``digitnet serve``: one drawing page and a small JSON API.

Routes::

    GET  /              the drawing page (static/index.html, app.js, style.css)
    POST /api/predict   an image (upload, raw body, base64 in JSON or a form) or JSON pixels -> label, probabilities,
                        top-k, 28x28, and the number it holds (number, digits: see numbers.py)
    GET  /api/model     metadata of the loaded models
    POST /api/collect   a corrected drawing saved under DIR/<digit>/ (only with serve --collect DIR)
    GET  /healthz       liveness
    GET  /docs          API reference: Swagger UI on /openapi.json (assets served locally, no CDN)

Models are loaded once, when the app is created. Inference on one 28x28 image
takes tens of microseconds for the MLP, so it runs directly on the event loop,
and so do JSON pixels and the reading of a small image (at most
``inputs.INLINE_PIXELS``, as the page sends a drawn digit) as one digit, a few
milliseconds. Every other uploaded image, a small one read as a number, and
every image for a model without a "not a digit" output (which reads each as a
number too) is decoded and read in a small thread pool (:class:`~digitnet.web.pool.DecodePool`),
``image_workers`` at a time, each with a deadline of ``decode_timeout_s``: a
hostile upload costs its request a 422 (or a 503 when the pool is full), never
the other requests their event loop.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pydantic_core
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..errors import DigitnetError
from ..nn.model import Sequential
from ..reject import answer_columns, decide
from ..segment import needs_number_reading
from . import docs, schema
from .collect import CollectFailed, CollectionFull, Collector
from .inputs import (
    INLINE_PIXELS,
    check_image_bytes,
    header_pixels,
    image_from_base64,
    image_part,
    parse_form,
    parse_json,
    parse_multipart,
    parse_top_k,
    pixels_to_array,
)
from .limits import BodyLimitMiddleware, DisconnectLogMiddleware, HeadMiddleware
from .numbers import (
    number_fields,
    parse_flag,
    read_as_number,
    read_image,
    read_whole,
    top_entries,
)
from .pool import DecodePool

MAX_BODY = 2 * 1024 * 1024  # bytes; larger requests get 413
# 784 numbers, even pretty-printed, need a fraction of this; parsing is on the event loop, and 2 MB of
# tiny JSON lists or keys would hold it for a good fraction of a second.
MAX_JSON_BODY = 64 * 1024
# A body that carries an image in base64, in JSON (parse_json bounds its lists and numbers) or in a form:
# parsing it and decoding the base64 hold the event loop (and the GIL) about 5 ms at this size, as long as
# reading a small drawing does; a larger image goes as a file upload or a raw body, decoded in the threads.
MAX_BASE64_BODY = 512 * 1024
MAX_PIXELS = 2048 * 2048  # uploaded images larger than this are refused from their header
STATIC = resources.files("digitnet.web") / "static"
# The page may load nothing from outside the app (the browser enforces this too).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
IMAGE_TYPES = ("image/", "application/octet-stream")
# An image body sent without its type: no Content-Type (Python's requests.post(url, data=f)), or the form type
# curl --data-binary gives by default. It is read as an image when it starts as one (PNG, JPEG, GIF, BMP,
# TIFF, WebP, PBM/PGM/PPM: preprocess.FORMATS); any other such body is still a 415.
UNTYPED = ("", "application/x-www-form-urlencoded")
NETPBM_SIGNATURES = tuple(b"P%d%c" % (n, space) for n in range(1, 7) for space in b" \t\r\n")
IMAGE_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"RIFF",
    *NETPBM_SIGNATURES,
)


class Answer(JSONResponse):
    """A JSON response written by pydantic-core's serializer (FastAPI's own dependency).

    A prediction's answer holds its 28 x 28 image twice (``image``, and the digit's in ``digits``):
    the json module takes about a tenth of a JSON prediction's CPU to write it, pydantic-core a
    fifth of that. The values are the same (a small number may be spelled ``1e-6`` for ``1e-06``);
    a NaN or infinity would be written as null, as JSON has neither.
    """

    def render(self, content) -> bytes:
        return pydantic_core.to_json(content, inf_nan_mode="null")


def load_models(specs: list[str] | None = None) -> dict[str, Sequential]:
    """Load models by file path or shipped name; the first one is the default.

    With no specs, every shipped model is loaded, the default reader first.
    """
    from pathlib import Path

    from .. import io

    if not specs:
        specs = sorted(io.shipped_models(), key=lambda n: (n != io.DEFAULT_MODEL, n))
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
    return {
        "name": name,
        "architecture": model.architecture(),
        "input_shape": list(model.input_shape),
        "dtype": model.dtype.name,
        "n_params": int(model.n_params),
        "classes": model.classes,
        "reject_class": model.reject_class,
        **{k: model.meta[k] for k in keep if k in model.meta},
    }


def create_app(
    models: dict[str, Sequential] | None = None,
    *,
    max_body: int = MAX_BODY,
    max_pixels: int = MAX_PIXELS,
    image_workers: int = 2,
    decode_timeout_s: float = 4.0,
    cors_origins: list[str] | None = None,
    collect=None,
) -> FastAPI:
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
    collect : path or Collector, optional
        Folder (or a configured :class:`~.collect.Collector`) where ``POST /api/collect`` saves
        corrected drawings (see collect.py). None (the default): that route does not exist and
        nothing a client sends is written.
    """
    models = dict(models) if models else load_models()
    default = next(iter(models))
    summaries = [model_summary(n, m) for n, m in models.items()]
    pool = DecodePool(image_workers, decode_timeout_s)

    app = FastAPI(
        title="digitnet",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        description="Handwritten-digit recognition by a NumPy network. Draw at `/`, read this reference at `/docs`.",
    )
    app.add_middleware(BodyLimitMiddleware, max_body=max_body)
    app.add_middleware(DisconnectLogMiddleware)
    app.add_middleware(HeadMiddleware)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["GET", "POST"])
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(DigitnetError)
    async def user_error(request: Request, exc: DigitnetError):
        status = 409 if isinstance(exc, CollectionFull) else 503 if isinstance(exc, CollectFailed) else 422
        return Answer({"detail": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError):
        msgs = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return Answer({"detail": "; ".join(msgs)}, status_code=422)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(str(STATIC / "index.html"), headers=PAGE_HEADERS)

    docs.mount(app, PAGE_HEADERS)  # /docs: Swagger UI, served locally

    @app.get("/healthz", summary="Liveness check", response_model=schema.Health)
    async def healthz():
        return {"status": "ok", "models": list(models)}

    @app.get("/api/model", summary="Metadata of the loaded models", response_model=schema.ModelsInfo)
    async def model_info():
        return {"default": default, "models": summaries}

    async def decode(data: bytes, net: Sequential, split: bool):
        """The image as one digit (28, 28) uint8, ``net``'s reading of it, and the number's digits (or None).

        A small image (the page's drawing of a digit) is read here, on the event loop: its reading as
        one digit takes a few ms; so is one whose header claims too many pixels (refused before any
        decoding), and bytes in no format digitnet reads (refused as they were when the header was
        looked for). Everything that may take longer, a larger image (readable or not), or reading a
        small image as a number, goes to the decoding threads and their deadline; so does every image
        for a model without a "not a digit" output, which reads each as a number.
        """
        check_image_bytes(data)  # refuses a JPEG scan bomb here, before it takes a thread
        pixels = header_pixels(data)
        if split or net.reject_class is None or pixels is None or INLINE_PIXELS < pixels <= max_pixels:
            return await pool.run(read_image, data, max_pixels, net, split)
        img, whole, proba = read_whole(data, max_pixels, net)
        if not needs_number_reading(net, proba, whole):
            return whole, proba, None
        return await pool.run(read_as_number, img, whole, proba, net, split)

    def pick(name) -> tuple[str, Sequential]:
        if name is None:
            return default, models[default]
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if not isinstance(name, str) or name not in models:
            raise DigitnetError(f"unknown model {str(name)[:40]!r}; loaded: {', '.join(models)}")
        return name, models[name]

    @app.post(
        "/api/predict",
        summary="Classify one digit",
        response_model=schema.Prediction,
        responses=schema.PREDICT_ERRORS,
        openapi_extra={**schema.PREDICT_BODY, **schema.PREDICT_QUERY},
        description=schema.PREDICT_DESCRIPTION,
    )
    async def predict(request: Request):
        # Query parameters are read here, not declared as FastAPI parameters: FastAPI's per-request
        # parameter solving cost more than a quarter of a JSON prediction's CPU. They are documented
        # in schema.PREDICT_QUERY and checked by pick() / parse_top_k() / parse_flag() like the body's fields.
        query = request.query_params
        model, top_k, digits, proba = query.get("model"), query.get("top_k"), None, None
        split = parse_flag(query.get("split"), "split")  # checked whatever the body: a bad value is a 422
        always = parse_flag(query.get("always_answer"), "always_answer")
        content_type = request.headers.get("content-type", "")
        kind = content_type.split(";")[0].strip().lower()
        body = await request.body()

        def options(fields) -> tuple[str, Sequential, int, bool]:
            """The model, top_k and split a body's fields ask for, the query string's as their defaults."""
            name, net = pick(fields.get("model", model))
            k = parse_top_k(fields.get("top_k", top_k or 3))
            return name, net, k, parse_flag(fields.get("split", split), "split")

        if kind == "application/json":
            large = len(body) > MAX_JSON_BODY
            if large and (len(body) > MAX_BASE64_BODY or b'"image"' not in body):
                return Answer(
                    {
                        "detail": f"JSON request body too large: at most {MAX_JSON_BODY:,} bytes with pixels "
                        f"(784 numbers need far less), {MAX_BASE64_BODY:,} with an image in base64; "
                        "send a larger image as a file upload or as the raw body"
                    },
                    status_code=413,
                )
            obj = parse_json(body, large)
            name, net, k, as_number = options(obj)
            if "image" in obj:
                x, proba, digits = await decode(image_from_base64(obj["image"]), net, as_number)  # uint8 (28, 28)
            else:
                bools = b"true" in body or b"false" in body
                x = pixels_to_array(obj["pixels"], obj.get("range", "0-255"), bools)  # float32 (28, 28) in [0, 1]
        elif kind == "multipart/form-data":
            fields, uploads = parse_multipart(body, content_type)
            image = image_part(fields, uploads)
            name, net, k, as_number = options(fields)
            x, proba, digits = await decode(image, net, as_number)  # uint8 (28, 28)
        elif kind.startswith(IMAGE_TYPES) or (kind in UNTYPED and body.startswith(IMAGE_SIGNATURES)):
            name, net, k, as_number = options({})
            x, proba, digits = await decode(body, net, as_number)
        elif kind == "application/x-www-form-urlencoded":  # a form's field 'image', as $.post or a <form> sends it
            if len(body) > MAX_BASE64_BODY:
                return Answer(
                    {
                        "detail": f"form body too large: at most {MAX_BASE64_BODY:,} bytes; send a larger image "
                        "as a file upload or as the raw body"
                    },
                    status_code=413,
                )
            form = parse_form(body)
            name, net, k, as_number = options(form)
            x, proba, digits = await decode(image_from_base64(form["image"]), net, as_number)  # uint8 (28, 28)
        else:
            return Answer(
                {
                    "detail": f"unsupported Content-Type {kind[:60]!r}; send application/json, "
                    "multipart/form-data (field 'file'), a form with field 'image' or an image/* body"
                },
                status_code=415,
            )
        if proba is None:  # JSON pixels; an image's reading comes from decode()
            proba = net.predict_proba(x[None])[0]  # (n_classes,), the reader's with "not a digit"
        answer = decide(proba, net.classes, net.reject_class, net.meta.get("reject_threshold", 0.0))[0]
        if always:
            answer.label = answer.guess
        cols = answer_columns(len(proba), net.reject_class)
        seen = x if x.dtype == np.uint8 else np.rint(x * 255).astype(np.uint8)
        return Answer(
            {
                "model": name,
                "label": answer.label,
                "class": None if answer.label is None else net.classes[answer.label],
                "classes": [net.classes[c] for c in cols],
                "reason": answer.reason if answer.label is None else None,
                "probabilities": [round(float(proba[c]), 6) for c in cols],
                "top_k": top_entries(proba, k, net.classes, net.reject_class),
                "image": seen.tolist(),
                **number_fields(proba, seen, digits, k, net, always),
            }
        )

    if collect is not None:
        collector = collect if isinstance(collect, Collector) else Collector(collect, max_pixels)

        @app.get("/api/collect", summary="Samples collected so far, per digit (only with serve --collect)")
        async def collected():
            return {
                "counts": collector.counts(),
                "max_per_digit": collector.max_per_digit,
                "max_total": collector.max_total,
            }

        @app.post(
            "/api/collect",
            summary="Save a drawing under its right digit (only with serve --collect)",
            responses={409: {"model": schema.Error, "description": "the collection is full"}, **schema.PREDICT_ERRORS},
        )
        async def collect_one(request: Request):
            content_type = request.headers.get("content-type", "")
            if content_type.split(";")[0].strip().lower() != "multipart/form-data":
                return Answer(
                    {"detail": "send multipart/form-data with fields 'file' (the drawing) and 'label' (0-9)"},
                    status_code=415,
                )
            fields, _ = parse_multipart(await request.body(), content_type)
            if "file" not in fields or "label" not in fields:
                raise DigitnetError(
                    f"collect needs fields 'file' and 'label'; got {', '.join(map(repr, fields)) or 'none'}"
                )
            path = collector.save(fields["file"], fields["label"])
            return {"saved": f"{path.parent.name}/{path.name}", "counts": collector.counts()}

    return app
