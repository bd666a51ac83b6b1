"""Your own classes: a folder per class of images, the layout most image tools use.

::

    DIR/cat/001.png  DIR/cat/002.jpg  DIR/dog/...            everything is training data
    DIR/train/cat/...  DIR/test/cat/...                       or split into train/ and test/

Each folder name is a class name. Every image goes through the same
preprocessing as ``digitnet predict`` (:func:`digitnet.preprocess.to_mnist`:
ink found, centred and scaled into 28x28, white on black), so a model
trained here sees at prediction time what it saw in training. Classes are
ordered by name (numerically when every name is a number).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import MNIST, Dataset
from .errors import DigitnetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
MAX_IMAGES = 1_000_000  # 784 bytes each in memory: under 1 GB
MAX_CLASSES = 256  # labels are uint8, as everywhere in digitnet


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_dirs(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]


def is_class_folders(folder) -> bool:
    """True when ``folder`` holds class subfolders of images (directly or under ``train/``)."""
    folder = Path(folder)
    root = folder / "train" if (folder / "train").is_dir() else folder
    return any(_images_in(d) for d in _class_dirs(root))


def _order(names) -> list[str]:
    names = sorted(set(names))
    return sorted(names, key=int) if all(n.isdigit() for n in names) else names


def load_split(folder: Path, classes: list[str], where: str) -> Dataset:
    """All images under ``folder/<class>/``, preprocessed, labelled by their index in ``classes``."""
    from .preprocess import to_mnist

    for d in _class_dirs(folder):
        if d.name not in classes:
            raise DigitnetError(f"{d}: class {d.name!r} is not among the training classes {classes}")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):  # class by class, files by name: a fixed order
        if (folder / name).is_dir():
            files += [(p, label) for p in _images_in(folder / name)]
        if len(files) > MAX_IMAGES:
            raise DigitnetError(f"{folder}: more than {MAX_IMAGES:,} images; split the data set")
    if not files:
        raise DigitnetError(f"{folder}: no .png or .jpg images in its class folders")
    images = np.empty((len(files), 28, 28), np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            images[i] = to_mnist(path)
        except DigitnetError as exc:
            msg = str(exc)
            raise DigitnetError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    labels = np.array([label for _, label in files], np.uint8)
    return Dataset(images, labels, where, tuple(classes))


def load_folders(folder) -> MNIST:
    """A class-per-folder data set: ``DIR/<class>/*.png|jpg``, or ``DIR/train/<class>/`` + ``DIR/test/<class>/``.

    Returns
    -------
    MNIST
        ``train`` (and ``test`` when there is a ``test/`` folder) as
        :class:`Dataset` with ``classes`` set to the folder names.
    """
    folder = Path(folder)
    split = (folder / "train").is_dir()
    root = folder / "train" if split else folder
    dirs = _class_dirs(root)
    empty = [d.name for d in dirs if not _images_in(d)]
    if empty:
        raise DigitnetError(f"{root}: class folder(s) {', '.join(sorted(empty))} hold no .png or .jpg images")
    if not dirs:
        raise DigitnetError(f"{root}: no class folders (expected {root}/<class name>/*.png)")
    classes = _order(d.name for d in dirs)
    if len(classes) > MAX_CLASSES:
        raise DigitnetError(f"{root}: {len(classes):,} class folders; at most {MAX_CLASSES} classes")
    train = load_split(root, classes, f"{folder.name}[train]")
    test = None
    if split and (folder / "test").is_dir():
        test = load_split(folder / "test", classes, f"{folder.name}[test]")
    return MNIST(
        train,
        test,
        f"{folder} ({len(classes)} classes: {', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''})",
    )
