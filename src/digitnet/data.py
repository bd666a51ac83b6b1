"""MNIST in every layout users have, validated, kept as uint8.

Readers (each checks shapes, pixel range 0-255, labels 0-9 and counts, and
raises :class:`DigitnetError` saying what was expected and what was found):

* IDX, gzip'd or raw (``train-images-idx3-ubyte[.gz]`` ...): the original files
* Kaggle "MNIST in CSV" (``mnist_train.csv``: ``label,1x1,...,28x28``)
* Kaggle "Digit Recognizer" (``train.csv``: ``label,pixel0,...``; ``test.csv`` unlabelled)
* Keras ``mnist.npz`` (``x_train, y_train, x_test, y_test``; loaded without pickle)
* the classic ``mnist.pkl.gz`` (floats in [0, 1); read by a restricted
  unpickler that only builds numpy arrays, so nothing in the file runs)

Images stay uint8 (N, 28, 28) in memory (47 MB for the training set, not
188 MB of float32); the model converts each batch as it needs it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from math import prod
from pathlib import Path

import numpy as np

from .errors import DigitnetError
from .fsutil import open_regular

IMAGE_SHAPE = (28, 28)
N_PIXELS = 784
N_CLASSES = 10

# SHA-256 of the uncompressed bundled IDX files (from the dataset's README).
BUNDLED_SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


@dataclass(frozen=True)
class Dataset:
    """Images (N, 28, 28) uint8 and labels (N,) uint8, or ``None`` when unlabelled.

    ``classes`` names the labels (label ``i`` is ``classes[i]``); None means
    the digits "0" ... "9".
    """

    images: np.ndarray
    labels: np.ndarray | None
    name: str = ""
    classes: tuple | None = None

    def __len__(self) -> int:
        return len(self.images)

    def split(self, val_size: int, seed: int = 0) -> tuple[Dataset, Dataset]:
        """Hold out ``val_size`` random examples: returns (train, val)."""
        n = len(self)
        if not 0 < val_size < n:
            raise DigitnetError(f"validation size must be between 1 and {n - 1}, got {val_size}")
        perm = np.random.default_rng(seed).permutation(n)
        tr, va = np.sort(perm[val_size:]), np.sort(perm[:val_size])
        return self.subset(tr, f"{self.name}[train]"), self.subset(va, f"{self.name}[val]")

    def subset(self, index, name: str | None = None) -> Dataset:
        labels = None if self.labels is None else self.labels[index]
        return Dataset(self.images[index], labels, self.name if name is None else name, self.classes)

    def batches(
        self, batch_size: int, rng: np.random.Generator | None = None, reuse: bool = False
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Yield (uint8 images (B, 28, 28), labels (B,) or None when unlabelled); shuffled when ``rng`` is given.

        With ``reuse=True`` shuffled batches are gathered into the same two
        arrays every time (no allocation per batch): each batch is valid only
        until the next one is requested, which suits a training loop.
        """
        n = len(self)
        if batch_size >= n and rng is None:
            yield self.images, self.labels
            return
        if rng is None:  # in order: slices are views, nothing copied
            for i in range(0, n, batch_size):
                yield self.images[i : i + batch_size], _rows(self.labels, slice(i, i + batch_size))
            return
        order = rng.permutation(n)
        if not reuse:
            for i in range(0, n, batch_size):
                idx = order[i : i + batch_size]
                yield self.images[idx], _rows(self.labels, idx)
            return
        size = min(batch_size, n)
        image_buf = np.empty((size,) + self.images.shape[1:], self.images.dtype)
        label_buf = None if self.labels is None else np.empty(size, self.labels.dtype)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            m = len(idx)
            # mode="clip" skips numpy's bounds-checked (buffered) path; a permutation is in range
            images = np.take(self.images, idx, axis=0, out=image_buf[:m], mode="clip")
            labels = None
            if self.labels is not None and label_buf is not None:
                labels = np.take(self.labels, idx, out=label_buf[:m], mode="clip")
            yield images, labels

    def checksum(self) -> str:
        """SHA-256 of the images and labels bytes: the same data gives the same value in any layout."""
        h = hashlib.sha256(np.ascontiguousarray(self.images).tobytes())
        if self.labels is not None:
            h.update(np.ascontiguousarray(self.labels).tobytes())
        return h.hexdigest()


