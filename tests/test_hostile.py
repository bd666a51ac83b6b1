"""Hostile files, one test each: refused with one line, quickly, and without allocating much.

Each file is small on disk but lies (a header, a stride, a scan count, a nesting depth) so that a
reader that trusted it would hang or allocate gigabytes. ``within_budget`` fails the test on a
traceback, on a peak allocation above its budget, and on a hang.
"""

import gzip
import io as _io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
from helpers import run, within_budget

import digitnet
from digitnet import io
from digitnet.data import load_mnist
from digitnet.nn import MLP
from digitnet.preprocess import open_image, to_mnist


def idx_header(n, kind="images"):
    return (struct.pack(">IIII", 0x803, n, 28, 28) if kind == "images" else struct.pack(">II", 0x801, n))


def refused(fn, *args, match=None, max_mb=64):
    outcome, value = within_budget(fn, *args, max_mb=max_mb)
    assert outcome == "refused", f"accepted: {value!r}"[:200]
    if match:
        assert match in str(value), str(value)
    return value


# --------------------------------------------------------------------------- data loaders
class ZeroStride:
    """Unpickles as numpy.ndarray(shape, dtype, buffer, offset, strides): 78 GB of views of one byte."""

    def __reduce__(self):
        return (np.ndarray, ((100_000_000, 784), np.dtype(np.uint8), b"\0", 0, (0, 0)))


def test_zero_stride_ndarray_pickle(tmp_path):
    p = tmp_path / "mnist.pkl"
    p.write_bytes(pickle.dumps(((ZeroStride(), ZeroStride()),) * 3, protocol=2))
    refused(load_mnist, p, match="refusing to call numpy.ndarray")
    w = tmp_path / "w.pkl"
    w.write_bytes(pickle.dumps((ZeroStride(),) * 4, protocol=2))
    refused(io.import_pickle, w, match="refusing to call numpy.ndarray")


class Short:
    """numpy's own array pickling (``_reconstruct`` + state), claiming 10,000 rows over 100 bytes of data."""

    def __reduce__(self):
        reconstruct = np.zeros(1).__reduce__()[0]
        return (reconstruct, (np.ndarray, (0,), b"b"), (1, (10_000, 784), np.dtype(np.uint8), False, bytes(100)))


def test_pickled_array_shorter_than_its_shape(tmp_path):
    p = tmp_path / "mnist.pkl"
    p.write_bytes(pickle.dumps(((Short(), Short()),) * 3, protocol=2))
    refused(load_mnist, p, match="needs 7,840,000 bytes, the file holds 100", max_mb=16)


@pytest.mark.parametrize("claimed, present", [(250_000, 100), (10, 60_000), (4_000_000_000, 10)])
def test_gzip_idx_with_lying_header(tmp_path, claimed, present):
    """Header and data disagree: neither the claim nor the inflated data is allocated."""
    p = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(p, "wb", compresslevel=1) as f:
        f.write(idx_header(claimed))
        zeros = bytes(784 * 1000)
        for _ in range(present // 1000):
            f.write(zeros)
        f.write(bytes(784 * (present % 1000)))
    assert p.stat().st_size < 300_000                        # small on disk
    refused(load_mnist, p, max_mb=16)


def test_gzip_bomb_without_header_lies_is_refused_at_the_limit(tmp_path, monkeypatch):
    """A pickle.gz inflating past what any MNIST pickle needs stops at the limit, not at its end."""
    from digitnet import data
    monkeypatch.setattr(data, "MAX_PICKLE_BYTES", 4 * 2**20)
    p = tmp_path / "mnist.pkl.gz"
    with gzip.open(p, "wb", compresslevel=1) as f:
        f.write(b"\x80\x04")
        for _ in range(64):
            f.write(b"N0" * 2**19)                            # None, pop: 64 MB of a valid pickle
    refused(load_mnist, p, match="holds more than 4,194,304 bytes (decompressed), the most an MNIST pickle needs", max_mb=16)


def test_npz_unused_huge_member_is_not_read(tmp_path, mnist):
    p = tmp_path / "mnist.npz"
    tr = mnist.train.subset(slice(0, 50))
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, a in (("x_train", tr.images), ("y_train", tr.labels)):
            buf = _io.BytesIO()
            np.save(buf, a)
            z.writestr(f"{name}.npy", buf.getvalue())
        with z.open("junk.npy", "w", force_zip64=True) as f:  # 96 MB of zeros, never needed
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                                     "shape": (96 * 2**20,)})
            for _ in range(96):
                f.write(bytes(2**20))
    outcome, m = within_budget(load_mnist, p, max_mb=8)
    assert outcome == "ok" and len(m.train) == 50


