"""``digitnet sweep``: a hyperparameter sweep on Optuna, shared by any number of workers."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from ..errors import DigitnetError
from . import _args


def add_parser(sub, fmt) -> None:
    s = sub.add_parser(
        "sweep",
        help="search hyperparameters over many trials (Optuna), on one machine or many",
        formatter_class=fmt,
        description="Train one model per trial with settings drawn from SPACE, rank them by validation "
        "accuracy and keep every model. Several workers running the same command share the "
        "study: through a journal file in DIR on one machine, or a database (--storage) on many. "
        "Running it again continues the study.",
    )
    s.add_argument(
        "space",
        metavar="SPACE",
        help="JSON or TOML file mapping TrainConfig fields, arch or hidden to a list of choices, "
        'a range {"low": ..., "high": ..., "log": true} or one fixed value',
    )
    s.add_argument(
        "--trials",
        type=_args.nonneg_int,
        default=10,
        metavar="N",
        help="run until the study has N finished trials, all workers counted (0: only print it)",
    )
    s.add_argument(
        "--storage",
        metavar="URL",
        help="postgresql://USER:PASSWORD@HOST/DB (or another SQLAlchemy URL) shared by workers on "
        "many machines, or a journal file [default: DIR/sweep.journal]",
    )
    s.add_argument("--study", metavar="NAME", help="study name [default: SPACE's file name without suffix]")
    s.add_argument("-o", "--output", metavar="DIR", default="sweep", help="folder for the models and the journal")
    s.add_argument("--data", metavar="PATH", help="dataset file or folder; default: the bundled MNIST")
    s.add_argument(
        "--json", action="store_true", help="print one JSON object per trial (number, state, params, value, model, ...)"
    )
    s.add_argument(
        "--ensemble-top",
        type=_args.positive_int,
        metavar="K",
        help="score the K best trials' models together (probabilities averaged) on the test set",
    )
    s.add_argument(
        "--no-pruning",
        action="store_true",
        help="train every trial to its last epoch (an ensemble wants every model; trials of "
        "different lengths are not comparable epoch by epoch)",
    )
    s.add_argument(
        "--heartbeat",
        type=_args.positive_int,
        default=60,
        metavar="S",
        help="database storage: workers beat every S seconds; a trial whose worker misses 2*S "
        "is marked failed and queued again",
    )
    s.set_defaults(func=run)


def run(args) -> int:
    from .. import sweep
    from ..sweep_space import describe, load_space

    space = load_space(args.space)
    out = Path(args.output)
    name = args.study or Path(args.space).stem
    journal = None if args.storage and "://" in args.storage else Path(args.storage or out / sweep.JOURNAL)
    if args.trials == 0 and journal is not None and not journal.is_file():
        raise DigitnetError(
            f"{'-o ' + str(out) if args.storage is None else '--storage ' + str(journal)}: "
            f"no sweep there yet ({journal} is missing)"
        )
    if out.exists() and not out.is_dir():
        raise DigitnetError(f"-o {out}: is a file; give a folder")
    with sweep.Interrupts() as interrupts:  # Ctrl-C and `kill` wait for storage writes
        store = sweep.storage(args.storage, out, args.heartbeat)
        study = sweep.open_study(store, name, create=args.trials > 0, pruning=not args.no_pruning)
        if args.trials:
            mnist = _load(args.data)
            where = sweep.redact(args.storage) if args.storage else str(out / sweep.JOURNAL)
            _log(f"sweep {name} ({where}): until {args.trials} trials are finished; varying {describe(space)}")
            try:
                sweep.run(study, space, mnist, out, args.trials, data=args.data, log=_log, interrupts=interrupts)
            except KeyboardInterrupt:
                _log("rerun the same command to continue the study")
                raise
        rows = sweep.rows(study)
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        print(sweep.format_table(rows))
    if args.ensemble_top:
        _ensemble(sweep.top_models(rows, args.ensemble_top), args)
    return 0


def _ensemble(paths: list[str], args) -> None:
    from ..data import load_mnist
    from ..metrics import evaluate
    from ._args import load_models

    mnist = load_mnist(args.data)
    if mnist.test is None or mnist.test.labels is None:
        raise DigitnetError(f"{args.data}: no labelled test set to score the ensemble on")
    models = load_models(paths)
    result = evaluate(models if isinstance(models, list) else [models], mnist.test)
    command = "digitnet evaluate --model " + " ".join(shlex.quote(p) for p in paths)
    if args.json:
        print(
            json.dumps({"ensemble": paths, "test_accuracy": result["accuracy"], "n": result["n"], "command": command})
        )
    else:
        print(
            f"ensemble of the {len(paths)} best: test accuracy {result['accuracy'] * 100:.2f} % "
            f"({result['n']:,} images; {command})"
        )


def _load(data):
    from ..data import load_mnist

    mnist = load_mnist(data)
    if mnist.train is None:
        raise DigitnetError(f"{data}: no training set found (only a test set)")
    return mnist


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
