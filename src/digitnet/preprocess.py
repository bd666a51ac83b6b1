"""Turn a real image (photo, scan, drawing) into MNIST-like 28x28 inputs.

MNIST digits are white on black, anti-aliased, size-normalised so the longer
side of the ink's bounding box is 20 px (aspect kept), and placed in a 28x28
frame so that their centre of mass is at the centre. A phone photo or a
drawing is none of those; this module makes it so:

1. greyscale; transparency flattened onto a background the ink is not;
2. light backgrounds detected (from the border) and inverted: ink is bright;
3. the background level is subtracted, contrast stretched, faint noise cut;
4. ink split into connected components; specks (tiny components) dropped;
5. crop to the ink's bounding box; thin strokes thickened to MNIST's width,
   a glyph no larger than 20 px has its faint hairlines brightened to
   MNIST's full intensity;
6. longer side scaled to 20 px (anti-aliased), padded to 28x28 and centred
   by centre of mass.

:func:`to_mnist` does this for one digit; :func:`split_digits` separates a
row of digits into single ones first (left to right), by the ink alone;
:func:`read_number` reads a row of digits with a model's help
(segmentation by recognition, :mod:`digitnet.segment`), so digits that touch,
overlap or are drawn in several strokes come out right.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import struct
import warnings
from pathlib import Path

import numpy as np

from .errors import DigitnetError
from .fsutil import open_regular

MAX_PIXELS = 4096 * 4096  # larger images are refused before decoding (decompression bombs)
WORK_SIZE = 256  # a row of digits is analysed at most this large (longer side) ...
DIGIT_WORK_SIZE = 128  # ... and a single digit this large: 6x its final 20 px, ample for cropping
BOX = 20  # MNIST: the digit's longer side, in pixels
FRAME = 28
MIN_CONTRAST = 0.08  # ink must differ from the background by this much (of full scale)
NOISE = 0.15  # after contrast stretching, values below this are background
UNEVEN = 0.1  # background brightness varying more than this is corrected locally
DIGIT_ASPECT = 0.65  # split_digits: a digit's width / height, for cutting digits that touch
TOUCHING = 1.25  # ... and a piece wider than this times its height holds several digits
FAINT_GAIN = 2.5  # fit_mnist: a small glyph's faint strokes are brightened at most this much
MIN_PART = 0.03  # components smaller than this fraction of the largest are specks
MNIST_STROKE = 2.8  # median stroke width of MNIST digits, in pixels at 28x28
HOLLOW_RATIO = 1.8  # a hole this many times as thick as the lines around it ...
HOLLOW_LENGTH = 4.0  # ... and this many times longer than thick is the inside of an outlined stroke ...
HOLLOW_MAX = 0.2  # ... if no thicker than this share of the glyph (a digit's own loops are wider)
PARTITION_PERCENTILE = 2**15  # percentile() partitions an image of at most this many pixels (a working-size digit)


def open_image(source, max_pixels: int = MAX_PIXELS):
    """Open a path, bytes or file object with Pillow; a clear error when it is not an image.

    Decoding is bounded before it starts: the file may be at most
    ``MAX_FILE_BYTES``; the size is read from the header and checked, so a
    small file that claims to be a huge image (a decompression bomb) is
    refused without allocating memory for it; a JPEG may have at most
    ``MAX_JPEG_SCANS`` scans (a progressive file of thousands of tiny scans
    costs a full decode of the image for each); only the first frame of a
    multi-frame file is decoded. Modes digitnet cannot turn into grey levels
    (LAB, HSV, ...) and float images with infinities or NaN are refused.
    """
    from PIL import Image, UnidentifiedImageError

    name = source if isinstance(source, (str, Path)) else "input"
    try:
        data = _read_limited(source, name)
        check_jpeg_scans(data, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on damaged metadata: not the user's business
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=image_formats())
            w, h = img.size
            if w * h > max_pixels or w < 1 or h < 1:
                raise DigitnetError(f"{name}: image is {w}x{h} pixels; at most {max_pixels:,} pixels are accepted")
            if img.mode not in MODES:
                raise DigitnetError(
                    f"{name}: image mode {img.mode} is not supported; expected greyscale, "
                    "RGB(A), CMYK or palette images"
                )
            img.load()
    except FileNotFoundError:
        raise DigitnetError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise DigitnetError(f"{name}: is a directory, expected an image file") from None
    except PermissionError:
        raise DigitnetError(f"{name}: permission denied") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DigitnetError(f"{name}: image is too large (decompression bomb?)") from None
    except DigitnetError:
        raise  # the checks above: a ValueError too, so keep its message from the clause below
    except UnidentifiedImageError:
        raise DigitnetError(f"{name}: not a readable image (not {FORMAT_NAMES})") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        TypeError,
        KeyError,
        IndexError,
        struct.error,
        ZeroDivisionError,
        MemoryError,
    ) as exc:
        raise DigitnetError(f"{name}: not a readable image (damaged or truncated: {type(exc).__name__})") from None
    if img.mode in ("F", "I") and not np.isfinite(np.asarray(img)).all():
        raise DigitnetError(f"{name}: the image holds infinite or NaN values")
    return img


MAX_FILE_BYTES = 64 * 2**20  # an image file larger than this is refused before it is read
# The formats read: what cameras, scanners, drawing programs and browsers write (JPEG includes a phone's MPO).
# Pillow can open some forty more, each a decoder a hostile file could aim at; none is needed.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "DIB", "TIFF", "WEBP", "PPM")
FORMAT_NAMES = "PNG, JPEG, GIF, BMP, TIFF, WebP or PNM"
MAX_JPEG_SCANS = 100  # progressive JPEGs have about 10 scans; each one costs a pass over the image
# Modes to_grey turns into grey levels; LAB, HSV and the rest are refused.
MODES = {
    "1",
    "L",
    "LA",
    "La",
    "P",
    "PA",
    "RGB",
    "RGBA",
    "RGBa",
    "RGBX",
    "CMYK",
    "YCbCr",
    "I",
    "I;16",
    "I;16B",
    "I;16L",
    "I;16N",
    "F",
}


@functools.cache
def image_formats() -> tuple[str, ...]:
    """``FORMATS`` that this Pillow can open (a Pillow built without WebP has no WEBP opener)."""
    from PIL import Image

    Image.init()
    return tuple(f for f in FORMATS if f in Image.OPEN)


def _read_limited(source, name) -> bytes:
    """The bytes of a path, bytes or file object, at most ``MAX_FILE_BYTES`` of them."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, Path)):
        with open_regular(source) as f:  # read no further than the file's size (the limit is allocated otherwise)
            data = f.read(min(os.fstat(f.fileno()).st_size, MAX_FILE_BYTES) + 1)
    else:
        data = source.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise DigitnetError(f"{name}: larger than {MAX_FILE_BYTES:,} bytes; refused")
    return data


