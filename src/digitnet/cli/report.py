"""``digitnet report``: plots and a self-contained HTML report of a model."""

from __future__ import annotations

from ._args import add_model_args, model_name


def add_parser(sub, fmt) -> None:
    rp = sub.add_parser(
        "report",
        help="plots and an HTML report of a model",
        formatter_class=fmt,
        description="Training curves, confusion matrix, worst mistakes, per-class metrics, "
        "first-layer weights and sample predictions, as PNG files and one "
        "self-contained HTML page (needs matplotlib: pip install 'digitnet[plot]').",
    )
    add_model_args(rp)
    rp.add_argument("--data", metavar="PATH", help="dataset whose test split to use; default: bundled MNIST")
    rp.add_argument("-o", "--output", default="digitnet-report", metavar="DIR", help="folder to write into")
    rp.set_defaults(func=run)


def run(args) -> int:
    from .. import io
    from ..report import write_report

    spec = model_name(args)
    paths = write_report(io.load(spec), args.output, data=args.data, title=f"digitnet report: {spec}")
    print(f"wrote {len(paths) - 1} plots and {paths['html']}")
    return 0
