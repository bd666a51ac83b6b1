"""Does fine-tuning on a few of a writer's own digits help, and what does it cost on MNIST?

The "writer" is a hand the models have not seen: MNIST *training* digits
redrawn with a strong back-slant (shear -0.8, a little jitter per digit) and
a heavier pen, at 84 px, black on white, then read back through
``digitnet.preprocess.to_mnist`` exactly as ``digitnet predict`` and
``digitnet finetune`` read files. (The shipped models were trained with
at most small rotations, never such a slant.)

For 5, 10 and 20 samples per digit: ``digitnet.finetune.finetune`` with its
defaults on that many of the writer's digits, then accuracy on 1,000 other
digits by the same writer and on the whole MNIST test set, before and after.
The writer's digits are drawn from disjoint MNIST training digits; the MNIST
test set is untouched.

Usage::

    python benchmarks/finetune.py [--model cnn] [--per-digit 5 10 20] [--n-eval 1000] [--seed 0]

Writes ``finetune-<model>.json`` and ``.md`` under ``--out`` and prints the table.
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
from digitnet.augment import sample_bilinear
from digitnet.data import Dataset
from digitnet.finetune import FinetuneConfig, finetune
from digitnet.preprocess import dilate, to_mnist

SHEAR = -0.8
PEN = 5                 # dilation (pixels, at 84 px) of the writer's heavier pen


def writer(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MNIST digits as the writer draws them, read back through to_mnist: (N, 28, 28) uint8."""
    n, c = len(images), 13.5
    g = np.arange(28) - c
    shear = SHEAR + rng.uniform(-0.05, 0.05, (n, 1, 1))
    ys = np.broadcast_to(c + g[None, :, None], (n, 28, 28))
    xs = c + g[None, None, :] - shear * g[None, :, None]            # x shifts with the row: a slant
    slanted = sample_bilinear(images.astype(np.float32) / 255, ys, xs)
    out = np.empty((n, 28, 28), np.uint8)
    for i, im in enumerate(slanted):
        big = np.asarray(Image.fromarray((np.clip(im, 0, 1) * 255).astype(np.uint8)).resize((84, 84), Image.BICUBIC),
                         np.float32) / 255
        big = np.clip(dilate(big, PEN), 0, 1)
        out[i] = to_mnist(Image.fromarray((255 - big * 255).astype(np.uint8)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="cnn", help="model file or shipped model name")
    ap.add_argument("--per-digit", type=int, nargs="+", default=[5, 10, 20])
    ap.add_argument("--n-eval", type=int, default=1000, help="the writer's digits to measure on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    mnist = digitnet.load_mnist()
    rng = np.random.default_rng(args.seed)
    pool = rng.permutation(len(mnist.train))
    held = pool[:args.n_eval]
    heldout = Dataset(writer(mnist.train.images[held], rng), mnist.train.labels[held], "writer (held out)")
    rest = pool[args.n_eval:]
    rows, t0 = [], time.perf_counter()
    for per in args.per_digit:
        idx = np.concatenate([rest[mnist.train.labels[rest] == d][:per] for d in range(10)])
        own = Dataset(writer(mnist.train.images[idx], rng), mnist.train.labels[idx], f"writer x{per}")
        model = digitnet.load(args.model)
        report = finetune(model, own, FinetuneConfig(seed=args.seed), heldout=heldout, mnist=mnist)
        errors_before = 1 - report["own_before"]
        rows.append({"per_digit": per, "samples": len(own), **report,
                     "errors_removed": (report["own_after"] - report["own_before"]) / errors_before
                     if errors_before else None,
                     "mnist_drop_points": (report["mnist_before"] - report["mnist_after"]) * 100})
        print(f"{per}/digit: writer {report['own_before']:.3f} -> {report['own_after']:.3f}, "
              f"MNIST {report['mnist_before']:.4f} -> {report['mnist_after']:.4f}", file=sys.stderr, flush=True)
    cmd = "python benchmarks/finetune.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"model": args.model, "command": cmd.strip(), "config": vars(FinetuneConfig(seed=args.seed)),
              "python": platform.python_version(), "numpy": np.__version__,
              "time_s": round(time.perf_counter() - t0, 1), "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.model).stem
    (out / f"finetune-{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"Model `{args.model}`; command: `{result['command']}`", "",
          ("| samples per digit | writer, before | writer, after | errors removed | MNIST test, before | "
           "MNIST test, after |"), "|---|---|---|---|---|---|"]
    md += [f"| {r['per_digit']} | {r['own_before'] * 100:.1f} % | {r['own_after'] * 100:.1f} % | "
           f"{r['errors_removed'] * 100:.0f} % | {r['mnist_before'] * 100:.2f} % | {r['mnist_after'] * 100:.2f} % |"
           for r in rows]
    (out / f"finetune-{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