def check_jpeg_scans(data: bytes, name) -> None:
    """Refuse a JPEG with more than ``MAX_JPEG_SCANS`` start-of-scan markers, before decoding it.

    Inside a JPEG's compressed data every 0xFF byte is followed by 0x00 or a
    restart marker, so each ``FF DA`` in the file starts a scan (of the image
    or of an embedded thumbnail): counting them is exact enough and costs one
    pass over the bytes.
    """
    scans = data.count(b"\xff\xda") if data[:2] == b"\xff\xd8" else 0
    if scans > MAX_JPEG_SCANS:
        raise DigitnetError(f"{name}: JPEG with {scans:,} scans; at most {MAX_JPEG_SCANS} are decoded")


def percentile(a: np.ndarray, q):
    """``np.percentile(a, q)`` (linear interpolation) of an image's values in [0, 1], a few times faster.

    The order statistics are read from a partition of the values (only the
    ranks needed put in place), or, for a large image, found without sorting
    it: a 4096-bin histogram finds the bin that holds each one, and only that
    bin's values are looked at. (Most pixels of a digit's image are
    background, all in one bin: a bin whose values are all equal needs no
    partition.) The result is the same as NumPy's.
    """
    v = a.ravel()
    n = v.size
    pos = np.asarray(q, np.float64) / 100 * (n - 1)
    lower = np.floor(pos).astype(np.intp)
    ks = np.atleast_1d(lower).tolist()
    if n <= PARTITION_PERCENTILE:  # a partition beats the histogram's passes on a working-size image
        ordered = np.partition(v, sorted(set(ks) | {min(k + 1, n - 1) for k in ks}))  # those ranks in place

        def order_stat(k: int) -> float:
            return float(ordered[k])

    else:
        order_stat = _histogram_order_stats(v)
    out = []
    for k, t in zip(ks, np.atleast_1d(pos - lower).tolist()):
        a0, a1 = order_stat(k), order_stat(min(k + 1, n - 1))
        d = a1 - a0  # numpy's _lerp, for the same rounding
        out.append(a1 - d * (1 - t) if t >= 0.5 else a0 + d * t)
    return out[0] if np.ndim(q) == 0 else np.array(out)


