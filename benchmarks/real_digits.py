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

Writes ``real_digits-<model>.json`` and ``.md`` and prints the table.
"""

from __future__ import annotations

import argparse
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


def installed_fonts(limit: int | None = None) -> list[str]:
    paths = []
    for d in FONT_DIRS:
        paths += glob.glob(os.path.join(d, "**", "*.ttf"), recursive=True)
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
            right += len(parts) == n and model.predict(np.stack(parts)).tolist() == labels.tolist()
        rows.append({"set": f"split_digits: {n} touching MNIST digits, all read right", "n": n_rows,
                     "accuracy": right / n_rows})
    idx = rng.choice(len(test), n_rows, replace=False)
    whole = sum(len(split_digits(Image.fromarray(np.pad(test.images[i], 10)))) == 1 for i in idx)
    rows.append({"set": "split_digits: single MNIST digit kept whole", "n": n_rows, "accuracy": whole / n_rows})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="seed")
    ap.add_argument("--n", type=int, default=1000, help="transformed MNIST test images per transform")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    model = digitnet.load(args.model)
    test = digitnet.load_mnist().test
    idx = rng.choice(len(test), args.n, replace=False)
    rows, t0 = [], time.perf_counter()
    base = float((model.predict(test.images[idx]) == test.labels[idx]).mean())
    rows.append({"set": "MNIST test, untouched (same images)", "n": args.n, "accuracy": base})
    for kind in TRANSFORMS:
        x = np.stack([to_mnist(transform(test.images[i], kind, rng)) for i in idx])
        acc = float((model.predict(x) == test.labels[idx]).mean())
        dist = float(np.abs(x.astype(int) - test.images[idx].astype(int)).mean())
        rows.append({"set": f"MNIST test, {kind}", "n": args.n, "accuracy": acc, "mean_abs_pixel_diff": dist})
    basic = [r for r in rows[1:] if r["set"] != "MNIST test, shaded photo"]
    rows.append({"set": "MNIST test, all transforms but shaded photo", "n": sum(r["n"] for r in basic),
                 "accuracy": float(np.mean([r["accuracy"] for r in basic]))})
    rows.append({"set": "MNIST test, all transforms", "n": sum(r["n"] for r in rows[1:-1]),
                 "accuracy": float(np.mean([r["accuracy"] for r in rows[1:-1]]))})
    fonts = installed_fonts()
    cases = list(font_cases(fonts, np.random.default_rng(args.seed + 1)))   # independent of the transforms
    x = np.stack([to_mnist(img) for img, _, _ in cases])
    y = np.array([lab for _, lab, _ in cases])
    pred = model.predict(x)
    rows.append({"set": f"font digits ({len(fonts) + 1} fonts x 3 sizes, random position/polarity)",
                 "n": len(y), "accuracy": float((pred == y).mean())})
    rows += split_rows(model, test, min(args.n, 500), np.random.default_rng(args.seed + 2))
    per_font = {}
    for (_, lab, name), p in zip(cases, pred):
        per_font.setdefault(name, []).append(int(p == lab))
    result = {"model": args.model, "command": "python benchmarks/real_digits.py " + " ".join(argv or sys.argv[1:]),
              "python": platform.python_version(), "numpy": np.__version__, "time_s": time.perf_counter() - t0,
              "rows": rows, "per_font_accuracy": {k: float(np.mean(v)) for k, v in per_font.items()}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"real_digits-{args.model}.json").write_text(json.dumps(result, indent=2))
    md = [f"Model `{args.model}`; command: `{result['command']}`", "", "| set | n | accuracy |", "|---|---|---|"]
    md += [f"| {r['set']} | {r['n']:,} | {r['accuracy'] * 100:.1f} % |" for r in rows]
    (out / f"real_digits-{args.model}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    worst = sorted(result["per_font_accuracy"].items(), key=lambda kv: kv[1])[:5]
    print("weakest fonts:", ", ".join(f"{k} {v * 100:.0f} %" for k, v in worst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
