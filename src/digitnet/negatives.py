"""Generated images that are not digits, for training and calibrating a "not a digit" class.

Five families, each drawn on a large canvas and then framed the way
:func:`digitnet.preprocess.fit_mnist` frames real input (longer side of the
ink 20 px, centre of mass at the centre), since that is what the model sees
at prediction time:

* ``letter``: letters and symbols from TrueType fonts (and Pillow's built-in
  font); characters that are drawn like a digit in many hands (O, l, S, Z, B,
  g, q, ...) are left out so the class does not fight the digits;
* ``scribble``: a pen moving without writing: smooth curves with many turns,
  wandering lines, scratch-outs, coils and waves;
* ``shape``: stars, triangles, crosses, arrows, spirals, grids, filled blobs;
* ``doodle``: small drawings: hearts, ticks, faces, suns, flowers, houses,
  clouds, eyes, boxes ticked or crossed, envelopes;
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

FAMILIES = ("letter", "scribble", "shape", "doodle", "noise", "several")
CANVAS = 84  # drawn at 3x, so anti-aliasing survives the framing
# Characters a person may write the way they write a digit (0: O o d, 1: I l | / \\ ! ( ) [ ], 2: Z z ?,
# 3: { }, 5: S s $, 6: b, 8: B &, 9: g q): kept out of the negatives. Letters only some hands make digit-like
# (a, h, i, j, J, y, T) are negatives: a model trained so refuses most of them and reads digits as well. So are
# D, G and Q, which hands draw apart from the 0 and 6 they resemble (a straight back, a bar, a tail); B is not,
# since the font's B and 8 are too close for a model that must read typeset 8s.
LOOKS_LIKE_A_DIGIT = set("OodIl|/\\!()[]Zz?{}Ss$bB&gq")
LETTERS = "".join(
    c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#%*+=@<>~^" if c not in LOOKS_LIKE_A_DIGIT
)
# A wandering pen is the family a digit model most often takes for a digit (of fresh draws it refuses scribbles
# least often), so scribbles take two turns in each round of the families.
TURNS = {"scribble": 2}
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
    n : number of images; families take turns, scribbles two (``several`` only with ``digits``)
    seed : the generator seed: same seed, same images
    digits : (N, 28, 28) uint8 digit images for the ``several`` family
    fonts : TrueType files for ``letter``; default :func:`font_files`, plus Pillow's built-in font
    """
    from .preprocess import fit_mnist

    if n < 0:
        raise DigitnetError(f"number of negatives must be >= 0, got {n}")
    families = [f for f in families if f != "several" or digits is not None]
    turns = [f for f in families for _ in range(TURNS.get(f, 1))]
    bad = set(families) - set(FAMILIES)
    if bad or not families:
        raise DigitnetError(f"families must be among {', '.join(FAMILIES)}; got {sorted(bad) or 'none'}")
    rng = np.random.default_rng(seed)
    fonts = font_files() if fonts is None else list(fonts)
    out = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        family = turns[i % len(turns)]
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


def _canvas_ink(img) -> np.ndarray:
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
    return _canvas_ink(img.rotate(float(rng.uniform(-20, 20)), resample=2))


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
    # a wandering pen twice as often as the rest: it is the commonest scribble, and the most varied
    kind = ("curve", "walk", "walk", "scratch", "coil", "wave")[int(rng.integers(6))]
    if kind == "curve":  # a smooth curve through random points
        line = _curve(rng.uniform(8, CANVAS - 8, (int(rng.integers(7, 14)), 2)))
    elif kind == "walk":  # a wandering pen: the heading drifts at random, the walls turn it back
        line = _walk(rng, int(rng.integers(30, 200)), float(rng.uniform(2, 5)), float(rng.uniform(0.3, 0.9)))
    elif kind == "scratch":  # a scratch-out: quick strokes back and forth along a drifting axis
        n = int(rng.integers(6, 16))
        a, w = float(rng.uniform(0, math.pi)), float(rng.uniform(18, 36))
        t = np.linspace(-1, 1, n)[:, None] * rng.uniform(12, 30)
        across = np.where(np.arange(n) % 2 == 0, -w, w)[:, None] * rng.uniform(0.7, 1.0, (n, 1))
        u, v = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
        line = CANVAS / 2 + t * u + across * v + rng.normal(0, 2, (n, 2))
    elif kind == "coil":  # a coil: loops rolling along a line, like cursive e's or l's
        t = np.linspace(0, 2 * math.pi * float(rng.uniform(3, 7)), 400)
        r, step = float(rng.uniform(8, 16)), float(rng.uniform(1.5, 3.5))
        x, y = r * np.cos(t) + step * t, r * np.sin(t) * rng.uniform(0.6, 1.4)
        line = np.stack([x - x.mean() + CANVAS / 2, y + CANVAS / 2], axis=1)
        line = _rotate(line, float(rng.uniform(-0.6, 0.6)))
    else:  # a wave, a few periods wide
        x = np.linspace(8, CANVAS - 8, 200)
        y = CANVAS / 2 + rng.uniform(8, 20) * np.sin(x / CANVAS * 2 * math.pi * rng.uniform(2.5, 5) + rng.uniform(0, 6))
        # kept near level: an upright wave of two turns is an S, a 5 in many hands
        line = _rotate(np.stack([x, y], axis=1), float(rng.uniform(-0.6, 0.6)))
    draw.line([tuple(q) for q in line], fill=255, width=_pen(rng), joint="curve")
    return _canvas_ink(img)