def _rows(labels: np.ndarray | None, index):
    return None if labels is None else labels[index]


@dataclass(frozen=True)
class MNIST:
    """A training set and, where the source has one, a test set."""

    train: Dataset | None
    test: Dataset | None
    source: str


# --------------------------------------------------------------------------- validation
def validate(images, labels, where: str, classes=None) -> Dataset:
    """Check and normalise raw arrays into a :class:`Dataset` (uint8, (N, 28, 28)).

    Labels must be 0 .. ``len(classes) - 1`` (0-9 without ``classes``).
    """
    images = np.asarray(images)
    if images.size == 0 or images.shape[0] == 0:
        raise DigitnetError(f"{where}: no images found (empty)")
    if images.ndim == 2 and images.shape[1] == N_PIXELS:
        images = images.reshape(-1, *IMAGE_SHAPE)
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DigitnetError(f"{where}: expected images of shape (N, 28, 28) or (N, 784), got {images.shape}")
    images = _to_uint8(images, where, "pixel", 255)
    if labels is not None:
        labels = (
            np.asarray(labels).reshape(-1) if np.ndim(labels) == 2 and np.shape(labels)[1] == 1 else np.asarray(labels)
        )
        if labels.ndim != 1:
            raise DigitnetError(f"{where}: expected labels of shape (N,), got {labels.shape}")
        if len(labels) != len(images):
            raise DigitnetError(f"{where}: {len(images)} images but {len(labels)} labels")
        labels = _to_uint8(labels, where, "label", (N_CLASSES if classes is None else len(classes)) - 1)
    return Dataset(images, labels, where, None if classes is None else tuple(classes))


