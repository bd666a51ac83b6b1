"""How well are whole numbers read? Rows of 2-5 MNIST test digits, four ways of spacing them.

Each row is built from random MNIST test digits (never seen in training),
each given a random stroke width (thinner, as drawn, or thicker), drawn
black on white at twice MNIST's size, and set side by side:

* ``spaced``: a gap of about a third of a digit's height;
* ``close``: a gap of 1-2 pixels (at 28 px a digit);
* ``touching``: neighbours share 1-2 columns, so their strokes usually meet;
* ``overlapping``: neighbours share 3-5 columns.

A row counts as right only when every digit is: the number read equals the
labels as text. Two readers are compared: ``digitnet.read_number``
(segmentation by recognition) and the ink-only ``split_digits`` followed by
the model.

Usage::

    python benchmarks/written_numbers.py [--model cnn] [--rows 300] [--seed 0] [--out benchmarks/results]

Writes ``numbers-<model>.json`` and ``.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import digitnet
from digitnet.preprocess import dilate, split_digits

SCALE = 2                               # rows are drawn at 56 px a digit
SPACINGS = {"spaced": (8, 10), "close": (1, 2), "touching": (-2, -1), "overlapping": (-5, -3)}   # at 28 px


def stroke(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 digit at SCALE x, with a random stroke width: thinner, as drawn, or thicker."""
    big = np.asarray(Image.fromarray(digit).resize((28 * SCALE, 28 * SCALE), Image.BICUBIC), np.float32) / 255
    kind = int(rng.integers(3))
    if kind == 0:                                           # thinner: keep the stroke's core
        big = np.clip((big - 0.45) / 0.55, 0, 1)
    elif kind == 2:                                         # thicker pen
        big = dilate(big, 3)
    return big


def make_row(test, n: int, spacing: str, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """One row of ``n`` random test digits, and its labels as text."""
    idx = rng.choice(len(test), n, replace=False)
    lo, hi = SPACINGS[spacing]
    h = 28 * SCALE
    canvas = np.zeros((h + 24, 24 + 40 * SCALE * n), np.float32)
    x = 12
    for k, i in enumerate(idx):
        d = stroke(test.images[i], rng)
        cols = np.nonzero(d.max(axis=0) > 0.05)[0]
        d = d[:, cols[0]:cols[-1] + 1]
        canvas[12:12 + h, x:x + d.shape[1]] = np.maximum(canvas[12:12 + h, x:x + d.shape[1]], d)
        x += d.shape[1] + SCALE * int(rng.integers(lo, hi + 1))
    canvas = canvas[:, :x + 12]
    img = Image.fromarray((255 - np.clip(canvas, 0, 1) * 255).astype(np.uint8))
    return img, "".join(str(test.labels[i]) for i in idx)


def read_split_digits(img, model) -> str:
    parts = split_digits(img)
    return "".join(str(c) for c in model.predict(np.stack(parts)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="cnn", help="model file or shipped model name")
    ap.add_argument("--rows", type=int, default=300, help="rows per spacing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    model = digitnet.load(args.model)
    test = digitnet.load_mnist().test
    rows, t0 = [], time.perf_counter()
    for k, spacing in enumerate(SPACINGS):
        rng = np.random.default_rng([args.seed, k])         # each set independent of the others
        right = {"read_number": 0, "split_digits": 0, "unasked": 0}
        by_len: dict[int, list[int]] = {}
        for _ in range(args.rows):
            img, want = make_row(test, int(rng.integers(2, 6)), spacing, rng)
            reading = digitnet.read_number(img, model)
            ok = reading.number == want
            right["read_number"] += ok
            right["unasked"] += ok and reading.clearly_several  # digitnet predict without --split reads it so
            right["split_digits"] += read_split_digits(img, model) == want
            by_len.setdefault(len(want), []).append(int(ok))
        rows.append({"set": spacing, "n": args.rows,
                     **{f"{m}_accuracy": v / args.rows for m, v in right.items()},
                     "read_number_by_length": {str(n): float(np.mean(v)) for n, v in sorted(by_len.items())}})
    cmd = "python benchmarks/written_numbers.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"model": args.model, "command": cmd.strip(), "python": platform.python_version(),
              "numpy": np.__version__, "time_s": round(time.perf_counter() - t0, 1), "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.model).stem
    (out / f"numbers-{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"Model `{args.model}`; command: `{result['command']}`", "",
          "| set | rows | read_number | split_digits + model | read_number by digits in the row "
          "| read right without --split |",
          "|---|---|---|---|---|---|"]
    md += [f"| {r['set']} | {r['n']} | {r['read_number_accuracy'] * 100:.1f} % | "
           f"{r['split_digits_accuracy'] * 100:.1f} % | "
           + ", ".join(f"{n}: {a * 100:.0f} %" for n, a in r["read_number_by_length"].items())
           + f" | {r['unasked_accuracy'] * 100:.1f} % |" for r in rows]
    (out / f"numbers-{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
