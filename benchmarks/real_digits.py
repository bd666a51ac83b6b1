"""How well does a shipped model read digits that are not MNIST's own?

Two sets, both passed through ``digitnet.preprocess.to_mnist`` exactly as
``digitnet predict`` does:

* transformed MNIST test digits: scaled x2-x4, shifted off-centre on a larger
  canvas, inverted (black on white), given an alpha channel, saved as JPEG,
  or "photographed": dark ink on unevenly lit paper with noise, as JPEG;
* digits rendered from the TrueType fonts installed on this machine (several
  fonts, sizes and positions, dark-on-light and light-on-dark), plus Pillow's
  built-in font so it runs anywhere.

Usage::

    python benchmarks/real_digits.py [--model seed] [--n 1000] [--out benchmarks/results]

Also: how often ``split_digits`` reads rows of 2 or 3 touching MNIST digits
entirely right, and how often it keeps a single digit whole.

Proxies for people's handwriting (``--proxies``, the default; ``--no-proxies``
skips them), all drawn as dark ink on light paper and passed through
``to_mnist``; their distortions are made with Pillow filters on large images,
apart from the training augmentation's code and parameters:

* degraded MNIST test digits: captured at 8-16 px and scaled up (nearest or
  bicubic) off-centre on a page, marker (max filter), fine pen (min filter),
  slanted, rotated, squeezed, blurred, faint and broken, photographed, and
  three of these at once;
* font digits with handwriting-like distortions (random stroke width, slant,
  rotation, aspect) in every installed font, reported separately for
  handwriting-style fonts (``apt-get install fonts-comic-neue fonts-dkg-handwriting
  fonts-breip fonts-bwht fonts-dancingscript fonts-ecolier-court fonts-femkeklaver
  fonts-humor-sans`` for a set of them, or ``apt-get download`` them, unpack with
  ``dpkg -x PKG.deb DIR`` and pass ``--font-dir DIR``);
* non-digits: letters (all 52, and those not written like a digit), scribbles,
  stars and shapes, noise, and two or three MNIST test digits in one image;
* real handwriting by other writers: the 1,797 digits of scikit-learn's
  ``load_digits`` (UCI "optdigits": 43 writers, not MNIST's, captured as 8x8
  blocks of 17 grey levels), each scaled up 3-8x (nearest, bilinear or
  bicubic) and set off-centre on a page, either polarity. Needs scikit-learn
  (the ``bench`` extra); skipped without it. It is only measured here: no
  training recipe or threshold uses it.

Digits answered "not a digit" count as wrong; for non-digits the figure is the
fraction answered "not a digit" (models without that answer never refuse).

Writes ``real_digits-<model>.json`` and ``.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import digitnet
from digitnet.preprocess import split_digits, to_mnist
from digitnet.reject import refused as refused_mask
from digitnet.segment import needs_number_reading

FONT_DIRS = ["/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "/System/Library/Fonts",
             "C:/Windows/Fonts", str(Path.home() / ".fonts")]
# Fonts whose digits are not drawn the usual way (symbols, maths glyph sets, monospace slashed zero ...)
SKIP_FONT_WORDS = ("Math", "Symbol", "Emoji", "Wingding", "Dingbat")


def jpeg(img: Image.Image, quality: int = 75) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def transform(digit: np.ndarray, kind: str, rng: np.random.Generator) -> Image.Image:
    """One MNIST digit (white on black, 28x28) as a user might hand it to us."""
    img = Image.fromarray(digit)
    s = int(rng.integers(2, 5))                                 # x2 .. x4
    big = img.resize((28 * s, 28 * s), Image.BICUBIC)
    if kind == "scaled":
        return big
    if kind == "off-centre":
        canvas = Image.new("L", (28 * s + int(rng.integers(20, 120)), 28 * s + int(rng.integers(20, 120))))
        canvas.paste(big, (int(rng.integers(0, canvas.width - big.width)),
                           int(rng.integers(0, canvas.height - big.height))))
        return canvas
    if kind == "inverted":
        return Image.fromarray(255 - np.asarray(big))
    if kind == "alpha":                                         # dark ink on a transparent canvas
        zero = Image.new("L", big.size, 0)
        return Image.merge("RGBA", [zero, zero, zero, big])
    if kind == "shaded photo":                                  # dark ink on paper lit unevenly, as JPEG
        h, w = big.height + int(rng.integers(20, 80)), big.width + int(rng.integers(20, 80))
        ink = np.zeros((h, w))
        y0, x0 = int(rng.integers(0, h - big.height)), int(rng.integers(0, w - big.width))
        ink[y0:y0 + big.height, x0:x0 + big.width] = np.asarray(big, float) / 255
        a, b = rng.uniform(200, 250), rng.uniform(90, 150)          # brightest and dimmest paper
        light = np.linspace(a, b, w)[None, :] * np.linspace(1, rng.uniform(0.8, 1), h)[:, None]
        if rng.integers(2):
            light = light[:, ::-1]
        photo = light * (1 - 0.8 * ink) + rng.normal(0, 3, (h, w))
        return jpeg(Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)), quality=80)
    if kind == "jpeg":
        return jpeg(Image.fromarray(255 - np.asarray(big)), quality=int(rng.integers(60, 90)))
    raise ValueError(kind)


TRANSFORMS = ["scaled", "off-centre", "inverted", "alpha", "jpeg", "shaded photo"]


def installed_fonts(limit: int | None = None, extra_dirs=()) -> list[str]:
    paths = []
    for d in FONT_DIRS + list(extra_dirs):
        for ext in ("ttf", "otf"):
            paths += glob.glob(os.path.join(d, "**", f"*.{ext}"), recursive=True)
    paths = sorted(p for p in set(paths) if not any(w in Path(p).name for w in SKIP_FONT_WORDS))
    return paths[:limit] if limit else paths


def render(text: str, font, size_px: tuple[int, int], pos: tuple[float, float], dark_on_light: bool) -> Image.Image:
    """``text`` drawn with ``font`` on a canvas, its box's centre at ``pos`` (fractions of the canvas)."""
    bg, fg = (255, 20) if dark_on_light else (10, 240)
    img = Image.new("L", size_px, bg)
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    x = pos[0] * size_px[0] - (x0 + x1) / 2
    y = pos[1] * size_px[1] - (y0 + y1) / 2
    draw.text((x, y), text, fill=fg, font=font)
    return img


