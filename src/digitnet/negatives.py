"""Generated images that are not digits, for training and calibrating a "not a digit" class.

Five families, each drawn on a large canvas and then framed the way
:func:`digitnet.preprocess.fit_mnist` frames real input (longer side of the
ink 20 px, centre of mass at the centre), since that is what the model sees
at prediction time:

* ``letter``: letters and symbols from TrueType fonts (and Pillow's built-in
  font); characters that are drawn like a digit in many hands (O, l, S, Z, B,
  g, q, ...) are left out so the class does not fight the digits;
* ``scribble``: smooth random curves with many turns;
* ``shape``: stars, triangles, crosses, arrows, spirals, grids, filled blobs;
* ``noise``: specks, smudges, hatching;
* ``several``: two or three digits side by side squeezed into one box
  (from the digit images given, so training uses its own training digits).

:func:`generate` returns a seeded batch; the same seed gives the same images.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import DigitnetError

FAMILIES = ("letter", "scribble", "shape", "noise", "several")
CANVAS = 84  # drawn at 3x, so anti-aliasing survives the framing
# Characters a person may write the way they write a digit (0: O o Q D a d, 1: I l i j J | / \\ ! ( ) [ ],
# 2: Z z ?, 3: { }, 5: S s $, 6: b G h, 8: B &, 9: g q y, 7: T): kept out of the negatives.
LOOKS_LIKE_A_DIGIT = set("OoQDadIlijJ|/\\!()[]Zz?{}Ss$bGhB&gqyT")
LETTERS = "".join(
    c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#%*+=@<>~^" if c not in LOOKS_LIKE_A_DIGIT
)
FONT_DIRS = ["/usr/share/fonts", "/usr/local/share/fonts"]
# Only these common families (Debian's fonts-dejavu-core and fonts-liberation), so that the negatives, and a
# model trained on them, do not change when other fonts are installed (the benchmarks render digits in others).
FONT_FAMILIES = ("DejaVu", "Liberation")
SKIP_FONT_WORDS = ("Math", "Symbol", "Emoji", "Wingding", "Dingbat")


def font_files() -> list[str]:
    """The DejaVu and Liberation TrueType fonts installed in the usual Unix places, sorted by file name."""
    paths = set()
    for d in FONT_DIRS:
        paths.update(glob.glob(os.path.join(d, "**", "*.ttf"), recursive=True))
    return sorted(
        (
            p
            for p in paths
            if Path(p).name.startswith(FONT_FAMILIES) and not any(w in Path(p).name for w in SKIP_FONT_WORDS)
        ),
        key=lambda p: Path(p).name,
    )


def generate(
    n: int, seed: int = 0, digits: np.ndarray | None = None, fonts: list[str] | None = None, families=FAMILIES
) -> np.ndarray:
    """``n`` framed non-digit images, (n, 28, 28) uint8, white on black.

    Parameters
    ----------
    n : number of images; families take turns (``several`` only with ``digits``)
    seed : the generator seed: same seed, same images
    digits : (N, 28, 28) uint8 digit images for the ``several`` family
    fonts : TrueType files for ``letter``; default :func:`font_files`, plus Pillow's built-in font
    """
    from .preprocess import fit_mnist

    if n < 0:
        raise DigitnetError(f"number of negatives must be >= 0, got {n}")
    families = [f for f in families if f != "several" or digits is not None]
    bad = set(families) - set(FAMILIES)
    if bad or not families:
        raise DigitnetError(f"families must be among {', '.join(FAMILIES)}; got {sorted(bad) or 'none'}")
    rng = np.random.default_rng(seed)
    fonts = font_files() if fonts is None else list(fonts)
    out = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        family = families[i % len(families)]
        for _ in range(5):  # a drawing can come out empty: draw again
            ink = DRAW[family](rng, fonts=fonts, digits=digits)
            if ink.max() > 0.2:
                break
        out[i] = fit_mnist(np.clip(ink, 0, 1))
    return out


def _canvas():
    from PIL import Image, ImageDraw

    img = Image.new("L", (CANVAS, CANVAS), 0)
    return img, ImageDraw.Draw(img)


def _pen(rng) -> int:
    return int(rng.integers(3, 12))


def _as_ink(img) -> np.ndarray:
    return np.asarray(img, np.float32) / 255.0


def _letter(rng, fonts, **_):
    from PIL import ImageFont

    img, draw = _canvas()
    k = int(rng.integers(len(fonts) + 1))
    size = int(rng.integers(40, 70))
    font = ImageFont.truetype(fonts[k], size) if k < len(fonts) else ImageFont.load_default(size=size)
    text = LETTERS[int(rng.integers(len(LETTERS)))]
    stroke = int(rng.integers(0, 3))
    draw.text((CANVAS / 2, CANVAS / 2), text, fill=255, font=font, anchor="mm", stroke_width=stroke, stroke_fill=255)
    return _as_ink(img.rotate(float(rng.uniform(-20, 20)), resample=2))


def _curve(points: np.ndarray, steps: int = 200) -> np.ndarray:
    """A smooth closed-form curve through control points (Catmull-Rom), (steps, 2)."""
    p = np.concatenate([points[:1], points, points[-1:]])
    t = np.linspace(0, 1, steps // (len(points) - 1) + 1)[:-1, None]
    segs = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        segs.append(
            0.5
            * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        )
    return np.concatenate(segs + [points[-1:]])


def _scribble(rng, **_):
    img, draw = _canvas()
    pts = rng.uniform(8, CANVAS - 8, (int(rng.integers(7, 14)), 2))
    line = _curve(pts)
    draw.line([tuple(q) for q in line], fill=255, width=_pen(rng), joint="curve")
    return _as_ink(img)


def _polygon(cx, cy, r, n, rot, inner=None):
    """A regular n-gon's corners, or (``inner``: the inner radius as a fraction of r) an n-pointed star's."""
    corners = 2 * n if inner else n
    radii = [r if inner is None or j % 2 == 0 else r * inner for j in range(corners)]
    return [
        (cx + rad * math.cos(rot + 2 * math.pi * j / corners), cy + rad * math.sin(rot + 2 * math.pi * j / corners))
        for j, rad in enumerate(radii)
    ]


def _shape(rng, **_):
    img, draw = _canvas()
    c, r, w = CANVAS / 2, float(rng.uniform(25, 38)), _pen(rng)
    rot = float(rng.uniform(0, 2 * math.pi))
    kind = int(rng.integers(8))
    fill = bool(rng.integers(2))
    if kind == 0:  # star
        pts = _polygon(c, c, r, int(rng.integers(5, 8)), rot, inner=float(rng.uniform(0.35, 0.55)))
        draw.polygon(pts, fill=255 if fill else None, outline=255, width=w)
    elif kind == 1:  # triangle / square / pentagon outline or filled
        pts = _polygon(c, c, r, int(rng.choice([3, 4, 5, 6])), rot)
        draw.polygon(pts, fill=255 if fill else None, outline=255, width=w)
    elif kind == 2:  # cross or asterisk
        for j in range(int(rng.integers(2, 5))):
            a = rot + j * math.pi / 2.5
            draw.line(
                [(c - r * math.cos(a), c - r * math.sin(a)), (c + r * math.cos(a), c + r * math.sin(a))],
                fill=255,
                width=w,
            )
    elif kind == 3:  # arrow
        a, b = (c - r, c), (c + r, c)
        draw.line([a, b], fill=255, width=w)
        draw.line([(c + r * 0.4, c - r * 0.5), b, (c + r * 0.4, c + r * 0.5)], fill=255, width=w)
        img = img.rotate(math.degrees(rot), resample=2)
    elif kind == 4:  # spiral
        t = np.linspace(0, float(rng.uniform(3, 6)) * math.pi, 300)
        rr = r * t / t[-1]
        draw.line([(c + a * math.cos(b + rot), c + a * math.sin(b + rot)) for a, b in zip(rr, t)], fill=255, width=w)
    elif kind == 5:  # grid / hash of lines
        for j in range(int(rng.integers(3, 6))):
            o = -r + 2 * r * (j + 0.5) / 4
            draw.line([(c + o, c - r), (c + o, c + r)], fill=255, width=w)
            draw.line([(c - r, c + o), (c + r, c + o)], fill=255, width=w)
        img = img.rotate(math.degrees(rot), resample=2)
    elif kind == 6:  # filled irregular blob
        pts = _curve(rng.uniform(10, CANVAS - 10, (6, 2)))
        draw.polygon([tuple(q) for q in pts], fill=255)
    else:  # heart-ish / two circles linked
        s = r * 0.5
        draw.ellipse([c - 2 * s, c - s, c, c + s], outline=255, width=w)
        draw.ellipse([c, c - s, c + 2 * s, c + s], outline=255, width=w)
        draw.line([(c - 2 * s, c + s * 0.5), (c + 2 * s, c - s * 0.5)], fill=255, width=w)
        img = img.rotate(math.degrees(rot), resample=2)
    return _as_ink(img)


def _noise(rng, **_):
    img, draw = _canvas()
    kind = int(rng.integers(3))
    if kind == 0:  # specks of several sizes
        for _ in range(int(rng.integers(15, 60))):
            x, y = rng.uniform(4, CANVAS - 4, 2)
            s = float(rng.uniform(1.5, 5))
            draw.ellipse([x - s, y - s, x + s, y + s], fill=int(rng.integers(120, 256)))
        return _as_ink(img)
    if kind == 1:  # smudge: a smooth random field, thresholded softly
        from .augment import _gaussian_matrix

        G = _gaussian_matrix(CANVAS, float(rng.uniform(3, 8)))
        f = G @ rng.standard_normal((CANVAS, CANVAS)) @ G.T
        f = (f - f.mean()) / (f.std() + 1e-12)
        return np.clip(f - rng.uniform(0.3, 1.2), 0, 1).astype(np.float32)
    for _ in range(int(rng.integers(5, 14))):  # hatching: short parallel strokes
        x, y = rng.uniform(10, CANVAS - 10, 2)
        a = float(rng.uniform(0.5, 1.0))
        draw.line([(x - 12 * a, y + 12), (x + 12 * a, y - 12)], fill=255, width=int(rng.integers(2, 6)))
    return _as_ink(img)


def _several(rng, digits, **_):
    k = int(rng.integers(2, 4))
    picks = digits[rng.integers(0, len(digits), k)].astype(np.float32) / 255.0
    parts = []
    for d in picks:  # crop each digit to its columns, then abut with small gaps
        cols = np.nonzero(d.any(axis=0))[0]
        parts.append(d[:, cols[0] : cols[-1] + 1] if cols.size else d)
        parts.append(np.zeros((28, int(rng.integers(0, 4))), np.float32))
    return np.concatenate(parts[:-1], axis=1)


DRAW: dict[str, Callable[..., np.ndarray]] = {
    "letter": _letter,
    "scribble": _scribble,
    "shape": _shape,
    "noise": _noise,
    "several": _several,
}