def _histogram_order_stats(v: np.ndarray):
    """``k -> the k-th smallest of v`` (values in [0, 1]), from a 4096-bin histogram, sorting one bin at most."""
    bins = v * 4096
    np.clip(bins, 0, 4095, out=bins)
    bins = bins.astype(np.uint16)  # monotone in v, so bins keep the order; 16 bits: a quarter of the traffic
    counts = np.bincount(bins, minlength=4096)
    cum = np.cumsum(counts)
    cache: dict[int, np.ndarray] = {}

    def order_stat(k: int) -> float:
        b = int(np.searchsorted(cum, k, side="right"))
        if b not in cache:
            values = v[bins == b]
            cache[b] = values[:1] if values.min() == values.max() else np.sort(values)
        values = cache[b]
        return float(values[min(k - (cum[b] - counts[b]), values.size - 1)])

    return order_stat


def _quantile(a: np.ndarray, q: float) -> float:
    """``np.quantile(a, q)`` of a 1-d array, without its overhead (a few times faster on small arrays)."""
    pos = q * (a.size - 1)
    k = int(pos)
    k1 = min(k + 1, a.size - 1)
    part = np.partition(a, [k, k1])
    a0, a1, t = float(part[k]), float(part[k1]), pos - k
    return a1 - (a1 - a0) * (1 - t) if t >= 0.5 else a0 + (a1 - a0) * t


def _median(a: np.ndarray) -> float:
    """``np.median`` of a 1-d array, as numpy computes it (the mean of the middle two), without its overhead."""
    half = a.size // 2
    if a.size % 2:
        return float(np.partition(a, half)[half])
    part = np.partition(a, [half - 1, half])
    return float(np.mean(part[half - 1 : half + 1]))


def to_grey(img, size: int | None = None) -> np.ndarray:
    """Greyscale float array in [0, 1], ink bright on dark (inverted when the background is light).

    Transparent pixels are flattened onto the colour the opaque pixels are
    not: dark strokes on a transparent canvas go onto white, light ones onto
    black. With ``size``, the image is first shrunk (area-averaging) so its
    longer side is at most that.
    """
    img = upright(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        grey = np.asarray(rgba.convert("L"), np.float32) / 255.0
        channel = rgba.getchannel("A")
        if channel.getextrema()[0] < 255:  # some transparency (a canvas is often all opaque)
            alpha = np.asarray(channel, np.float32) / 255.0
            opaque = alpha > 0.5
            ink_is_dark = (grey[opaque].mean() if opaque.any() else 0.0) < 0.5
            background = 1.0 if ink_is_dark else 0.0
            grey = grey * alpha + background * (1 - alpha)
    else:
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit / float greyscale
            a = np.asarray(img.convert("F"), np.float32)
            lo, hi = float(a.min()), float(a.max())
            grey = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        else:
            grey = np.asarray(img.convert("L"), np.float32) / 255.0
    if size is not None:
        grey = _shrink(grey, size)
    # The background is what most of the border is; it is "light" when it is nearer the image's
    # brightest end than its darkest (a dim photo of white paper is still dark ink on light paper).
    bg = _median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]))
    lo, hi = percentile(grey, [0.5, 99.5])
    if max(bg - lo, hi - bg) < MIN_CONTRAST:  # very little ink: look at the extremes
        lo, hi = float(grey.min()), float(grey.max())
    if bg - lo > hi - bg:
        grey = 1.0 - grey
    return grey


