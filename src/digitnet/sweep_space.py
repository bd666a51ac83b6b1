"""Sweep search spaces: a JSON or TOML file naming what each trial may vary.

Keys are ``TrainConfig`` fields, ``arch`` or ``hidden``. A value is

- a list of choices: ``optimizer = ["sgd", "adamw"]``, ``hidden = ["64", "128,64"]``;
- a range: ``lr = {low = 1e-4, high = 1e-1, log = true}``; an integer field
  (``epochs``, ``seed``, ``batch_size``, …, ``hidden`` as one layer's width)
  draws integers, optionally every ``step``;
- a single value, the same for every trial: ``epochs = 12``.

Everything is checked when the file is read, each value through
``TrainConfig`` itself, so a bad field or range is one error naming it.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from .errors import DigitnetError
from .fsutil import open_regular
from .train import TrainConfig

MAX_SPACE_BYTES = 1 << 20  # a space file is a few lines; a larger one is not one
# run plumbing, not hyperparameters: the sweep decides these itself
NOT_SWEPT = ("checkpoint", "progress", "threads")
MODEL_KEYS = ("arch", "hidden")


def _kinds(f) -> set[str]:
    """The type names in a field's annotation: ``"int | None"`` -> {"int", "None"}."""
    return set(str(f.type).replace(" ", "").split("|"))


# by annotation, not default: a default of None (filled in from other options) is still an int or float
INT_FIELDS = {f.name for f in fields(TrainConfig) if "int" in _kinds(f) and "float" not in _kinds(f)}
FLOAT_FIELDS = {f.name for f in fields(TrainConfig) if "float" in _kinds(f)}
LIST_VALUED = ("hidden", "betas")  # a choice is itself a list: written "128,64" for Optuna


@dataclass
class Param:
    """One key of the space: fixed ``value``, ``choices``, or a ``low``..``high`` range."""

    name: str
    value: object = None
    choices: list | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    @property
    def fixed(self) -> bool:
        return self.choices is None and self.low is None

    def suggest(self, trial):
        """This parameter's value for an Optuna ``trial`` (ranges and choices are Optuna's to pick)."""
        if self.fixed:
            return self.value
        if self.choices is not None:
            return from_optuna(self.name, trial.suggest_categorical(self.name, self.choices))
        if self.integer:
            n = trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
            return (n,) if self.name == "hidden" else n  # a range of hidden: one layer's width
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


def load_space(path) -> dict[str, Param]:
    """Read and check a space file (``.toml``, or JSON otherwise)."""
    path = Path(path)
    try:
        with open_regular(path) as f:
            data = f.read(MAX_SPACE_BYTES + 1)
        if len(data) > MAX_SPACE_BYTES:
            raise DigitnetError(f"{path}: over {MAX_SPACE_BYTES:,} bytes; a space file is a few lines")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DigitnetError(f"{path}: cannot read the space file ({exc.__class__.__name__}: {exc})") from None
    try:
        if path.suffix.lower() == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:
                import tomli as tomllib
            raw = tomllib.loads(text)
        else:
            raw = json.loads(text)
    except ValueError as exc:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise DigitnetError(f"{path}: not valid {kind}: {str(exc).splitlines()[0]}") from None
    return parse_space(raw, str(path))


def parse_space(raw, where: str = "space") -> dict[str, Param]:
    """Check a space given as a mapping; returns one ``Param`` per key."""
    if not isinstance(raw, dict) or not raw:
        raise DigitnetError(
            f"{where}: expected a mapping of TrainConfig fields, arch or hidden to choices "
            f"or ranges, got {type(raw).__name__ if raw else 'nothing'}"
        )
    known = sorted({f.name for f in fields(TrainConfig)} - set(NOT_SWEPT)) + list(MODEL_KEYS)
    if "arch" in raw and "hidden" in raw:
        raise DigitnetError(
            f"{where}: give either arch or hidden, not both (hidden 128,64 is arch fc128-relu-fc64-relu-fc10)"
        )
    space = {}
    for name, spec in raw.items():
        if name not in known:
            raise DigitnetError(f"{where}: unknown field {name!r}; known: {', '.join(known)}")
        space[name] = _param(name, spec, where)
    return space


