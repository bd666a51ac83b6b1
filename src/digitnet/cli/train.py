"""``digitnet train``: the flags (named after TrainConfig fields) and the command."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np

from ..errors import DigitnetError
from ..fsutil import check_writable, is_stream
from . import _args


def add_parser(sub, fmt) -> None:
    from ..nn.spec import PRESETS
    from ..train import AUGMENTS, DEFAULT_LR, FULL_BATCH_EPOCHS, FULL_BATCH_LR, OPTIMIZERS, SCHEDULES, TrainConfig

    d = TrainConfig()
    t = sub.add_parser(
        "train",
        help="train a network on MNIST and save it",
        formatter_class=fmt,
        description="Train a network (default: the seed's 784-64-10 MLP) and save it. "
        f"Presets: {', '.join(f'{k} = {v}' for k, v in PRESETS.items())}.",
    )
    t.add_argument(
        "--data",
        metavar="PATH",
        help="dataset file or folder (IDX, CSV, .npz, .pkl.gz; Fashion-MNIST, "
        "KMNIST, EMNIST; or a folder of class folders of images, DIR/<class>/*.png); "
        "default: the bundled MNIST",
    )
    t.add_argument(
        "--arch",
        metavar="NAME|SPEC",
        default=None,
        help="preset (seed, mlp, cnn, cnn-large), a spec like conv32k5p2-bn-relu-pool2-fc128-relu-fc10, "
        "or a JSON list of layers [default: the MLP given by --hidden]",
    )
    t.add_argument(
        "--hidden",
        type=_args.hidden,
        default=None,
        metavar="N[,N...]",
        help="hidden layer sizes of an MLP, e.g. 128,64 [default: 64]",
    )
    t.add_argument(
        "--epochs",
        type=_args.positive_int,
        default=None,
        help=f"epochs (full-batch: iterations) [default: {d.epochs}; full-batch {FULL_BATCH_EPOCHS}]",
    )
    t.add_argument(
        "--batch-size",
        type=_args.batch_size,
        default=d.batch_size,
        metavar="N|full",
        help="mini-batch size, or 'full' for the seed's full-batch gradient descent",
    )
    t.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer, help="optimizer")
    t.add_argument(
        "--lr",
        type=_args.positive_float,
        default=None,
        help=f"peak learning rate [default: sgd {DEFAULT_LR['sgd']}, adam/adamw {DEFAULT_LR['adam']}; "
        f"full-batch {FULL_BATCH_LR}]",
    )
    t.add_argument("--momentum", type=_args.fraction, default=d.momentum, help="SGD momentum (0 for plain SGD)")
    t.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    t.add_argument("--betas", type=_args.betas, default=d.betas, metavar="B1,B2", help="Adam/AdamW betas")
    t.add_argument("--weight-decay", type=float, default=d.weight_decay, help="L2 weight decay (decoupled for adamw)")
    t.add_argument("--schedule", choices=SCHEDULES, default=d.schedule, help="learning-rate schedule")
    t.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs, help="linear lr warm-up (epochs)")
    t.add_argument(
        "--step-epochs", type=_args.positive_int, default=d.step_epochs, help="step schedule: decay every N epochs"
    )
    t.add_argument("--step-gamma", type=float, default=d.step_gamma, help="step schedule: decay factor")
    t.add_argument("--clip-norm", type=float, default=d.clip_norm, help="clip the gradient norm (0: off)")
    t.add_argument("--label-smoothing", type=_args.fraction, default=d.label_smoothing)
    t.add_argument(
        "--augment",
        type=_augment,
        default=d.augment,
        metavar="KIND[,KIND...]",
        help="per-batch augmentation: shift; affine = shift + rotate + scale; elastic = affine + "
        "elastic distortion; real-world kinds (stroke, slant, rotate, aspect, lowres, blur, "
        "jitter, broken, noise, warp, style), alone or joined by commas; real = each real-world kind on 40 %% of "
        f"the images, a quarter left lightly changed. All: {', '.join(AUGMENTS)}",
    )
    t.add_argument(
        "--negatives",
        type=_args.fraction,
        default=d.negatives,
        metavar="FRACTION",
        help="add generated non-digits (letters, scribbles, shapes, noise, several digits) as this "
        "fraction of each batch, as an 11th output 'not a digit' (the architecture must end with "
        "fc11); its refusal threshold is calibrated on the validation digits (0: off)",
    )
    t.add_argument(
        "--patience",
        type=_args.nonneg_int,
        default=d.patience,
        help="early stopping: stop after N epochs without a better validation accuracy and keep "
        "the best epoch's weights (0: off)",
    )
    t.add_argument(
        "--val-size",
        type=_args.nonneg_int,
        default=d.val_size,
        help="training images held out for validation (0: none)",
    )
    t.add_argument("--seed", type=_args.nonneg_int, default=d.seed, help="random seed: same seed, same weights")
    t.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    t.add_argument(
        "--threads",
        type=_args.threads,
        default="auto",
        metavar="N|auto|blas",
        help="threads while training. N: convolution and pooling split each batch over N threads of "
        "digitnet's own and the BLAS runs on one; blas: leave it to the BLAS (OPENBLAS_NUM_THREADS, "
        "OMP_NUM_THREADS or its own choice); auto: blas if one of those variables is set, else one "
        "thread per core for a convnet, blas for other networks on batches of 16384 or more (full batch) "
        "and one thread for the rest. Saved with the model",
    )
    t.add_argument(
        "--ensemble",
        type=_args.positive_int,
        default=1,
        metavar="N",
        help="train N models with seeds seed..seed+N-1, saved as OUTPUT-STEM.K.safetensors",
    )
    t.add_argument(
        "-o",
        "--output",
        default=None,
        help="where to save the model [default: digitnet-model.safetensors, or the resumed run's output]",
    )
    t.add_argument(
        "--checkpoint",
        metavar="PATH",
        default=None,
        help="checkpoint rewritten after every epoch and kept [default: OUTPUT.ckpt, removed when training finishes]",
    )
    t.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        default=None,
        help="continue the run that wrote CHECKPOINT exactly where it stopped "
        "(its architecture and options are used; --epochs may extend it)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    t.set_defaults(func=run)


def _augment(text: str) -> str:
    import argparse

    from ..augment import parse_kinds
    from ..errors import DigitnetError as Error

    try:
        parse_kinds(text)
    except Error as exc:
        raise argparse.ArgumentTypeError(f"invalid choice: {exc}") from None
    return text


def _options(args) -> dict:
    """TrainConfig values from the flags; ``--epochs`` and ``--lr`` left out are TrainConfig's to fill in."""
    opts = {
        k: getattr(args, k)
        for k in (
            "epochs",
            "lr",
            "batch_size",
            "optimizer",
            "momentum",
            "nesterov",
            "betas",
            "weight_decay",
            "schedule",
            "warmup_epochs",
            "step_epochs",
            "step_gamma",
            "clip_norm",
            "label_smoothing",
            "augment",
            "negatives",
            "patience",
            "val_size",
            "seed",
            "threads",
        )
    }
    return {k: v for k, v in opts.items() if not (k in ("epochs", "lr") and v is None)}