def _shrink(grey: np.ndarray, size: int) -> np.ndarray:
    """Downscale (area-averaging) so the longer side is at most ``size``."""
    h, w = grey.shape
    if max(h, w) <= size:
        return grey
    from PIL import Image

    s = size / max(h, w)
    # Pillow sets its module-level filter names at import time, unseen by its type hints; Image.Resampling,
    # which the hints do know, needs Pillow 9.1 while the project supports 9.0.
    area = Image.BOX  # type: ignore[attr-defined]
    small = Image.fromarray(grey.astype(np.float32)).resize((max(1, round(w * s)), max(1, round(h * s))), area)
    return np.asarray(small, np.float32)


def uneven_background(grey: np.ndarray) -> np.ndarray | None:
    """The background's brightness as a smooth surface when it varies (a shaded photo); None when even.

    A quadratic surface in x and y is fitted to the pixels by least squares,
    refitting each time without the 40 % of pixels brightest above it (the
    ink, bright here, and anything else that is not paper). Slow changes of
    brightness across a photo (a shadow, a lamp, vignetting) fit such a
    surface; strokes do not.
    """
    h, w = grey.shape
    if min(h, w) < 8:
        return None
    step = max(1, max(h, w) // 32)  # fit on at most ~32x32 samples: ample for 6 numbers
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    sample = grey[::step, ::step].ravel().astype(np.float64)

    def design(y, x):
        y, x = 2 * y / max(h - 1, 1) - 1, 2 * x / max(w - 1, 1) - 1
        return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1)

    A = design(ys.ravel().astype(np.float64), xs.ravel().astype(np.float64))
    keep = np.ones(sample.size, bool)
    for _ in range(4):  # least squares via the 6x6 normal equations
        Ak = A[keep]
        try:
            coef = np.linalg.solve(Ak.T @ Ak, Ak.T @ sample[keep])
        except np.linalg.LinAlgError:  # degenerate samples: any least-squares solution
            coef = np.linalg.lstsq(A[keep], sample[keep], rcond=None)[0]
        resid = sample - A @ coef
        keep = resid <= _quantile(resid, 0.6)
    fitted = A @ coef
    if fitted.max() - fitted.min() < UNEVEN:
        return None
    yy, xx = np.mgrid[0:h, 0:w]
    return (design(yy.astype(np.float64), xx.astype(np.float64)) @ coef).astype(np.float32)


def _one_level(grey: np.ndarray) -> bool:
    """True for a canvas or a rendered image: its border all one exact level, as is most of the image.

    Such a background is even by construction, and fitting a surface to it
    (a quarter of the analysis of a drawing from the page) is skipped.
    """
    level = grey[0, 0]
    border = (grey[[0, -1]] == level).all() and (grey[:, [0, -1]] == level).all()
    return bool(border) and 2 * np.count_nonzero(grey == level) > grey.size


