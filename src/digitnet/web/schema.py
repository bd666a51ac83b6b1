"""OpenAPI descriptions of the API's requests and responses (documentation only).

``POST /api/predict`` reads its body itself (to accept three content types and
to keep uploads in memory), so its request body is described here by hand.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    models: list[str] = Field(description="names of the loaded models")


class ModelInfo(BaseModel):
    name: str
    architecture: list[dict] = Field(description="layers, as saved in the model file")
    input_shape: list[int]
    dtype: str
    n_params: int
    classes: list[str] = Field(description="the name of each output, in output order")
    reject_class: int | None = Field(None, description='index of the "none of these" output, if the model has one')
    test_accuracy: float | None = Field(None, description="accuracy on the MNIST test set, from the metadata")
    seed: int | None = None
    command: str | None = Field(None, description="the command that trained it")
    digitnet_version: str | None = None


class ModelsInfo(BaseModel):
    default: str = Field(description="the model used when a request names none")
    models: list[ModelInfo]


class TopK(BaseModel):
    label: int = Field(ge=0, description="output index")
    class_: str = Field(alias="class", description="the output's class name")
    probability: float


class Prediction(BaseModel):
    model: str = Field(description="the model that answered")
    label: int | None = Field(
        ge=0,
        description="index of the predicted class (the digit, for a digit model); "
        "null when the model reads the image as not a digit (query always_answer=true "
        "gives the best guess instead)",
    )
    class_: str | None = Field(alias="class", description="name of the predicted class; null with label")
    classes: list[str] = Field(description="the model's class names, in the order of probabilities")
    reason: str | None = Field(default=None, description="why the image was read as not a digit; null otherwise")
    probabilities: list[float] = Field(description="probability of each class")
    top_k: list[TopK] = Field(description="the k most likely classes, most likely first")
    image: list[list[int]] = Field(description="the 28x28 image (0-255, white digit on black) the network saw")
    number: str | None = Field(
        description="the digits read, left to right: several when the image clearly "
        "holds several digits or split=true was asked, else the one label; "
        "null when a piece is read as not a digit"
    )
    digits: list[Digit] = Field(description="each digit of the number, left to right")


class Digit(BaseModel):
    label: int | None = Field(ge=0, description="the class read (the digit); null when the piece is not a digit")
    reason: str | None = Field(default=None, description="why the piece was read as not a digit")
    top_k: list[TopK]
    box: list[int] | None = Field(
        description="(x0, y0, x1, y1) in the image's pixels, x1/y1 exclusive; null for JSON pixels"
    )
    image: list[list[int]] = Field(description="the 28x28 image the network saw for this digit")


class Error(BaseModel):
    detail: str = Field(description="what was expected and what was found")


PREDICT_DESCRIPTION = """\
Send one of:

* **multipart/form-data** with the image in field `file`, or as the one part sent as a file whatever
  its name (PNG, JPEG, ... any size up to 2048x2048 pixels), optional fields `model` and `top_k`;
* a raw **image/png**, **image/jpeg** (any `image/*`) or `application/octet-stream` body;
* **application/json** `{"image": "data:image/png;base64,...", "model": "seed", "top_k": 3, "split": false}`:
  an image file in base64, bare or as a data URL (what a canvas's `toDataURL()` gives); the same fields
  as an **application/x-www-form-urlencoded** form (`$.post(url, {image: canvas.toDataURL()})`);
* **application/json** `{"pixels": ..., "range": "0-255", "model": "seed", "top_k": 3}` where
  `pixels` is 28 rows of 28 numbers or a flat list of 784, an already MNIST-like image (white digit
  on black, centred): it is classified as it is, with no further preprocessing. `range` is `"0-255"`
  (default) or `"0-1"` for floats in [0, 1].

Images go through the same preprocessing as `digitnet predict` (greyscale, inverted when the
background is light, cropped, scaled to 20 px, centred by mass in 28x28). The answer has `number`
and `digits` too: an image that holds several digits (or any image, with `split=true`) is read as a
number, digit by digit, each with its `box` in the image. `model` and `top_k` may
also be given as query parameters. Bodies over 2 MB (JSON over 64 kB with pixels; JSON or a form
over 512 kB with an image) get 413, an unknown Content-Type 415, anything malformed (not an image, a
wrong shape, NaN, values out of range, an image larger than the pixel limit, a JPEG of more than 100
scans, one that takes over 4 s to decode) with 422 and a one-line `detail`; an image upload while
every decoding thread is busy with 503.
"""

_VALUE = {"type": "number", "minimum": 0, "maximum": 255}
_PIXELS = {
    "description": "28 rows of 28 numbers, or 784 numbers; 0-255 (or 0-1 with range '0-1')",
    "oneOf": [
        {"type": "array", "minItems": 784, "maxItems": 784, "items": _VALUE},
        {
            "type": "array",
            "minItems": 28,
            "maxItems": 28,
            "items": {"type": "array", "minItems": 28, "maxItems": 28, "items": _VALUE},
        },
    ],
}

PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "the image; a body whose one file part has another name is read too",
                        },
                        "model": {"type": "string"},
                        "top_k": {"type": "integer", "minimum": 1, "maximum": 10},
                        "split": {"type": "boolean", "description": "read the image as a number"},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["pixels"],
                            "properties": {
                                "pixels": _PIXELS,
                                "range": {"type": "string", "enum": ["0-255", "0-1"], "default": "0-255"},
                                "model": {"type": "string"},
                                "top_k": {"type": "integer", "minimum": 1, "maximum": 10},
                            },
                            "additionalProperties": False,
                        },
                        {
                            "type": "object",
                            "required": ["image"],
                            "properties": {
                                "image": {
                                    "type": "string",
                                    "description": "an image file (PNG, JPEG, ...) in base64, bare or as a "
                                    "data URL: data:image/png;base64,...",
                                },
                                "model": {"type": "string"},
                                "top_k": {"type": "integer", "minimum": 1, "maximum": 10},
                                "split": {"type": "boolean", "description": "read the image as a number"},
                            },
                            "additionalProperties": False,
                        },
                    ]
                }
            },
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "description": "an image file in base64, bare or as a data URL"},
                        "model": {"type": "string"},
                        "top_k": {"type": "integer", "minimum": 1, "maximum": 10},
                        "split": {"type": "boolean", "description": "read the image as a number"},
                    },
                    "additionalProperties": False,
                }
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

PREDICT_QUERY = {
    "parameters": [
        {
            "name": "model",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "model name (see /api/model); default: the first loaded model",
        },
        {
            "name": "top_k",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 10},
            "description": "how many classes to list (default 3)",
        },
        {
            "name": "split",
            "in": "query",
            "required": False,
            "schema": {"type": "boolean"},
            "description": "read an image as a number (a row of digits); without it, an image that clearly holds "
            "several digits is read as a number too",
        },
        {
            "name": "always_answer",
            "in": "query",
            "required": False,
            "schema": {"type": "boolean"},
            "description": "give the best guess even where the model reads the image as not a digit",
        },
    ]
}

# the type of FastAPI's ``responses`` argument
PREDICT_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": Error, "description": "body over 2 MB (JSON over 64 kB with pixels, 512 kB with an image)"},
    415: {"model": Error, "description": "unsupported Content-Type"},
    422: {"model": Error, "description": "malformed input (the message says what and where)"},
    503: {"model": Error, "description": "every image decoding thread is busy; retry later"},
}
