"""Reading legacy pickles of numpy arrays without trusting them.

A pickle is a small program: it can name any importable callable
(``os.system``, ``numpy.ndarray`` with a foreign buffer and zero strides, ...)
and have it called with arguments of its choosing. :func:`loads` runs that
program with no real callable at all. The few names numpy's own array
pickling uses are mapped to stand-ins here that only *record* their
arguments; after the pickle has been read, each recorded array is checked
and built by this module:

* only plain numeric dtypes (bool, signed and unsigned integers, floats),
  never object, structured, string or datetime ones;
* the bytes in the file must be exactly ``prod(shape) * itemsize`` long, and
  the array is made from them C-contiguous (``np.frombuffer`` + ``reshape``);
  no strides, offsets or buffers are taken from the file;
* each array may hold at most ``max_array_bytes``, and the containers around
  them (tuples, lists, dicts) may nest only ``MAX_DEPTH`` deep.

Anything else in the file (another global, a persistent id, an out-of-band
buffer, a malformed stream) is refused with a :class:`DigitnetError`.
The pickle's own size bounds everything else it can build: every object on
the unpickler's stack comes from at least one byte of the file.
"""

from __future__ import annotations

import io
import pickle
from math import prod

import numpy as np

from .errors import DigitnetError

MAX_ARRAY_BYTES = 256 * 2**20  # a float32 MNIST training set is 188 MB
MAX_DEPTH = 16  # tuples of tuples of arrays: MNIST pickles nest 2 deep
MAX_NDIM = 8

# Plain numeric dtypes, by kind and item size: nothing that holds Python objects, fields or sub-arrays.
_PLAIN = {
    ("b", 1),
    ("u", 1),
    ("u", 2),
    ("u", 4),
    ("u", 8),
    ("i", 1),
    ("i", 2),
    ("i", 4),
    ("i", 8),
    ("f", 2),
    ("f", 4),
    ("f", 8),
}


class Refused(pickle.UnpicklingError):
    """The pickle asks for something this reader does not build."""


class _Marker:
    """Stands in for ``numpy.ndarray`` (the class argument of ``_reconstruct``); calling it is refused."""

    def __call__(self, *args, **kwargs):
        raise Refused("refusing to call numpy.ndarray (foreign buffers and strides are never used)")

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _Marker()


def _plain_dtype(code) -> np.dtype:
    if not isinstance(code, str) or len(code) > 4:
        raise Refused(f"dtype {str(code)[:20]!r} is not a plain numeric type")
    try:
        dt = np.dtype(code)
    except TypeError:
        raise Refused(f"unknown dtype {code[:20]!r}") from None
    if (dt.kind, dt.itemsize) not in _PLAIN or dt.fields is not None or dt.subdtype is not None:
        raise Refused(f"dtype {dt} is not a plain numeric type (only bool, integers and floats are read)")
    return dt


class _Dtype:
    """Records ``numpy.dtype(code, align, copy)`` and its byte order from the state that follows."""

    def __init__(self, code, align=False, copy=False) -> None:
        self.dtype = _plain_dtype(code)

    def __setstate__(self, state) -> None:
        # numpy's state: (version, byte order, subarray, names, fields, elsize, alignment, flags)
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise Refused("malformed dtype state")
        if any(s is not None for s in state[2:5]):
            raise Refused("structured or sub-array dtypes are not read")
        if state[1] in "<>":
            self.dtype = self.dtype.newbyteorder(state[1])


class _Array:
    """Records ``_reconstruct(ndarray, shape, typecode)`` + its state ``(version, shape, dtype, fortran, bytes)``."""

    def __init__(self, cls, shape=None, typecode=None) -> None:
        if cls is not _NDARRAY:
            raise Refused("_reconstruct of something other than numpy.ndarray")
        self.parts: tuple | None = None

    def __setstate__(self, state) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise Refused("malformed array state")
        shape, dtype, fortran, data = state[-4:]
        self.parts = (shape, dtype, bool(fortran), data)


class _FromBuffer:
    """Records ``_frombuffer(buffer, dtype, shape, order)`` (protocol-5 pickles, in-band buffers)."""

    def __init__(self, buf, dtype, shape, order) -> None:
        self.parts = (shape, dtype, order == "F", buf)


class _Scalar:
    """Records ``scalar(dtype, bytes)``: a numpy scalar such as ``np.float32(0.5)``."""

    def __init__(self, dtype, data=None) -> None:
        self.parts = ((), dtype, False, data)