def ink_map(grey: np.ndarray) -> np.ndarray:
    """Background -> 0, strongest ink -> 1, faint noise cut; raises on a blank image."""
    surface = None if _one_level(grey) else uneven_background(grey)
    if surface is None:  # evenly lit: one level, ink covers under half
        bg, hi = map(float, percentile(grey, [50, 99.9]))
    else:
        grey, bg = np.clip(grey - surface, 0.0, None), 0.0
        hi = float(percentile(grey, 99.9))
    if hi - bg < MIN_CONTRAST:
        hi = float(grey.max())  # a very small digit: its pixels are above p99.9
    if hi - bg < MIN_CONTRAST:
        raise DigitnetError("the image is blank: no digit found (no ink that stands out from the background)")
    ink = np.clip((grey - bg) / (hi - bg), 0.0, 1.0)
    ink[ink < NOISE] = 0.0
    return ink


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean image: (labels 1..n, 0 for background), n.

    Works on horizontal runs, all at once: the runs that touch across each
    pair of rows are found with two sorted searches, and the runs joined
    into components by hooking roots to smaller roots and pointer jumping;
    no Python loop runs per pixel, row or run.
    """
    h, w = mask.shape
    W = w + 1  # each row followed by an empty column, so that every run ends within its row
    flat = np.zeros(h * W + 1, np.int8)  # ... and preceded by one empty cell, so a run at 0 starts too
    flat[1:].reshape(h, W)[:, :w] = mask
    change = np.flatnonzero(flat[1:] != flat[:-1])  # run starts and ends, alternating, in reading order
    n = change.size // 2
    labels = np.zeros((h, w), np.int32)
    if n == 0:
        return labels, 0
    first, stop = change[0::2], change[1::2]  # each run is [first, stop) of the rows laid end to end
    row = first // W
    start, end = first - row * W, stop - row * W
    # 8-connected: run [s, e) touches [ps, pe) in the row above when ps <= e and s <= pe. With keys
    # row * stride + column, sorted over the whole image, the runs above that touch run i are the
    # contiguous range j0[i]:j1[i].
    stride = w + 3
    j0 = np.searchsorted(row * stride + end, (row - 1) * stride + start, side="left")
    j1 = np.searchsorted(row * stride + start, (row - 1) * stride + end, side="right")
    count = np.maximum(j1 - j0, 0)
    a = np.repeat(np.arange(n), count)  # touching pairs (a, b)
    b = np.arange(a.size) - np.repeat(np.cumsum(count) - count - j0, count)
    root = np.arange(n)  # each run's parent; always a run before it (or itself), so the trees are < n deep
    while a.size:  # until every touching pair has one root
        ra, rb = root[a], root[b]
        differ = ra != rb
        if not differ.any():
            break
        np.minimum.at(root, np.maximum(ra, rb)[differ], np.minimum(ra, rb)[differ])
        for _ in range(n.bit_length()):  # pointer jumping: 2**k levels up after k, so every run reaches its root
            root = root[root]
    is_root = root == np.arange(n)
    ids = (np.cumsum(is_root) - 1)[root]  # 0..n-1, numbered in reading order
    delta = np.zeros(h * W + 1, np.int32)  # paint the runs: +id at the start, -id at the end
    delta[first] = ids + 1
    delta[stop] -= ids + 1
    labels[:] = np.cumsum(delta, dtype=np.int32)[: h * W].reshape(h, W)[:, :w]
    return labels, int(is_root.sum())


def ink_parts(ink: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Component labels of the ink and the ids of the components that are not specks."""
    inked = ink > 0
    labels, n = components(inked)
    if n == 0:
        raise DigitnetError("the image is blank: no digit found")
    mass = np.bincount(labels[inked], weights=ink[inked], minlength=n + 1)
    keep = [i for i in range(1, n + 1) if mass[i] >= MIN_PART * mass[1:].max()]
    return labels, keep


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary shape: 2 * area / boundary pixels (a stroke has two edges)."""
    # inner pixels: away from the image's edge, with all four neighbours inked; the rest of the shape is boundary
    inner = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    area = np.count_nonzero(mask)
    boundary = area - np.count_nonzero(inner)
    return 2.0 * area / boundary if boundary else 1.0


def dilate(a: np.ndarray, k: int) -> np.ndarray:
    """Grey-level dilation by a k x k square (odd k): a running max along rows, then along columns."""
    return np.ascontiguousarray(_running_max(_running_max(a, k).T, k).T)


def _running_max(a: np.ndarray, k: int) -> np.ndarray:
    """Max over a centred window of k (odd) along each row, edges repeated: O(log k) passes.

    Maxima over windows of 1, 2, 4, ... w <= k pixels are built by doubling;
    a window of k is then two overlapping windows of w.
    """
    r, n = k // 2, a.shape[1]
    m = np.empty((a.shape[0], n + 2 * r), a.dtype)  # edges repeated r times (np.pad's "edge", at a tenth of its cost)
    m[:, r : r + n] = a
    m[:, :r] = a[:, :1]
    m[:, r + n :] = a[:, -1:]
    w = 1
    while 2 * w <= k:
        m = np.maximum(m[:, :-w], m[:, w:])
        w *= 2
    return np.maximum(m[:, :n], m[:, k - w : k - w + n])


def fill_hollow_strokes(ink: np.ndarray) -> np.ndarray:
    """An outline font's strokes filled in: each stroke drawn as two thin lines becomes one solid stroke.

    The inside of such a stroke is a hole in the ink that follows the stroke:
    much thicker than the lines around it (``HOLLOW_RATIO``), long for its
    thickness (``HOLLOW_LENGTH``), and thin for the glyph (``HOLLOW_MAX``).
    The loops of a "0", "6", "8" or "9" are wide for the pen that drew them,
    or round; a narrow "0" drawn with an ordinary pen has lines as thick as
    its hole. Thickening the lines instead would fill the digit's own loops.
    """
    mask = ink > 0  # faint ink too: an outline's thin lines are mostly anti-aliased grey
    h, w = mask.shape
    if min(h, w) < 8:
        return ink
    line = _stroke_width(mask)
    if HOLLOW_RATIO * line > HOLLOW_MAX * max(h, w):  # lines too thick for any hole to qualify: most digits
        return ink
    background, n = components(~np.pad(mask, 1))
    background = background[1:-1, 1:-1]
    edge = np.unique(np.r_[background[0], background[-1], background[:, 0], background[:, -1]])
    # a hole that qualifies is at least HOLLOW_RATIO * line thick, so at least HOLLOW_LENGTH times that squared in
    # area: smaller ones are skipped unmeasured (noise has hundreds of one-pixel holes)
    areas = np.bincount(background.ravel(), minlength=n + 1)
    least = HOLLOW_LENGTH * (HOLLOW_RATIO * line) ** 2
    out = ink
    for k in range(1, n + 1):
        if k in edge or areas[k] < least:
            continue
        hole = background == k
        area = int(hole.sum())
        thick = _stroke_width(hole)
        if thick >= HOLLOW_RATIO * line and area >= HOLLOW_LENGTH * thick**2 and thick <= HOLLOW_MAX * max(h, w):
            out = out.copy() if out is ink else out
            out[hole] = 1.0
    return out


def fit_mnist(ink: np.ndarray) -> np.ndarray:
    """One digit's ink (bright on 0) -> (28, 28) uint8 in MNIST's framing."""
    from PIL import Image

    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    if rows.size == 0:
        raise DigitnetError("the image is blank: no digit found")
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    if max(h, w) <= BOX:
        # A glyph no larger than MNIST's box has hairlines that anti-aliasing left grey (a light or
        # high-contrast font, a fine pen captured small), while MNIST's strokes all reach full
        # intensity: each pixel is scaled up by the brightest ink near it, at most FAINT_GAIN times.
        # Not for larger ink: a digit captured small and scaled up has grey cells inside and along its
        # strokes (partly covered), and brightening those by their neighbourhood thickens the strokes
        # and speckles blocky ones.
        crop = np.minimum(crop / np.clip(dilate(crop, 5), 1 / FAINT_GAIN, 1.0), 1.0)
    crop = fill_hollow_strokes(crop)
    scale = BOX / max(h, w)
    # Thin strokes (a fine pen, a large canvas, a light font) would shrink to
    # faint hairlines: thicken them to about MNIST's stroke width first.
    width = _stroke_width(crop > 0.5)
    if width * scale < 0.7 * MNIST_STROKE and scale < 1:
        k = min(2 * math.ceil((MNIST_STROKE / scale - width) / 2) + 1, 2 * (max(h, w) // 8) + 1)
        if k >= 3:
            pad = k // 2
            crop = dilate(np.pad(crop, pad), k)
            h, w = crop.shape
            scale = BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    src = Image.fromarray((crop * 255).astype(np.uint8))
    # Image.LANCZOS: a module-level filter name Pillow's type hints miss (Image.Resampling needs Pillow 9.1)
    lanczos = Image.LANCZOS  # type: ignore[attr-defined]
    digit = np.asarray(src.resize((nw, nh), lanczos), np.float32)  # anti-aliased
    digit = np.clip(digit, 0, None)
    peak = digit.max()
    if peak <= 0:
        raise DigitnetError("the image is blank: no digit found")
    digit *= 255.0 / peak  # MNIST strokes reach full intensity
    # Centre of mass to the frame centre (MNIST convention), whole-pixel shifts.
    total = digit.sum()
    cy = (digit.sum(axis=1) @ np.arange(nh)) / total
    cx = (digit.sum(axis=0) @ np.arange(nw)) / total
    top = min(max(round(FRAME / 2 - cy), 0), FRAME - nh)
    left = min(max(round(FRAME / 2 - cx), 0), FRAME - nw)
    canvas = np.zeros((FRAME, FRAME), np.float32)
    canvas[top : top + nh, left : left + nw] = digit
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def upright(img):
    """A PIL image, opened if need be, with its EXIF rotation applied (and its orientation tag gone)."""
    from PIL import Image, ImageOps

    if not isinstance(img, Image.Image):
        img = open_image(img)
    try:
        if img.getexif().get(0x0112, 1) == 1:  # no rotation stored (exif_transpose would copy)
            return img
        return ImageOps.exif_transpose(img)  # phone photos: apply the stored rotation
    except Exception:  # a broken EXIF block is not worth failing for
        return img


def as_ink(img, size: int) -> np.ndarray:
    return ink_map(to_grey(img, size))  # to_grey opens and turns the image upright


def _digit_ink(img, size: int) -> np.ndarray:
    """One digit's ink at most ``size`` px, specks dropped."""
    ink = as_ink(img, size)
    labels, keep = ink_parts(ink)
    return keep_parts(ink, labels, keep)


