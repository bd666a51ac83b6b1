"""Argument types and options shared by the verbs."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

_N = TypeVar("_N", int, float)  # what number() reads: int or float


def number(
    kind: type[_N], low: float, high: float | None = None, *, low_open: bool = False, high_open: bool = False, what: str
) -> Callable[[str], _N]:
    """An argparse ``type=`` that reads a ``kind`` (int or float) between ``low`` and ``high``.

    ``what`` names the allowed values in the error message ("a positive integer").
    """

    def parse(text: str) -> _N:
        x: _N | None
        try:
            x = kind(text)
            finite = math.isfinite(x)
        except (ValueError, OverflowError):  # an integer too long for a float is no count or size we take
            x, finite = None, False
        if x is None or not (
            finite and (x > low if low_open else x >= low) and (high is None or (x < high if high_open else x <= high))
        ):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return x

    parse.__name__ = what  # argparse names the type in "invalid <name> value" messages
    return parse


positive_int = number(int, 1, what="a positive integer")
nonneg_int = number(int, 0, what="an integer >= 0")
positive_float = number(float, 0, low_open=True, what="a positive number")
fraction = number(float, 0, 1, high_open=True, what="a number in [0, 1)")
port = number(int, 0, 65535, what="a TCP port 0-65535")


def hidden(text: str) -> tuple[int, ...]:
    """Comma-separated hidden-layer sizes: ``128,64``."""
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes like 128,64, got {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive integers, got {text!r}")
    return sizes


def batch_size(text: str) -> int | str:
    """A positive integer, or ``full`` for full-batch gradient descent."""
    if text == "full":
        return "full"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'full', got {text!r}") from None


def betas(text: str) -> tuple[float, float]:
    """Adam's two betas: ``0.9,0.999``."""
    try:
        b = tuple(float(s) for s in text.split(","))
    except ValueError:
        b = ()
    if len(b) != 2 or not all(0 <= x < 1 for x in b):
        raise argparse.ArgumentTypeError(f"expected two numbers in [0, 1) like 0.9,0.999, got {text!r}")
    return b


def threads(text: str) -> int | str | None:
    """``auto``, ``blas`` (returned as None: leave the BLAS alone) or a positive number of threads."""
    if text in ("auto", "blas"):
        return None if text == "blas" else text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, 'auto' or 'blas', got {text!r}") from None


from ..io import DEFAULT_MODEL  # noqa: E402  (the shipped reader)


class OneModel(argparse.Action):
    """``--model M`` for a command that uses one model: given twice is an error, not "the last one wins"."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) not in (None, values):
            raise argparse.ArgumentError(self, "given twice; this command uses one model")
        setattr(namespace, self.dest, values)


def add_model_args(parser) -> None:
    """The model of a single-model command: ``MODEL`` or ``--model M`` (ensembles repeat ``--model``)."""
    parser.add_argument(
        "model_pos", nargs="?", metavar="MODEL", help=f"model file or shipped model name (default: {DEFAULT_MODEL})"
    )
    parser.add_argument("--model", action=OneModel, metavar="M", help="same as MODEL")


def model_name(args) -> str:
    """The one model of a command taking ``MODEL`` or ``--model M`` (they must agree)."""
    if args.model_pos and args.model and args.model_pos != args.model:
        from ..errors import DigitnetError

        raise DigitnetError(f"two different models given: {args.model_pos} and --model {args.model}")
    return args.model_pos or args.model or DEFAULT_MODEL


def load_models(names: list[str] | None):
    """One model, or a list of them (an ensemble whose probabilities are averaged)."""
    from .. import io

    models = [io.load(n) for n in (names or [DEFAULT_MODEL])]
    return models[0] if len(models) == 1 else models
