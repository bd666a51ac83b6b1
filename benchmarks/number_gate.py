"""Which images are segmented? The price and the safety of ``needs_number_reading``.

Segmenting an image (reading it as a number) costs several times reading it whole, so
``digitnet predict`` and the web API segment an image only when the model may be looking at
several digits (:func:`digitnet.segment.needs_number_reading`). This counts, for the default reader:

* drawings of MNIST test digits as the drawing page uploads them (a 280 px drawing cropped to
  its ink, at most 64 px): how many are read under ``SURE``, and how many of those are segmented;
* rows of 2-3 MNIST test digits (spaced, close, touching, overlapping, as in
  ``benchmarks/written_numbers.py``) and 2-3 digits squeezed into one image (as in
  ``benchmarks/real_digits.py``): how many :func:`digitnet.segment.read_number`, segmenting
  every image, reads as clearly several digits, and how many of those the rule also segments.

    python benchmarks/number_gate.py [--model reader] [--n 1000] [--rows 150] [--out benchmarks/results/number_gate]

The table is printed as it is measured and written to ``OUT.md``.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import load_test  # noqa: E402
import real_digits  # noqa: E402
import written_numbers  # noqa: E402

import digitnet  # noqa: E402
from digitnet.preprocess import to_mnist  # noqa: E402
from digitnet.segment import SURE, needs_number_reading, read_number  # noqa: E402


def count(net, images) -> dict:
    out = {"images": len(images), "unsure": 0, "segmented": 0, "clearly_several": 0, "several_and_segmented": 0}
    for img in images:
        seen = to_mnist(img)
        proba = net.predict_proba(seen[None])[0]
        segmented = needs_number_reading(net, proba, seen)
        out["unsure"] += bool(np.delete(proba, net.reject_class).max() < SURE) if net.reject_class is not None else 1
        out["segmented"] += segmented
        try:
            several = read_number(img, net).clearly_several
        except digitnet.DigitnetError:
            several = False
        out["clearly_several"] += several
        out["several_and_segmented"] += several and segmented
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="reader")
    ap.add_argument("--n", type=int, default=1000, help="page drawings")
    ap.add_argument("--rows", type=int, default=150, help="rows per spacing, and images of several digits")
    ap.add_argument("--out", default=str(HERE / "results" / "number_gate"), help="results path without extension")
    args = ap.parse_args(argv)
    net = digitnet.load(args.model)
    test = digitnet.load_mnist().test
    rng = np.random.default_rng(1)
    idx = rng.choice(len(test), args.n, replace=False)
    page = [Image.open(io.BytesIO(load_test.page_png(load_test.as_the_page_sends(
        Image.fromarray(255 - test.images[i]).resize((280, 280), Image.BILINEAR))))) for i in idx]
    sets = {"page drawings of one digit": page,
            "2-3 digits in one image": [real_digits.several_digits(test, rng) for _ in range(args.rows)]}
    for k, spacing in enumerate(written_numbers.SPACINGS):
        r = np.random.default_rng([0, k])
        sets[f"rows of 2-3 digits, {spacing}"] = [written_numbers.make_row(test, int(r.integers(2, 4)), spacing, r)[0]
                                                  for _ in range(args.rows)]
    lines = [f"model {args.model}: python benchmarks/number_gate.py " + " ".join(sys.argv[1:] if argv is None else argv),
             f"| set | images | read under {SURE} whole | segmented by the rule | clearly several (every image "
             "segmented) | of those segmented by the rule |",
             "|---|---|---|---|---|---|"]
    print("\n".join(lines))
    for name, images in sets.items():
        c = count(net, images)
        lines.append(f"| {name} | {c['images']} | {c['unsure']} | {c['segmented']} | {c['clearly_several']} "
                     f"| {c['several_and_segmented']} |")
        print(lines[-1], flush=True)
    common.write_table(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