def _walk(rng, steps: int, step: float, turn: float) -> np.ndarray:
    """A random walk with momentum inside the canvas, (steps + 1, 2)."""
    pos, heading = rng.uniform(20, CANVAS - 20, 2), float(rng.uniform(0, 2 * math.pi))
    pts = [pos.copy()]
    for _ in range(steps):
        heading += float(rng.normal(0, turn))
        pos = pos + step * np.array([math.cos(heading), math.sin(heading)])
        for j in range(2):  # bounce off the margins
            if not 6 <= pos[j] <= CANVAS - 6:
                pos[j] = np.clip(pos[j], 6, CANVAS - 6)
                heading = math.pi - heading if j == 0 else -heading
        pts.append(pos.copy())
    return np.array(pts)


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    """Points turned by ``angle`` radians about the canvas centre."""
    c, s = math.cos(angle), math.sin(angle)
    return (points - CANVAS / 2) @ np.array([[c, s], [-s, c]]) + CANVAS / 2


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
        img = img.rotate(math.degrees(rot) % 60 - 30, resample=2)  # kept lying down: upright, it is a crossed 8
    return _canvas_ink(img)


def _doodle(rng, **_):
    img, draw = _canvas()
    c, w = CANVAS / 2, _pen(rng)
    r = float(rng.uniform(24, 38))
    kind = int(rng.integers(10))
    if kind == 0:  # heart
        t = np.linspace(0, 2 * math.pi, 120)
        x, y = 16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([c + r / 17 * x, c + r / 17 * y], axis=1)
        draw.polygon([tuple(q) for q in pts], fill=255 if rng.integers(3) == 0 else None, outline=255, width=w)
    elif kind == 1:  # tick
        k = rng.uniform(-6, 6, (3, 2))
        draw.line(
            [
                (c - r + k[0, 0], c + k[0, 1]),
                (c - r / 3 + k[1, 0], c + r * 0.8 + k[1, 1]),
                (c + r + k[2, 0], c - r + k[2, 1]),
            ],
            fill=255,
            width=w + 2,
            joint="curve",
        )
    elif kind == 2:  # face: a round outline with eyes and a mouth
        draw.ellipse([c - r, c - r, c + r, c + r], outline=255, width=w)
        e, d = r * 0.35, max(2.0, r * 0.12)
        for sx in (-1, 1):
            draw.ellipse([c + sx * e - d, c - e - d, c + sx * e + d, c - e + d], fill=255)
        lo, hi = (20, 160) if rng.integers(3) else (200, 340)  # smiling or frowning
        dy = r * 0.1 if lo == 20 else r * 0.55
        draw.arc([c - r * 0.55, c - r * 0.45 + dy, c + r * 0.55, c + r * 0.45 + dy], lo, hi, fill=255, width=w)
    elif kind == 3:  # sun: a disc or ring with rays
        k = r * 0.45
        draw.ellipse([c - k, c - k, c + k, c + k], outline=255, fill=255 if rng.integers(2) else None, width=w)
        for a in np.linspace(0, 2 * math.pi, int(rng.integers(6, 13)), endpoint=False) + rng.uniform(0, 1):
            draw.line(
                [(c + k * 1.3 * math.cos(a), c + k * 1.3 * math.sin(a)), (c + r * math.cos(a), c + r * math.sin(a))],
                fill=255,
                width=max(2, w - 2),
            )
    elif kind == 4:  # flower: petals round a centre (no stem: a ring on a stick is a 9)
        k, n = r * 0.35, int(rng.integers(5, 9))
        for a in np.linspace(0, 2 * math.pi, n, endpoint=False):
            px, py = c + k * 1.7 * math.cos(a), c + k * 1.7 * math.sin(a)
            draw.ellipse([px - k, py - k, px + k, py + k], outline=255, width=max(2, w - 3))
        draw.ellipse([c - k * 0.6, c - k * 0.6, c + k * 0.6, c + k * 0.6], fill=255)
    elif kind == 5:  # house: a square under a roof, with a door
        h = r * 0.8
        draw.rectangle([c - h, c - h * 0.2, c + h, c + h], outline=255, width=w)
        draw.line([(c - h * 1.15, c - h * 0.1), (c, c - h * 1.2), (c + h * 1.15, c - h * 0.1)], fill=255, width=w)
        draw.rectangle([c - h * 0.25, c + h * 0.35, c + h * 0.25, c + h], outline=255, width=max(2, w - 2))
    elif kind == 6:  # cloud: bumps on a flat base
        n = int(rng.integers(3, 6))
        xs = np.linspace(c - r * 0.8, c + r * 0.8, n)
        for x in xs:
            k = float(rng.uniform(0.3, 0.5)) * r
            draw.arc([x - k, c - k * 1.5, x + k, c + k * 0.5], 180, 360, fill=255, width=w)
        draw.line([(xs[0] - r * 0.4, c), (xs[-1] + r * 0.4, c)], fill=255, width=w)
    elif kind == 7:  # eye: two arcs and a pupil
        draw.arc([c - r, c - r * 0.6, c + r, c + r * 0.6], 200, 340, fill=255, width=w)
        draw.arc([c - r, c - r * 0.6, c + r, c + r * 0.6], 20, 160, fill=255, width=w)
        k = r * 0.25
        draw.ellipse([c - k, c - k, c + k, c + k], fill=255)
    elif kind == 8:  # a box, ticked or crossed
        h = r * 0.7
        draw.rectangle([c - h, c - h, c + h, c + h], outline=255, width=w)
        if rng.integers(2):
            draw.line([(c - h, c - h), (c + h, c + h)], fill=255, width=w)
            draw.line([(c - h, c + h), (c + h, c - h)], fill=255, width=w)
        else:
            draw.line([(c - h * 0.6, c), (c - h * 0.1, c + h * 0.6), (c + h * 0.8, c - h * 0.8)], fill=255, width=w)
    else:  # envelope: a wide box with its flap
        h = r * 0.6
        draw.rectangle([c - r, c - h, c + r, c + h], outline=255, width=w)
        draw.line([(c - r, c - h), (c, c + h * 0.2), (c + r, c - h)], fill=255, width=w)
    return _canvas_ink(img.rotate(float(rng.uniform(-25, 25)), resample=2))


