"""The other 28x28 datasets that come in MNIST's layouts, recognised by their file names and named.

==============  =====================================================  ==================================
dataset         recognised by                                          classes
==============  =====================================================  ==================================
Fashion-MNIST   ``fashion`` in the file or folder name (its IDX files  T-shirt/top, Trouser, ... Ankle boot
                have MNIST's names; Kaggle's ``fashion-mnist_train.csv``)
KMNIST          ``kmnist`` / ``kuzushiji`` in the name; IDX files or   お き す つ な は ま や れ を
                ``kmnist-train-imgs.npz`` + ``kmnist-train-labels.npz``
EMNIST          ``emnist-<split>-train-images-idx3-ubyte[.gz]`` ...    the split's: digits, A-Z (letters),
                (in the folder or its ``gzip/``), any split                47 (balanced, bymerge), 62 (byclass)
==============  =====================================================  ==================================

EMNIST stores each image transposed (column by column), and its ``letters``
split numbers the classes from 1; both are undone here, so the images look
like MNIST's and the labels start at 0. An ``emnist-<split>-mapping.txt``
next to the files (label, ASCII code) names the classes when present.
"""

from __future__ import annotations

import re
import string
import zipfile
from pathlib import Path

import numpy as np

from .data import MNIST, Dataset, load_dir, load_file, parse_idx, read_idx, read_npy, validate
from .errors import DigitnetError

FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
KMNIST = ("お", "き", "す", "つ", "な", "は", "ま", "や", "れ", "を")  # o ki su tsu na ha ma ya re wo
DIGITS = tuple(string.digits)
_MERGED = DIGITS + tuple(string.ascii_uppercase) + tuple("abdefghnqrt")  # 47: similar lower/upper merged
EMNIST_CLASSES = {
    "mnist": DIGITS,
    "digits": DIGITS,
    "letters": tuple(string.ascii_uppercase),
    "balanced": _MERGED,
    "bymerge": _MERGED,
    "byclass": DIGITS + tuple(string.ascii_uppercase) + tuple(string.ascii_lowercase),
}
_EMNIST = re.compile(r"emnist-(\w+?)-(train|test)-(images|labels)-idx[13]-ubyte(\.gz)?")


def load(path) -> MNIST | None:
    """Fashion-MNIST, KMNIST or EMNIST at ``path`` (a folder or one of its files); None for anything else."""
    path = Path(path)
    entries = [p.name.lower() for p in path.iterdir()] if path.is_dir() else []
    if (
        _EMNIST.fullmatch(path.name.lower())
        or any(_EMNIST.fullmatch(n) for n in entries)
        or ("gzip" in entries and any(_EMNIST.fullmatch(n.name.lower()) for n in (path / "gzip").iterdir()))
    ):
        return load_emnist(path)
    names = [path.name.lower(), path.parent.name.lower(), *entries]
    if any("kmnist" in n or "kuzushiji" in n for n in names):
        return _named(_load_kmnist(path), KMNIST, "KMNIST")
    if any("fashion" in n for n in names):
        return _named(_load_fashion(path), FASHION, "Fashion-MNIST")
    return None


def _named(mnist: MNIST, classes: tuple, title: str) -> MNIST:
    def name(ds: Dataset | None) -> Dataset | None:
        return None if ds is None else Dataset(ds.images, ds.labels, ds.name, classes)

    return MNIST(name(mnist.train), name(mnist.test), f"{title} ({mnist.source})")


def _load_fashion(path: Path) -> MNIST:
    if path.is_dir():
        tr, te = path / "fashion-mnist_train.csv", path / "fashion-mnist_test.csv"
        if tr.is_file() or te.is_file():
            return load_file(tr if tr.is_file() else te)  # the sibling split is picked up there
        return load_dir(path)
    return load_file(path)


def _load_kmnist(path: Path) -> MNIST:
    folder = path if path.is_dir() else path.parent
    if (folder / "kmnist-train-imgs.npz").is_file() or (folder / "kmnist-test-imgs.npz").is_file():
        return MNIST(_kmnist_npz(folder, "train"), _kmnist_npz(folder, "test"), str(folder))
    return load_dir(path) if path.is_dir() else load_file(path)