def test_npz_member_header_lies_about_its_size(tmp_path):
    p = tmp_path / "mnist.npz"
    with zipfile.ZipFile(p, "w") as z:
        buf = _io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False,
                                                   "shape": (200_000, 28, 28)})
        z.writestr("x_train.npy", buf.getvalue() + bytes(784 * 5))     # claims 157 MB, holds 4 KB
        z.writestr("y_train.npy", buf.getvalue())
    refused(load_mnist, p, match="truncated", max_mb=16)


def test_corrupt_deflate(tmp_path, mnist):
    p = tmp_path / "mnist.npz"
    np.savez_compressed(p, x_train=mnist.train.images[:200], y_train=mnist.train.labels[:200])
    raw = bytearray(p.read_bytes())
    for i in range(200, 600, 7):                              # inside x_train's deflate stream
        raw[i] ^= 0x55
    p.write_bytes(bytes(raw))
    refused(load_mnist, p)
    g = tmp_path / "train-images-idx3-ubyte.gz"
    data = bytearray(gzip.compress(idx_header(20) + mnist.train.images[:20].tobytes()))
    for i in range(30, len(data) - 20, 5):
        data[i] ^= 0xA5
    g.write_bytes(bytes(data))
    refused(load_mnist, g, match="corrupt or truncated gzip data")


def test_npz_members_that_are_not_npy(tmp_path):
    p = tmp_path / "a.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("x_train.npy", b"this is not an array")
        z.writestr("y_train.npy", b"\x93NUMPY")
    refused(load_mnist, p, match="not a readable .npy array")
    q = tmp_path / "b.npz"
    with zipfile.ZipFile(q, "w") as z:
        z.writestr("x_train", b"raw")
        z.writestr("y_train", b"raw")
    refused(load_mnist, q, match="not a .npy array member")


def test_object_dtype_arrays_in_pickles(tmp_path):
    obj = np.array([1, "a"], dtype=object)
    p = tmp_path / "mnist.pkl"
    p.write_bytes(pickle.dumps(((obj, obj),) * 3))
    refused(load_mnist, p, match="dtype object is not a plain numeric type")
    w = tmp_path / "w.pkl"
    w.write_bytes(pickle.dumps((obj,) * 4))
    refused(io.import_pickle, w, match="dtype object is not a plain numeric type")


# --------------------------------------------------------------------------- model files
def _model_parts():
    raw = io.dumps(MLP((16,), seed=1))
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    return header, json.loads(header["__metadata__"]["digitnet"]), raw[8 + n:]


def _write_model(path, header, body):
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + body)
    return path


def _both(path, match):
    for reader in (digitnet.load, digitnet.info):
        refused(reader, path, match=match, max_mb=16)


def test_metadata_alone_cannot_allocate_a_huge_layer(tmp_path):
    header, meta, body = _model_parts()
    meta["architecture"] = [{"type": "Dense", "in_features": 784, "out_features": 500_000}]
    header["__metadata__"] = {"digitnet": json.dumps(meta)}
    _both(_write_model(tmp_path / "m.safetensors", header, body), "more than 20,000,000 parameters")
    meta["architecture"] = [{"type": "Dense", "in_features": 784, "out_features": 5000}, {"type": "ReLU"},
                            {"type": "Dense", "in_features": 5000, "out_features": 10}]
    header["__metadata__"] = {"digitnet": json.dumps(meta)}
    _both(_write_model(tmp_path / "m2.safetensors", header, body), "has shape (784, 16)")


def test_bf16_tensors(tmp_path):
    header, _, body = _model_parts()
    start = header["0.W"]["data_offsets"][0]
    header["0.W"].update(dtype="BF16", data_offsets=[start, start + 784 * 16 * 2])
    _both(_write_model(tmp_path / "m.safetensors", header, body), "has dtype BF16")


def test_missing_and_extra_tensors(tmp_path):
    header, _, body = _model_parts()
    end = max(e["data_offsets"][1] for k, e in header.items() if k != "__metadata__")
    extra = dict(header, **{"9.W": {"dtype": "F32", "shape": [2], "data_offsets": [end, end + 8]}})
    _both(_write_model(tmp_path / "extra.safetensors", extra, body + bytes(8)), "does not use: 9.W")
    b = header.pop("2.b")
    header["2.c"] = b
    _both(_write_model(tmp_path / "missing.safetensors", header, body), "missing for the architecture: 2.b")


