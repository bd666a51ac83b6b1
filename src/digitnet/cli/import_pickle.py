"""``digitnet import-pickle``: convert the seed notebook's pickled weights into a safe model file."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub, fmt) -> None:
    ip = sub.add_parser(
        "import-pickle",
        help="convert the seed's pickled (w1, b1, w2, b2) safely",
        formatter_class=fmt,
        description="Convert a legacy pickle (w1, b1, w2, b2) into a safetensors model "
        "file. Only numpy arrays are unpickled; nothing in the file runs.",
    )
    ip.add_argument("file", metavar="FILE")
    ip.add_argument("-o", "--output", required=True, help="model file to write")
    ip.add_argument("--no-eval", action="store_true", help="skip measuring test accuracy")
    ip.set_defaults(func=run)


def run(args) -> int:
    from .. import io
    from ..nn.layers import Dense

    out = Path(args.output)
    from ..fsutil import check_writable

    model = io.import_pickle(args.file)
    check_writable(out, "-o")
    first = model.layers[0]
    assert isinstance(first, Dense)  # import_pickle builds Dense, ReLU, Dense
    msg = f"imported {args.file}: {'-'.join(str(s) for s in (784, first.out_features, 10))} MLP"
    if not args.no_eval:
        from ..data import load_mnist
        from ..metrics import evaluate

        test = load_mnist().test
        assert test is not None  # the bundled MNIST has its test set
        acc = evaluate(model, test)["accuracy"]
        model.meta["test_accuracy"] = acc
        msg += f", test accuracy {acc * 100:.2f} %"
    io.save(model, out)
    print(msg)
    print(f"saved {out}")
    return 0
