"""Checks on a model file's header and metadata, made before anything is allocated or built.

A safetensors header is JSON that says which tensors follow, their dtypes,
shapes and byte ranges; digitnet's metadata (JSON inside that JSON) says
which layers to build. Both come from the file, so both are checked here
against each other and against the bytes actually present:

* the header may be at most ``MAX_HEADER_BYTES`` long (checked before it is
  read) and its JSON may nest at most ``MAX_JSON_DEPTH`` deep;
* every tensor has a supported dtype (``F32``, ``F64``, ``I64``), a shape of
  non-negative integers, and a byte range of exactly ``prod(shape) * itemsize``
  bytes; the ranges tile the data section with no gap, overlap or excess;
* the architecture is a list of known layer types whose settings are plain
  numbers, strings or booleans in range; the parameter tensors each layer
  needs (worked out from its settings, without building it) are exactly the
  ones present, with the right shapes and dtype, and their total is at most
  ``MAX_PARAMS``.

Only then does :mod:`digitnet.io` build the model.
"""

from __future__ import annotations

import json
from math import prod

import numpy as np

from .errors import DigitnetError

MAX_HEADER_BYTES = 2**20  # the shipped models' metadata is under 5 kB
MAX_JSON_DEPTH = 32
MAX_LAYERS = 256
MAX_PARAMS = 20_000_000  # 80 MB of float32; the largest preset has under a million
MAX_INPUT = 4096  # per-sample input values; MNIST has 784
MAX_ACTIVATION = 1 << 20  # values one layer outputs per image; cnn-large's widest is 25,088
MAX_NDIM = 8
DTYPES: dict[str, np.dtype] = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8")}
MODEL_DTYPES = {"float32": "F32", "float64": "F64"}
# Tensors a file may carry beside the weights: a checkpoint's optimizer state and best weights.
EXTRA_PREFIXES = ("opt.", "best.", "rng.")


def parse_json(text: bytes, where: str, what: str):
    """Parse JSON from the file; refuse it when it nests deeper than ``MAX_JSON_DEPTH``.

    The JSON parser stops at the interpreter's recursion limit with a
    ``RecursionError``; what it returns is then walked without recursion.
    """
    try:
        obj = json.loads(text)
    except RecursionError:
        obj = None
        deep = True
    except ValueError:
        raise DigitnetError(f"{where}: {what} is not valid JSON") from None
    else:
        deep = _depth(obj) > MAX_JSON_DEPTH
    if deep:
        raise DigitnetError(f"{where}: {what} nests more than {MAX_JSON_DEPTH} levels deep; refused")
    return obj


def _depth(obj) -> int:
    deepest, stack = 0, [(obj, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            deepest = max(deepest, d)
            if d <= MAX_JSON_DEPTH:
                stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _shape(v) -> bool:
    return isinstance(v, list) and len(v) <= MAX_NDIM and all(type(d) is int and d >= 0 for d in v)


def check_header(header, data_len: int, where: str) -> dict[str, tuple[np.dtype, tuple, int, int]]:
    """The tensor index of a parsed safetensors header: name -> (dtype, shape, start, end), all checked."""
    if not isinstance(header, dict):
        raise DigitnetError(f"{where}: corrupt model file (the header is not a JSON object)")
    index = {}
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise DigitnetError(f"{where}: corrupt model file (__metadata__ must map strings to strings)")
            continue
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("dtype"), str)
            or not _shape(entry.get("shape"))
            or not isinstance(entry.get("data_offsets"), list)
            or len(entry["data_offsets"]) != 2
            or not all(type(o) is int for o in entry["data_offsets"])
        ):
            raise DigitnetError(f"{where}: corrupt model file (bad entry for tensor {name[:40]!r})")
        dtype = DTYPES.get(entry["dtype"])
        if dtype is None:
            raise DigitnetError(
                f"{where}: tensor {name[:40]!r} has dtype {entry['dtype'][:10]}; digitnet reads {', '.join(DTYPES)}"
            )
        start, end = entry["data_offsets"]
        shape = tuple(entry["shape"])
        if end - start != prod(shape) * dtype.itemsize:
            raise DigitnetError(
                f"{where}: corrupt model file (tensor {name[:40]!r} of shape {shape} needs "
                f"{prod(shape) * dtype.itemsize:,} bytes, its range holds {end - start:,})"
            )
        index[name] = (dtype, shape, start, end)
    pos = 0
    for name, (_, _, start, end) in sorted(index.items(), key=lambda kv: kv[1][2:]):
        if start != pos:
            raise DigitnetError(
                f"{where}: corrupt model file (tensor byte ranges overlap or leave gaps at {name[:40]!r})"
            )
        pos = end
    if pos != data_len:
        raise DigitnetError(
            f"{where}: corrupt model file (tensors cover {pos:,} bytes, the file holds {data_len:,} after its header)"
        )
    return index


def _int(cfg: dict, key: str, i: int, layer: str, lo: int = 1, default=None) -> int:
    v = cfg.get(key, default)
    if type(v) is not int or v < lo:
        raise DigitnetError(f"layer {i} ({layer}): {key} must be an integer >= {lo}, got {str(v)[:20]}")
    return v


