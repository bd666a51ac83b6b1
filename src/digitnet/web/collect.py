"""``digitnet serve --collect DIR``: keep the drawings a user corrects, for ``digitnet finetune``.

Off unless the server is started with a folder: without one the app has no
route that writes anything. With one, ``POST /api/collect`` takes a drawing
(multipart field ``file``) and its right digit (field ``label``, "0"-"9") and
saves it as ``DIR/<label>/<time>-<random>.png``, the class-per-folder layout
``digitnet finetune --data DIR`` reads.

What reaches the disk is bounded and never the client's bytes or names:

- the image is decoded (with the app's pixel limit), reduced to greyscale,
  shrunk to at most ``MAX_SIDE`` pixels and re-encoded as PNG; a file larger
  than ``MAX_FILE_BYTES`` after that is refused;
- the name is made here; the label must be one digit;
- at most ``max_per_digit`` files per digit and ``max_total`` in all (409 once
  full);
- each file is written to a temporary name in its folder and renamed
  (atomic: a reader never sees half a file; an interrupted write leaves at
  most a temporary dot-file, which ``finetune`` ignores).
"""

from __future__ import annotations

import io
import secrets
import time
from pathlib import Path

from ..errors import DigitnetError
from ..fsutil import atomic_write
from ..preprocess import open_image

MAX_SIDE = 640  # drawings are stored at most this large (longer side)
MAX_FILE_BYTES = 256 * 1024  # a stored PNG larger than this is refused
MAX_PER_DIGIT = 2000
MAX_TOTAL = 10000


class CollectionFull(DigitnetError):
    """The folder holds as many samples as allowed (answered 409)."""


class CollectFailed(DigitnetError):
    """The drawing could not be written (a disk problem; answered 503)."""


class Collector:
    """Saves labelled drawings under ``folder/<digit>/`` within the limits."""

    def __init__(self, folder, max_pixels: int, max_per_digit: int = MAX_PER_DIGIT, max_total: int = MAX_TOTAL):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise DigitnetError(f"--collect {self.folder}: exists and is not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_pixels, self.max_per_digit, self.max_total = max_pixels, max_per_digit, max_total

    def counts(self) -> dict[str, int]:
        """Samples stored per digit."""
        out = {}
        for d in range(10):
            sub = self.folder / str(d)
            out[str(d)] = (
                sum(1 for f in sub.iterdir() if f.suffix == ".png" and not f.name.startswith("."))
                if sub.is_dir()
                else 0
            )
        return out

    def save(self, data: bytes, label) -> Path:
        """Store one drawing under its digit; raises DigitnetError (422) or CollectionFull (409)."""
        if isinstance(label, bytes):
            label = label.decode("utf-8", "replace")
        label = str(label).strip() if label is not None else ""
        if len(label) != 1 or label not in "0123456789":
            raise DigitnetError(f"label must be one digit 0-9, got {label[:20]!r}")
        if not data:
            raise DigitnetError("the uploaded image is empty (0 bytes)")
        img = open_image(data, max_pixels=self.max_pixels).convert("L")
        img.thumbnail((MAX_SIDE, MAX_SIDE))
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        png = buf.getvalue()
        if len(png) > MAX_FILE_BYTES:
            raise DigitnetError(
                f"the drawing is too large to store ({len(png):,} bytes as PNG; at most {MAX_FILE_BYTES:,})"
            )
        counts = self.counts()
        if counts[label] >= self.max_per_digit or sum(counts.values()) >= self.max_total:
            raise CollectionFull(
                f"the collection is full ({counts[label]:,} samples of {label}, "
                f"{sum(counts.values()):,} in all; at most {self.max_per_digit:,} per digit "
                f"and {self.max_total:,} in all)"
            )
        path = self.folder / label / f"{time.time_ns()}-{secrets.token_hex(4)}.png"
        try:
            atomic_write(path, png)
        except DigitnetError as exc:  # its message names the server's path: keep only the reason
            raise CollectFailed(f"could not save the drawing: {str(exc).rsplit(': ', 1)[-1]}") from None
        return path