def test_metadata_nested_100k_deep(tmp_path):
    header, meta, body = _model_parts()
    meta["notes"] = "X"
    header["__metadata__"] = {"digitnet": json.dumps(meta).replace('"X"', "[" * 100_000 + "]" * 100_000)}
    _both(_write_model(tmp_path / "m.safetensors", header, body), "nests more than 32 levels deep")


def test_info_checks_metadata_types(tmp_path, capsys):
    header, meta, body = _model_parts()
    meta["architecture"][0]["out_features"] = "16"
    header["__metadata__"] = {"digitnet": json.dumps(meta)}
    path = _write_model(tmp_path / "m.safetensors", header, body)
    code, _, err = run(capsys, "info", path)
    assert code == 2 and "out_features must be an integer" in err and err.count("\n") == 1


def test_tiny_pickle_cannot_make_a_huge_model(tmp_path):
    """A gzip'd pickle of zeros, a few kB, claiming a 784-20000-10 network."""
    w1, b1 = np.zeros((784, 20_000), np.float32), np.zeros(20_000, np.float32)
    p = tmp_path / "w.pkl.gz"
    p.write_bytes(gzip.compress(pickle.dumps((w1, b1, np.zeros((20_000, 10), np.float32), np.zeros(10)))))
    assert p.stat().st_size < 200_000
    refused(io.import_pickle, p, match="hidden layer of 20,000 units", max_mb=150)


# --------------------------------------------------------------------------- images
def _jpeg(progressive=True):
    from PIL import Image
    buf = _io.BytesIO()
    Image.new("L", (64, 64), 255).save(buf, format="JPEG", progressive=progressive)
    return buf.getvalue()


def test_progressive_jpeg_scan_bomb():
    raw = _jpeg()
    empty_scan = b"\xff\xda\x00\x08\x01\x01\x00\x01\x01\x00"     # one component, one AC coefficient
    bomb = raw[:-2] + empty_scan * 50_000 + b"\xff\xd9"
    refused(open_image, bomb, match="JPEG with 50,0")
    outcome, img = within_budget(open_image, raw)                # an ordinary progressive JPEG is fine
    assert outcome == "ok" and img.size == (64, 64)


def _tiff(img):
    buf = _io.BytesIO()
    img.save(buf, format="TIFF")
    return buf.getvalue()


def test_lab_and_float_tiffs():
    from PIL import Image
    refused(open_image, _tiff(Image.new("LAB", (32, 32))), match="image mode LAB is not supported")
    for bad in (np.inf, -np.inf, np.nan):
        a = np.zeros((32, 32), np.float32)
        a[5:9, 5:9] = bad
        refused(open_image, _tiff(Image.fromarray(a, mode="F")), match="infinite or NaN")
    a = np.zeros((32, 32), np.float32)
    a[8:24, 14:18] = 1000.0                                   # finite floats are fine
    assert to_mnist(open_image(_tiff(Image.fromarray(a, mode="F")))).shape == (28, 28)


@pytest.mark.parametrize("fmt", ["ICO", "PCX", "SGI", "TGA", "SPIDER"])
def test_formats_outside_the_list_are_never_decoded(fmt):
    """Pillow reads these too, but each decoder is one more target: digitnet refuses them by their bytes."""
    from PIL import Image
    buf = _io.BytesIO()
    Image.new("L", (32, 32), 255).save(buf, format=fmt)
    assert Image.open(_io.BytesIO(buf.getvalue())).format == fmt           # Pillow itself would decode it
    refused(open_image, buf.getvalue(), match="not a readable image (not PNG, JPEG, GIF, BMP, TIFF, WebP or PNM)")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM"])
def test_the_formats_digitnet_reads(fmt):
    from PIL import Image
    from digitnet.preprocess import image_formats
    if fmt not in image_formats():
        pytest.skip(f"this Pillow has no {fmt} support")
    buf = _io.BytesIO()
    img = Image.new("L", (32, 32), 255)
    img.paste(0, (14, 6, 18, 26))
    img.save(buf, format=fmt)
    assert to_mnist(open_image(buf.getvalue())).max() == 255


def test_many_frame_gif_decodes_only_the_first():
    from PIL import Image
    frames = [Image.new("L", (32, 32), i % 256) for i in range(2000)]
    buf = _io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    outcome, img = within_budget(open_image, buf.getvalue())
    assert outcome == "ok" and img.size == (32, 32)


def test_glob_through_a_symlink_loop(tmp_path, capsys):
    from PIL import Image
    (tmp_path / "a").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "a" / "d.png")
    os.symlink(tmp_path / "a", tmp_path / "a" / "loop")
    os.symlink(tmp_path / "a", tmp_path / "a" / "loop2")
    from digitnet.predict import expand
    outcome, files = within_budget(expand, [f"{tmp_path}/**/*.png"])
    assert outcome == "ok" and files == [f"{tmp_path}/a/d.png"]


