"""``digitnet finetune``: adapt a model to one person's digits (FOLDER/0/*.png ... FOLDER/9/*.png)."""

from __future__ import annotations

import json

from ._args import DEFAULT_MODEL, fraction, nonneg_int, number, positive_int


def add_parser(sub, fmt) -> None:
    from ..finetune import FinetuneConfig

    d = FinetuneConfig()
    f = sub.add_parser(
        "finetune",
        help="fine-tune a model on a person's own labelled digits",
        formatter_class=fmt,
        description="Fine-tune a model on a person's labelled images (FOLDER/0/*.png ... "
        "FOLDER/9/*.png, e.g. from 'digitnet serve --collect'), with a small learning "
        "rate, few epochs and MNIST digits replayed alongside so it does not forget "
        "MNIST. Reports accuracy before and after on held-out samples and on MNIST test.",
    )
    f.add_argument("--model", default=DEFAULT_MODEL, metavar="M", help="model file or shipped model name")
    f.add_argument("--data", required=True, metavar="FOLDER", help="the person's samples, one folder per digit")
    f.add_argument("-o", "--output", required=True, metavar="OUT", help="model file to write")
    f.add_argument("--epochs", type=positive_int, default=d.epochs, help="epochs over the mixed set")
    f.add_argument(
        "--lr",
        type=number(float, 0, 1, low_open=True, high_open=True, what="a number in (0, 1)"),
        default=d.lr,
        help="learning rate (SGD with momentum, cosine decay)",
    )
    f.add_argument(
        "--replay",
        type=nonneg_int,
        default=d.replay,
        help=f"MNIST training digits replayed per own sample (at least {d.replay_min:,})",
    )
    f.add_argument(
        "--holdout",
        type=fraction,
        default=d.holdout,
        help="fraction of each digit's samples kept out of training, to measure on",
    )
    f.add_argument("--seed", type=nonneg_int, default=d.seed, help="random seed (same seed, same weights)")
    f.add_argument("--json", action="store_true", help="print the report as JSON")
    f.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from .. import io
    from ..errors import DigitnetError
    from ..finetune import FinetuneConfig, finetune, load_folder

    if Path(args.output).is_dir():
        raise DigitnetError(f"-o {args.output}: is a folder; give a model file name like mine.safetensors")
    own = load_folder(args.data)
    model = io.load(args.model)
    cfg = FinetuneConfig(epochs=args.epochs, lr=args.lr, replay=args.replay, holdout=args.holdout, seed=args.seed)
    report = finetune(model, own, cfg)
    model.meta["command"] = "digitnet " + " ".join(args.argv)
    out = io.save(model, args.output)
    if args.json:
        print(json.dumps({"output": str(out), **report}))
        return 0

    def pct(x):
        return "n/a" if x is None else f"{x * 100:.2f} %"

    print(f"fine-tuned {args.model} on {report['n_train']} samples from {args.data}")
    print(f"held-out samples ({report['n_heldout']}): {pct(report['own_before'])} -> {pct(report['own_after'])}")
    print(f"MNIST test (10,000):   {pct(report['mnist_before'])} -> {pct(report['mnist_after'])}")
    print(f"saved {out}")
    return 0