def _encode(text, encoding="latin1"):
    """``_codecs.encode``: how protocol-2 pickles spell bytes; only latin-1 of a string."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Refused("_codecs.encode of something other than a latin-1 string")
    return text.encode("latin1")


_GLOBALS = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Dtype,
    ("numpy.core.multiarray", "_reconstruct"): _Array,
    ("numpy._core.multiarray", "_reconstruct"): _Array,
    ("numpy.core.multiarray", "scalar"): _Scalar,
    ("numpy._core.multiarray", "scalar"): _Scalar,
    ("numpy.core.numeric", "_frombuffer"): _FromBuffer,
    ("numpy._core.numeric", "_frombuffer"): _FromBuffer,
    ("_codecs", "encode"): _encode,
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise Refused(f"refusing to load {str(module)[:60]}.{str(name)[:60]}") from None

    def persistent_load(self, pid):
        raise Refused("refusing persistent ids")


def _build(parts, max_bytes: int) -> np.ndarray:
    shape, dtype, fortran, data = parts
    if isinstance(dtype, _Dtype):
        dtype = dtype.dtype
    elif isinstance(dtype, str):
        dtype = _plain_dtype(dtype)
    else:
        raise Refused("array without a plain dtype")
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, tuple) or len(shape) > MAX_NDIM or not all(type(d) is int and 0 <= d for d in shape):
        raise Refused(f"bad array shape {str(shape)[:60]}")
    if isinstance(data, str):  # protocol 0/1 spell bytes as latin-1 text
        data = data.encode("latin1")
    if not isinstance(data, (bytes, bytearray)):
        raise Refused("array data that is not bytes")
    need = prod(shape) * dtype.itemsize
    if need > max_bytes:
        raise Refused(f"array of shape {shape} ({need:,} bytes) is larger than the {max_bytes:,} bytes allowed")
    if len(data) != need:
        raise Refused(f"array of shape {shape} and dtype {dtype} needs {need:,} bytes, the file holds {len(data):,}")
    flat = np.frombuffer(bytes(data) if isinstance(data, bytearray) else data, dtype)
    if fortran:  # the bytes are in column order: one C-order copy
        return flat.reshape(shape[::-1]).T.copy()
    return flat.reshape(shape)


def _resolve(obj, max_bytes: int, depth: int = 0):
    """Replace every recorded array in ``obj`` by the checked array."""
    if depth > MAX_DEPTH:
        raise Refused(f"containers nested deeper than {MAX_DEPTH} levels")
    if isinstance(obj, (_Array, _FromBuffer, _Scalar)):
        if obj.parts is None:
            raise Refused("array without its data")
        a = _build(obj.parts, max_bytes)
        return a[()] if isinstance(obj, _Scalar) else a
    if isinstance(obj, (_Dtype, _Marker)) or callable(obj):
        raise Refused("a dtype or class on its own, not an array")
    if isinstance(obj, tuple):
        return tuple(_resolve(v, max_bytes, depth + 1) for v in obj)
    if isinstance(obj, list):
        return [_resolve(v, max_bytes, depth + 1) for v in obj]
    if isinstance(obj, dict):
        return {_resolve(k, max_bytes, depth + 1): _resolve(v, max_bytes, depth + 1) for k, v in obj.items()}
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return obj
    raise Refused(f"a {type(obj).__name__} object")


def load(file, where: str, max_array_bytes: int = MAX_ARRAY_BYTES):
    """Read a pickle of numpy arrays in plain containers from ``file``; refuse everything else.

    Parameters
    ----------
    file : binary file-like with ``read`` and ``readline``
        Bounded by the caller (see :class:`digitnet.data.BoundedReader`): the
        pickle's size bounds everything it can build besides its arrays.
    where : str
        Names the file in error messages.
    max_array_bytes : int
        The largest single array accepted.

    Returns
    -------
    The unpickled object, with C-contiguous numpy arrays of plain numeric dtypes.
    """
    first = file.peek(1)[:1] if hasattr(file, "peek") else b""
    if first and first[0] > pickle.PROTO[0]:
        # opcodes above PROTO exist only in protocol 2 and later, which begin with PROTO: not a pickle at all
        # (a PNG's first byte reads as NEWFALSE, and its "PNG" as a persistent id)
        raise DigitnetError(f"{where}: not a pickle file (it begins with byte 0x{first[0]:02x})")
    try:
        obj = _Unpickler(file, encoding="latin1").load()
        return _resolve(obj, max_array_bytes)
    except DigitnetError:
        raise  # from the file itself (too large, corrupt gzip)
    except Refused as exc:
        raise DigitnetError(f"{where}: unsafe pickle: {exc}") from None
    except RecursionError:
        raise DigitnetError(f"{where}: unsafe pickle: nested too deeply") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        ImportError,
        OverflowError,
        UnicodeDecodeError,
    ) as exc:
        raise DigitnetError(f"{where}: not a readable pickle ({type(exc).__name__}: {str(exc)[:120]})") from None


def loads(data: bytes, where: str, max_array_bytes: int = MAX_ARRAY_BYTES):
    """:func:`load` from bytes."""
    return load(io.BufferedReader(io.BytesIO(data)), where, max_array_bytes)  # peek: opcodes parsed in C


__all__ = ["MAX_ARRAY_BYTES", "Refused", "load", "loads"]
