"""Data augmentation, vectorised over a batch.

Geometric kinds (``shift``, ``affine``, ``elastic``): every image of a batch
gets its own random rotation, scale and shift (and, for ``elastic``, a smooth
random displacement field as in Simard et al. 2003); all of them are applied
together by computing, for every output pixel, where to read in the source
image, and reading there with bilinear interpolation (zeros outside).

Real-world kinds model how people's digits, as :func:`digitnet.preprocess.to_mnist`
hands them to the model, differ from MNIST's: ``stroke`` (thin pen to marker:
grey-level erosion/dilation), ``slant`` (horizontal shear), ``rotate``,
``aspect`` (narrow or wide digits; or, half the time, stretched to fill a box
whatever the digit, as forms with boxes and size-normalising scanners do: a "1" as wide as
two thirds of its height), ``lowres`` (the digit captured 7-14 px tall and scaled
back up, blocky or smooth), ``blur``, ``jitter`` (off-centre by a few pixels),
``broken`` (faint or interrupted strokes), ``noise`` (paper texture and sensor
noise, then the background cut the preprocessing makes), ``warp`` (a smooth
random displacement of the strokes: one writer's proportions and curves
against another's), ``style`` (ways of writing a digit that MNIST's American
writers seldom use: the continental "1" with a long flag, now and then a foot;
the "7" crossed through the middle; it needs the labels, and leaves other
digits alone). After them the digit
is put back in MNIST's framing (longer side 20 px, centre of mass at the
centre, brightest pixel at 1), as the preprocessing does for real input.
``real`` applies each real-world kind to an image with probability 0.4, and
leaves a quarter of the images with only a light affine change, so a batch
mixes clean and heavily distorted digits.

Kinds combine with commas (``"slant,lowres"``); then each listed kind is
applied to every image (``style``: every image whose digit has a style to
add). No Python loop over images or pixels; labels are unchanged; the
generator passed in is the only source of randomness.
"""

from __future__ import annotations

import numpy as np

from .errors import DigitnetError

GEOMETRIC = ("none", "shift", "affine", "elastic")
REAL_WORLD = ("stroke", "slant", "rotate", "aspect", "lowres", "blur", "jitter", "broken", "noise", "warp", "style")
KINDS = GEOMETRIC + REAL_WORLD + ("real",)
SIZE = 28
BOX = 20  # MNIST framing: the longer side of the digit's box ...
CENTRE = SIZE / 2  # ... and where its centre of mass goes (as preprocess.fit_mnist places it)
WARP = (1.5, 3.0)  # warp: the strokes move by up to this many pixels ...
FILL = (0.55, 0.9)  # aspect, filling a box: the ink's width / height becomes this
WARP_SIGMA = 4.0  # ... smoothly (a Gaussian of this many pixels), so a stroke bends but stays a stroke
CAPTURE_SIZES = (10, 12, 14, 17, 20)  # lowres: the 28x28 frame as captured (the digit 7-14 px), in pixels


def gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix G such that ``G @ a @ G.T`` blurs a (n, n) image with a Gaussian of ``sigma``."""
    i = np.arange(n)
    G = np.exp(-0.5 * ((i[:, None] - i[None, :]) / sigma) ** 2)
    return G / G.sum(axis=1, keepdims=True)


def sample_bilinear(images: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Read ``images`` (B, H, W) at float positions ``ys, xs`` (B, H, W); zero outside."""
    B, H, W = images.shape
    padded = np.zeros((B, H + 2, W + 2), np.float32)  # a zero border to read from outside
    padded[:, 1:-1, 1:-1] = images
    flat = padded.reshape(B, -1)
    ys, xs = np.clip(ys, -1, H), np.clip(xs, -1, W)
    y0, x0 = np.minimum(np.floor(ys), H - 1), np.minimum(np.floor(xs), W - 1)
    wy, wx = (ys - y0).astype(np.float32), (xs - x0).astype(np.float32)
    base = ((y0 + 1) * (W + 2) + (x0 + 1)).astype(np.intp).reshape(B, -1)

    def at(offset):
        return np.take_along_axis(flat, base + offset, axis=1).reshape(B, H, W)

    top = at(0) * (1 - wx) + at(1) * wx
    bottom = at(W + 2) * (1 - wx) + at(W + 3) * wx
    return top * (1 - wy) + bottom * wy


