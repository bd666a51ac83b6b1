"""Fuzzing: mutated files of every kind digitnet reads give a valid result or one DigitnetError.

Each strategy starts from a small valid file (IDX raw and gzip'd, npz, CSV, the classic pickle,
model files as bytes and as header JSON, legacy weight pickles, images in six formats) and
changes bytes, cuts it short or inserts bytes; model metadata is also mutated as JSON. The
only thing asserted is the contract: a valid result or a DigitnetError with a one-line message,
within a memory budget (tracemalloc) and without hanging. Examples are derandomized, so a run
is repeatable, and few per target, so the whole module stays well under a minute.
"""

import gzip
import io as _io
import json
import os
import pickle
import struct

import numpy as np
import pytest
from helpers import within_budget
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import digitnet
from digitnet import data, io
from digitnet.nn import MLP, build

# DIGITNET_FUZZ_EXAMPLES=1000 runs a longer campaign; the default keeps the suite fast.
FUZZ = settings(max_examples=int(os.environ.get("DIGITNET_FUZZ_EXAMPLES", "30")), deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
BUDGET_MB = 64


@st.composite
def mutated(draw, valid: bytes):
    """``valid`` with a few bytes changed, a short run inserted, and perhaps cut short."""
    b = bytearray(valid)
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(b) - 1))
        b[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        i = draw(st.integers(0, len(b)))
        b[i:i] = draw(st.binary(min_size=1, max_size=16))
    if draw(st.integers(0, 4)) == 0:
        b = b[:draw(st.integers(0, len(b)))]
    return bytes(b)


def _idx(a, magic):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in a.shape) + a.tobytes()


@pytest.fixture(scope="module")
def samples(mnist):
    tr = mnist.train.subset(slice(0, 12))
    images, labels = tr.images, tr.labels
    out = {"idx_images": _idx(images, 0x803), "idx_labels": _idx(labels, 0x801)}
    out["idx_images_gz"] = gzip.compress(out["idx_images"])
    buf = _io.BytesIO()
    np.savez(buf, x_train=images, y_train=labels, x_test=images[:4], y_test=labels[:4])
    out["npz"] = buf.getvalue()
    buf = _io.BytesIO()
    np.savez_compressed(buf, x_train=images, y_train=labels)
    out["npz_compressed"] = buf.getvalue()
    rows = [",".join(map(str, [int(lab), *img.ravel()])) for img, lab in zip(images[:4], labels[:4])]
    out["csv"] = ("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n" + "\n".join(rows) + "\n").encode()
    x = images.reshape(len(images), -1).astype(np.float32) / 256
    part = (x[:4], labels[:4].astype(np.int64))
    out["pickle"] = pickle.dumps((part, part, part), protocol=2)
    out["pickle_gz"] = gzip.compress(pickle.dumps((part, part, part), protocol=4))
    m = MLP((8,), seed=0)
    out["weights_pickle"] = pickle.dumps(tuple(m.params[k] for k in ("0.W", "0.b", "2.W", "2.b")), protocol=2)
    out["model"] = io.dumps(m)
    out["model_cnn"] = io.dumps(build("conv2k3-pool2-bn-relu-fc10", seed=0))
    return out


def _write(tmp_path, name, raw):
    p = tmp_path / name
    p.write_bytes(raw)
    return p


def _check_dataset(m):
    for ds in (m.train, m.test):
        if ds is not None:
            assert ds.images.dtype == np.uint8 and ds.images.shape[1:] == (28, 28)
            assert ds.labels is None or (ds.labels.dtype == np.uint8 and len(ds.labels) == len(ds.images))


def _fuzz_loader(tmp_path, name, raw):
    outcome, value = within_budget(digitnet.load_mnist, _write(tmp_path, name, raw), max_mb=BUDGET_MB)
    if outcome == "ok":
        _check_dataset(value)