def _param(name: str, spec, where: str) -> Param:
    here = f"{where}: {name}"
    if isinstance(spec, dict):
        extra = set(spec) - {"low", "high", "log", "step"}
        if extra or not {"low", "high"} <= set(spec):
            raise DigitnetError(
                f'{here}: a range is {{"low": …, "high": …}} with optional "log" and "step", got keys {sorted(spec)}'
            )
        integer = name in INT_FIELDS or name == "hidden"
        if not integer and name not in FLOAT_FIELDS:
            raise DigitnetError(f"{here}: is not a number; give a list of choices instead of a range")
        low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
        numbers = [v for v in (low, high, step) if v is not None]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
            raise DigitnetError(f"{here}: low, high and step must be finite numbers, got {spec}")
        if integer and not all(isinstance(v, int) for v in numbers):
            raise DigitnetError(f"{here}: is an integer; its low, high and step must be integers, got {spec}")
        if not isinstance(log, bool):
            raise DigitnetError(f"{here}: log must be true or false, got {log!r}")
        if not low < high:
            raise DigitnetError(f"{here}: low must be below high, got low {low}, high {high}")
        if log and low <= 0:
            raise DigitnetError(f"{here}: a log range needs low > 0, got {low}")
        if step is not None and (step <= 0 or log):
            raise DigitnetError(f"{here}: step must be positive and cannot be combined with log, got {step}")
        for end in (low, high):
            check_value(name, (end,) if name == "hidden" else end, here)
        return Param(name, low=low, high=high, log=log, step=step, integer=integer)
    if isinstance(spec, list):
        if not spec:
            raise DigitnetError(f"{here}: the list of choices is empty")
        choices = [to_optuna(name, c, here) for c in spec]
        if len(set(map(repr, choices))) != len(choices):
            raise DigitnetError(f"{here}: the choices repeat a value: {spec}")
        for c in choices:
            check_value(name, from_optuna(name, c), here)
        return Param(name, choices=choices)
    value = from_optuna(name, to_optuna(name, spec, here))
    check_value(name, value, here)
    return Param(name, value=value)


def to_optuna(name: str, value, here: str):
    """A choice as Optuna stores it: a number, string or bool (list-valued fields as "a,b")."""
    if name in LIST_VALUED and isinstance(value, list):
        if not value or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise DigitnetError(f"{here}: expected a list of numbers like [128, 64], got {value}")
        return ",".join(str(v) for v in value)
    if name in LIST_VALUED and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None or not isinstance(value, (bool, int, float, str)):
        raise DigitnetError(f"{here}: expected a number, string or boolean choice, got {json.dumps(value)}")
    return value


def from_optuna(name: str, value):
    """The inverse of ``to_optuna``: "128,64" -> (128, 64) for hidden, (0.9, 0.999) for betas."""
    if name == "hidden":
        try:
            sizes = tuple(int(s) for s in str(value).split(","))
        except ValueError:
            return value  # check_value reports it
        return sizes
    if name == "betas" and isinstance(value, str):
        try:
            return tuple(float(s) for s in value.split(","))
        except ValueError:
            return value
    return value


def check_value(name: str, value, here: str) -> None:
    """Raise a DigitnetError naming ``here`` when ``value`` is not a valid ``name``."""
    if name == "hidden":
        if not isinstance(value, tuple) or not value or any(s < 1 for s in value):
            raise DigitnetError(f"{here}: layer sizes must be positive integers like [128, 64], got {value!r}")
        return
    if name == "arch":
        from .nn.spec import build

        if not isinstance(value, str):
            raise DigitnetError(f"{here}: expected a preset name or spec string, got {value!r}")
        try:
            build(value)
        except DigitnetError as exc:
            raise DigitnetError(f"{here}: {exc}") from None
        return
    if name == "val_size" and value == 0:
        raise DigitnetError(f"{here}: 0 leaves no validation set to rank trials by; give a positive size")
    if name in INT_FIELDS and name != "batch_size" and (isinstance(value, bool) or not isinstance(value, int)):
        raise DigitnetError(f"{here}: expected an integer, got {value!r}")
    if name == "nesterov" and not isinstance(value, bool):
        raise DigitnetError(f"{here}: expected true or false, got {value!r}")
    if name in FLOAT_FIELDS and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise DigitnetError(f"{here}: expected a number, got {value!r}")
    try:
        TrainConfig(**{name: value})
    except (DigitnetError, TypeError) as exc:
        raise DigitnetError(f"{here}: {exc}") from None


def describe(space: dict[str, Param]) -> str:
    """One line: what varies and how (for the progress output)."""
    parts = []
    for p in space.values():
        if p.choices is not None:
            parts.append(f"{p.name} in {p.choices}")
        elif not p.fixed:
            parts.append(f"{p.name} in [{p.low}, {p.high}]{' log' if p.log else ''}")
    return ", ".join(parts) or "nothing varies but the seed"