def font_cases(fonts: list[str], rng: np.random.Generator):
    """(image, label, font name) for every font x digit x a few sizes/positions/polarities."""
    faces = [(Path(p).stem, p) for p in fonts] + [("Pillow-default", None)]
    for name, path in faces:
        for size in (24, 48, 96):
            font = ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)
            for label in range(10):
                canvas = (int(size * rng.uniform(1.5, 3)), int(size * rng.uniform(1.5, 2.5)))
                pos = (rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65))
                yield render(str(label), font, canvas, pos, dark_on_light=bool(rng.integers(2))), label, name


def touching_row(test, n: int, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """``n`` random test digits side by side, each sharing one column with the next (so they touch)."""
    idx = rng.choice(len(test), n, replace=False)
    canvas, x = np.zeros((40, 8 + 28 * n)), 4
    for i in idx:
        d = test.images[i].astype(float)
        cols = np.nonzero(d.any(axis=0))[0]
        d = d[:, cols[0]:cols[-1] + 1]
        canvas[6:34, x:x + d.shape[1]] = np.maximum(canvas[6:34, x:x + d.shape[1]], d)
        x += d.shape[1] - 1
    return Image.fromarray(255 - canvas.astype(np.uint8)), test.labels[idx]


def split_rows(model, test, n_rows: int, rng: np.random.Generator) -> list[dict]:
    """How often ``split_digits`` reads a row of touching digits entirely right, and keeps singles whole."""
    rows = []
    for n in (2, 3):
        right = 0
        for _ in range(n_rows):
            img, labels = touching_row(test, n, rng)
            parts = split_digits(img)
            if len(parts) == n:
                guess, no = answers(model, np.stack(parts))
                right += guess.tolist() == labels.tolist() and not no.any()
        rows.append({"set": f"split_digits: {n} touching MNIST digits, all read right", "n": n_rows,
                     "accuracy": right / n_rows})
    idx = rng.choice(len(test), n_rows, replace=False)
    whole = sum(len(split_digits(Image.fromarray(np.pad(test.images[i], 10)))) == 1 for i in idx)
    rows.append({"set": "split_digits: single MNIST digit kept whole", "n": n_rows, "accuracy": whole / n_rows})
    return rows


# --------------------------------------------------------------------------- proxies for real handwriting
# where Debian's handwriting-style font packages put their files
HANDWRITING_FONT_DIRS = ("comic-neue", "fifthhorseman", "breip", "bwht", "dancingscript", "ecolier",
                         "femkeklaver", "humor-sans")
DEGRADATIONS = ["low resolution, off-centre", "marker", "fine pen", "slanted", "rotated", "squeezed", "blurred",
                "faint and broken", "photographed"]


def on_paper(ink: Image.Image, rng: np.random.Generator, margin: tuple[int, int] = (10, 60)) -> Image.Image:
    """White-on-black ink (L) as dark ink on light paper, somewhere on a larger page."""
    a = np.asarray(ink, np.float32) / 255
    h, w = a.shape[0] + int(rng.integers(*margin)), a.shape[1] + int(rng.integers(*margin))
    page = np.zeros((h, w), np.float32)
    y, x = int(rng.integers(0, h - a.shape[0] + 1)), int(rng.integers(0, w - a.shape[1] + 1))
    page[y:y + a.shape[0], x:x + a.shape[1]] = a
    paper, pen = rng.uniform(200, 250), rng.uniform(10, 70)
    return Image.fromarray(np.clip(paper - (paper - pen) * page, 0, 255).astype(np.uint8))


def shear(img: Image.Image, k: float) -> Image.Image:
    w, h = img.size
    pad = int(abs(k) * h) + 2
    wide = Image.new("L", (w + 2 * pad, h))
    wide.paste(img, (pad, 0))
    return wide.transform(wide.size, Image.AFFINE, (1, k, -k * h / 2, 0, 1, 0), resample=Image.BICUBIC)


def degrade(digit: np.ndarray, kind: str, rng: np.random.Generator) -> Image.Image:
    """One MNIST test digit written or captured differently, as an image a user would give us."""
    from PIL import ImageFilter
    big = Image.fromarray(digit).resize((112, 112), Image.BICUBIC)          # ink white on black
    if kind == "low resolution, off-centre":
        h = int(rng.integers(8, 17))                                        # the digit's height in pixels
        s = max(4, round(h * 28 / 20))
        small = Image.fromarray(digit).resize((s, s), Image.BOX)
        up = small.resize((s * 8, s * 8), Image.NEAREST if rng.integers(2) else Image.BICUBIC)
        return on_paper(up, rng, (20, 160))
    if kind == "marker":
        big = big.filter(ImageFilter.MaxFilter(int(rng.choice([5, 7, 9]))))
    elif kind == "fine pen":
        big = big.filter(ImageFilter.MinFilter(int(rng.choice([3, 5]))))
    elif kind == "slanted":
        big = shear(big, float(rng.choice([-1, 1]) * rng.uniform(0.2, 0.5)))
    elif kind == "rotated":
        big = big.rotate(float(rng.choice([-1, 1]) * rng.uniform(10, 25)), resample=Image.BICUBIC, expand=True)
    elif kind == "squeezed":
        f = float(rng.uniform(0.55, 0.8))
        size = (round(112 * f), 112) if rng.integers(2) else (112, round(112 * f))
        big = big.resize(size, Image.BICUBIC)
    elif kind == "blurred":
        big = big.filter(ImageFilter.GaussianBlur(float(rng.uniform(3, 6))))
    elif kind == "faint and broken":
        a = np.asarray(big, np.float32)
        fade = np.linspace(rng.uniform(0.3, 0.6), 1, 112)[None, :] if rng.integers(2) else 1.0
        for _ in range(int(rng.integers(2, 4))):                            # pen lifted: thin gaps across strokes
            y = int(rng.integers(20, 92))
            a[y:y + int(rng.integers(3, 7)), :] *= 0.0 if rng.integers(2) else 0.3
        big = Image.fromarray(np.clip(a * fade, 0, 255).astype(np.uint8))
    elif kind == "photographed":
        img = on_paper(big, rng)
        a = np.asarray(img, np.float32)
        light = np.linspace(1, rng.uniform(0.55, 0.85), a.shape[1])[None, :]
        a = a * light + rng.normal(0, 6, a.shape)
        return jpeg(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)), quality=int(rng.integers(40, 80)))
    else:
        raise ValueError(kind)
    return on_paper(big, rng)


