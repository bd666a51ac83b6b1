"""Turn a real image (photo, scan, drawing) into an MNIST-like 28x28 input.

MNIST digits are white on black, anti-aliased, size-normalised so the longer
side of the ink's bounding box is 20 px, and centred by centre of mass in a
28x28 frame. This module does the same to any image Pillow opens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DigitnetError


MAX_PIXELS = 4096 * 4096   # larger images are refused before decoding (decompression bombs)


def open_image(source, max_pixels: int = MAX_PIXELS):
    """Open a path, bytes or file object with Pillow; a clear error when it is not an image.

    The size is read from the header and checked before any pixel is decoded,
    so a small file that claims to be a huge image (a decompression bomb) is
    refused without allocating memory for it.
    """
    import io
    import warnings

    from PIL import Image, UnidentifiedImageError
    name = source if isinstance(source, (str, Path)) else "input"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
            w, h = img.size
            if w * h > max_pixels or w < 1 or h < 1:
                raise DigitnetError(f"{name}: image is {w}x{h} pixels; at most {max_pixels:,} pixels are accepted")
            img.load()
    except FileNotFoundError:
        raise DigitnetError(f"{name}: no such file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DigitnetError(f"{name}: image is too large (decompression bomb?)") from None
    except DigitnetError:
        raise  # the size check above: a ValueError too, so keep its message from the clause below
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DigitnetError(f"{name}: not a readable image ({type(exc).__name__})") from None
    return img


def to_grey(img) -> np.ndarray:
    """Greyscale float array in [0, 1], ink bright on dark (inverted when the background is light)."""
    from PIL import Image
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        # flatten transparency onto the colour that the opaque pixels are not:
        alpha = np.asarray(rgba, np.float32)[..., 3] / 255.0
        grey = np.asarray(rgba.convert("L"), np.float32) / 255.0
        if alpha.min() < 1.0:
            ink_is_dark = (grey[alpha > 0.5].mean() if (alpha > 0.5).any() else 0.0) < 0.5
            background = 1.0 if ink_is_dark else 0.0
            grey = grey * alpha + background * (1 - alpha)
    else:
        grey = np.asarray(img.convert("L"), np.float32) / 255.0
    # the background is the majority of the border pixels
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 0.5:
        grey = 1.0 - grey
    return grey


def to_mnist(img) -> np.ndarray:
    """Any image (PIL image, path or bytes) -> (28, 28) uint8, MNIST-like."""
    from PIL import Image
    if not isinstance(img, Image.Image):
        img = open_image(img)
    grey = to_grey(img)
    # light denoising: the background level becomes 0
    lo = np.percentile(grey, 50)
    grey = np.clip((grey - lo) / max(1e-6, 1 - lo), 0, 1)
    ink = grey > 0.2
    if not ink.any():
        raise DigitnetError("the image is blank: no digit found")
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    crop = grey[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = Image.fromarray((crop * 255).astype(np.uint8)).resize((nw, nh), Image.LANCZOS)
    digit = np.asarray(small, np.float32)
    # centre of mass to the frame centre (MNIST convention)
    canvas = np.zeros((28, 28), np.float32)
    total = digit.sum()
    cy = (digit.sum(axis=1) @ np.arange(nh)) / total if total else nh / 2
    cx = (digit.sum(axis=0) @ np.arange(nw)) / total if total else nw / 2
    top = int(np.clip(round(14 - cy), 0, 28 - nh))
    left = int(np.clip(round(14 - cx), 0, 28 - nw))
    canvas[top:top + nh, left:left + nw] = digit
    return np.clip(canvas, 0, 255).astype(np.uint8)
