"""The ``digitnet`` command: ``main(argv) -> int``.

User errors (bad files, bad flags, bad shapes) print one line on stderr and
exit with status 2; ``--traceback`` shows the full trace instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .errors import DigitnetError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so every error takes the same path."""

    def error(self, message):
        raise DigitnetError(f"{self.prog}: {message}")


def _parse_hidden(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes like 128,64, got {text!r}")
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive integers, got {text!r}")
    return sizes


def _batch_size(text: str):
    if text == "full":
        return "full"
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'full', got {text!r}")
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'full', got {text!r}")
    return n


def _port(text: str) -> int:
    if not (text.isdigit() and 0 <= int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"expected a TCP port 0-65535, got {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _nonneg_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return n


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    if not x > 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return x


def _fraction(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    if not 0 <= x < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return x


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except 'None' (options whose help text says what happens without them)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    fmt = _HelpFormatter
    p = _Parser(prog="digitnet", formatter_class=fmt,
                description="Handwritten-digit recognition with from-scratch NumPy networks.")
    p.add_argument("--version", action="version", version=f"digitnet {__version__}")
    p.add_argument("--traceback", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    from .train_cli import add_train_parser
    add_train_parser(sub, fmt, {"hidden": _parse_hidden, "batch_size": _batch_size, "positive_int": _positive_int,
                                "nonneg_int": _nonneg_int, "positive_float": _positive_float, "fraction": _fraction})

    e = sub.add_parser("evaluate", help="accuracy, loss, per-class metrics, confusion matrix",
                       formatter_class=fmt)
    e.add_argument("--model", nargs="+", action="extend", metavar="M",
                   help="model file or shipped model name; several: an ensemble (probabilities averaged) "
                        "[default: seed]")
    e.add_argument("--data", metavar="PATH", help="dataset whose test split to use; default: bundled MNIST test set")
    e.add_argument("--json", action="store_true", help="print JSON instead of text")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="classify images (files, folders, globs, stdin) or CSV rows",
                        formatter_class=fmt,
                        description="Classify images of digits. Each image is turned into an MNIST-like 28x28 "
                                    "input first (greyscale, light backgrounds inverted, cropped, scaled, centred).")
    pr.add_argument("files", nargs="+", metavar="INPUT",
                    help="image files (PNG, JPEG, ...), folders of them, glob patterns ('digits/*.png', "
                         "quoted or not), CSV files of 784-pixel rows, or - for image bytes on stdin")
    pr.add_argument("--model", action="append", metavar="M",
                    help="model file or shipped model name (default: seed); give it several times to "
                         "average the models' probabilities (an ensemble)%(default).0s")
    pr.add_argument("--top-k", type=_positive_int, default=3, help="how many classes to list")
    pr.add_argument("--json", action="store_true", help="print JSON lines")
    pr.add_argument("--split", action="store_true",
                    help="read each image as a row of several digits, left to right (e.g. a written number)")
    pr.add_argument("--show", metavar="DIR",
                    help="save, for each input, a picture of it next to what the network saw%(default).0s")
    pr.add_argument("--kaggle-submission", metavar="OUT",
                    help="with a Kaggle 'Digit Recognizer' test.csv as input: "
                         "write an ImageId,Label CSV%(default).0s")
    pr.set_defaults(func=cmd_predict)

    ex = sub.add_parser("export", help="export a model to ONNX", formatter_class=fmt,
                        description="Write a model as ONNX (input: pixels/255, shape (N, 784) or (N, 1, 28, 28); "
                                    "output: probabilities) and check it with onnxruntime when installed.")
    ex.add_argument("model_pos", nargs="?", metavar="MODEL",
                    help="model file or shipped model name (default: seed)%(default).0s")
    ex.add_argument("--model", metavar="M", help="same as MODEL%(default).0s")
    ex.add_argument("--onnx", required=True, metavar="OUT", help="ONNX file to write%(default).0s")
    ex.set_defaults(func=cmd_export)

    rp = sub.add_parser("report", help="plots and an HTML report of a model", formatter_class=fmt,
                        description="Training curves, confusion matrix, worst mistakes, per-class metrics, "
                                    "first-layer weights and sample predictions, as PNG files and one "
                                    "self-contained HTML page (needs matplotlib: pip install 'digitnet[plot]').")
    rp.add_argument("model_pos", nargs="?", metavar="MODEL",
                    help="model file or shipped model name (default: seed)%(default).0s")
    rp.add_argument("--model", metavar="M", help="same as MODEL%(default).0s")
    rp.add_argument("--data", metavar="PATH", help="dataset whose test split to use; default: bundled MNIST")
    rp.add_argument("-o", "--output", default="digitnet-report", metavar="DIR", help="folder to write into")
    rp.set_defaults(func=cmd_report)

    i = sub.add_parser("info", help="show a model's metadata", formatter_class=fmt)
    i.add_argument("--model", default="seed", metavar="M", help="model file or shipped model name")
    i.add_argument("--json", action="store_true", help="print the raw metadata as JSON")
    i.set_defaults(func=cmd_info)

    ip = sub.add_parser("import-pickle", help="convert the seed's pickled (w1, b1, w2, b2) safely",
                        formatter_class=fmt,
                        description="Convert a legacy pickle (w1, b1, w2, b2) into a safetensors model "
                                    "file. Only numpy arrays are unpickled; nothing in the file runs.")
    ip.add_argument("file", metavar="FILE")
    ip.add_argument("-o", "--output", required=True, help="model file to write")
    ip.add_argument("--no-eval", action="store_true", help="skip measuring test accuracy")
    ip.set_defaults(func=cmd_import_pickle)

    sv = sub.add_parser("serve", help="the drawing web app and JSON API (needs the 'web' extra)",
                        formatter_class=fmt,
                        description="Serve a page to draw digits on and a JSON API (POST /api/predict, "
                                    "GET /api/model, GET /healthz; reference at /docs).")
    sv.add_argument("--model", action="append", metavar="M", default=argparse.SUPPRESS,
                    help="model file or shipped model name; repeat to offer several (the first is the "
                         "default); default: every shipped model, seed first")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sv.add_argument("--port", type=_port, default=8000, help="TCP port")
    sv.add_argument("--workers", type=_positive_int, default=1,
                    help="server processes sharing the port (one per CPU core uses them all)")
    sv.add_argument("--access-log", action="store_true", help="log every request")
    sv.set_defaults(func=cmd_serve)
    return p


# --------------------------------------------------------------------------- commands
def _load_models(names: list[str] | None):
    """One model, or a list of them (an ensemble whose probabilities are averaged)."""
    from . import io
    models = [io.load(n) for n in (names or ["seed"])]
    return models[0] if len(models) == 1 else models


def cmd_evaluate(args) -> int:
    from .data import load_mnist
    from .metrics import evaluate, format_report
    model = _load_models(args.model)
    mnist = load_mnist(args.data)
    if mnist.test is None or mnist.test.labels is None:
        if mnist.train is not None and args.data is not None and mnist.test is None:
            data = mnist.train
        else:
            raise DigitnetError(f"{args.data}: no labelled test set to evaluate on")
    else:
        data = mnist.test
    result = evaluate(model, data)
    if args.json:
        print(json.dumps({"model": " ".join(args.model or ["seed"]), "data": data.name, **result}))
    else:
        print(f"model {' + '.join(args.model or ['seed'])} on {data.name}")
        print(format_report(result))
    return 0


def cmd_predict(args) -> int:
    from . import io
    from .predict import classify, format_item, kaggle_submission, read_items, save_seen
    models = [io.load(m) for m in (args.model or ["seed"])]
    if args.kaggle_submission and (len(args.files) != 1 or not args.files[0].lower().endswith(".csv")):
        raise DigitnetError("--kaggle-submission expects one CSV file of pixels as input (Kaggle's test.csv), "
                            f"got {' '.join(args.files)}")
    items = read_items(args.files, split=args.split, keep_source=bool(args.show))
    classify(items, models)
    if args.kaggle_submission:
        out = kaggle_submission(items, args.kaggle_submission)
        print(f"wrote {len(items):,} predictions to {out} (ImageId,Label)")
        return 0
    k = min(args.top_k, 10)
    for it in items:
        print(format_item(it, k, args.json))
    if args.show:
        written = save_seen(items, args.show)
        plural = "s" if len(written) != 1 else ""
        print(f"saved {len(written)} picture{plural} of what the network saw in {args.show}", file=sys.stderr)
    return 0


def _model_arg(args) -> str:
    if args.model_pos and args.model and args.model_pos != args.model:
        raise DigitnetError(f"two different models given: {args.model_pos} and --model {args.model}")
    return args.model_pos or args.model or "seed"


def cmd_export(args) -> int:
    from . import io
    from .onnx_export import export, run_onnx
    model = io.load(_model_arg(args))
    out = export(model, args.onnx)
    msg = f"wrote {out} ({out.stat().st_size:,} bytes)"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print(msg + "; onnxruntime not installed, so not checked")
        return 0
    from .data import load_mnist
    images = load_mnist().test.images[:1000]
    diff = float(np.abs(run_onnx(out, images, model.input_shape) - model.predict_proba(images)).max())
    print(msg)
    print(f"checked with onnxruntime on 1,000 test images: max abs difference of probabilities {diff:.2e}")
    if diff > 1e-4:
        raise DigitnetError(f"the exported model disagrees with digitnet (max abs difference {diff:.2e})")
    return 0


def cmd_report(args) -> int:
    from . import io
    from .report import write_report
    spec = _model_arg(args)
    paths = write_report(io.load(spec), args.output, data=args.data, title=f"digitnet report: {spec}")
    print(f"wrote {len(paths) - 1} plots and {paths['html']}")
    return 0


def cmd_info(args) -> int:
    from . import io
    meta = io.info(args.model)
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    arch = " -> ".join(_layer_text(layer) for layer in meta["architecture"])
    rows = [("model", str(io.resolve(args.model))), ("architecture", arch),
            *([("spec", meta["arch"])] if "arch" in meta else []),
            ("input", "x".join(str(d) for d in meta["input_shape"]) + f" {meta['dtype']}"),
            ("parameters", f"{meta.get('n_params', '?'):,}" if isinstance(meta.get("n_params"), int) else "?"),
            ("digitnet version", meta.get("digitnet_version", "?"))]
    if "test_accuracy" in meta:
        rows.append(("test accuracy", f"{meta['test_accuracy'] * 100:.2f} %"))
    if "command" in meta:
        rows.append(("trained with", meta["command"]))
    if "seed" in meta:
        rows.append(("seed", str(meta["seed"])))
    if "train_config" in meta:
        rows.append(("config", ", ".join(f"{k}={v}" for k, v in meta["train_config"].items())))
    if "history" in meta and meta["history"]:
        h = meta["history"]
        rows.append(("epochs", f"{len(h)} ({sum(e['time'] for e in h):.2f} s training)"))
    if isinstance(meta.get("blas"), dict):
        b = meta["blas"]
        rows.append(("BLAS", f"{b.get('library')} {b.get('version')}, {b.get('threads')} thread(s) while training"))
    if isinstance(meta.get("layer_threads"), int) and meta["layer_threads"] > 1:
        rows.append(("layer threads", f"{meta['layer_threads']} (layers split each batch over them)"))
    if "dataset_sha256" in meta:
        rows.append(("dataset sha256", meta["dataset_sha256"]))
    width = max(len(r[0]) for r in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def _layer_text(layer: dict) -> str:
    if layer["type"] == "Dense":
        return f"Dense({layer['in_features']}->{layer['out_features']})"
    args = ",".join(f"{k}={v}" for k, v in layer.items() if k != "type")
    return f"{layer['type']}({args})" if args else layer["type"]


def cmd_import_pickle(args) -> int:
    from . import io
    out = Path(args.output)
    model = io.import_pickle(args.file)
    msg = f"imported {args.file}: {'-'.join(str(s) for s in (784, model.layers[0].out_features, 10))} MLP"
    if not args.no_eval:
        from .data import load_mnist
        from .metrics import evaluate
        acc = evaluate(model, load_mnist().test)["accuracy"]
        model.meta["test_accuracy"] = acc
        msg += f", test accuracy {acc * 100:.2f} %"
    io.save(model, out)
    print(msg)
    print(f"saved {out}")
    return 0


def cmd_serve(args) -> int:
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise DigitnetError(f"digitnet serve needs the 'web' extra ({exc.name} is missing): "
                            "pip install 'digitnet[web]'") from None
    from .web import serve
    serve(getattr(args, "model", None), host=args.host, port=args.port, access_log=args.access_log,
          workers=args.workers)
    return 0


# --------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    show_trace = "--traceback" in argv
    try:
        args = build_parser().parse_args(argv)
        args.argv = [a for a in argv if a != "--traceback"]
        return args.func(args)
    except DigitnetError as exc:
        if show_trace:
            raise
        print(f"digitnet: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("digitnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