def augment(
    images: np.ndarray,
    rng: np.random.Generator,
    kind: str = "affine",
    *,
    labels: np.ndarray | None = None,
    max_shift: float = 2.0,
    max_rotate: float = 10.0,
    max_scale: float = 0.1,
    elastic_alpha: float = 1.5,
    elastic_sigma: float = 3.0,
) -> np.ndarray:
    """Randomly transformed copies of a batch of digits.

    Parameters
    ----------
    images : (B, 28, 28) uint8 (0-255) or float array in [0, 1]
    rng : np.random.Generator
        The only source of randomness: same generator state, same output.
    kind : "none", "shift", "affine" or "elastic"
        ``shift``: random translations up to ``max_shift`` pixels;
        ``affine``: plus rotation up to ``max_rotate`` degrees and scaling by
        up to ``max_scale``; ``elastic``: plus a Gaussian-smoothed random
        displacement field of ``elastic_alpha`` pixels (smoothness ``elastic_sigma``).
        The real-world kinds, alone, joined by commas, or all as ``real``: see the module docstring.
    labels : (B,) int array, optional
        The digits the images show; ``style`` needs them (without them it changes nothing).

    Returns
    -------
    (B, 28, 28) float32 in [0, 1]
    """
    kinds = parse_kinds(kind)
    x = np.asarray(images)
    if x.ndim != 3 or x.shape[1:] != (SIZE, SIZE):
        if x.size != len(x) * SIZE * SIZE:
            raise DigitnetError(f"augment expects images of shape (B, 28, 28), got {np.shape(images)}")
        x = x.reshape(len(x), SIZE, SIZE)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if kinds == ["none"]:
        return x
    if kinds[0] not in GEOMETRIC:
        return real_world(x, rng, kinds, labels)
    kind = kinds[0]
    B = len(x)
    shift = rng.uniform(-max_shift, max_shift, size=(B, 2))
    if kind == "shift":
        angle, scale = np.zeros(B), np.ones(B)
    else:
        angle = np.deg2rad(rng.uniform(-max_rotate, max_rotate, size=B))
        scale = 1 + rng.uniform(-max_scale, max_scale, size=B)
    # Output pixel p reads source position c + R(-angle) (p - c - shift) / scale.
    c = (SIZE - 1) / 2
    grid = np.arange(SIZE, dtype=np.float64) - c
    gy, gx = grid[None, :, None] - shift[:, 0, None, None], grid[None, None, :] - shift[:, 1, None, None]
    cos, sin = (np.cos(angle) / scale)[:, None, None], (np.sin(angle) / scale)[:, None, None]
    ys = c + cos * gy - sin * gx  # (B, 28, 28)
    xs = c + sin * gy + cos * gx
    if kind == "elastic":
        G = gaussian_matrix(SIZE, elastic_sigma)
        field = rng.uniform(-1, 1, size=(2, B, SIZE, SIZE))
        field = G @ field @ G.T  # smooth each field: (2, B, 28, 28)
        field *= elastic_alpha / np.maximum(np.abs(field).max(axis=(2, 3), keepdims=True), 1e-12)
        ys, xs = ys + field[0], xs + field[1]
    return np.clip(sample_bilinear(x, ys, xs), 0.0, 1.0)


def parse_kinds(kind: str) -> list[str]:
    """``"slant,lowres"`` -> ``["slant", "lowres"]``; a geometric kind or ``real`` stands alone."""
    kinds = [k.strip() for k in str(kind).split(",")]
    bad = [k for k in kinds if k not in KINDS]
    if bad or (len(kinds) > 1 and any(k not in REAL_WORLD for k in kinds)):
        raise DigitnetError(
            f"augment must be one of {', '.join(KINDS)}, or real-world kinds joined by commas "
            f"(e.g. slant,lowres); got {kind!r}"
        )
    return kinds