def _val_size(args, n_train: int) -> int:
    """--val-size, or for a training set too small for the default, a sixth of it (MNIST's 10,000 of 60,000)."""
    given = any(a == "--val-size" or a.startswith("--val-size=") for a in args.argv)
    if given or args.val_size < n_train // 2:
        return args.val_size
    return n_train // 6


def run(args) -> int:
    from .. import checkpoint
    from ..data import load_mnist
    from ..nn.spec import build, mlp_spec

    if args.resume and args.ensemble > 1:
        raise DigitnetError("--resume continues one run; it cannot be combined with --ensemble")
    if args.arch and args.hidden:
        raise DigitnetError(
            "give either --arch or --hidden, not both (--hidden 128,64 is --arch fc128-relu-fc64-relu-fc10)"
        )
    mnist = load_mnist(args.data)
    if mnist.train is None:
        raise DigitnetError(f"{args.data}: no training set found (only a test set)")
    command = "digitnet " + " ".join(shlex.quote(a) for a in args.argv)
    if args.resume:
        model = checkpoint.load_model(args.resume)
        if model.meta.get("dataset_sha256") not in (None, mnist.train.checksum()):
            raise DigitnetError(
                f"{args.resume} was trained on other data than {args.data or 'the bundled MNIST'}; "
                "resume with the same --data"
            )
        out = Path(args.output or model.meta.get("output") or "digitnet-model.safetensors")
        again = {"epochs": args.epochs} if args.epochs else {}
        if any(a == "--threads" or a.startswith("--threads=") for a in args.argv):  # overrides the checkpoint's
            again["threads"] = args.threads
        runs = [(model, args.checkpoint or args.resume, again)]
        print(f"resuming {args.resume} after epoch {len(model.meta.get('history', []))}", file=sys.stderr)
    else:
        out = Path(args.output or "digitnet-model.safetensors")
        classes = mnist.train.classes  # None: the digits
        n_classes = 10 if classes is None else len(classes)
        arch = args.arch or mlp_spec(args.hidden or (64,), n_classes)
        runs = []
        for k in range(args.ensemble):
            seed = args.seed + k
            if args.negatives:
                from ..reject import NOT_A_DIGIT
                from ..train import NEGATIVE_LABEL

                if classes is not None and list(classes) != [str(d) for d in range(10)]:
                    raise DigitnetError(
                        "--negatives adds generated non-digits to a digit model; "
                        f"this data set's classes are {', '.join(classes[:6])}..."
                    )
                digits = [str(d) for d in range(10)]
                model = build(arch, seed=seed, dtype=np.dtype(args.dtype), classes=[*digits, NOT_A_DIGIT])
                model.reject_class = NEGATIVE_LABEL
            else:
                model = build(arch, seed=seed, dtype=np.dtype(args.dtype), classes=classes)
            path = out if args.ensemble == 1 else out.with_name(f"{out.stem}.{k}{out.suffix or '.safetensors'}")
            model.meta.update(
                {
                    "command": command,
                    "output": str(path),
                    "dataset": mnist.source if args.data else "bundled MNIST",
                    "dataset_sha256": mnist.train.checksum(),
                }
            )
            runs.append(
                (
                    model,
                    # no checkpoint beside /dev/null or a pipe: there is no folder of the model's to put it in
                    args.checkpoint or (None if is_stream(path) else str(path) + ".ckpt"),
                    {**_options(args), "seed": seed, "val_size": _val_size(args, len(mnist.train))},
                )
            )
    if out.is_dir():
        raise DigitnetError(f"-o {out}: is a directory; give a file name")
    for model, ckpt, _ in runs:  # a read-only or missing folder is found now, not after training
        check_writable(model.meta.get("output") or out, "-o")
        if ckpt:
            check_writable(ckpt, "--checkpoint")
    models = []
    for i, (model, ckpt, opts) in enumerate(runs):
        models.append(_train_one(args, model, mnist, ckpt, opts, i, len(runs)))
    if len(models) > 1 and mnist.test is not None and mnist.test.labels is not None:
        from ..metrics import evaluate

        acc = evaluate(models, mnist.test)["accuracy"]
        files = " ".join(shlex.quote(m.meta["output"]) for m in models)
        print(f"ensemble of {len(models)}: test accuracy {acc * 100:.2f} % (digitnet evaluate --model {files})")
    return 0