def param_shapes(arch: list, where: str) -> dict[str, tuple]:
    """The tensors each layer of ``arch`` needs, by name, worked out from its settings alone."""
    from .nn.layers import LAYERS

    if not isinstance(arch, list) or not 0 < len(arch) <= MAX_LAYERS:
        raise DigitnetError(f"{where}: metadata architecture must be a list of 1-{MAX_LAYERS} layers")
    shapes: dict[str, tuple] = {}
    try:
        for i, entry in enumerate(arch):
            if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
                raise DigitnetError(f"layer {i} is not a {{'type': ...}} object")
            kind = entry["type"]
            if kind not in LAYERS:
                raise DigitnetError(f"layer {i}: unknown layer type {kind[:40]!r}")
            for k, v in entry.items():
                if v is not None and type(v) not in (int, float, str, bool):
                    raise DigitnetError(f"layer {i} ({kind}): setting {k[:40]!r} must be a number or a string")
                if type(v) is float and not np.isfinite(v):
                    raise DigitnetError(f"layer {i} ({kind}): setting {k[:40]!r} is {v}")
            if kind == "Dense":
                n_in, n_out = _int(entry, "in_features", i, kind), _int(entry, "out_features", i, kind)
                shapes.update({f"{i}.W": (n_in, n_out), f"{i}.b": (n_out,)})
            elif kind == "Conv2D":
                c_in, c_out = _int(entry, "in_channels", i, kind), _int(entry, "out_channels", i, kind)
                k = _int(entry, "kernel_size", i, kind)
                shapes.update({f"{i}.W": (c_out, c_in, k, k), f"{i}.b": (c_out,)})
            elif kind in ("BatchNorm1D", "BatchNorm2D"):
                n = _int(entry, "num_features", i, kind)
                shapes.update({f"{i}.{k}": (n,) for k in ("gamma", "beta", "running_mean", "running_var")})
            total = sum(prod(s) for s in shapes.values())
            if total > MAX_PARAMS:
                raise DigitnetError(
                    f"the architecture needs more than {MAX_PARAMS:,} parameters (layer {i} reaches {total:,}); refused"
                )
    except DigitnetError as exc:
        raise DigitnetError(f"{where}: {exc}") from None
    return shapes


def check_meta(meta, index: dict, where: str) -> None:
    """Check digitnet's metadata against the tensors in ``index`` before the model is built."""
    if not isinstance(meta.get("dtype"), str) or meta["dtype"] not in MODEL_DTYPES:
        raise DigitnetError(f"{where}: metadata dtype must be float32 or float64, got {str(meta.get('dtype'))[:20]}")
    shape = meta.get("input_shape")
    if not _shape(shape) or not 1 <= len(shape) <= 3 or min(shape) < 1 or prod(shape) > MAX_INPUT:
        raise DigitnetError(
            f"{where}: metadata input_shape must be 1-3 positive sizes of at most {MAX_INPUT:,} "
            f"values, got {str(shape)[:40]}"
        )
    if not isinstance(meta.get("tensors_sha256"), str):
        raise DigitnetError(f"{where}: metadata has no tensors_sha256 checksum")
    for key, kind in (("history", list), ("train_config", dict), ("preprocessing", dict), ("blas", dict)):
        if key in meta and not isinstance(meta[key], kind):
            raise DigitnetError(f"{where}: metadata {key} must be a JSON {'list' if kind is list else 'object'}")
    if not all(isinstance(e, dict) for e in meta.get("history", [])):
        raise DigitnetError(f"{where}: metadata history must be a list of objects")
    for key in ("test_accuracy", "n_params", "seed"):
        if key in meta and (type(meta[key]) not in (int, float) or not np.isfinite(meta[key])):
            raise DigitnetError(f"{where}: metadata {key} must be a number")
    need = param_shapes(meta.get("architecture"), where)
    dtype = DTYPES[MODEL_DTYPES[meta["dtype"]]]
    # Weights: everything except a checkpoint's extra state. Parameters of layer types this module
    # does not know are checked when the built model loads them.
    weights = {k: v for k, v in index.items() if k in need or not k.startswith(EXTRA_PREFIXES)}
    missing = sorted(need.keys() - weights.keys())
    if missing:
        raise DigitnetError(f"{where}: tensors missing for the architecture: {', '.join(missing[:6])}")
    arch = meta["architecture"]
    extra = sorted(k for k in weights if k not in need and not _unknown_layer_tensor(k, arch))
    if extra:
        raise DigitnetError(f"{where}: tensors the architecture does not use: {', '.join(x[:40] for x in extra[:6])}")
    for k, shp in need.items():
        t_dtype, t_shape = index[k][:2]
        if t_shape != shp:
            raise DigitnetError(f"{where}: tensor {k!r} has shape {t_shape}, the architecture needs {shp}")
        if t_dtype != dtype:
            raise DigitnetError(f"{where}: tensor {k!r} is {t_dtype}, metadata says {meta['dtype']}")
    n_params = sum(prod(index[k][1]) for k in weights)
    if n_params > MAX_PARAMS:
        raise DigitnetError(f"{where}: {n_params:,} parameters; at most {MAX_PARAMS:,} are loaded")
    # A checkpoint also holds optimizer state (Adam: two arrays per parameter) and the best weights.
    n_values = sum(prod(shape) for _, shape, _, _ in index.values())
    if n_values > 4 * MAX_PARAMS:
        raise DigitnetError(f"{where}: {n_values:,} tensor values; at most {4 * MAX_PARAMS:,} are read")


def _unknown_layer_tensor(name: str, arch: list) -> bool:
    """Whether ``name`` belongs to a layer whose tensors :func:`param_shapes` does not work out."""
    layer = name.split(".")[0]
    return layer.isdigit() and int(layer) < len(arch) and arch[int(layer)]["type"] not in _WITH_PARAMS


_WITH_PARAMS = ("Dense", "Conv2D", "BatchNorm1D", "BatchNorm2D")