def real_world(x: np.ndarray, rng: np.random.Generator, kinds, labels: np.ndarray | None = None) -> np.ndarray:
    """The real-world kinds on a float batch (B, 28, 28) in [0, 1]; see the module docstring.

    Every kind draws its random numbers for the whole batch whether or not an
    image gets it, so the stream of draws (and the result for a seed) does
    not depend on which images were picked.
    """
    B = len(x)
    if list(kinds) == ["real"]:
        use = {k: rng.random(B) < 0.4 for k in REAL_WORLD}
        light = rng.random(B) < 0.25  # these keep only a light affine change
        for k in REAL_WORLD:
            use[k] &= ~light
    else:
        use = {k: np.full(B, k in kinds) for k in REAL_WORLD}
        light = np.zeros(B, bool)
    x = _style(x, rng, use["style"], labels)  # first, so the added strokes slant and warp with the digit
    x = _geometry(x, rng, use, light)  # slant, rotate, aspect, warp (+ a light affine)
    x = _stroke(x, rng, use["stroke"])
    x = _broken(x, rng, use["broken"])
    x = _lowres(x, rng, use["lowres"])
    x = _blur(x, rng, use["blur"])
    x = _noise(x, rng, use["noise"])
    x = _refit(x, rng, use["jitter"], refit=~light)
    return x


def _pick(mask: np.ndarray, new: np.ndarray, old: np.ndarray) -> np.ndarray:
    return np.where(mask[:, None, None], new, old)


def _geometry(x, rng, use, light) -> np.ndarray:
    """One bilinear resampling for slant (shear), rotation, aspect and warp; light images get a small affine."""
    B = len(x)
    G = gaussian_matrix(SIZE, WARP_SIGMA)
    field = G @ rng.uniform(-1, 1, size=(2, B, SIZE, SIZE)) @ G.T  # smooth, then scaled to WARP px at most
    field *= rng.uniform(*WARP, (1, B, 1, 1)) / np.maximum(np.abs(field).max(axis=(2, 3), keepdims=True), 1e-12)
    field *= use["warp"][None, :, None, None]
    shear = np.where(use["slant"], rng.uniform(-0.45, 0.45, B), 0.0)
    angle = np.deg2rad(np.where(use["rotate"], rng.uniform(-20, 20, B), 0.0))
    aspect = np.exp(rng.uniform(-0.4, 0.3, B))  # width / height, times this
    fill = use["aspect"] & (rng.random(B) < 0.5)  # or: the ink's box stretched to this width / height
    aspect = np.where(fill, rng.uniform(*FILL, B) / _box_ratio(x), aspect)
    aspect = np.where(use["aspect"], np.clip(aspect, 0.6, 4.0), 1.0)
    small = rng.uniform(-1, 1, (B, 3)) * [np.deg2rad(8), 0.08, 0.1]  # angle, shear, log scale
    angle = np.where(light, small[:, 0], angle)
    shear = np.where(light, small[:, 1], shear)
    scale = np.where(light, np.exp(small[:, 2]), 1.0)
    if not (shear.any() or angle.any() or (aspect != 1).any() or (scale != 1).any() or use["warp"].any()):
        return x
    # Forward map (about the centre): rotate . shear . diag(aspect, 1) . scale; output reads at its inverse.
    cos, sin = np.cos(angle), np.sin(angle)
    R = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (B, 2, 2) in (y, x)
    S = np.zeros((B, 2, 2))
    S[:, 0, 0] = 1
    S[:, 1, 1] = 1
    S[:, 1, 0] = shear  # x += shear * y: a slant
    D = np.zeros((B, 2, 2))
    D[:, 0, 0] = scale
    D[:, 1, 1] = aspect * scale
    inv = np.linalg.inv(R @ S @ D)  # (B, 2, 2)
    c = (SIZE - 1) / 2
    g = np.arange(SIZE, dtype=np.float64) - c
    gy, gx = np.broadcast_to(g[:, None], (SIZE, SIZE)), np.broadcast_to(g[None, :], (SIZE, SIZE))
    ys = c + inv[:, 0, 0, None, None] * gy + inv[:, 0, 1, None, None] * gx  # (B, 28, 28)
    xs = c + inv[:, 1, 0, None, None] * gy + inv[:, 1, 1, None, None] * gx
    return np.clip(sample_bilinear(x, ys + field[0], xs + field[1]), 0.0, 1.0)


