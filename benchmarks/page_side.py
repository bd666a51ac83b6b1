"""How large should the drawing page's upload of a digit be? Reading and cost by the crop's longer side.

The page sends the inked part of its 280 x 280 canvas, scaled down to at most ``PAGE_DIGIT_SIDE``
px (``digitnet.web.inputs``; app.js ``DIGIT_SIDE``). For each candidate side this reads, as
``digitnet serve`` reads the page's upload (``digitnet.web.numbers.read_image``) with the default
reader:

* drawings of MNIST test digits on the canvas: how many are read right, refused, or also read as a
  possible number, the server's time to read one whole, and the PNG's size;
* rows of 2-3 MNIST test digits (``benchmarks/written_numbers.py``'s spacings) drawn across the same
  canvas: how many come back as a number, and as the right one.

    python benchmarks/page_side.py [--n 1000] [--rows 150] [--sides 128 96 64 48] [--out benchmarks/results/page_side]

The table is printed as it is measured and written to ``OUT.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import load_test  # noqa: E402
import written_numbers  # noqa: E402

import digitnet  # noqa: E402
from digitnet.reject import refused  # noqa: E402
from digitnet.segment import needs_number_reading  # noqa: E402
from digitnet.web.numbers import read_image, read_whole  # noqa: E402

PAD = 280  # the page's digit canvas
MAX_PIXELS = 2048 * 2048  # digitnet serve's default


def on_the_pad(img: Image.Image) -> Image.Image:
    """A row of digits (dark on light, as ``written_numbers.make_row`` makes them) on the canvas, across 90 % of it."""
    g = img.convert("L")
    s = 0.9 * PAD / max(g.size)
    g = g.resize((max(1, round(g.width * s)), max(1, round(g.height * s))), Image.BILINEAR)
    pad = Image.new("L", (PAD, PAD), 255)
    pad.paste(g, ((PAD - g.width) // 2, (PAD - g.height) // 2))
    return pad


def digits_row(net, pngs: list[bytes], labels: list[str]) -> tuple[int, int]:
    """(read as a number, read as the right number) over the uploads."""
    several = right = 0
    for png, label in zip(pngs, labels):
        digits = read_image(png, MAX_PIXELS, net, False)[2]
        if digits is not None:
            several += 1
            right += "".join(str(int(np.argmax(d["proba"][:10]))) for d in digits) == label
    return several, right


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="drawings of one digit")
    ap.add_argument("--rows", type=int, default=150, help="rows of digits per spacing")
    ap.add_argument("--sides", type=int, nargs="+", default=[128, 96, 64, 48])
    ap.add_argument("--out", default=str(HERE / "results" / "page_side"), help="results path without extension")
    args = ap.parse_args(argv)
    net = digitnet.load("reader")
    test = digitnet.load_mnist().test
    pads = [Image.fromarray(255 - test.images[i]).resize((PAD, PAD), Image.BILINEAR) for i in range(args.n)]
    rows = {}
    for k, spacing in enumerate(written_numbers.SPACINGS):
        r = np.random.default_rng([0, k])
        made = [written_numbers.make_row(test, int(r.integers(2, 4)), spacing, r) for _ in range(args.rows)]
        rows[spacing] = ([on_the_pad(img) for img, _ in made], [label for _, label in made])
    cmd = "python benchmarks/page_side.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [f"`{cmd.strip()}`, model reader; ms: the fastest of three passes; "
             "rows: read as a number / as the right one",
             "",
             f"| side px | one digit ({args.n}): right | refused | also read as a number | ms to read one whole "
             "| PNG bytes | " + " | ".join(f"rows {s} ({args.rows})" for s in rows) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(rows)]
    print("\n".join(lines))
    for side in args.sides:
        pngs = [load_test.page_png(load_test.as_the_page_sends(p, side=side)) for p in pads]
        ms = float("inf")
        for _ in range(3):  # the fastest of three passes: a shared machine's noise only adds time
            t0 = time.perf_counter()
            read = [read_whole(png, MAX_PIXELS, net) for png in pngs]
            ms = min(ms, (time.perf_counter() - t0) / len(pngs) * 1e3)
        proba = np.stack([p for _, _, p in read])
        right = proba[:, :10].argmax(axis=1) == test.labels[: args.n]
        no = refused(proba, net.reject_class, net.meta.get("reject_threshold", 0.0))
        numbers = sum(needs_number_reading(net, p, whole) for _, whole, p in read)
        cells = []
        for images, labels in rows.values():
            uploads = [load_test.page_png(load_test.as_the_page_sends(img, side=side)) for img in images]
            cells.append("{} / {}".format(*digits_row(net, uploads, labels)))
        lines.append(f"| {side} | {(right & ~no).mean() * 100:.1f} % | {no.mean() * 100:.1f} % | {numbers} | {ms:.2f} "
                     f"| {np.mean([len(p) for p in pngs]):,.0f} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    common.write_table(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