@pytest.mark.parametrize("text, match", [
    ("\n" * 8_000_000, "8,000,000 lines"), ("\r" * 8_000_000, "8,000,000 lines"),
    ("0," * 8_000_000 + "0\n", "line 1 has 8,000,001 columns"),
    ("label," + ",".join(f"p{i}" for i in range(784)) + "\n" + "0," * 8_000_000 + "0\n", "line 2 has 8,000,001 columns")])
def test_csv_of_line_breaks_or_commas(tmp_path, text, match):
    """MBs of line breaks or commas would make lists of millions of strings if split blindly."""
    p = tmp_path / "mnist_train.csv"
    p.write_text(text)
    refused(load_mnist, p, match=match, max_mb=48)


@pytest.mark.parametrize("change", [{"rng": "x"}, {"rng": {"bit_generator": "PCG64", "state": 3}},
                                    {"epochs_done": "2"}, {"config": []}])
def test_damaged_checkpoint_metadata(tmp_path, capsys, mnist, change):
    from helpers import write_npz
    data = write_npz(tmp_path, mnist, 300, 50)
    ckpt = tmp_path / "run.ckpt"
    code, _, err = run(capsys, "train", "--data", data, "--epochs", "1", "--val-size", "0", "--quiet",
                       "--checkpoint", ckpt, "-o", tmp_path / "m.safetensors")
    assert code == 0, err
    raw = ckpt.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["digitnet"])
    meta["checkpoint"].update(change)
    header["__metadata__"]["digitnet"] = json.dumps(meta)
    _write_model(ckpt, header, raw[8 + n:])
    code, _, err = run(capsys, "train", "--resume", ckpt, "--data", data, "--epochs", "2", "--quiet",
                       "-o", tmp_path / "m2.safetensors")
    assert code == 2 and "damaged" in err and err.count("digitnet: error:") == 1 and "Traceback" not in err, err


# --------------------------------------------------------------------------- pipes and devices given as files
PIPES = ("pipe.png", "model.safetensors", "w.pkl", "data.npz", "data.csv", "train-images-idx3-ubyte",
         "mnist.pkl.gz", "space.toml")


@pytest.fixture
def special_files(tmp_path, monkeypatch):
    """Named pipes under file names, a link to an endless device, and two links to each other."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    from PIL import Image, ImageDraw
    monkeypatch.chdir(tmp_path)
    for name in PIPES:
        os.mkfifo(name)  # opening one to read waits for a writer that never comes
    os.symlink("/dev/zero", "zero.png")  # reads never end
    os.symlink("loop-b.png", "loop-a.png")
    os.symlink("loop-a.png", "loop-b.png")
    img = Image.new("L", (60, 60), 255)
    ImageDraw.Draw(img).line([(30, 10), (30, 50)], fill=0, width=6)
    img.save("one.png")
    return tmp_path


@pytest.mark.parametrize("argv, match", [
    (["predict", "pipe.png"], "pipe.png: not a regular file"),
    (["predict", "zero.png"], "zero.png: not a regular file"),
    (["predict", "loop-a.png"], "loop-a.png: a broken or looping symbolic link"),
    (["predict", "--model", "model.safetensors", "one.png"], "model.safetensors: not a regular file"),
    (["info", "--model", "model.safetensors"], "model.safetensors: not a regular file"),
    (["evaluate", "--data", "data.npz"], "data.npz: not a regular file"),
    (["evaluate", "--data", "data.csv"], "data.csv: not a regular file"),
    (["evaluate", "--data", "train-images-idx3-ubyte"], "train-images-idx3-ubyte: not a regular file"),
    (["evaluate", "--data", "mnist.pkl.gz"], "mnist.pkl.gz: not a regular file"),
    (["import-pickle", "w.pkl", "-o", "out.safetensors"], "w.pkl: not a regular file"),
])
def test_pipes_and_devices_given_as_files_are_refused_without_waiting(special_files, capsys, argv, match):
    outcome, (code, _, err) = within_budget(run, capsys, *argv, hang_s=20)
    assert outcome == "ok" and code == 2 and match in err and err.count("\n") == 1, err


def test_a_pipe_as_a_sweep_space_file(special_files):
    from digitnet.sweep_space import load_space
    refused(load_space, "space.toml", match="space.toml: not a regular file")
    (special_files / "big.toml").write_text("#" * (2 << 20))
    refused(load_space, "big.toml", match="a space file is a few lines")