def _ink_box(x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Height and width of each image's ink box (ink: above 0.2 of the image's brightest pixel), and whether
    the image has any ink."""
    ink = x > 0.2 * x.max(axis=(1, 2), keepdims=True)
    rows, cols = ink.any(axis=2), ink.any(axis=1)  # (B, 28) each
    h = SIZE - rows[:, ::-1].argmax(axis=1) - rows.argmax(axis=1)
    w = SIZE - cols[:, ::-1].argmax(axis=1) - cols.argmax(axis=1)
    return h, w, rows.any(axis=1)


def _box_ratio(x) -> np.ndarray:
    """Width / height of each image's ink box."""
    h, w, _ = _ink_box(x)
    return np.maximum(w, 1) / np.maximum(h, 1)


FLAG = (0.2, 0.4)  # style: a "1"'s flag, times the digit's height ...
FLAG_ANGLE = (30.0, 65.0)  # ... falling this many degrees below the horizontal, to the left
FOOT = (0.15, 0.3)  # a foot (a base stroke) reaches this far either side of the stem ...
FOOT_SHARE = 0.15  # ... on this share of the flagged "1"s: with more, a narrow "2" reads as a "1" with a foot
BAR = (0.15, 0.28)  # a "7"'s crossbar reaches this far either side of its stroke


def _segments(shape, y0, x0, y1, x1, radius) -> np.ndarray:
    """(n, 28, 28) anti-aliased strokes from (y0, x0) to (y1, x1) of ``radius`` px, one per image."""
    gy, gx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    dy, dx = (y1 - y0)[:, None, None], (x1 - x0)[:, None, None]
    py, px = gy[None] - y0[:, None, None], gx[None] - x0[:, None, None]
    t = np.clip((py * dy + px * dx) / np.maximum(dy * dy + dx * dx, 1e-9), 0, 1)  # nearest point on the segment
    dist = np.hypot(py - t * dy, px - t * dx)
    return np.clip(radius[:, None, None] + 0.5 - dist, 0, 1).astype(np.float32)


def _style(x, rng, use, labels) -> np.ndarray:
    """A flag (and now and then a foot) on "1"s, half of them; a crossbar through the middle of "7"s, a third.

    The strokes start where the digit's own stroke is (its top, its bottom,
    its middle row) and are about as thick as MNIST's pen.
    """
    B = len(x)
    draw = rng.random((B, 2))
    length = rng.uniform(*FLAG, B)
    angle = np.deg2rad(rng.uniform(*FLAG_ANGLE, B))
    foot, bar, at = rng.uniform(*FOOT, B), rng.uniform(*BAR, B), rng.uniform(0.42, 0.58, B)
    radius = rng.uniform(0.8, 1.4, B)
    if labels is None or not use.any():
        return x
    labels = np.asarray(labels)
    flag = use & (labels == 1) & (draw[:, 0] < 0.5)
    with_foot = flag & (draw[:, 1] < FOOT_SHARE)
    crossed = use & (labels == 7) & (draw[:, 0] < 0.35)
    idx = np.nonzero(flag | crossed)[0]
    if idx.size == 0:
        return x
    sub = x[idx]
    ink = sub > 0.3 * sub.max(axis=(1, 2), keepdims=True)
    rows = ink.any(axis=2)
    top = rows.argmax(axis=1)
    bottom = SIZE - 1 - rows[:, ::-1].argmax(axis=1)
    height = (bottom - top + 1).astype(np.float64)
    cols = np.arange(SIZE, dtype=np.float64)

    def centre(row: np.ndarray) -> np.ndarray:  # mean column of the ink on a row (and the rows next to it)
        band = ink[np.arange(len(idx))[:, None], np.clip(row[:, None] + np.arange(-1, 2), 0, SIZE - 1)].any(axis=1)
        return band @ cols / np.maximum(band.sum(axis=1), 1)

    top_x, bottom_x = centre(top), centre(bottom)
    mid = (top + at[idx] * height).astype(np.intp)
    mid_x = centre(mid)
    y0, x0 = top.astype(np.float64), top_x
    y1, x1 = y0 + length[idx] * height * np.sin(angle[idx]), x0 - length[idx] * height * np.cos(angle[idx])
    is7 = crossed[idx]
    half = np.where(is7, bar[idx], 0.0) * height
    # a "7": its crossbar in place of the flag
    y0, x0 = np.where(is7, mid, y0), np.where(is7, mid_x - half, x0)
    y1, x1 = np.where(is7, mid, y1), np.where(is7, mid_x + half, x1)
    strokes = _segments((SIZE, SIZE), y0, x0, y1, x1, radius[idx])
    f = with_foot[idx]
    if f.any():
        reach = foot[idx] * height
        base = _segments((SIZE, SIZE), bottom + 0.0, bottom_x - reach, bottom + 0.0, bottom_x + reach, radius[idx])
        strokes = np.maximum(strokes, np.where(f[:, None, None], base, 0))
    out = x.copy()
    out[idx] = np.maximum(sub, strokes * sub.max(axis=(1, 2), keepdims=True))
    return out