def keep_parts(ink: np.ndarray, labels: np.ndarray, keep: list[int]) -> np.ndarray:
    """``ink`` with only the components ``keep`` of ``labels`` (``ink`` itself when that is all of them)."""
    n = int(labels.max())
    if len(keep) == n and sorted(keep) == list(range(1, n + 1)):  # no specks (a drawing, most photos)
        return ink
    kept = np.zeros(n + 1, bool)  # a lookup per label: np.isin would sort
    kept[keep] = True
    return ink * kept[labels]


def to_mnist(img) -> np.ndarray:
    """Any image -> one MNIST-like digit.

    Parameters
    ----------
    img : PIL.Image.Image, str, Path, bytes or file object
        PNG, JPEG, ... in any mode (grey, RGB, RGBA, palette) and size.

    Returns
    -------
    numpy.ndarray
        (28, 28) uint8, white digit on black, size-normalised and centred.

    Raises
    ------
    DigitnetError
        When the input is not an image, too large, or blank.
    """
    return fit_mnist(_located_ink(img)[0])


def to_mnist_and_box(img) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """:func:`to_mnist`'s digit, and the box ``(x0, y0, x1, y1)`` of its ink in the image's pixels (x1, y1 past it)."""
    ink, (x0, y0, x1, y1) = _located_ink(img)
    digit = fit_mnist(ink)  # raises for blank ink, before the box needs any
    fx, fy = (x1 - x0) / ink.shape[1], (y1 - y0) / ink.shape[0]  # image pixels per working pixel
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    box = (
        x0 + int(cols[0] * fx),
        y0 + int(rows[0] * fy),
        min(x1, x0 + math.ceil((cols[-1] + 1) * fx)),
        min(y1, y0 + math.ceil((rows[-1] + 1) * fy)),
    )
    return digit, box


