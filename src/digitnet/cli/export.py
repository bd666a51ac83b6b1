"""``digitnet export``: write a model as ONNX and check it with onnxruntime."""

from __future__ import annotations

import numpy as np

from ..errors import DigitnetError
from ._args import add_model_args, model_name


def add_parser(sub, fmt) -> None:
    ex = sub.add_parser(
        "export",
        help="export a model to ONNX",
        formatter_class=fmt,
        description="Write a model as ONNX (input: pixels/255, shape (N, 784) or (N, 1, 28, 28); "
        "output: probabilities) and check it with onnxruntime when installed.",
    )
    add_model_args(ex)
    ex.add_argument("--onnx", required=True, metavar="OUT", help="ONNX file to write")
    ex.set_defaults(func=run)


def run(args) -> int:
    from .. import io
    from ..onnx_export import export, run_onnx

    model = io.load(model_name(args))
    out = export(model, args.onnx)
    msg = f"wrote {out} ({out.stat().st_size:,} bytes)"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print(msg + "; onnxruntime not installed, so not checked")
        return 0
    from ..data import load_mnist

    test = load_mnist().test
    assert test is not None  # the bundled MNIST has its test set
    images = test.images[:1000]
    diff = float(np.abs(run_onnx(out, images, model.input_shape) - model.predict_proba(images)).max())
    print(msg)
    print(f"checked with onnxruntime on 1,000 test images: max abs difference of probabilities {diff:.2e}")
    if diff > 1e-4:
        raise DigitnetError(f"the exported model disagrees with digitnet (max abs difference {diff:.2e})")
    return 0
