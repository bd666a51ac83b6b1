"""Turn what a client sends into the (28, 28) image the network sees.

Two kinds of input reach ``POST /api/predict``:

- an image file (PNG, JPEG, ...), sent as a multipart upload (field ``file``), as
  the raw body (``Content-Type: image/png`` ...), or in base64 (a data URL such as
  a canvas's ``toDataURL()`` too) in JSON ``{"image": ...}`` or a form's field
  ``image``: it goes through :func:`digitnet.preprocess.to_mnist`, the same path
  as ``digitnet predict``;
- JSON ``{"pixels": [...]}``: an already MNIST-like image, 28 lists of 28 numbers
  or a flat list of 784, white digit on black, used as it is (like a CSV row in
  ``digitnet predict``). ``"range": "0-255"`` (default) or ``"0-1"`` says what
  the numbers mean.

Everything here works on bytes in memory; nothing is written to disk. Every
problem raises :class:`~digitnet.errors.DigitnetError` with a message that says
what was expected and what was found.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DigitnetError
from ..preprocess import check_jpeg_scans, image_formats, open_image, to_mnist

if TYPE_CHECKING:  # a name python-multipart defines for type checkers only
    from python_multipart.multipart import MultipartCallbacks

MAX_PARTS = 8  # a prediction needs at most file, model and top_k
RANGES = {"0-255": 255.0, "0-1": 1.0}
# The fields of a JSON request: either an MNIST-like image as numbers, or an image file in base64.
JSON_FIELDS = {"pixels": ("pixels", "range", "model", "top_k"), "image": ("image", "model", "top_k", "split")}
DATA_URL_TYPES = ("image/", "application/octet-stream")
DATA_URL_HEAD = 200  # "data:image/png;base64" and a few parameters: far less


# --------------------------------------------------------------------------- images
def image_to_mnist(data: bytes, max_pixels: int) -> np.ndarray:
    """Image bytes -> (28, 28) uint8 via the shared preprocessing.

    ``open_image`` bounds the decoding (pixels from the header, JPEG scans,
    modes) before it starts. Should the preprocessing still fail inside
    Pillow on some odd file, that is a bad upload too: a DigitnetError (422),
    not a server error.
    """
    if not data:
        raise DigitnetError("the uploaded image is empty (0 bytes)")
    try:
        return to_mnist(open_image(data, max_pixels=max_pixels))
    except DigitnetError:
        raise
    except (OSError, ValueError, TypeError, SyntaxError, EOFError, IndexError, KeyError) as exc:
        raise DigitnetError(
            f"the uploaded image cannot be read as a picture ({type(exc).__name__}: {str(exc)[:80]})"
        ) from None


def check_image_bytes(data: bytes) -> None:
    """Refuse, from the bytes alone, an image too slow to decode: a JPEG of more than ``MAX_JPEG_SCANS`` scans.

    The same check :func:`~digitnet.preprocess.open_image` makes; the server makes it first, on the
    event loop (one pass over the bytes), so that a flood of scan bombs never takes a decoding thread.
    """
    check_jpeg_scans(data, "the uploaded image")


# The drawing page sends a single digit scaled down to at most PAGE_DIGIT_SIDE px (app.js, DIGIT_SIDE, which
# tests/test_web_live.py checks against it): 3x the 20 px box the digit is framed in, and its strokes (a tenth
# of the canvas) 6 px or more wide, so it reads as a larger crop does and costs about a fifth less to read
# (python benchmarks/page_side.py).
PAGE_DIGIT_SIDE = 64
# An image of at most 128 x 128 pixels is read as one digit on the event loop: 1-4 ms, and about 10 ms for
# 128 x 128 pixels of noise; that is less than handing it to a decoding thread costs in latency under load (the
# thread and the event loop take turns holding the GIL).
INLINE_PIXELS = 128 * 128
BOMB_PIXELS = 2**62  # header_pixels of an image past Pillow's own limit


def header_pixels(data: bytes) -> int | None:
    """The pixel count the image's header claims (read, not decoded); None when Pillow cannot read it.

    Past Pillow's own limit on claimed sizes (a decompression bomb), a count larger than any image's;
    0 for bytes in no format digitnet reads (open_image refuses them at once, without a thread).
    """
    import io
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a huge claimed size warns; open_image refuses it
            with Image.open(io.BytesIO(data), formats=image_formats()) as img:
                w, h = img.size
    except Image.DecompressionBombError:
        return BOMB_PIXELS
    except UnidentifiedImageError:
        return 0
    except Exception:  # whatever Pillow makes of a broken file: open_image says what is wrong
        return None
    return w * h


# --------------------------------------------------------------------------- JSON pixels
def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _row(values, where: str) -> list:
    if not isinstance(values, list):
        raise DigitnetError(f"{where}: expected a list of numbers, got {type(values).__name__}")
    for i, v in enumerate(values):
        if not _is_number(v):
            raise DigitnetError(f"{where}[{i}]: expected a number, got {json.dumps(v)[:40]}")
    return values


def _checked_numbers(pixels) -> np.ndarray:
    """The careful path: check the structure and every value, saying where the first problem is."""
    if not isinstance(pixels, list):
        raise DigitnetError(f"'pixels' must be a 28x28 or 784 array, got {type(pixels).__name__}")
    if len(pixels) == 784 and not any(isinstance(v, list) for v in pixels):
        flat = _row(pixels, "pixels")
    elif len(pixels) == 28 and all(isinstance(r, list) for r in pixels):
        for i, r in enumerate(pixels):
            if len(r) != 28:
                raise DigitnetError(f"'pixels' row {i} has {len(r)} values; expected 28 (a 28x28 array)")
        flat = [v for i, r in enumerate(pixels) for v in _row(r, f"pixels[{i}]")]
    else:
        kinds = {type(v).__name__ for v in pixels}
        raise DigitnetError(
            f"'pixels' must be 28 rows of 28 numbers or a flat list of 784 numbers; "
            f"got a list of {len(pixels)} ({', '.join(sorted(kinds)) or 'empty'})"
        )
    try:
        return np.asarray(flat, dtype=np.float64).reshape(28, 28)
    except OverflowError:  # an integer of hundreds of digits: no float holds it
        i = next(i for i, v in enumerate(flat) if isinstance(v, int) and abs(v) > 1e308)
        raise DigitnetError(
            f"'pixels' value {i} is an integer of {len(str(abs(flat[i])))} digits; expected 0-255 or 0-1"
        ) from None


def pixels_to_array(pixels, value_range: str = "0-255", may_hold_bools: bool = True) -> np.ndarray:
    """A JSON 28x28 or 784 array -> float32 (28, 28) in [0, 1].

    Raises DigitnetError for a wrong shape, non-numbers, NaN/infinity or values
    outside the declared range. A well-formed array is checked by NumPy in one
    go (numbers only make an int or float array; strings, nulls and ragged rows
    do not); anything else takes the element-by-element path for its message.
    NumPy would read ``true`` as 1, so pass ``may_hold_bools=False`` only when
    the request text holds no ``true``/``false`` at all.
    """
    if not isinstance(value_range, str) or value_range not in RANGES:
        raise DigitnetError(
            f"'range' must be one of {', '.join(map(repr, RANGES))}, got {json.dumps(value_range)[:40]}"
        )
    top = RANGES[value_range]
    x = None
    if not may_hold_bools and isinstance(pixels, list) and len(pixels) in (784, 28):  # else a shape error
        try:
            a = np.asarray(pixels)
        except (ValueError, TypeError, OverflowError):  # ragged rows and the like
            a = None
        if a is not None and a.dtype.kind in "iuf" and a.shape in ((784,), (28, 28)):
            x = a.astype(np.float64).reshape(28, 28)
    if x is None:
        x = _checked_numbers(pixels)
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise DigitnetError(f"'pixels' must be finite numbers; found {x[tuple(bad)]} at row {bad[0]}, column {bad[1]}")
    lo, hi = x.min(), x.max()
    if lo < 0 or hi > top:
        raise DigitnetError(
            f"'pixels' values must lie in [0, {top:g}] (range {value_range!r}); found values from {lo:g} to {hi:g}"
        )
    return (x / top).astype(np.float32)


# A request is one object of a few fields and at most 29 lists of 784 numbers in all. Counting
# brackets and commas in the bytes (microseconds) before parsing keeps a body of many tiny lists,
# objects or values, which takes milliseconds to parse on the event loop, from being parsed at all.
MAX_JSON_COUNTS = {b"[": 64, b"{": 8, b",": 1024}
# A pixel value needs a few characters. In a body larger than a pixels request can be (one carrying an image
# in base64), numbers are parsed by a function that refuses longer ones, since turning a number of thousands of
# digits into an int takes time that grows faster than its length.
MAX_NUMBER_CHARS = 32


def _short_number(parse):
    def checked(text: str):
        if len(text) > MAX_NUMBER_CHARS:
            raise DigitnetError(
                f"the request holds a number of {len(text):,} characters; pixel values need at most {MAX_NUMBER_CHARS}"
            )
        return parse(text)

    return checked


def parse_json(body: bytes, large: bool = False) -> dict:
    """The JSON request object, with clear errors for anything else.

    ``large``: the body is longer than any pixels request, so its numbers are parsed one by one and
    refused when longer than ``MAX_NUMBER_CHARS`` (a pixels request keeps the json module's own fast path).
    """
    for char, most in MAX_JSON_COUNTS.items():
        if (n := body.count(char)) > most:
            raise DigitnetError(
                f"the request holds {n:,} {char.decode()!r} characters; a request of 28x28 "
                f"or 784 pixels needs at most {most}"
            )
    hooks = {"parse_int": _short_number(int), "parse_float": _short_number(float)} if large else {}
    try:
        obj = json.loads(body, **hooks)
    except DigitnetError:  # a number _short_number refused (a ValueError too)
        raise
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested very deep
        raise DigitnetError(f"the request body is not valid JSON ({type(exc).__name__}: {str(exc)[:80]})") from None
    kinds = [k for k in JSON_FIELDS if isinstance(obj, dict) and k in obj]
    if len(kinds) != 1:
        found = f"an object with {'both' if kinds else 'neither'}" if isinstance(obj, dict) else type(obj).__name__
        raise DigitnetError(
            'expected a JSON object with either "pixels" (28 rows of 28 numbers, or 784) or "image" (an image '
            f"file in base64, or a data URL); got {found}"
        )
    unknown = set(obj) - set(JSON_FIELDS[kinds[0]])
    if unknown:
        raise DigitnetError(
            f"unknown field(s) {', '.join(sorted(map(repr, unknown)))} with {kinds[0]!r}; "
            f"expected {', '.join(JSON_FIELDS[kinds[0]])}"
        )
    if "model" in obj and not isinstance(obj["model"], str):  # a null would otherwise pick the default
        raise DigitnetError(f"'model' must be a model name (a string), got {json.dumps(obj['model'])[:40]}")
    return obj


def image_from_base64(value) -> bytes:
    """JSON ``image``: an image file in base64, bare or as a data URL (``data:image/png;base64,...``) -> its bytes.

    Line breaks (MIME base64), the URL-safe alphabet and missing padding are accepted, as clients send them.
    """
    if not isinstance(value, str):
        raise DigitnetError(
            f"'image' must be a string (an image file in base64, or a data URL), got {type(value).__name__}"
        )
    text = value
    if text[:5].lower() == "data:":
        head, comma, text = text.partition(",")
        if not comma:
            raise DigitnetError("'image' is a data URL without the comma that starts its data")
        if len(head) > DATA_URL_HEAD:
            raise DigitnetError(f"'image' data URL: {len(head):,} characters before its data; at most {DATA_URL_HEAD}")
        media, *params = (p.strip().lower() for p in head[5:].split(";"))
        if "base64" not in params:
            raise DigitnetError(f"'image' data URL must be base64 (data:image/png;base64,...), got {head[:40]!r}")
        if media and not media.startswith(DATA_URL_TYPES):
            raise DigitnetError(f"'image' data URL holds {media[:40]!r}, not an image")
    text = "".join(text.split()).replace("-", "+").replace("_", "/")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: characters outside ASCII
        raise DigitnetError(f"'image' is not valid base64 ({str(exc)[:80]})") from None
    if not data:
        raise DigitnetError("the uploaded image is empty (0 bytes)")
    return data


FORM_FIELDS = ("image", "model", "top_k", "split")


def parse_form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body, as jQuery's ``$.post(url, {image: canvas.toDataURL()})`` or an
    HTML form sends it -> {field: value}, with the image (a data URL or base64) in field ``image``.

    A client that leaves base64's '+' unescaped has it decoded as a space, which base64 never holds: spaces
    in ``image`` are turned back into '+'.
    """
    from urllib.parse import parse_qsl

    try:
        pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_PARTS)
    except ValueError as exc:  # more fields than MAX_PARTS
        raise DigitnetError(f"form body: {str(exc)[:80]}; at most {MAX_PARTS} fields are accepted") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise DigitnetError(f"form field {key[:40]!r} is given twice")
        form[key] = value
    unknown = set(form) - set(FORM_FIELDS)
    if unknown or "image" not in form:
        found = ", ".join(sorted(map(repr, form))) or "none"
        raise DigitnetError(
            f"a form post needs the image in field 'image' (a data URL or base64), and only {', '.join(FORM_FIELDS)}; "
            f"got fields {found[:200]}"
        )
    form["image"] = form["image"].replace(" ", "+")
    return form


