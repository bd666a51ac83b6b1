"""``digitnet evaluate``: accuracy, loss, per-class metrics and the confusion matrix of a model."""

from __future__ import annotations

import json

from ..errors import DigitnetError
from ._args import DEFAULT_MODEL, load_models


def add_parser(sub, fmt) -> None:
    e = sub.add_parser("evaluate", help="accuracy, loss, per-class metrics, confusion matrix", formatter_class=fmt)
    e.add_argument(
        "--model",
        nargs="+",
        action="extend",
        metavar="M",
        help="model file or shipped model name; several: an ensemble (probabilities averaged) "
        f"[default: {DEFAULT_MODEL}]",
    )
    e.add_argument("--data", metavar="PATH", help="dataset whose test split to use; default: bundled MNIST test set")
    e.add_argument("--json", action="store_true", help="print JSON instead of text")
    e.set_defaults(func=run)


def run(args) -> int:
    from ..data import load_mnist
    from ..metrics import evaluate, format_report

    model = load_models(args.model)
    mnist = load_mnist(args.data)
    if mnist.test is None or mnist.test.labels is None:
        if mnist.train is not None and args.data is not None and mnist.test is None:
            data = mnist.train
        else:
            raise DigitnetError(f"{args.data}: no labelled test set to evaluate on")
    else:
        data = mnist.test
    names = args.model or [DEFAULT_MODEL]
    result = evaluate(model, data)
    if args.json:
        print(json.dumps({"model": " ".join(names), "data": data.name, **result}))
    else:
        print(f"model {' + '.join(names)} on {data.name}")
        print(format_report(result))
    return 0