def _neighbours(x: np.ndarray, reduce) -> np.ndarray:
    """``reduce`` (np.maximum / np.minimum) over each pixel and its 4 neighbours (a plus-shaped window)."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    out = reduce(x, p[:, :-2, 1:-1])
    out = reduce(out, p[:, 2:, 1:-1])
    out = reduce(out, p[:, 1:-1, :-2])
    return reduce(out, p[:, 1:-1, 2:])


def _stroke(x, rng, use) -> np.ndarray:
    """Thin pen (erosion, softened) to marker (one or two dilations)."""
    width = rng.choice([-1, 1, 2], size=len(x), p=[0.4, 0.4, 0.2])
    if not use.any():
        return x
    thin = 0.5 * (x + _neighbours(x, np.minimum))  # a full erosion wipes out MNIST's 2-3 px strokes
    thick = _neighbours(x, np.maximum)
    thicker = _neighbours(thick, np.maximum)
    out = np.where((width == -1)[:, None, None], thin, np.where((width == 1)[:, None, None], thick, thicker))
    return _pick(use, out, x)


def _smooth_field(rng, B: int, sigma: float) -> np.ndarray:
    """(B, 28, 28) smooth random fields, each scaled to [0, 1]."""
    G = gaussian_matrix(SIZE, sigma)
    f = G @ rng.standard_normal((B, SIZE, SIZE)) @ G.T
    lo, hi = f.min(axis=(1, 2), keepdims=True), f.max(axis=(1, 2), keepdims=True)
    return ((f - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)


def _broken(x, rng, use) -> np.ndarray:
    """Uneven pressure (ink fading to 35 % in places) and gaps where the pen lifted."""
    B = len(x)
    fade = _smooth_field(rng, B, 3.0)
    gaps = _smooth_field(rng, B, 1.5)
    cut = rng.uniform(0.1, 0.3, (B, 1, 1))
    mode = rng.integers(0, 3, B)  # 0 faint, 1 broken, 2 both
    if not use.any():
        return x
    out = x * np.where((mode != 1)[:, None, None], 0.35 + 0.65 * fade, 1.0)
    out = out * np.where((mode != 0)[:, None, None], gaps > cut, True)
    return _pick(use, out, x)


def _resize_matrix(n_out: int, n_in: int, nearest: bool) -> np.ndarray:
    """(n_out, n_in) matrix resizing a line of n_in pixels to n_out: box average down, nearest/linear up."""
    if n_out <= n_in:  # area average
        edges = np.linspace(0, n_in, n_out + 1)
        lo, hi = edges[:-1, None], edges[1:, None]
        j = np.arange(n_in)[None, :]
        M = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0, None)
        return M / M.sum(axis=1, keepdims=True)
    pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    if nearest:
        return (np.clip(np.rint(pos), 0, n_in - 1)[:, None] == np.arange(n_in)[None, :]).astype(float)
    pos = np.clip(pos, 0, n_in - 1)
    return np.clip(1 - np.abs(pos[:, None] - np.arange(n_in)[None, :]), 0, None)


def _lowres(x, rng, use) -> np.ndarray:
    """The 28 px frame captured at 10-20 px (area average), scaled back to 28 px blocky (nearest) or smooth (linear)."""
    size = rng.choice(CAPTURE_SIZES, size=len(x))
    nearest = rng.random(len(x)) < 0.5
    out = x.copy()
    for s in CAPTURE_SIZES:
        for near in (True, False):
            idx = np.nonzero(use & (size == s) & (nearest == near))[0]
            if idx.size:
                M = (_resize_matrix(SIZE, s, near) @ _resize_matrix(s, SIZE, False)).astype(np.float32)
                out[idx] = M @ x[idx] @ M.T  # down then up, rows and columns
    return out


def _blur(x, rng, use) -> np.ndarray:
    """Out of focus: a Gaussian blur of sigma 0.6, 0.9 or 1.3 px."""
    sigmas = (0.6, 0.9, 1.3)
    which = rng.integers(0, len(sigmas), len(x))
    out = x.copy()
    for i, s in enumerate(sigmas):
        idx = np.nonzero(use & (which == i))[0]
        if idx.size:
            G = gaussian_matrix(SIZE, s).astype(np.float32)
            out[idx] = G @ x[idx] @ G.T
    return out


def _noise(x, rng, use) -> np.ndarray:
    """Paper texture and sensor noise, then the preprocessing's cut of faint background."""
    B = len(x)
    texture = _smooth_field(rng, B, 1.0) * rng.uniform(0, 0.25, (B, 1, 1))
    grain = rng.standard_normal((B, SIZE, SIZE)).astype(np.float32) * rng.uniform(0, 0.12, (B, 1, 1))
    if not use.any():
        return x
    from .preprocess import NOISE

    noisy = np.clip(x + texture + grain, 0, 1)
    out = np.clip((noisy - NOISE) / (1 - NOISE), 0, 1)  # what ink_map keeps of a noisy background
    return _pick(use, out, x)