# --------------------------------------------------------------------------- multipart
def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, bytes], list[str]]:
    """A multipart/form-data body -> ({field name: bytes}, the names of the parts sent as files), in memory.

    A part is sent as a file when its Content-Disposition has a ``filename``
    (``curl -F name=@digit.png``, a browser's FormData with a Blob). Starlette's
    own form parser spools uploads over 1 MB to temporary files; this one never
    touches the disk (the body is already bounded by the size limit middleware).
    """
    from python_multipart.exceptions import FormParserError  # MultipartParseError's base
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise DigitnetError("multipart/form-data request without a boundary in its Content-Type")
    fields: dict[str, bytes] = {}
    uploads: list[str] = []
    state = {"header": b"", "value": b"", "headers": {}, "data": [], "ended": False}

    def on_part_begin():
        state["headers"], state["data"] = {}, []

    def on_header_field(data, start, end):
        state["header"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        state["headers"][state["header"].lower()] = state["value"]
        state["header"], state["value"] = b"", b""

    def on_part_data(data, start, end):
        state["data"].append(data[start:end])

    def on_part_end():
        _, disp = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        if not name:
            raise DigitnetError("a multipart part has no name in its Content-Disposition")
        if len(fields) >= MAX_PARTS:
            raise DigitnetError(f"too many multipart parts; at most {MAX_PARTS} are accepted")
        fields[name] = b"".join(state["data"])
        if any(k.startswith(b"filename") for k in disp) and name not in uploads:  # filename or filename*
            uploads.append(name)

    def on_end():
        state["ended"] = True

    callbacks: MultipartCallbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
        "on_end": on_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:  # a malformed body, or a boundary over 256 bytes
        raise DigitnetError(f"malformed multipart/form-data body ({str(exc)[:80]})") from None
    if not state["ended"]:
        raise DigitnetError("malformed multipart/form-data body (truncated: no closing boundary)")
    return fields, uploads


def image_part(fields: dict[str, bytes], uploads: list[str]) -> bytes:
    """The uploaded image: field ``file``, or else the one part sent as a file, whatever its name
    (clients name it ``image``, ``img``, ``upload``, ...)."""
    if "file" in fields:
        return fields["file"]
    if len(uploads) == 1:
        return fields[uploads[0]]
    names = ", ".join(map(repr, uploads or fields)) or "none"
    found = f"file parts {names}" if uploads else f"fields {names}"
    raise DigitnetError(f"multipart upload needs the image in a 'file' field, or as its only file part; got {found}")


def parse_top_k(value, where: str = "top_k") -> int:
    """An integer 1..10 from JSON, a form field or a query string."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        value = value.strip()
        if not (value.isascii() and value.lstrip("-").isdigit() and len(value) <= 3):
            raise DigitnetError(f"{where} must be an integer from 1 to 10, got {value[:20]!r}")
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10:
        raise DigitnetError(f"{where} must be an integer from 1 to 10, got {json.dumps(value)[:20]}")
    return value
