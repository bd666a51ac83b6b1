"""What ``digitnet predict`` reads and writes: inputs from files, folders, globs
and stdin; top-k text or JSON lines; "what the network saw" pictures; Kaggle
submissions.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import DigitnetError
from .reject import top_classes

if TYPE_CHECKING:  # Pillow is imported where images are read, not when this module loads
    from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}


@dataclass
class Item:
    """One input: a name to print, its MNIST-like digit(s), and the image it came from (if any)."""

    name: str
    digits: list[np.ndarray]  # each (28, 28) uint8; several when --split
    source: Image.Image | None = None  # for --show
    split: bool = False  # digits of one image read as a number
    proba: list[np.ndarray] = field(default_factory=list)
    error: str | None = None  # why this input could not be read (the others go on)
    answers: list = field(default_factory=list)  # a reject.Decision per digit
    boxes: list[tuple] = field(default_factory=list)  # each digit's (x0, y0, x1, y1) in the image, when known


MAX_INPUTS = 100_000  # files one command line may expand to
MAX_WALK = 1_000_000  # directory entries a "**" pattern may visit


def expand(patterns: list[str], errors: list[tuple[str, str]] | None = None) -> list[str]:
    """Files named directly, the image/CSV files in named folders, and glob matches.

    Patterns are expanded here (``**`` too), so they work even when quoted
    and on shells that do not expand them. ``**`` does not follow symbolic
    links to folders (a link back to a parent would loop), and an expansion
    may visit at most ``MAX_WALK`` entries and give at most ``MAX_INPUTS`` files.
    With ``errors``, a pattern that names nothing is recorded there as
    ``(pattern, message)`` instead of raising.
    """
    out = []
    for pat in patterns:
        try:
            out += _expand_one(pat)
        except DigitnetError as exc:
            if errors is None:
                raise
            errors.append((pat, str(exc)))
        if len(out) > MAX_INPUTS:
            raise DigitnetError(f"more than {MAX_INPUTS:,} input files; give fewer at a time")
    return out


def _expand_one(pat: str) -> list[str]:
    p = Path(pat)
    if pat == "-" or p.is_file():
        return [pat]
    if p.is_dir():
        found = sorted(str(f) for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES | {".csv"})
        if not found:
            raise DigitnetError(f"{pat}: folder has no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) or CSV files")
        return found
    if p.exists():  # a pipe or a device: reading it could block or never end
        raise DigitnetError(f"{pat}: not a regular file or folder")
    if os.path.lexists(pat):
        raise DigitnetError(f"{pat}: a broken or looping symbolic link")
    if not glob.has_magic(pat):
        raise DigitnetError(f"{pat}: no such file")
    found, seen = [], set()
    for f in _glob(pat):
        real = f.resolve()  # a file may be reached twice via a symlink
        if real.is_file() and real not in seen:
            seen.add(real)
            found.append(str(f))
    if not found:
        raise DigitnetError(f"{pat}: no files match this pattern")
    return sorted(found)


def _glob(pat: str):
    """``pat`` expanded by pathlib, whose ``**`` does not follow symlinked folders; bounded in entries visited."""
    parts = Path(pat).parts
    k = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root, rest = Path(*parts[:k]) if k else Path("."), str(Path(*parts[k:]))
    for n, f in enumerate(root.glob(rest)):
        if n >= MAX_WALK:
            raise DigitnetError(f"{pat}: the pattern reaches more than {MAX_WALK:,} entries; give a narrower one")
        yield f


def iter_items(
    files: list[str], split: bool = False, keep_source: bool = False, stdin=None, keep_going: bool = False, models=None
) -> Iterator[Item]:
    """Load and preprocess every input, one at a time in the order given; CSV files give one item per row.

    A caller can answer some inputs before the rest are read. ``keep_source``
    keeps each decoded image (for :func:`save_seen`); otherwise only the 28x28
    digits stay in memory. With ``keep_going`` an input that cannot be read
    becomes an item with ``error`` set and the rest are read; otherwise the
    first such input raises. With ``models``, images are read as numbers where
    they may hold several digits (see :func:`_number_item`): with ``split``
    always.
    """
    count = 0
    for pattern in files:  # in the order given, each bad input where it was named
        errors: list[tuple[str, str]] = []
        for f in expand([pattern], errors if keep_going else None):
            try:
                items = _read_one(f, split, keep_source, stdin, models)
            except DigitnetError as exc:
                if not keep_going:
                    raise
                items = [Item(f if f != "-" else "<stdin>", [], error=str(exc))]
            count += len(items)
            yield from items
        count += len(errors)
        yield from (Item(name, [], error=msg) for name, msg in errors)
        if count > MAX_INPUTS:
            raise DigitnetError(f"more than {MAX_INPUTS:,} inputs; give fewer at a time")


def _read_one(f: str, split: bool, keep_source: bool, stdin, models=None) -> list[Item]:
    from .data import load_csv
    from .preprocess import open_image, split_digits, to_mnist

    if f == "-":
        from .preprocess import MAX_FILE_BYTES

        raw = (stdin or sys.stdin.buffer).read(MAX_FILE_BYTES + 1)  # open_image refuses more
        if not raw:
            raise DigitnetError("stdin: no data (expected image bytes, e.g. digitnet predict - < digit.png)")
        img, name = open_image(raw), "<stdin>"
    elif Path(f).suffix.lower() == ".csv":
        ds = load_csv(f)
        return [Item(f"{f}:{i + 1}", [im]) for i, im in enumerate(ds.images)]
    else:
        img, name = open_image(f), f
    try:
        if models is not None:
            item = _number_item(img, name, split, models)
        else:
            item = Item(name, split_digits(img) if split else [to_mnist(img)], split=split)
    except DigitnetError as exc:
        raise DigitnetError(f"{name}: {exc}") from None
    item.source = img if keep_source else None
    return [item]


def _number_item(img, name: str, split: bool, models) -> Item:
    """One image read as a number (``split``, or clearly several digits), else as one digit.

    Without ``split``, the model (or the ensemble, averaged) reads the image whole first, and only
    an image it may be reading several digits in (:func:`digitnet.segment.needs_number_reading`, as
    the web API decides) is segmented: most images are one digit, and segmenting costs several times
    a whole reading.
    """
    from .metrics import predict_proba, refusal
    from .preprocess import to_mnist_and_box
    from .segment import needs_number_reading, read_number

    whole = None
    if not split and len({m.reject_class for m in models}) == 1:  # classify() refuses mixed ensembles
        whole = to_mnist_and_box(img)
        digit = whole[0]
        proba = predict_proba(_one_or_ensemble(models), digit[None])[0]
        if not needs_number_reading(models[0], proba, digit, refusal(models)[1]):
            return Item(name, [digit], boxes=[whole[1]])
    try:
        reading = read_number(img, _one_or_ensemble(models))
    except DigitnetError:
        if split:
            raise
        reading = None  # e.g. too many pieces of ink for a number: read it as one digit
    if reading is not None and (split or reading.clearly_several):
        return Item(name, reading.digits, split=True, boxes=reading.boxes)
    digit, box = whole or to_mnist_and_box(img)
    return Item(name, [digit], boxes=[box])


def classify(items: list[Item], models, always_answer: bool = False) -> None:
    """Fill each item's probabilities (one model, or the average over several) and answers.

    A model with a "not a digit" output may refuse a digit (its answer's
    label is None); ``always_answer`` keeps the best digit instead.
    """
    from .metrics import predict_proba, refusal
    from .reject import decide

    items = [it for it in items if it.error is None]
    if not items:
        return
    digits = np.stack([d for it in items for d in it.digits])
    proba = predict_proba(_one_or_ensemble(models), digits)  # an ensemble's outputs must agree
    answers = decide(proba, models[0].classes, *refusal(models))
    if always_answer:  # the best answer even where the model refuses
        for a in answers:
            a.label, a.reason = a.guess, ""
    k = 0
    for it in items:
        it.proba = list(proba[k : k + len(it.digits)])
        it.answers = answers[k : k + len(it.digits)]
        k += len(it.digits)


def _one_or_ensemble(models):
    """The model itself, or the list of models whose probabilities ``predict_proba`` averages."""
    return models if len(models) > 1 else models[0]


def _top(p: np.ndarray, k: int, reject_class: int | None = None) -> list[tuple[int, float]]:
    """The k most likely classes; a "not a digit" output is left out (the label says it)."""
    return [(c, float(p[c])) for c in top_classes(p, k, reject_class)]


def format_item(it: Item, k: int, as_json: bool, classes=None, reject_class: int | None = None) -> str:
    """One result line; ``classes`` names the outputs (default: the digits). JSON adds ``"class"`` names."""
    if it.error is not None:
        return json.dumps({"input": it.name, "error": it.error}) if as_json else f"{it.name}: error: {it.error}"
    names = list(classes) if classes is not None else [str(c) for c in range(len(it.proba[0]))]
    tops = [_top(p, k, reject_class) for p in it.proba]
    answers = it.answers or [None] * len(tops)
    labels = [t[0][0] if a is None else a.label for t, a in zip(tops, answers)]
    words = ["?" if lab is None else names[lab] for lab in labels]
    sep = "" if all(len(w) == 1 for w in words) else " "
    label = sep.join(words)
    if as_json:
        entries = [
            {
                "label": lab,
                "class": None if lab is None else names[lab],
                "top_k": [{"label": c, "class": names[c], "probability": round(p, 6)} for c, p in t],
            }
            for lab, t in zip(labels, tops)
        ]
        for e, a in zip(entries, answers):
            if a is not None and a.label is None:
                e["reason"] = a.reason
        for entry, box in zip(entries, it.boxes):
            entry["box"] = list(box)
        number = None if None in labels else label  # a piece that is not a digit: no number
        if not it.split:
            return json.dumps({"input": it.name, **entries[0], "number": number}, ensure_ascii=False)
        return json.dumps({"input": it.name, "number": number, "label": number, "digits": entries}, ensure_ascii=False)
    alts = " | ".join("  ".join(f"{names[c]}: {p * 100:5.1f}%" for c, p in t) for t in tops)
    why = "; ".join(a.reason for a in answers if a is not None and a.label is None)
    return f"{it.name}: {label}   ({alts})" + (f"   [{why}]" if why else "")


def save_seen(items: list[Item], folder) -> list[Path]:
    """For each input, a PNG of the input (left) next to what the network saw, enlarged, with the labels."""
    from PIL import Image, ImageDraw

    from .fsutil import atomic_path, make_dirs

    folder = make_dirs(folder, "--show")
    cell, pad, text_h = 112, 8, 18
    written, used = [], set()
    for it in items:
        if it.error is not None:
            continue
        n = len(it.digits)
        panels = []
        if it.source is not None:
            src = it.source.convert("RGBA")
            scale = min(cell / src.height, 2 * cell / src.width)  # input shown at the digits' height
            src = src.resize((max(1, round(src.width * scale)), max(1, round(src.height * scale))))
            flat = Image.new("RGB", src.size, (255, 255, 255))
            flat.paste(src, mask=src.getchannel("A"))
            panels.append(flat)
        # Image.NEAREST: a module-level filter name Pillow's type hints miss (Image.Resampling needs Pillow 9.1)
        nearest = Image.NEAREST  # type: ignore[attr-defined]
        for d in it.digits:
            panels.append(Image.fromarray(d).resize((cell, cell), nearest).convert("RGB"))
        width = sum(p.width for p in panels) + pad * (len(panels) + 1)
        sheet = Image.new("RGB", (width, cell + 2 * pad + text_h), (240, 240, 240))
        draw = ImageDraw.Draw(sheet)
        x = pad
        for j, p in enumerate(panels):
            sheet.paste(p, (x, pad))
            is_digit = j >= len(panels) - n
            if is_digit:
                prob = it.proba[j - (len(panels) - n)]
                c = int(prob[:10].argmax())
                refused = it.answers and it.answers[j - (len(panels) - n)].label is None
                draw.text(
                    (x, cell + pad + 2), "? not a digit" if refused else f"{c} ({prob[c] * 100:.0f}%)", fill=(0, 0, 0)
                )
            else:
                draw.text((x, cell + pad + 2), "input", fill=(90, 90, 90))
            x += p.width + pad
        path, _, row = it.name.rpartition(":")  # CSV rows are named file.csv:ROW
        stem = f"{Path(path).stem}-{row}" if row.isdigit() and path else Path(it.name).stem
        stem = stem.strip("<>") or "input"
        name = f"{stem}.seen.png"
        i = 2
        while name in used:
            name, i = f"{stem}-{i}.seen.png", i + 1
        used.add(name)
        with atomic_path(folder / name, "--show") as tmp:
            sheet.save(tmp, format="PNG")
        written.append(folder / name)
    return written


def kaggle_submission(items: list[Item], out) -> Path:
    """Write Kaggle "Digit Recognizer" ``ImageId,Label`` rows (ImageId from 1)."""
    from .fsutil import atomic_write

    out = Path(out)
    if out.is_dir():
        raise DigitnetError(f"--kaggle-submission {out}: is a directory; give a file name like submission.csv")
    lines = ["ImageId,Label"] + [f"{i},{int(it.proba[0][:10].argmax())}" for i, it in enumerate(items, 1)]
    return atomic_write(out, "\n".join(lines) + "\n", "--kaggle-submission")