def _noise(rng, **_):
    img, draw = _canvas()
    kind = int(rng.integers(3))
    if kind == 0:  # specks of several sizes
        for _ in range(int(rng.integers(15, 60))):
            x, y = rng.uniform(4, CANVAS - 4, 2)
            s = float(rng.uniform(1.5, 5))
            draw.ellipse([x - s, y - s, x + s, y + s], fill=int(rng.integers(120, 256)))
        return _canvas_ink(img)
    if kind == 1:  # smudge: a smooth random field, thresholded softly
        from .augment import gaussian_matrix

        G = gaussian_matrix(CANVAS, float(rng.uniform(3, 8)))
        f = G @ rng.standard_normal((CANVAS, CANVAS)) @ G.T
        f = (f - f.mean()) / (f.std() + 1e-12)
        return np.clip(f - rng.uniform(0.3, 1.2), 0, 1).astype(np.float32)
    for _ in range(int(rng.integers(5, 14))):  # hatching: short parallel strokes
        x, y = rng.uniform(10, CANVAS - 10, 2)
        a = float(rng.uniform(0.5, 1.0))
        draw.line([(x - 12 * a, y + 12), (x + 12 * a, y - 12)], fill=255, width=int(rng.integers(2, 6)))
    return _canvas_ink(img)


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
    "doodle": _doodle,
    "noise": _noise,
    "several": _several,
}