def _located_ink(img) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One digit's ink at the working size, and the part ``(x0, y0, x1, y1)`` of the image it shows."""
    img = upright(img)
    ink = _digit_ink(img, DIGIT_WORK_SIZE)
    # A digit small in a large image (a photo of a page) came out only a few pixels tall at the
    # working size: look again at just its part of the image, at the full working size.
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    extent = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 if rows.size else DIGIT_WORK_SIZE
    if max(img.size) > DIGIT_WORK_SIZE and extent < DIGIT_WORK_SIZE // 2:
        f = max(img.size) / max(ink.shape)  # original pixels per working pixel
        margin = (extent - 1) // 4 + 2
        crop = (
            max(0, int((cols[0] - margin) * f)),
            max(0, int((rows[0] - margin) * f)),
            min(img.width, int((cols[-1] + 1 + margin) * f) + 1),
            min(img.height, int((rows[-1] + 1 + margin) * f) + 1),
        )
        with contextlib.suppress(DigitnetError):  # the crop alone looks blank: keep the first look
            return _digit_ink(img.crop(crop), DIGIT_WORK_SIZE), crop
    return ink, (0, 0, img.width, img.height)


def split_digits(img, min_gap: float = 0.0) -> list[np.ndarray]:
    """Several digits in a row -> one (28, 28) uint8 MNIST-like image each, left to right.

    Digits are the image's connected ink components; components that overlap
    horizontally by half the narrower one (a "5" whose top stroke does not
    touch its body) are joined. A piece much wider than tall (digits that
    touch) is cut at the columns with the least ink near where digit
    boundaries would be, assuming digits about 0.65 times as wide as tall.

    Parameters
    ----------
    img : PIL.Image.Image, str, Path, bytes or file object
    min_gap : float
        Components whose horizontal extents are closer than ``min_gap`` times
        the image height are joined too (0: only overlapping ones).
    """
    ink = as_ink(img, WORK_SIZE)
    labels, keep = ink_parts(ink)
    spans: list[tuple[int, int, list[int]]] = []  # (x0, x1, [component ids])
    for i in keep:
        cols = np.nonzero((labels == i).any(axis=0))[0]
        spans.append((int(cols[0]), int(cols[-1]), [i]))
    spans.sort()
    gap = min_gap * ink.shape[0]
    groups = [spans[0]]
    for x0, x1, ids in spans[1:]:
        g0, g1, g_ids = groups[-1]
        overlap = min(x1, g1) - max(x0, g0)
        narrower = min(x1 - x0, g1 - g0) + 1
        if overlap >= 0.5 * narrower or (gap > 0 and x0 - g1 < gap):
            groups[-1] = (g0, max(g1, x1), g_ids + ids)
        else:
            groups.append((x0, x1, ids))
    digits = []
    for x0, x1, ids in groups:
        part = keep_parts(ink, labels, ids)
        digits += [fit_mnist(piece) for piece in _cut_touching(part, x0, x1)]
    return digits


