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
import io
import json
import os
import pickle
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from . import __version__
from .errors import DigitnetError
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


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); give it the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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
        "preprocessing": {"pixel_scale": PIXEL_SCALE,
                          "input": "28x28 grey, white digit on black, 0-255 scaled by pixel_scale"},
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
    path = Path(path)
    _atomic_write(path, dumps(model))
    return path


def read_file(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a safetensors file's tensors and digitnet metadata, with clear errors."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise DigitnetError(f"{path}: is a directory, expected a model file") from None
    except OSError as exc:
        raise DigitnetError(f"cannot read model {path}: {exc.strerror}") from None
    return parse_bytes(raw, str(path))


def parse_bytes(raw: bytes, where: str) -> tuple[dict[str, np.ndarray], dict]:
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load
    if len(raw) < 8:
        raise DigitnetError(f"{where}: not a model file (too short: {len(raw)} bytes)")
    n = int.from_bytes(raw[:8], "little")
    if n > len(raw) - 8:
        raise DigitnetError(f"{where}: truncated or not a safetensors model file "
                            f"(header claims {n} bytes, file has {len(raw) - 8})")
    try:
        header = json.loads(raw[8:8 + n])
        meta_json = header.get("__metadata__", {}).get(META_KEY)
        tensors = st_load(raw)
    except (SafetensorError, ValueError, AttributeError, UnicodeDecodeError) as exc:
        raise DigitnetError(f"{where}: corrupt model file ({str(exc).splitlines()[0][:120]})") from None
    if meta_json is None:
        raise DigitnetError(f"{where}: a safetensors file without digitnet metadata")
    try:
        meta = json.loads(meta_json)
    except ValueError:
        raise DigitnetError(f"{where}: the digitnet metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise DigitnetError(f"{where}: unsupported model format {meta.get('format') if isinstance(meta, dict) else meta!r}")
    return tensors, meta


def from_parts(tensors: dict, meta: dict, where: str) -> Sequential:
    try:
        dtype = np.dtype(meta["dtype"])
        model = Sequential.from_architecture(meta["architecture"], tuple(meta["input_shape"]), dtype)
    except (KeyError, TypeError) as exc:
        raise DigitnetError(f"{where}: metadata is missing or has a bad {exc}") from None
    except DigitnetError as exc:
        raise DigitnetError(f"{where}: {exc}") from None
    own = model.state_dict()
    weights = {k: v for k, v in tensors.items() if k in own or not k.startswith(("opt.", "rng.", "best."))}
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
        raise DigitnetError(f"{where}: metadata \"classes\" must be a list of strings, got {classes!r:.80}")
    try:
        model.classes, model.reject_class = classes, meta.get("reject_class")
    except DigitnetError as exc:
        raise DigitnetError(f"{where}: {exc}") from None
    model.meta = {k: v for k, v in meta.items()
                  if k not in ("format", "architecture", "input_shape", "dtype", "tensors_sha256",
                               "classes", "reject_class")}
    return model


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
    raise DigitnetError(f"no model file or shipped model named {name_or_path!r}; "
                        f"shipped: {', '.join(sorted(shipped)) or 'none'}")


def load(name_or_path="seed") -> Sequential:
    """Load a model file (or a shipped model by name) and check it against its metadata."""
    path = resolve(name_or_path)
    tensors, meta = read_file(path)
    return from_parts(tensors, meta, str(path))


def info(name_or_path="seed") -> dict:
    """The metadata of a model file, without building the model."""
    path = resolve(name_or_path)
    _, meta = read_file(path)
    return meta


# --------------------------------------------------------------------------- legacy pickles
class _Refused(pickle.UnpicklingError):
    """The pickle names something other than a numpy array."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds numpy arrays, tuples, lists, dicts and numbers; refuses every other global.

    A pickle can name any importable callable (``os.system``, ``subprocess.Popen``,
    ``builtins.eval`` ...) and have it called on load. Only the few functions
    numpy's own array pickling uses are admitted here, so a hostile file fails
    before anything it names is imported or called.
    """

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how protocol-2 pickles spell bytes
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise _Refused(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        raise _Refused("refusing persistent ids")


def restricted_unpickle(data: bytes, where: str):
    """Unpickle ``data`` admitting only numpy arrays and plain containers."""
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except _Refused as exc:
        raise DigitnetError(f"{where}: unsafe pickle: {exc} (only numpy arrays are allowed)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError,
            ImportError, OverflowError) as exc:
        raise DigitnetError(f"{where}: not a readable pickle ({type(exc).__name__}: {exc})"[:300]) from None


def import_pickle(path) -> Sequential:
    """Convert the seed notebook's pickled ``(w1, b1, w2, b2)`` into a model.

    Weights may be stored as (784, 64) or (64, 784) (and (64, 10) or (10, 64));
    biases as (64,), (64, 1) or (1, 64).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DigitnetError(f"cannot read {path}: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        import gzip
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DigitnetError(f"{path}: corrupt gzip data ({exc})") from None
    obj = restricted_unpickle(raw, str(path))
    if isinstance(obj, dict):
        keys = ("w1", "b1", "w2", "b2")
        if not all(k in obj for k in keys):
            raise DigitnetError(f"{path}: expected a (w1, b1, w2, b2) tuple or dict, found keys {sorted(obj)}")
        obj = tuple(obj[k] for k in keys)
    if not isinstance(obj, (tuple, list)) or len(obj) != 4 or \
            not all(isinstance(a, np.ndarray) for a in obj):
        raise DigitnetError(f"{path}: expected a tuple of 4 numpy arrays (w1, b1, w2, b2), "
                            f"found {type(obj).__name__}")
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