def _refit(x, rng, jitter, refit) -> np.ndarray:
    """Back to MNIST's framing: longer side of the ink's box 20 px, centre of mass at the centre,
    brightest pixel 1; ``jitter`` images are then left off-centre by up to 2.5 px."""
    B = len(x)
    offset = np.where(jitter[:, None], rng.uniform(-2.5, 2.5, (B, 2)), 0.0)
    h, w, has = _ink_box(x)
    has &= refit
    scale = np.where(has, np.minimum(BOX / np.maximum(np.maximum(h, w), 1), 3.0), 1.0)
    mass = np.maximum(x.sum(axis=(1, 2)), 1e-12)
    grid = np.arange(SIZE, dtype=np.float64)
    cy = x.sum(axis=2) @ grid / mass
    cx = x.sum(axis=1) @ grid / mass
    # Output pixel p reads source  c_mass + (p - CENTRE - offset) / scale; unfitted images only shift.
    cy, cx = np.where(has, cy, CENTRE), np.where(has, cx, CENTRE)
    ys = cy[:, None, None] + (grid[None, :, None] - CENTRE - offset[:, 0, None, None]) / scale[:, None, None]
    xs = cx[:, None, None] + (grid[None, None, :] - CENTRE - offset[:, 1, None, None]) / scale[:, None, None]
    ys, xs = np.broadcast_to(ys, x.shape), np.broadcast_to(xs, x.shape)
    out = sample_bilinear(x, ys, xs)
    peak = out.max(axis=(1, 2), keepdims=True)
    return np.clip(out / np.where(peak > 0, peak, 1), 0.0, 1.0).astype(np.float32)