def _train_one(args, model, mnist, ckpt: str | None, opts: dict, i: int, n: int):
    from .. import io
    from ..metrics import evaluate
    from ..train import fit

    out = Path(model.meta["output"]) if not args.output or n > 1 else Path(args.output)
    model.meta["output"] = str(out)
    val_size = opts.get("val_size", model.meta.get("checkpoint", {}).get("config", {}).get("val_size", 0))
    held_out = f", {val_size:,} of them held out for validation" if val_size else ""
    which = f" [{i + 1}/{n}, seed {opts.get('seed')}]" if n > 1 else ""
    print(
        f"training {model.meta.get('arch', 'model')} ({model.n_params:,} parameters){which} on {mnist.source}: "
        f"{len(mnist.train):,} images{held_out}",
        file=sys.stderr,
    )
    resume = args.resume if args.resume else None
    history = fit(model, mnist.train, None, resume=resume, checkpoint=ckpt, progress=not args.quiet, **opts)
    train_time = sum(h["time"] for h in history)
    model.meta["train_time_s"] = round(train_time, 3)
    model.meta.pop("checkpoint", None)
    last = history[-1]
    blas = model.meta.get("blas") or {}
    threads = f", {blas['library']} {blas['threads']} thread{'s' if blas['threads'] != 1 else ''}" if blas else ""
    if model.meta.get("layer_threads", 1) > 1:
        threads += f" + {model.meta['layer_threads']} layer threads"
    summary = f"trained {len(history)} epochs in {train_time:.2f} s{threads}; train acc {last['train_acc'] * 100:.2f} %"
    if last["val_acc"] is not None:
        summary += f", val acc {last['val_acc'] * 100:.2f} %"
    if "best_epoch" in model.meta:
        summary += f" (kept epoch {model.meta['best_epoch']})"
    if model.reject_class is not None:
        summary += "\n" + _calibrate(model, mnist.train)
    if mnist.test is not None and mnist.test.labels is not None:
        result = evaluate(model, mnist.test)
        model.meta["test_accuracy"] = result["accuracy"]
        model.meta["test_loss"] = result["loss"]
        summary += f"\ntest accuracy {result['accuracy'] * 100:.2f} % ({result['n']:,} images)"
    else:
        summary += "\n(no labelled test set in this dataset: test accuracy not measured)"
    try:
        io.save(model, out)
    except DigitnetError as exc:
        if ckpt and Path(ckpt).is_file():
            raise DigitnetError(
                f"{exc}; the trained weights are in the checkpoint {ckpt}: "
                f"digitnet train --resume {ckpt} -o OTHER_FILE saves them"
            ) from None
        raise
    if ckpt and not args.checkpoint and not args.resume:
        Path(ckpt).unlink(missing_ok=True)  # the default checkpoint is only for interrupted runs
    print(summary)
    print(f"saved {out}")
    return model


def _calibrate(model, train) -> str:
    """Set the "not a digit" threshold from the run's validation digits and fresh non-digits; a summary line."""
    from .. import negatives, reject
    from ..metrics import predict_proba

    cfg = model.meta["train_config"]
    if not cfg.get("val_size"):
        model.meta["reject_threshold"] = 0.0
        return "no validation set (--val-size 0): 'not a digit' only when that output wins, threshold not calibrated"
    _, val = train.split(cfg["val_size"], cfg["seed"])  # the digits fit() held out
    held_out = negatives.generate(len(val) // 2, seed=cfg["seed"] + 1, digits=val.images)
    cal = reject.calibrate(predict_proba(model, val.images), predict_proba(model, held_out), model.reject_class)
    model.meta["reject_threshold"] = cal["threshold"]
    model.meta["reject_calibration"] = cal
    return (
        f"'not a digit' threshold {cal['threshold']:.3f}: refuses {cal['digits_refused'] * 100:.2f} % of "
        f"{cal['n_digits']:,} validation digits, {cal['negatives_refused'] * 100:.1f} % of "
        f"{cal['n_negatives']:,} held-out non-digits"
    )
