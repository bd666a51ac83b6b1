"""``digitnet predict``: classify images (files, folders, globs, stdin) or CSV rows."""

from __future__ import annotations

import itertools
import sys

from ..errors import DigitnetError
from ._args import DEFAULT_MODEL, positive_int


def add_parser(sub, fmt) -> None:
    pr = sub.add_parser(
        "predict",
        help="classify images (files, folders, globs, stdin) or CSV rows",
        formatter_class=fmt,
        description="Classify images of digits. Each image is turned into an MNIST-like 28x28 "
        "input first (greyscale, light backgrounds inverted, cropped, scaled, centred).",
    )
    pr.add_argument(
        "files",
        nargs="+",
        metavar="INPUT",
        help="image files (PNG, JPEG, ...), folders of them, glob patterns ('digits/*.png', "
        "quoted or not), CSV files of 784-pixel rows, or - for image bytes on stdin",
    )
    pr.add_argument(
        "--model",
        action="append",
        metavar="M",
        help=f"model file or shipped model name (default: {DEFAULT_MODEL}); give it several times to "
        "average the models' probabilities (an ensemble)",
    )
    pr.add_argument("--top-k", type=positive_int, default=3, help="how many classes to list")
    pr.add_argument("--json", action="store_true", help="print JSON lines")
    pr.add_argument(
        "--always-answer",
        action="store_true",
        help="always give the best digit, even for input the model reads as not a digit "
        '(by default such input is answered ? with the reason; in JSON "label": null)',
    )
    pr.add_argument(
        "--split",
        action="store_true",
        help="read each image as a number: a row of digits, left to right (without it, an image "
        "that clearly holds several digits is read as a number too)",
    )
    pr.add_argument("--show", metavar="DIR", help="save, for each input, a picture of it next to what the network saw")
    pr.add_argument(
        "--kaggle-submission",
        metavar="OUT",
        help="with a Kaggle 'Digit Recognizer' test.csv as input: write an ImageId,Label CSV",
    )
    pr.set_defaults(func=run)


def run(args) -> int:
    from .. import io
    from ..metrics import check_ensemble
    from ..predict import classify, format_item, iter_items, kaggle_submission, save_seen

    models = [io.load(m) for m in (args.model or [DEFAULT_MODEL])]
    check_ensemble(models)
    if args.kaggle_submission and (len(args.files) != 1 or not args.files[0].lower().endswith(".csv")):
        raise DigitnetError(
            "--kaggle-submission expects one CSV file of pixels as input (Kaggle's test.csv), "
            f"got {' '.join(args.files)}"
        )
    # A submission needs every row: there the first bad input stops the command. Otherwise each bad
    # input gets its own line and the rest go on; the exit status says whether any failed.
    items = iter_items(
        args.files, split=args.split, keep_source=bool(args.show), keep_going=not args.kaggle_submission, models=models
    )
    if args.kaggle_submission:
        rows = list(items)
        classify(rows, models, always_answer=args.always_answer)
        out = kaggle_submission(rows, args.kaggle_submission)
        print(f"wrote {len(rows):,} predictions to {out} (ImageId,Label)")
        return 0
    classes = models[0].classes
    reject = models[0].reject_class
    k = min(args.top_k, len(classes) - (reject is not None))
    # Answers are printed a chunk of inputs at a time, as they are read: a folder of thousands of
    # images shows its first lines at once, and a pipe can use them while the rest are read.
    n = failed = 0
    shown = []  # --show draws every input at the end
    while batch := list(itertools.islice(items, ANSWER_CHUNK)):
        classify(batch, models, always_answer=args.always_answer)
        for it in batch:
            if it.error is not None:  # on stderr always; with --json also as a JSON line
                print(f"digitnet: error: {it.error}", file=sys.stderr)
            if it.error is None or args.json:
                print(format_item(it, k, args.json, classes, reject), flush=True)
        n, failed = n + len(batch), failed + sum(it.error is not None for it in batch)
        if args.show:
            shown += batch
    if args.show and failed < n:
        written = save_seen(shown, args.show)
        plural = "s" if len(written) != 1 else ""
        print(f"saved {len(written)} picture{plural} of what the network saw in {args.show}", file=sys.stderr)
    if failed:
        if n > 1:
            print(f"digitnet: error: {failed} of {n} inputs could not be read", file=sys.stderr)
        return EXIT_FAILED
    return 0


EXIT_FAILED = 2
ANSWER_CHUNK = 256  # inputs read, then answered together (one batch through the network)
