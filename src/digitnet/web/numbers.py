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
from ..reject import decide, top_classes
from ..segment import needs_number_reading, read_number

FLAG_VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_flag(value, name: str) -> bool:
    """A yes/no field or query parameter (``split``, ``always_answer``): true/false, 1/0, yes/no; absent: False."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    key = str(value).strip().lower()
    if key not in FLAG_VALUES:
        raise DigitnetError(f"{name} must be true or false, got {str(value)[:20]!r}")
    return FLAG_VALUES[key]


def read_image(data: bytes, max_pixels: int, net, split: bool) -> tuple[np.ndarray, np.ndarray, list[dict] | None]:
    """Image bytes -> (the whole image as one 28x28 digit, ``net``'s reading of it, the number's digits or None).

    The digits are ``None`` when the image is read as one digit; each entry
    otherwise has ``image`` (28x28 uint8), ``box`` and ``proba``.
    """
    img, whole, proba = read_whole(data, max_pixels, net)
    if not split and not needs_number_reading(net, proba, whole):
        return whole, proba, None
    return read_as_number(img, whole, proba, net, split)


def read_whole(data: bytes, max_pixels: int, net):
    """The first step of :func:`read_image`: (the decoded image, it framed as one 28x28 digit, ``net``'s reading)."""
    if not data:
        raise DigitnetError("the uploaded image is empty (0 bytes)")
    img = open_image(data, max_pixels=max_pixels)
    whole = to_mnist(img)
    return img, whole, net.predict_proba(whole[None])[0]


def read_as_number(img, whole: np.ndarray, proba: np.ndarray, net, split: bool):
    """The rest of :func:`read_image`, from :func:`read_whole`'s results: the image read as a number."""
    try:
        reading = read_number(img, net)
    except DigitnetError:
        if split:
            raise
        return whole, proba, None
    if not (split or reading.clearly_several):
        return whole, proba, None
    digits = [{"image": d, "box": list(b), "proba": p} for d, b, p in zip(reading.digits, reading.boxes, reading.proba)]
    return whole, proba, digits


def top_entries(proba: np.ndarray, k: int, classes=None, reject_class: int | None = None) -> list[dict]:
    """The k most likely classes, a "not a digit" output left out (the label says it)."""
    names = list(classes) if classes is not None else [str(c) for c in range(len(proba))]
    return [
        {"label": c, "class": names[c], "probability": round(float(proba[c]), 6)}
        for c in top_classes(proba, k, reject_class)
    ]


def number_fields(
    proba: np.ndarray, seen: np.ndarray, digits: list[dict] | None, k: int, net=None, always_answer: bool = False
) -> dict:
    """``number`` and ``digits`` for the response (one digit: the whole image's reading).

    A digit the model refuses (it has a "not a digit" output) has ``label`` null and a ``reason``;
    a number with such a piece has ``number`` null.
    """
    pieces = [(proba, None, seen)] if digits is None else [(d["proba"], d["box"], d["image"]) for d in digits]
    entries = []
    for p, box, image in pieces:
        classes, reject = (net.classes, net.reject_class) if net is not None else (None, None)
        answer = decide(
            p,
            classes or [str(c) for c in range(len(p))],
            reject,
            net.meta.get("reject_threshold", 0.0) if net is not None else 0.0,
        )[0]
        label, reason = (answer.guess, "") if always_answer else (answer.label, answer.reason)
        entry = {
            "label": label,
            "top_k": top_entries(p, k, classes, reject),
            "box": box,
            "image": np.asarray(image).tolist(),
        }
        if label is None:
            entry["reason"] = reason
        entries.append(entry)
    labels = [e["label"] for e in entries]
    number = None if None in labels else "".join(str(lab) for lab in labels)
    return {"number": number, "digits": entries}