def _to_uint8(a: np.ndarray, where: str, what: str, hi: int) -> np.ndarray:
    if a.dtype == np.uint8 and hi == 255:
        return a
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise DigitnetError(f"{where}: {what} values must be numbers, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            raise DigitnetError(f"{where}: {what} values must be whole numbers 0-{hi}, found {a[bad].flat[0]!r}")
    lo_v, hi_v = a.min(), a.max()
    if lo_v < 0 or hi_v > hi:
        bad_v = lo_v if lo_v < 0 else hi_v
        raise DigitnetError(f"{where}: {what} values must be in 0-{hi}, found {bad_v}")
    return a.astype(np.uint8)


# --------------------------------------------------------------------------- bounded reading
# Nothing is read on trust: a file's header may claim any size, and a small gzip file may inflate to
# gigabytes. Each reader knows the most its format can need, reads at most that much (streaming the
# decompression and counting), and refuses the file beyond it.
MAX_IMAGES = 300_000  # 4x the 70,000 of MNIST; QMNIST and EMNIST-digits have fewer
MAX_IDX_BYTES = MAX_IMAGES * N_PIXELS + 16
MAX_ARRAY_BYTES = 256 * 2**20  # one .npz member or pickled array; float32 MNIST train is 188 MB
MAX_PICKLE_BYTES = 240 * 2**20  # the classic mnist.pkl.gz inflates to 220 MB
MAX_CSV_BYTES = 160 * 2**20  # Kaggle's mnist_train.csv is 109 MB
_CHUNK = 1 << 20


def _open_stream(path: Path):
    """The file, or its decompressed stream when it is gzip'd; errors are one line."""
    try:
        f = open_regular(path)  # returned open: the caller closes it
    except IsADirectoryError:
        raise DigitnetError(f"{path}: is a directory, expected a file") from None
    except OSError as exc:
        raise DigitnetError(f"cannot read {path}: {exc.strerror}") from None
    if f.read(2) == b"\x1f\x8b":
        f.seek(0)
        return gzip.GzipFile(fileobj=f, mode="rb"), f
    f.seek(0)
    return f, f


def _read_at_most(stream, limit: int, path: Path, what: str, refuse_more: bool = True) -> bytearray:
    """Read the stream to its end, refusing it once it passes ``limit`` bytes (or, with
    ``refuse_more=False``, just its first ``limit`` bytes); decompression errors are one line."""
    buf = bytearray()
    try:
        while True:
            chunk = stream.read(min(_CHUNK, limit + refuse_more - len(buf)))
            if not chunk:
                return buf
            buf += chunk
            if len(buf) > limit:
                raise DigitnetError(f"{path}: holds more than {limit:,} bytes (decompressed), {what}; refused")
            if len(buf) == limit and not refuse_more:
                return buf
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DigitnetError(f"{path}: corrupt or truncated gzip data ({type(exc).__name__}: {str(exc)[:80]})") from None


class BoundedReader:
    """A file-like view of ``stream`` that refuses to yield more than ``limit`` bytes in all.

    For readers that consume a stream themselves (the unpickler): the file is
    never held whole in memory, and decompression errors are one line.
    """

    def __init__(self, stream, limit: int, path: Path, what: str) -> None:
        self.stream, self.limit, self.path, self.what, self.count = stream, limit, path, what, 0

    def _take(self, method, n) -> bytes:
        room = self.limit + 1 - self.count
        n = room if n is None or n < 0 else min(n, room)
        try:
            # in pieces: a read(n) allocates n bytes before it knows how many are there
            data = method(n) if n <= _CHUNK else self._pieces(method, n)
        except (OSError, EOFError, zlib.error) as exc:
            raise DigitnetError(
                f"{self.path}: corrupt or truncated gzip data ({type(exc).__name__}: {str(exc)[:80]})"
            ) from None
        self.count += len(data)
        if self.count > self.limit:
            raise DigitnetError(
                f"{self.path}: holds more than {self.limit:,} bytes (decompressed), {self.what}; refused"
            )
        return data

    @staticmethod
    def _pieces(method, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            part = method(min(_CHUNK, n - got))
            if not part:
                break
            parts.append(part)
            got += len(part)
            if part.endswith(b"\n") and method.__name__ == "readline":
                break
        return b"".join(parts)

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` (the unpickler's own, for large objects) piece by piece: no copies."""
        view, got = memoryview(buffer).cast("B"), 0
        while got < len(view):
            part = self._take(self.stream.read, min(_CHUNK, len(view) - got))
            if not part:
                break
            view[got : got + len(part)] = part
            got += len(part)
        return got

    def peek(self, n: int = 1) -> bytes:
        """Look ahead without consuming; the unpickler then parses small opcodes in C, not one read each."""
        try:
            return self.stream.peek(n)[: max(0, self.limit + 1 - self.count)]
        except (OSError, EOFError, zlib.error) as exc:
            raise DigitnetError(
                f"{self.path}: corrupt or truncated gzip data ({type(exc).__name__}: {str(exc)[:80]})"
            ) from None

    def read(self, n=-1) -> bytes:
        return self._take(self.stream.read, n)

    def readline(self, n=-1) -> bytes:
        return self._take(self.stream.readline, n)


def open_bounded(path: Path, limit: int, what: str):
    """``(reader, file)``: the (decompressed) contents of ``path`` as a :class:`BoundedReader`; close the file."""
    stream, raw = _open_stream(path)
    return BoundedReader(stream, limit, path, what), raw


# --------------------------------------------------------------------------- IDX
def _idx_header(head: bytes, where: str, kind: str) -> tuple[tuple[int, ...], int]:
    """Check an IDX header; returns (dims, header length). The declared size is bounded before any read."""
    ndim = 3 if kind == "images" else 1
    size = 4 + 4 * ndim
    if len(head) < size:
        raise DigitnetError(f"{where}: too short for an IDX {kind} file ({len(head)} bytes)")
    magic = int.from_bytes(head[:4], "big")
    expected = 0x800 + ndim
    if magic != expected:
        raise DigitnetError(f"{where}: bad IDX magic number 0x{magic:08x}, expected 0x{expected:08x} ({kind})")
    dims = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if kind == "images" and dims[1:] != IMAGE_SHAPE:
        raise DigitnetError(f"{where}: header says images of {dims[1]}x{dims[2]} pixels, expected 28x28")
    if dims[0] > MAX_IMAGES:
        raise DigitnetError(f"{where}: header claims {dims[0]:,} {kind}; at most {MAX_IMAGES:,} are read")
    return dims, size


def parse_idx(data, where: str, kind: str) -> np.ndarray:
    """Parse IDX bytes: ``kind`` is 'images' (magic 0x803) or 'labels' (0x801)."""
    dims, size = _idx_header(bytes(data[:16]), where, kind)
    body = memoryview(data)[size:]
    need = prod(dims)
    if len(body) != need:
        state = "truncated" if len(body) < need else "has trailing bytes"
        raise DigitnetError(f"{where}: {state}: header says {dims} = {need} bytes of data, found {len(body)}")
    return np.frombuffer(body, np.uint8).reshape(dims)


def read_idx(path: Path, kind: str) -> bytearray:
    """An IDX file's bytes, read only as far as its checked header says (plus one byte to see trailing data)."""
    stream, raw = _open_stream(path)
    with raw:
        head = _read_at_most(stream, 16 if kind == "images" else 8, path, "IDX header", refuse_more=False)
        dims, size = _idx_header(bytes(head), str(path), kind)
        if stream is raw:  # uncompressed: the file's size says it all before reading
            have = os.fstat(raw.fileno()).st_size - size
            if have != prod(dims):
                state = "truncated" if have < prod(dims) else "has trailing bytes"
                raise DigitnetError(f"{path}: {state}: header says {dims} = {prod(dims)} bytes of data, found {have}")
        return head + _read_at_most(stream, prod(dims), path, "the size its IDX header declares")


def load_idx(images_path, labels_path=None, name: str | None = None, expect_sha256: dict | None = None) -> Dataset:
    """Load an IDX images file and (optionally) its labels file, gzip'd or raw."""
    images_path = Path(images_path)
    raw = read_idx(images_path, "images")
    if expect_sha256:
        _check_sha(raw, images_path, expect_sha256)
    images = parse_idx(raw, str(images_path), "images")
    labels = None
    if labels_path is not None:
        labels_path = Path(labels_path)
        raw = read_idx(labels_path, "labels")
        if expect_sha256:
            _check_sha(raw, labels_path, expect_sha256)
        labels = parse_idx(raw, str(labels_path), "labels")
    return validate(images, labels, name or str(images_path))


def _check_sha(raw: bytes | bytearray, path: Path, table: dict) -> None:
    want = table.get(path.name)
    got = hashlib.sha256(raw).hexdigest()
    if want is not None and got != want:
        raise DigitnetError(
            f"{path}: checksum mismatch (sha256 {got[:12]}..., expected {want[:12]}...); "
            "the bundled data is damaged: reinstall digitnet"
        )


# --------------------------------------------------------------------------- CSV
def load_csv(path) -> Dataset:
    """Kaggle CSVs: ``label,1x1,...,28x28``, ``label,pixel0,...`` or unlabelled ``pixel0,...``.

    A file without a header is read as ``label`` + 784 pixels when it has 785
    columns and as unlabelled pixels when it has 784.
    """
    path = Path(path)
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_CSV_BYTES:
                raise DigitnetError(f"{path}: {size:,} bytes; CSV files of at most {MAX_CSV_BYTES:,} bytes are read")
            data = f.read(size + 1)  # one byte more shows a file that grew since
        if len(data) > size:
            raise DigitnetError(f"{path}: changed while being read")
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DigitnetError(f"{path}: not a text CSV file") from None
    except OSError as exc:
        raise DigitnetError(f"cannot read {path}: {exc.strerror}") from None
    breaks = sum(text.count(c) for c in _LINE_BREAKS)  # before splitting: a file of newlines is a huge list
    if breaks > 2 * MAX_IMAGES + 2:
        raise DigitnetError(f"{path}: {breaks:,} lines; at most {MAX_IMAGES:,} rows are read")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DigitnetError(f"{path}: empty file")
    if lines[0].count(",") > N_PIXELS:  # ... and a line of commas a huge one
        raise DigitnetError(
            f"{path}: line 1 has {lines[0].count(',') + 1:,} columns, expected 785 (label + 784 pixels) or 784"
        )
    first = [c.strip().lower() for c in lines[0].split(",")]
    has_header = not _is_number(first[0])
    if has_header:
        labelled = first[0] == "label"
        lines = lines[1:]
        ncols = len(first)
        if ncols != N_PIXELS + labelled:
            raise DigitnetError(
                f"{path}: header has {ncols} columns, expected "
                f"{N_PIXELS + labelled} ({'label + ' if labelled else ''}784 pixels)"
            )
    else:
        ncols = len(first)
        if ncols not in (N_PIXELS, N_PIXELS + 1):
            raise DigitnetError(f"{path}: line 1 has {ncols} columns, expected 785 (label + 784 pixels) or 784")
        labelled = ncols == N_PIXELS + 1
    if not lines:
        raise DigitnetError(f"{path}: no data rows (empty)")
    if len(lines) > MAX_IMAGES:
        raise DigitnetError(f"{path}: {len(lines):,} rows; at most {MAX_IMAGES:,} are read")
    values = np.empty((len(lines), ncols), np.uint8)
    for i in range(0, len(lines), _CSV_ROWS):  # parsed in blocks: float64 text values, one block at a time
        block = _parse_rows(lines[i : i + _CSV_ROWS], ncols, path, first_line=1 + has_header + i)
        if labelled:
            values[i : i + len(block), 0] = _to_uint8(block[:, 0], str(path), "label", N_CLASSES - 1)
        values[i : i + len(block), labelled:] = _to_uint8(block[:, labelled:], str(path), "pixel", 255)
    labels = values[:, 0] if labelled else None
    images = values[:, 1:] if labelled else values
    return validate(images, labels, str(path))


_CSV_ROWS = 4096
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines splits on


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _parse_rows(lines: list[str], ncols: int, path: Path, first_line: int) -> np.ndarray:
    # Fast path: numpy parses the whole block at once, once every row has the right number of columns
    # (so that it never parses more values than the block should hold).
    if any(ln.count(",") != ncols - 1 for ln in lines):
        return _bad_row(lines, ncols, path, first_line)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            flat = np.fromstring(",".join(lines), dtype=np.float64, sep=",")
        except (ValueError, DeprecationWarning):
            flat = None
    if flat is not None and flat.size == len(lines) * ncols:
        return flat.reshape(len(lines), ncols)
    return _bad_row(lines, ncols, path, first_line)


def _bad_row(lines: list[str], ncols: int, path: Path, first_line: int):
    """Raise the error that says exactly where the rows are wrong (the slow path)."""
    for i, line in enumerate(lines):
        if line.count(",") != ncols - 1:
            raise DigitnetError(f"{path}: line {i + first_line} has {line.count(',') + 1:,} columns, expected {ncols}")
        for j, c in enumerate(line.split(",")):
            if not _is_number(c):
                raise DigitnetError(
                    f"{path}: line {i + first_line}, column {j + 1}: {c.strip()[:20]!r} is not a number"
                )
    raise DigitnetError(f"{path}: could not parse the CSV values")


# --------------------------------------------------------------------------- npz / pickle
NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path) -> MNIST:
    """Keras ``mnist.npz`` (``x_train, y_train, x_test, y_test``), read without pickle.

    Only those four members are read (others, however large, are skipped),
    each must be a ``.npy`` array of a plain numeric dtype, and each is
    read only as far as its checked header says.
    """
    path = Path(path)
    try:
        raw = open_regular(path)
    except IsADirectoryError:
        raise DigitnetError(f"{path}: is a directory, expected a .npz file") from None
    except OSError as exc:
        raise DigitnetError(f"cannot read {path}: {exc.strerror}") from None
    try:
        zf = zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raw.close()
        raise DigitnetError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None
    with raw, zf:
        members = {n.removesuffix(".npy"): n for n in zf.namelist()}
        if not {"x_train", "y_train"} <= members.keys():
            shown = ", ".join(sorted(members)[:8]) + (", ..." if len(members) > 8 else "")
            raise DigitnetError(f"{path}: expected arrays x_train, y_train[, x_test, y_test], found {shown}")
        arrays = {k: read_npy(zf, members[k], path) for k in NPZ_ARRAYS if k in members}
    train = validate(arrays["x_train"], arrays["y_train"], f"{path}[train]")
    test = None
    if "x_test" in arrays:
        test = validate(arrays["x_test"], arrays.get("y_test"), f"{path}[test]")
    return MNIST(train, test, str(path))


def read_npy(zf: zipfile.ZipFile, member: str, path: Path) -> np.ndarray:
    """One ``.npy`` member: header checked (plain dtype, size within ``MAX_ARRAY_BYTES``), then exactly its data."""
    where = f"{path}[{member}]"
    if not member.endswith(".npy"):
        raise DigitnetError(f"{where}: not a .npy array member")
    try:
        with zf.open(member) as f:
            shape, fortran, dtype = _npy_header(f, where)
            if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
                raise DigitnetError(f"{where}: dtype {dtype} is not a plain numeric type")
            need = prod(shape) * dtype.itemsize
            if need > MAX_ARRAY_BYTES:
                raise DigitnetError(
                    f"{where}: array of shape {shape} is {need:,} bytes; at most {MAX_ARRAY_BYTES:,} are read"
                )
            # read what is there, up to what the header says: a header that lies costs only the bytes present
            out = _read_at_most(f, need, path, "", refuse_more=False)
            if len(out) < need:
                raise DigitnetError(f"{where}: truncated: header says {need:,} bytes of data, found {len(out):,}")
            if f.read(1):  # reading to the end also checks the CRC
                raise DigitnetError(f"{where}: has trailing bytes after its {need:,} bytes of data")
    except DigitnetError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise DigitnetError(
            f"{where}: not a readable .npy array ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:80] if str(exc) else ''})"
        ) from None
    a = np.frombuffer(out, dtype)
    return a.reshape(shape[::-1]).T if fortran else a.reshape(shape)


def _npy_header(f, where: str):
    """(shape, fortran order, dtype) of a .npy stream; numpy reads the header, at most 10 kB of it."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version in ((2, 0), (3, 0)):
            return np.lib.format.read_array_header_2_0(f)
        raise ValueError(f"unknown .npy version {version}")
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error):
        raise  # the stream itself: reported by the caller
    except Exception as exc:
        # tokenize, which raise SyntaxError, TokenError, ValueError, ... on a damaged one
        raise DigitnetError(f"{where}: not a readable .npy array (bad header: {type(exc).__name__})") from None


def load_pickle(path) -> MNIST:
    """The classic ``mnist.pkl.gz``: ((x, y) train, (x, y) valid, (x, y) test), floats = byte/256.

    Train and validation parts are joined back into the 60,000 training images.
    Read by :mod:`digitnet.safe_pickle`: nothing in the file runs, and only
    plain numeric arrays of the sizes the bytes hold are built.
    """
    from .safe_pickle import load

    path = Path(path)
    reader, raw = open_bounded(path, MAX_PICKLE_BYTES, "the most an MNIST pickle needs")
    with raw:
        obj = load(reader, str(path), MAX_ARRAY_BYTES)
    shape_error = f"{path}: expected ((x, y), (x, y), (x, y)) train/valid/test pairs of numpy arrays"
    if not isinstance(obj, (tuple, list)) or len(obj) != 3:
        raise DigitnetError(
            shape_error
            if not isinstance(obj, (tuple, list))
            else f"{path}: expected 3 (x, y) pairs (train, valid, test), found {len(obj)}"
        )
    if not all(isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(a, np.ndarray) for a in p) for p in obj):
        raise DigitnetError(shape_error)
    sets = []
    for (x, y), part in zip(obj, ("train", "valid", "test")):
        if np.issubdtype(x.dtype, np.floating):
            if x.size and (np.isnan(x).any() or x.min() < 0 or x.max() > 1):
                raise DigitnetError(f"{path}[{part}]: float pixels must be in [0, 1]")
            # the classic file stores byte/256; files scaled by 1/255 reach exactly 1.0
            scale = 255.0 if x.size and x.max() == 1.0 else 256.0
            x = np.minimum(np.round(x * scale), 255)
        sets.append(validate(x, y, f"{path}[{part}]"))
    if any(s.labels is None for s in sets[:2]):
        raise DigitnetError(shape_error)
    train = Dataset(
        np.concatenate([sets[0].images, sets[1].images]),
        np.concatenate([sets[0].labels, sets[1].labels]),
        f"{path}[train]",
    )
    return MNIST(train, sets[2], str(path))


# --------------------------------------------------------------------------- entry point
def bundled_dir() -> Path:
    return Path(str(resources.files("digitnet") / "datasets" / "mnist"))


def load_mnist(path=None, verify: bool = True) -> MNIST:
    """Load MNIST from the bundled copy (``path=None``) or any supported layout.

    ``path`` may be a directory holding a dataset or a single file, a folder
    of class folders of images (:mod:`digitnet.folders`), or Fashion-MNIST,
    KMNIST or EMNIST files (:mod:`digitnet.variants`). A single
    file is the training set unless its name says test (``test``, ``t10k``);
    a sibling file with the other part is picked up when present.
    The bundled files are checked against their SHA-256 when ``verify``.
    """
    if path is None:
        d = bundled_dir()
        sha = BUNDLED_SHA256 if verify else None
        return MNIST(
            load_idx(d / "train-images-idx3-ubyte.gz", d / "train-labels-idx1-ubyte.gz", "mnist[train]", sha),
            load_idx(d / "t10k-images-idx3-ubyte.gz", d / "t10k-labels-idx1-ubyte.gz", "mnist[test]", sha),
            "bundled MNIST",
        )
    path = Path(path)
    if not path.exists():
        raise DigitnetError(f"{path}: no such file or directory")
    from . import folders, variants

    named = variants.load(path)  # Fashion-MNIST, KMNIST, EMNIST: their class names
    if named is not None:
        return named
    if path.is_dir():
        if folders.is_class_folders(path):  # DIR/<class>/*.png: your own classes
            return folders.load_folders(path)
        return load_dir(path)
    return load_file(path)


def _find(d: Path, *names: str) -> Path | None:
    for n in names:
        if (d / n).is_file():
            return d / n
    return None


def _idx_names(stem: str, kind: str) -> list[str]:
    ext = "idx3-ubyte" if kind == "images" else "idx1-ubyte"
    return [f"{stem}-{kind}-{ext}.gz", f"{stem}-{kind}-{ext}", f"{stem}-{kind}.{ext}.gz", f"{stem}-{kind}.{ext}"]


def load_dir(d: Path) -> MNIST:
    tri = _find(d, *_idx_names("train", "images"))
    if tri:
        trl = _find(d, *_idx_names("train", "labels"))
        tei, tel = _find(d, *_idx_names("t10k", "images")), _find(d, *_idx_names("t10k", "labels"))
        if trl is None:
            raise DigitnetError(f"{d}: found {tri.name} but no train-labels-idx1-ubyte file")
        test = load_idx(tei, tel) if tei else None
        return MNIST(load_idx(tri, trl), test, str(d))
    for train_name, test_name in (("mnist_train.csv", "mnist_test.csv"), ("train.csv", "test.csv")):
        tr, te = _find(d, train_name), _find(d, test_name)
        if tr or te:
            return MNIST(load_csv(tr) if tr else None, load_csv(te) if te else None, str(d))
    for name in ("mnist.npz",):
        if (d / name).is_file():
            return load_npz(d / name)
    for name in ("mnist.pkl.gz", "mnist.pkl"):
        if (d / name).is_file():
            return load_pickle(d / name)
    raise DigitnetError(
        f"{d}: no MNIST files found (looked for IDX files, mnist_train.csv, train.csv, mnist.npz, mnist.pkl.gz)"
    )


def _is_test_name(name: str) -> bool:
    return "test" in name.lower() or "t10k" in name.lower()


def load_file(p: Path) -> MNIST:
    name = p.name.lower()
    if name.endswith(".npz"):
        return load_npz(p)
    if name.endswith((".pkl", ".pkl.gz", ".pickle")):
        return load_pickle(p)
    if name.endswith(".csv"):
        this = load_csv(p)
        other_name = _swap_split_name(p.name)
        other = load_csv(p.with_name(other_name)) if other_name and p.with_name(other_name).is_file() else None
        return MNIST(other, this, str(p)) if _is_test_name(name) else MNIST(this, other, str(p))
    if "idx3" in name:
        labels = p.with_name(p.name.replace("images", "labels").replace("idx3", "idx1"))
        ds = load_idx(p, labels if labels.is_file() else None)
        return MNIST(None, ds, str(p)) if _is_test_name(name) else MNIST(ds, None, str(p))
    raise DigitnetError(f"{p}: unknown data format; expected IDX, .csv, .npz or .pkl.gz")


def _swap_split_name(name: str) -> str | None:
    for a, b in (("train", "test"), ("test", "train")):
        if a in name:
            return name.replace(a, b)
    return None
