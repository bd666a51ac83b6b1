"""Numbers in the web API: an uploaded image read as one digit and as a number.

``POST /api/predict`` answers every image with both: the classic single-digit
fields (``label``, ``probabilities``, ``top_k``, ``image``) and ``number`` plus
``digits``, one entry per digit found (its ``label``, ``top_k``, ``box`` in the
image's pixels and the 28x28 ``image`` the network saw). An image is read as a
number when the request asks for it (``split=true``) or when it clearly holds
several digits (:attr:`digitnet.segment.Reading.clearly_several`); otherwise
``number`` is the single digit and ``digits`` holds just that one.
"""

from __future__ import annotations

import numpy as np

from ..errors import DigitnetError
from ..preprocess import open_image, to_mnist
from ..segment import read_number

SPLIT_VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_split(value) -> bool:
    """The ``split`` field or query parameter: true/false (also 1/0, yes/no); absent: False."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    key = str(value).strip().lower()
    if key not in SPLIT_VALUES:
        raise DigitnetError(f"split must be true or false, got {str(value)[:20]!r}")
    return SPLIT_VALUES[key]


def read_image(data: bytes, max_pixels: int, net, split: bool) -> tuple[np.ndarray, list[dict] | None]:
    """Image bytes -> (the whole image as one 28x28 digit, the digits of the number or None).

    The digits are ``None`` when the image is read as one digit; each entry
    otherwise has ``image`` (28x28 uint8), ``box`` and ``proba``.
    """
    if not data:
        raise DigitnetError("the uploaded image is empty (0 bytes)")
    img = open_image(data, max_pixels=max_pixels)
    whole = to_mnist(img)
    try:
        reading = read_number(img, net)
    except DigitnetError:
        if split:
            raise
        return whole, None
    if not (split or reading.clearly_several):
        return whole, None
    return whole, [{"image": d, "box": list(b), "proba": p}
                   for d, b, p in zip(reading.digits, reading.boxes, reading.proba)]


def top_k(proba: np.ndarray, k: int) -> list[dict]:
    top = np.argsort(-proba, kind="stable")[:k]
    return [{"label": int(c), "probability": round(float(proba[c]), 6)} for c in top]


def number_fields(proba: np.ndarray, seen: np.ndarray, digits: list[dict] | None, k: int) -> dict:
    """``number`` and ``digits`` for the response (one digit: the whole image's reading)."""
    if digits is None:
        label = int(np.argmax(proba))
        return {"number": str(label), "digits": [{"label": label, "top_k": top_k(proba, k), "box": None,
                                                  "image": seen.tolist()}]}
    entries = []
    for d in digits:
        label = int(np.argmax(d["proba"]))
        entries.append({"label": label, "top_k": top_k(d["proba"], k), "box": d["box"],
                        "image": d["image"].tolist()})
    return {"number": "".join(str(e["label"]) for e in entries), "digits": entries}