def _cut_touching(part: np.ndarray, x0: int, x1: int) -> list[np.ndarray]:
    """Split one piece of ink into digits when it is much wider than tall.

    For each plausible digit count n, cut at the columns with the least ink
    near the n-1 equal-width boundaries; pick the n whose cuts cross the least
    ink, with a penalty for digits far from the usual width.
    """
    rows = np.nonzero(part.any(axis=1))[0]
    h, w = rows[-1] - rows[0] + 1, x1 - x0 + 1
    if w <= TOUCHING * h:
        return [part]
    column_ink = part[:, x0 : x1 + 1].sum(axis=0)
    column_ink = column_ink / column_ink.max()
    best = None
    for n in range(2, max(2, int(w / (0.3 * h))) + 1):
        cuts, half = [0], max(1, int(w / (3 * n)))
        for i in range(1, n):
            c = int(round(i * w / n))  # the boundary for equal widths
            lo, hi = max(cuts[-1] + 1, c - half), min(w - 1, c + half)
            if lo > hi:
                break
            cuts.append(lo + int(np.argmin(column_ink[lo : hi + 1])))
        else:
            cost = column_ink[cuts[1:]].mean() + 0.3 * abs(np.log(w / n / (DIGIT_ASPECT * h)))
            if best is None or cost < best[0]:
                best = (cost, cuts + [w])
    if best is None:
        return [part]
    pieces = []
    for a, b in zip(best[1][:-1], best[1][1:]):
        piece = np.zeros_like(part)
        piece[:, x0 + a : x0 + b] = part[:, x0 + a : x0 + b]
        if piece.any():
            pieces.append(piece)
    return pieces


def read_number(img, model):
    """Read a written number: :func:`digitnet.segment.read_number` (a Reading: ``number``, ``digits``, ``boxes``)."""
    from .segment import read_number as read

    return read(img, model)