LAYOUTS = {"idx_images": "train-images-idx3-ubyte", "idx_images_gz": "train-images-idx3-ubyte.gz",
           "npz": "mnist.npz", "npz_compressed": "mnist.npz", "csv": "mnist_train.csv",
           "pickle": "mnist.pkl", "pickle_gz": "mnist.pkl.gz"}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_data_layouts(layout, samples, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(layout)

    @FUZZ
    @given(raw=mutated(samples[layout]))
    def fuzz(raw):
        _fuzz_loader(tmp, LAYOUTS[layout], raw)
    fuzz()


def test_idx_labels(samples, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("labels")
    images = _write(tmp, "train-images-idx3-ubyte", samples["idx_images"])

    @FUZZ
    @given(raw=mutated(samples["idx_labels"]))
    def fuzz(raw):
        labels = _write(tmp, "train-labels-idx1-ubyte", raw)
        outcome, value = within_budget(data.load_idx, images, labels, max_mb=BUDGET_MB)
        if outcome == "ok":
            assert len(value.labels) == len(value.images)
    fuzz()


def _fuzz_model_file(path):
    outcome, _ = within_budget(digitnet.info, path, max_mb=BUDGET_MB)
    outcome_load, model = within_budget(digitnet.load, path, max_mb=BUDGET_MB)
    if outcome_load == "ok":
        assert outcome == "ok"
        proba = model.predict_proba(np.zeros((2, 28, 28), np.uint8))
        assert proba.shape[0] == 2


@pytest.mark.parametrize("which", ["model", "model_cnn"])
def test_model_file_bytes(which, samples, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(which)

    @FUZZ
    @given(raw=mutated(samples[which]))
    def fuzz(raw):
        _fuzz_model_file(_write(tmp, "m.safetensors", raw))
    fuzz()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _replace(obj, path, value):
    if not path:
        return value
    obj[path[0]] = _replace(obj[path[0]], path[1:], value)
    return obj


@pytest.mark.parametrize("which", ["model", "model_cnn"])
def test_model_header_json(which, samples, tmp_path_factory):
    """Replace any value of the safetensors header or of digitnet's metadata with arbitrary JSON."""
    tmp = tmp_path_factory.mktemp(which + "_json")
    raw = samples[which]
    n = struct.unpack("<Q", raw[:8])[0]
    header, body = json.loads(raw[8:8 + n]), raw[8 + n:]
    meta = json.loads(header["__metadata__"]["digitnet"])
    header_paths, meta_paths = list(_paths(header)), list(_paths(meta))

    @FUZZ
    @given(in_meta=st.booleans(), index=st.integers(0, 10**6), value=json_values)
    def fuzz(in_meta, index, value):
        h, m = json.loads(json.dumps(header)), json.loads(json.dumps(meta))
        if in_meta:
            m = _replace(m, meta_paths[index % len(meta_paths)], value)
            h["__metadata__"]["digitnet"] = json.dumps(m)
        else:
            h = _replace(h, header_paths[index % len(header_paths)], value)
        text = json.dumps(h).encode()
        _fuzz_model_file(_write(tmp, "m.safetensors", struct.pack("<Q", len(text)) + text + body))
    fuzz()


def test_legacy_weight_pickles(samples, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("weights")

    @FUZZ
    @given(raw=mutated(samples["weights_pickle"]))
    def fuzz(raw):
        outcome, model = within_budget(io.import_pickle, _write(tmp, "w.pkl", raw), max_mb=BUDGET_MB)
        if outcome == "ok":
            assert model.predict(np.zeros((1, 784), np.uint8)).shape == (1,)
    fuzz()


def _image(fmt, **kw):
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (40, 32), "white")
    ImageDraw.Draw(img).line([(20, 4), (20, 28)], fill="black", width=4)
    buf = _io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


IMAGES = {"png": ("PNG", {}), "jpeg": ("JPEG", {}), "jpeg_progressive": ("JPEG", {"progressive": True}),
          "gif": ("GIF", {}), "tiff": ("TIFF", {"compression": "tiff_deflate"}), "bmp": ("BMP", {}),
          "webp": ("WEBP", {})}


@pytest.mark.parametrize("kind", IMAGES)
def test_images(kind):
    from digitnet.preprocess import open_image, to_mnist
    fmt, kw = IMAGES[kind]
    valid = _image(fmt, **kw)

    def read(raw):
        return to_mnist(open_image(raw))

    @FUZZ
    @given(raw=mutated(valid))
    def fuzz(raw):
        outcome, digit = within_budget(read, raw, max_mb=BUDGET_MB)
        if outcome == "ok":
            assert digit.shape == (28, 28) and digit.dtype == np.uint8
    fuzz()