def degrade_mixed(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Three degradations at once: one of stroke/slant/rotation, then squeezing or blur, then a low-res capture."""
    from PIL import ImageFilter
    big = Image.fromarray(digit).resize((112, 112), Image.BICUBIC)
    first = int(rng.integers(3))
    if first == 0:
        big = big.filter(ImageFilter.MaxFilter(5))
    elif first == 1:
        big = shear(big, float(rng.uniform(-0.4, 0.4)))
    else:
        big = big.rotate(float(rng.uniform(-18, 18)), resample=Image.BICUBIC, expand=True)
    if rng.integers(2):
        big = big.resize((big.width, round(big.height * rng.uniform(0.7, 0.9))), Image.BICUBIC)
    else:
        big = big.filter(ImageFilter.GaussianBlur(float(rng.uniform(2, 4))))
    s = int(rng.integers(11, 23))
    small = big.resize((s, round(s * big.height / big.width)), Image.BOX)
    return on_paper(small.resize((small.width * 6, small.height * 6), Image.BICUBIC), rng, (20, 120))


def handwriting_font(path: str | None) -> bool:
    return path is not None and any(d in path.lower() for d in HANDWRITING_FONT_DIRS)


def distorted_font_cases(fonts: list[str], rng: np.random.Generator):
    """(image, label, font, handwriting?) per font x digit x 2 sizes, each with a random handwriting-like distortion."""
    from PIL import ImageFilter
    faces = [(Path(p).stem, p) for p in fonts] + [("Pillow-default", None)]
    for name, path in faces:
        for size in (40, 90):
            font = ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)
            for label in range(10):
                img = render(str(label), font, (size * 2, size * 2), (0.5, 0.5), dark_on_light=False)
                k = int(rng.integers(4))
                if k == 0:
                    img = img.filter(ImageFilter.MaxFilter(int(rng.choice([3, 5]))))
                elif k == 1:
                    img = shear(img, float(rng.uniform(-0.35, 0.35)))
                elif k == 2:
                    img = img.rotate(float(rng.uniform(-15, 15)), resample=Image.BICUBIC)
                else:
                    img = img.resize((round(img.width * rng.uniform(0.65, 1.3)), img.height), Image.BICUBIC)
                yield on_paper(img, rng), label, name, handwriting_font(path)


def scribble(rng: np.random.Generator) -> Image.Image:
    """A random walk with momentum: a pen wandering without writing anything."""
    img = Image.new("L", (120, 120))
    draw = ImageDraw.Draw(img)
    pos, heading = np.array([60.0, 60.0]), rng.uniform(0, 2 * np.pi)
    pts = [tuple(pos)]
    for _ in range(int(rng.integers(40, 120))):
        heading += rng.normal(0, 0.6)
        pos = np.clip(pos + 4 * np.array([np.cos(heading), np.sin(heading)]), 5, 115)
        pts.append(tuple(pos))
    draw.line(pts, fill=255, width=int(rng.integers(2, 8)), joint="curve")
    return img


def star_or_shape(rng: np.random.Generator) -> Image.Image:
    img = Image.new("L", (120, 120))
    draw = ImageDraw.Draw(img)
    kind, w = int(rng.integers(4)), int(rng.integers(2, 7))
    if kind == 0:                                                   # star, 5-8 points
        n, r = int(rng.integers(5, 9)), rng.uniform(30, 50)
        a = rng.uniform(0, np.pi) + np.arange(2 * n) * np.pi / n
        rad = np.where(np.arange(2 * n) % 2 == 0, r, r * rng.uniform(0.3, 0.5))
        pts = list(zip(60 + rad * np.cos(a), 60 + rad * np.sin(a)))
        draw.polygon(pts, outline=255, width=w, fill=255 if rng.integers(2) else None)
    elif kind == 1:                                                 # heart
        t = np.linspace(0, 2 * np.pi, 100)
        x, y = 16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        draw.line(list(zip(60 + 2.5 * x, 60 + 2.5 * y)), fill=255, width=w)
    elif kind == 2:                                                 # check mark / tick or cross
        if rng.integers(2):
            draw.line([(25, 60), (50, 90), (100, 25)], fill=255, width=w + 2)
        else:
            draw.line([(25, 25), (95, 95)], fill=255, width=w + 2)
            draw.line([(95, 25), (25, 95)], fill=255, width=w + 2)
    else:                                                           # smiley
        draw.ellipse([15, 15, 105, 105], outline=255, width=w)
        draw.ellipse([40, 40, 48, 48], fill=255)
        draw.ellipse([72, 40, 80, 48], fill=255)
        draw.arc([35, 45, 85, 90], 20, 160, fill=255, width=w)
    return img


def noise_image(rng: np.random.Generator) -> Image.Image:
    kind = int(rng.integers(3))
    if kind == 0:                                                   # speckled page
        a = (rng.random((100, 100)) < rng.uniform(0.02, 0.1)) * 255.0
    elif kind == 1:                                                 # grey noise
        a = np.clip(rng.normal(128, 60, (60, 60)), 0, 255)
        return Image.fromarray(a.astype(np.uint8))
    else:                                                           # smudge
        from PIL import ImageFilter
        a = (rng.random((100, 100)) < 0.04) * 255.0
        img = Image.fromarray(a.astype(np.uint8)).filter(ImageFilter.GaussianBlur(4))
        return Image.fromarray(np.clip(np.asarray(img, np.float32) * 6, 0, 255).astype(np.uint8))
    return Image.fromarray(a.astype(np.uint8))


def several_digits(test, rng: np.random.Generator) -> Image.Image:
    k = int(rng.integers(2, 4))
    parts = [np.pad(test.images[i], ((0, 0), (int(rng.integers(0, 6)), 0))) for i in rng.choice(len(test), k)]
    return Image.fromarray(np.concatenate(parts, axis=1))


SEVERAL = "2-3 MNIST test digits in one image"


# Letters many people write the way they write a digit (0: O o Q D d, 1: I l, 2: Z z, 5: S s, 6: b G, 8: B,
# 9: g q): the set "letters not written like a digit" leaves them out. The benchmark's own list, so that
# what the reader is trained to refuse (digitnet.negatives) can change without changing the sets.
DIGIT_LIKE_LETTERS = set("OoQDdIlZzSsbGBgq")


def negative_sets(fonts: list[str], test, n: int, rng: np.random.Generator) -> dict[str, list[Image.Image]]:
    """Images that are not one digit, by kind, each as dark ink on paper."""
    faces = [p for p in fonts] + [None]
    letters, undigitlike = [], []
    for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz":
        for _ in range(max(1, n // 52)):
            path = faces[int(rng.integers(len(faces)))]
            size = int(rng.integers(40, 90))
            font = ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)
            img = on_paper(render(c, font, (size * 2, size * 2), (0.5, 0.5), dark_on_light=False), rng)
            letters.append(img)
            if c not in DIGIT_LIKE_LETTERS:
                undigitlike.append(img)
    return {"letters, all 52": letters, "letters not written like a digit": undigitlike,
            "scribbles": [on_paper(scribble(rng), rng) for _ in range(n)],
            "stars, hearts, ticks, crosses, smileys": [on_paper(star_or_shape(rng), rng) for _ in range(n)],
            "noise, speckles, smudges": [on_paper(noise_image(rng), rng) for _ in range(n)],
            SEVERAL: [on_paper(several_digits(test, rng), rng) for _ in range(n)]}


def answers(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best digit, refused?) for MNIST-like inputs, as ``digitnet predict`` answers them."""
    proba = model.predict_proba(x)
    return proba[:, :10].argmax(axis=1), refused_mask(proba, model.reject_class, model.meta.get("reject_threshold", 0.0))


def to_inputs(images) -> np.ndarray:
    out = []
    for img in images:
        try:
            out.append(to_mnist(img))
        except digitnet.DigitnetError:                  # blank after preprocessing: what predict refuses too
            out.append(None)
    return out


def proxy_rows(model, test, fonts: list[str], n: int, seed: int) -> list[dict]:
    rows = []
    rng = np.random.default_rng(seed + 10)
    idx = rng.choice(len(test), n, replace=False)
    everything = []
    for kind in DEGRADATIONS + ["three at once"]:
        imgs = [degrade_mixed(test.images[i], rng) if kind == "three at once" else degrade(test.images[i], kind, rng)
                for i in idx]
        x = np.stack(to_inputs(imgs))
        guess, no = answers(model, x)
        right = (guess == test.labels[idx]) & ~no
        everything.append(right)
        rows.append({"set": f"proxy: MNIST test {kind}", "n": n, "accuracy": float(right.mean()),
                     "refused": float(no.mean())})
    rows.append({"set": "proxy: MNIST test degraded, all kinds", "n": n * len(everything),
                 "accuracy": float(np.mean(everything)), "refused": float(np.mean([r["refused"] for r in rows]))})
    cases = list(distorted_font_cases(fonts, np.random.default_rng(seed + 11)))
    x = np.stack(to_inputs(c[0] for c in cases))
    y = np.array([c[1] for c in cases])
    hand = np.array([c[3] for c in cases])
    guess, no = answers(model, x)
    right = (guess == y) & ~no
    n_hand = len({c[2] for c in cases if c[3]})
    for name, m in ((f"handwriting-style fonts ({n_hand})", hand), ("other fonts", ~hand)):
        if m.any():
            rows.append({"set": f"proxy: distorted digits, {name}", "n": int(m.sum()),
                         "accuracy": float(right[m].mean()), "refused": float(no[m].mean())})
    negatives = negative_sets(fonts, test, n, np.random.default_rng(seed + 12))
    for name, imgs in negatives.items():
        xs = [a for a in to_inputs(imgs) if a is not None]  # a blank is refused as an error already
        _, no = answers(model, np.stack(xs))
        rows.append({"set": f"proxy non-digits: {name}", "n": len(xs), "refused": float(no.mean()),
                     "blank_errors": len(imgs) - len(xs)})
    if model.reject_class is not None:
        for name, imgs in negatives.items():
            no, several = predict_answers(model, imgs)
            if name == SEVERAL:  # the right answer here is the number
                rows.append({"set": f"{name}, read as a number by `digitnet predict`", "n": len(no),
                             "accuracy": float(np.mean(several))})
            else:
                rows.append({"set": f"proxy non-digits, as `digitnet predict` reads them (numbers too): {name}",
                             "n": len(no), "refused": float(np.mean(no))})
    return rows


def other_writers(rng: np.random.Generator) -> tuple[list[Image.Image], np.ndarray] | None:
    """scikit-learn's 8x8 handwritten digits as images a user could give us, and their labels (None: no sklearn)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return None
    digits = load_digits()
    filters = [Image.NEAREST, Image.BILINEAR, Image.BICUBIC]
    images = []
    for a in digits.images:
        side = 8 * int(rng.integers(3, 9))
        up = Image.fromarray((a * 255 / 16).astype(np.uint8)).resize((side, side), filters[int(rng.integers(3))])
        page = Image.new("L", (side + int(rng.integers(10, 80)), side + int(rng.integers(10, 80))))
        page.paste(up, (int(rng.integers(0, page.width - side + 1)), int(rng.integers(0, page.height - side + 1))))
        images.append(Image.fromarray(255 - np.asarray(page)) if rng.integers(2) else page)
    return images, digits.target


def writer_rows(model, seed: int) -> list[dict]:
    """The other writers' digits: accuracy and refusals, all and by digit."""
    made = other_writers(np.random.default_rng(seed + 13))
    if made is None:
        print("scikit-learn is not installed: the other writers' digits are skipped")
        return []
    images, y = made
    x = np.stack(to_inputs(images))
    acc, no, right = scored(model, x, y)
    by_digit = ", ".join(f"{d}: {right[y == d].mean() * 100:.0f} %" for d in range(10))
    return [{"set": "real handwriting, 43 other writers (scikit-learn's 8x8 digits), scaled up, off-centre",
             "n": len(y), "accuracy": acc, "refused": no, "by_digit": by_digit}]


def predict_answers(model, images) -> tuple[list[bool], list[bool]]:
    """Per image: does ``digitnet predict`` (no ``--split``) answer "not a digit", and does it read a number?

    As the command does, an image the model may be reading several digits in
    (:func:`digitnet.segment.needs_number_reading`) is segmented, and read as a
    number (not refused) when it clearly holds several digits; any other is read
    whole. Blank images are left out.
    """
    out, numbers = [], []
    for img in images:
        try:
            x = to_mnist(img)
        except digitnet.DigitnetError:
            continue
        several = False
        if needs_number_reading(model, model.predict_proba(x[None])[0], x):
            with contextlib.suppress(digitnet.DigitnetError):  # too many pieces of ink for a number: read whole
                several = digitnet.read_number(img, model).clearly_several
        out.append(not several and bool(answers(model, x[None])[1][0]))
        numbers.append(several)
    return out, numbers


def _pct(x) -> str:
    return "" if x is None else f"{x * 100:.1f} %"


def scored(model, x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(accuracy with refusals wrong, refused fraction, per-input right) of ``model`` on inputs ``x``."""
    guess, no = answers(model, x)
    right = (guess == y) & ~no
    return float(right.mean()), float(no.mean()), right


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="seed")
    ap.add_argument("--n", type=int, default=1000, help="transformed MNIST test images per transform")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--font-dir", action="append", default=[], metavar="DIR",
                    help="another folder of .ttf/.otf fonts to render digits and letters in (repeatable)")
    ap.add_argument("--proxies", action=argparse.BooleanOptionalAction, default=True,
                    help="also the proxies for real handwriting (degraded digits, distorted font digits, non-digits)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    stem = Path(args.model).stem
    model = digitnet.load(args.model)
    test = digitnet.load_mnist().test
    idx = rng.choice(len(test), args.n, replace=False)
    rows, t0 = [], time.perf_counter()
    acc, no, _ = scored(model, test.images[idx], test.labels[idx])
    rows.append({"set": "MNIST test, untouched (same images)", "n": args.n, "accuracy": acc, "refused": no})
    for kind in TRANSFORMS:
        x = np.stack([to_mnist(transform(test.images[i], kind, rng)) for i in idx])
        acc, no, _ = scored(model, x, test.labels[idx])
        dist = float(np.abs(x.astype(int) - test.images[idx].astype(int)).mean())
        rows.append({"set": f"MNIST test, {kind}", "n": args.n, "accuracy": acc, "refused": no,
                     "mean_abs_pixel_diff": dist})
    basic = [r for r in rows[1:] if r["set"] != "MNIST test, shaded photo"]
    rows.append({"set": "MNIST test, all transforms but shaded photo", "n": sum(r["n"] for r in basic),
                 "accuracy": float(np.mean([r["accuracy"] for r in basic]))})
    rows.append({"set": "MNIST test, all transforms", "n": sum(r["n"] for r in rows[1:-1]),
                 "accuracy": float(np.mean([r["accuracy"] for r in rows[1:-1]]))})
    fonts = installed_fonts(extra_dirs=args.font_dir)
    cases = list(font_cases(fonts, np.random.default_rng(args.seed + 1)))   # independent of the transforms
    x = np.stack([to_mnist(img) for img, _, _ in cases])
    y = np.array([lab for _, lab, _ in cases])
    acc, no, right = scored(model, x, y)
    rows.append({"set": f"font digits ({len(fonts) + 1} fonts x 3 sizes, random position/polarity)",
                 "n": len(y), "accuracy": acc, "refused": no})
    rows += split_rows(model, test, min(args.n, 500), np.random.default_rng(args.seed + 2))
    if args.proxies:
        rows += writer_rows(model, args.seed)
        rows += proxy_rows(model, test, fonts, args.n, args.seed)
    per_font = {}
    for (_, _, font), r in zip(cases, right):
        per_font.setdefault(font, []).append(int(r))
    result = {"model": args.model, "command": "python benchmarks/real_digits.py " + " ".join(argv or sys.argv[1:]),
              "python": platform.python_version(), "numpy": np.__version__, "time_s": time.perf_counter() - t0,
              "rows": rows, "per_font_accuracy": {k: float(np.mean(v)) for k, v in per_font.items()}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"real_digits-{stem}.json").write_text(json.dumps(result, indent=2))
    md = [f"Model `{args.model}`; command: `{result['command']}`", "",
          "| set | n | accuracy (refused count as wrong) | answered \"not a digit\" |", "|---|---|---|---|"]
    md += [f"| {r['set']} | {r['n']:,} | {_pct(r.get('accuracy'))} | {_pct(r.get('refused'))} |" for r in rows]
    (out / f"real_digits-{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    for r in rows:
        if "by_digit" in r:
            print(f"{r['set']}, by digit: {r['by_digit']}")
    worst = sorted(result["per_font_accuracy"].items(), key=lambda kv: kv[1])[:5]
    print("weakest fonts:", ", ".join(f"{k} {v * 100:.0f} %" for k, v in worst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
