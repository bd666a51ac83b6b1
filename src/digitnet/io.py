"""Model files: safetensors tensors + JSON metadata. Never pickle.

A model file is a standard safetensors file: an 8-byte header length, a JSON
header (tensor names, dtypes, shapes, offsets, and a string->string
``__metadata__`` map), then raw little-endian tensor bytes. Nothing in it can
run code. digitnet stores one metadata entry, ``digitnet``, holding JSON::

    {"format": 1, "digitnet_version": ..., "architecture": [...],
     "input_shape": [784], "dtype": "float32",
     "classes": ["0", ..., "9"], "reject_class": null,
     "preprocessing": {"pixel_scale": 1/255, "input": "28x28 uint8, white digit on black"},
     "train_config": {...}, "seed": 0, "command": "...", "history": [...],
     "test_accuracy": 0.97, "dataset_sha256": "...", "tensors_sha256": "..."}

``load`` rebuilds the architecture, checks that every tensor exists with the
shape and dtype the architecture needs, and checks ``tensors_sha256`` so a
file whose weights were altered after saving is rejected.

Legacy pickles (the seed notebook's ``(w1, b1, w2, b2)``) are read by
:func:`restricted_unpickle`, which admits only numpy arrays.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from math import prod
from pathlib import Path

import numpy as np

from . import __version__, model_check, safe_pickle
from .errors import DigitnetError
from .fsutil import atomic_write, open_regular
from .nn.layers import Dense, ReLU
from .nn.model import PIXEL_SCALE, Sequential

FORMAT_VERSION = 1
META_KEY = "digitnet"


def _tensors_sha256(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def model_metadata(model: Sequential) -> dict:
    """The JSON metadata saved with ``model``."""
    tensors = model.state_dict()
    meta = {
        "format": FORMAT_VERSION,
        "digitnet_version": __version__,
        "architecture": model.architecture(),
        "input_shape": list(model.input_shape),
        "dtype": model.dtype.name,
        "n_params": int(model.n_params),
        "classes": list(model.classes),
        "reject_class": model.reject_class,
        "preprocessing": {
            "pixel_scale": PIXEL_SCALE,
            "input": "28x28 grey, white digit on black, 0-255 scaled by pixel_scale",
        },
        "tensors_sha256": _tensors_sha256(tensors),
    }
    for k, v in model.meta.items():
        meta.setdefault(k, v)
    return meta


def dumps(model: Sequential, extra_tensors: dict | None = None, extra_meta: dict | None = None) -> bytes:
    from safetensors.numpy import save

    tensors = {k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}
    meta = model_metadata(model)
    if extra_meta:
        meta.update(extra_meta)
    if extra_tensors:
        tensors.update({k: np.ascontiguousarray(v) for k, v in extra_tensors.items()})
    return save(tensors, metadata={META_KEY: json.dumps(meta, separators=(",", ":"))})


def save(model: Sequential, path) -> Path:
    """Save ``model`` as a safetensors file (written atomically). Returns the path."""
    return atomic_write(path, dumps(model), "model")


def read_file(path, tensors: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """Read a safetensors file's tensors and digitnet metadata, with clear errors.

    The header and metadata are read and checked first (see
    :mod:`digitnet.model_check`); the tensor bytes are read only when they
    are exactly what the header describes. With ``tensors=False`` only the
    header is read and the tensors dict is empty.
    """
    path = Path(path)
    where = str(path)
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            n = _header_length(f.read(8), size, where)
            header_json = f.read(n)
            index, meta = _check(header_json, size - 8 - n, where)
            if not tensors:
                return {}, meta
            data = bytearray(size - 8 - n)
            if f.readinto(data) != len(data):
                raise DigitnetError(f"{where}: truncated model file (changed while being read?)")
    except IsADirectoryError:
        raise DigitnetError(f"{path}: is a directory, expected a model file") from None
    except OSError as exc:
        raise DigitnetError(f"cannot read model {path}: {exc.strerror}") from None
    return _tensors(data, index), meta


def parse_bytes(raw: bytes, where: str) -> tuple[dict[str, np.ndarray], dict]:
    """:func:`read_file` for the bytes of a model file."""
    n = _header_length(raw[:8], len(raw), where)
    index, meta = _check(raw[8 : 8 + n], len(raw) - 8 - n, where)
    return _tensors(bytearray(raw[8 + n :]), index), meta


def _header_length(first: bytes, size: int, where: str) -> int:
    if len(first) < 8 or size < 8:
        raise DigitnetError(f"{where}: not a model file (too short: {size} bytes)")
    n = int.from_bytes(first, "little")
    if n > size - 8:
        raise DigitnetError(
            f"{where}: truncated or not a safetensors model file (header claims {n} bytes, file has {size - 8})"
        )
    if n > model_check.MAX_HEADER_BYTES:
        raise DigitnetError(f"{where}: header of {n:,} bytes; at most {model_check.MAX_HEADER_BYTES:,} are read")
    return n


def _check(header_json: bytes, data_len: int, where: str) -> tuple[dict, dict]:
    """The checked tensor index and digitnet metadata of a header; nothing is allocated for tensors."""
    header = model_check.parse_json(header_json, where, "model file header")
    index = model_check.check_header(header, data_len, where)
    meta_json = header.get("__metadata__", {}).get(META_KEY)
    if meta_json is None:
        raise DigitnetError(f"{where}: a safetensors file without digitnet metadata")
    meta = model_check.parse_json(meta_json.encode("utf-8", "surrogatepass"), where, "the digitnet metadata")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise DigitnetError(f"{where}: unsupported model format {str(found)[:40]}")
    model_check.check_meta(meta, index, where)
    return index, meta


def _tensors(data: bytearray, index: dict) -> dict[str, np.ndarray]:
    """Arrays over ``data`` (no copies) for a checked index; little-endian as safetensors stores them."""
    return {
        name: np.frombuffer(data, dtype, prod(shape), start).reshape(shape)
        for name, (dtype, shape, start, _) in index.items()
    }


def from_parts(tensors: dict, meta: dict, where: str) -> Sequential:
    try:
        dtype = np.dtype(meta["dtype"])
        model = Sequential.from_architecture(meta["architecture"], tuple(meta["input_shape"]), dtype)
    except (KeyError, TypeError) as exc:
        raise DigitnetError(f"{where}: metadata is missing or has a bad {exc}") from None
    except DigitnetError as exc:
        raise DigitnetError(f"{where}: {exc}") from None
    shape = model.input_shape
    for i, layer in enumerate(model.layers):  # bounds the work of every later prediction, per image
        shape = layer.output_shape(shape)
        if prod(shape) > model_check.MAX_ACTIVATION:
            raise DigitnetError(
                f"{where}: layer {i} ({type(layer).__name__}) outputs {prod(shape):,} values per "
                f"image; at most {model_check.MAX_ACTIVATION:,} are accepted"
            )
    own = model.state_dict()
    weights = {k: v for k, v in tensors.items() if k in own or not k.startswith(("opt.", "best."))}
    for k, v in weights.items():
        if k in own and v.dtype != own[k].dtype:
            raise DigitnetError(f"{where}: tensor {k!r} is {v.dtype}, metadata says {dtype}")
    try:
        model.load_state_dict(weights)
    except DigitnetError as exc:
        raise DigitnetError(f"{where}: {exc}") from None
    if _tensors_sha256(model.state_dict()) != meta.get("tensors_sha256"):
        raise DigitnetError(f"{where}: tensors do not match the checksum in the metadata (file altered?)")
    classes = meta.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise DigitnetError(f'{where}: metadata "classes" must be a list of strings, got {classes!r:.80}')
    try:
        model.classes, model.reject_class = classes, meta.get("reject_class")
    except DigitnetError as exc:
        raise DigitnetError(f"{where}: {exc}") from None
    model.meta = {
        k: v
        for k, v in meta.items()
        if k not in ("format", "architecture", "input_shape", "dtype", "tensors_sha256", "classes", "reject_class")
    }
    return model


DEFAULT_MODEL = "reader"


def shipped_models() -> dict[str, Path]:
    """Models bundled with the package, by name (``seed``, ...)."""
    d = resources.files("digitnet") / "models"
    return {Path(str(p)).stem: Path(str(p)) for p in d.iterdir() if str(p).endswith(".safetensors")}


def resolve(name_or_path) -> Path:
    """A model path, or the name of a shipped model."""
    p = Path(name_or_path)
    if p.suffix or os.sep in str(name_or_path) or p.exists():
        return p
    shipped = shipped_models()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    raise DigitnetError(
        f"no model file or shipped model named {name_or_path!r}; shipped: {', '.join(sorted(shipped)) or 'none'}"
    )


def load(name_or_path=None) -> Sequential:
    """Load a model file (or a shipped model by name) and check it against its metadata.

    Without a name: the default reader (``DEFAULT_MODEL``), the shipped model that reads real handwriting best
    and answers "not a digit" for input that is none.
    """
    path = resolve(DEFAULT_MODEL if name_or_path is None else name_or_path)
    tensors, meta = read_file(path)
    return from_parts(tensors, meta, str(path))


def info(name_or_path=DEFAULT_MODEL) -> dict:
    """The metadata of a model file, checked against its header, without reading the tensors."""
    path = resolve(name_or_path)
    _, meta = read_file(path, tensors=False)
    return meta


# --------------------------------------------------------------------------- legacy pickles
# The seed notebook's network is 784-64-10; a pickle claiming a far wider one is refused before any
# model is built, and the pickle itself is read only up to what the widest accepted one needs.
MAX_PICKLE_HIDDEN = 4096
MAX_PICKLE_BYTES = 64 * 2**20  # 784 x 4096 float64 weights are 26 MB


def restricted_unpickle(data: bytes, where: str, max_array_bytes: int = MAX_PICKLE_BYTES):
    """Unpickle ``data`` admitting only plain numeric numpy arrays and containers (see :mod:`digitnet.safe_pickle`)."""
    return safe_pickle.loads(data, where, max_array_bytes)


def import_pickle(path) -> Sequential:
    """Convert the seed notebook's pickled ``(w1, b1, w2, b2)`` into a model.

    Weights may be stored as (784, 64) or (64, 784) (and (64, 10) or (10, 64));
    biases as (64,), (64, 1) or (1, 64).
    """
    from .data import open_bounded

    path = Path(path)
    reader, raw = open_bounded(path, MAX_PICKLE_BYTES, "the most a (w1, b1, w2, b2) pickle needs")
    with raw:
        obj = safe_pickle.load(reader, str(path), MAX_PICKLE_BYTES)
    if isinstance(obj, dict):
        keys = ("w1", "b1", "w2", "b2")
        if not all(k in obj for k in keys):
            raise DigitnetError(f"{path}: expected a (w1, b1, w2, b2) tuple or dict, found keys {sorted(obj)}")
        obj = tuple(obj[k] for k in keys)
    if not isinstance(obj, (tuple, list)) or len(obj) != 4 or not all(isinstance(a, np.ndarray) for a in obj):
        raise DigitnetError(f"{path}: expected a tuple of 4 numpy arrays (w1, b1, w2, b2), found {type(obj).__name__}")
    if not 1 <= obj[1].size <= MAX_PICKLE_HIDDEN:  # before any conversion allocates for it
        raise DigitnetError(f"{path}: hidden layer of {obj[1].size:,} units; 1 to {MAX_PICKLE_HIDDEN:,} are imported")
    w1, b1, w2, b2 = (np.asarray(a, np.float64) for a in obj)
    b1, b2 = b1.reshape(-1), b2.reshape(-1)
    hidden, n_out = b1.size, b2.size
    w1 = _orient(w1, (784, hidden), "w1", path)
    w2 = _orient(w2, (hidden, n_out), "w2", path)
    if n_out != 10:
        raise DigitnetError(f"{path}: output layer has {n_out} units, expected 10")
    if not all(np.isfinite(a).all() for a in (w1, b1, w2, b2)):
        raise DigitnetError(f"{path}: weights contain NaN or infinity")
    model = Sequential([Dense(784, hidden), ReLU(), Dense(hidden, n_out)], input_shape=(784,))
    model.load_state_dict({"0.W": w1, "0.b": b1, "2.W": w2, "2.b": b2})
    model.meta = {"imported_from": path.name, "command": f"digitnet import-pickle {path.name}"}
    return model


def _orient(w: np.ndarray, shape: tuple[int, int], name: str, path: Path) -> np.ndarray:
    if w.shape == shape:
        return w
    if w.shape == shape[::-1]:
        return w.T
    raise DigitnetError(f"{path}: {name} has shape {w.shape}, expected {shape} or {shape[::-1]}")