def _kmnist_npz(folder: Path, split: str) -> Dataset | None:
    images, labels = folder / f"kmnist-{split}-imgs.npz", folder / f"kmnist-{split}-labels.npz"
    if not images.is_file():
        return None
    return validate(_npz_array(images), _npz_array(labels) if labels.is_file() else None, f"kmnist[{split}]")


def _npz_array(path: Path) -> np.ndarray:
    """The ``arr_0`` of a KMNIST .npz, read with the same checks and budgets as ``mnist.npz``."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise DigitnetError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None
    with zf:
        if "arr_0.npy" not in zf.namelist():
            raise DigitnetError(f"{path}: expected one array arr_0, found {sorted(zf.namelist())[:8]}")
        return read_npy(zf, "arr_0.npy", path)


def load_emnist(path) -> MNIST:
    """An EMNIST split in IDX files: a folder holding one split (or its ``gzip/`` subfolder), or one of the files."""
    path = Path(path)
    if path.is_dir():
        folder = path / "gzip" if not any(_EMNIST.fullmatch(p.name.lower()) for p in path.iterdir()) else path
        found = folder.iterdir() if folder.is_dir() else ()
        splits = sorted({m.group(1) for p in found if (m := _EMNIST.fullmatch(p.name.lower()))})
        if not splits:
            raise DigitnetError(f"{path}: no EMNIST files (emnist-<split>-train-images-idx3-ubyte.gz ...) in it")
        if len(splits) > 1:
            raise DigitnetError(
                f"{folder}: holds several EMNIST splits ({', '.join(splits)}); give one of its "
                f"files, e.g. --data {folder / f'emnist-{splits[0]}-train-images-idx3-ubyte.gz'}"
            )
        split = splits[0]
    else:
        m = _EMNIST.fullmatch(path.name.lower())
        if m is None:
            raise DigitnetError(f"{path}: not an EMNIST file (expected emnist-<split>-train-images-idx3-ubyte.gz ...)")
        folder, split = path.parent, m.group(1)
    classes, offset = _emnist_classes(folder, split)
    train, test = (_emnist_part(folder, split, part, classes, offset) for part in ("train", "test"))
    if train is None and test is None:
        raise DigitnetError(f"{folder}: no emnist-{split}-train/test-images-idx3-ubyte files")
    return MNIST(train, test, f"EMNIST {split} ({folder})")


def _emnist_classes(folder: Path, split: str) -> tuple[tuple, int]:
    """Class names in label order and the first label (1 for ``letters``, else 0)."""
    mapping = folder / f"emnist-{split}-mapping.txt"
    if mapping.is_file():
        try:
            rows = [line.split() for line in mapping.read_text(encoding="ascii").splitlines() if line.strip()]
            table = {int(r[0]): chr(int(r[1])) for r in rows}
        except (ValueError, IndexError, UnicodeDecodeError, OverflowError):
            raise DigitnetError(f"{mapping}: expected lines 'label ascii-code [ascii-code]'") from None
        offset = min(table)
        if sorted(table) != list(range(offset, offset + len(table))):
            raise DigitnetError(f"{mapping}: labels must be consecutive, found {sorted(table)[:5]}...")
        return tuple(table[k] for k in sorted(table)), offset
    if split not in EMNIST_CLASSES:
        raise DigitnetError(
            f"{folder}: unknown EMNIST split {split!r} and no emnist-{split}-mapping.txt; "
            f"known: {', '.join(EMNIST_CLASSES)}"
        )
    return EMNIST_CLASSES[split], 1 if split == "letters" else 0


def _emnist_part(folder: Path, split: str, part: str, classes: tuple, offset: int) -> Dataset | None:
    def find(kind: str) -> Path | None:
        stem = f"emnist-{split}-{part}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
        return next((folder / n for n in (stem + ".gz", stem) if (folder / n).is_file()), None)

    images_path, labels_path = find("images"), find("labels")
    if images_path is None:
        return None
    images = parse_idx(read_idx(images_path, "images"), str(images_path), "images")
    images = np.ascontiguousarray(images.transpose(0, 2, 1))  # stored column by column
    labels = None
    if labels_path is not None:
        labels = parse_idx(read_idx(labels_path, "labels"), str(labels_path), "labels").astype(np.int64) - offset
        if labels.size and labels.min() < 0:
            raise DigitnetError(f"{labels_path}: label {labels.min() + offset} is below the first class label {offset}")
    return validate(images, labels, f"emnist-{split}[{part}]", classes)
