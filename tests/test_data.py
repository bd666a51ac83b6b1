"""Every loader: round-trips from files written here, and each kind of malformed input."""

import gzip
import pickle
import struct

import numpy as np
import pytest

import digitnet
from digitnet import DigitnetError
from digitnet.data import load_csv, load_idx, load_mnist, parse_idx, validate


@pytest.fixture(scope="module")
def sample(mnist):
    return mnist.train.subset(slice(0, 50)), mnist.test.subset(slice(0, 20))


def idx_bytes(arr: np.ndarray) -> bytes:
    magic = 0x800 + arr.ndim
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def write_idx_dir(d, train, test, gz=True):
    opener = gzip.open if gz else open
    ext = ".gz" if gz else ""
    for stem, ds in (("train", train), ("t10k", test)):
        with opener(d / f"{stem}-images-idx3-ubyte{ext}", "wb") as f:
            f.write(idx_bytes(ds.images))
        with opener(d / f"{stem}-labels-idx1-ubyte{ext}", "wb") as f:
            f.write(idx_bytes(ds.labels))


def write_csv(path, ds, header):
    rows = [header] if header else []
    flat = ds.images.reshape(len(ds), -1)
    for i in range(len(ds)):
        cells = ([str(ds.labels[i])] if ds.labels is not None else []) + [str(v) for v in flat[i]]
        rows.append(",".join(cells))
    path.write_text("\n".join(rows) + "\n")


def same(a, b):
    assert np.array_equal(a.images, b.images)
    if b.labels is None:
        assert a.labels is None
    else:
        assert np.array_equal(a.labels, b.labels)


def test_bundled_mnist_is_verified_and_complete(mnist):
    assert mnist.train.images.shape == (60000, 28, 28) and mnist.train.images.dtype == np.uint8
    assert mnist.test.images.shape == (10000, 28, 28)
    assert np.bincount(mnist.test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_bundled_checksum_mismatch_is_detected(tmp_path, monkeypatch):
    import shutil
    from digitnet import data
    for f in data.bundled_dir().iterdir():
        shutil.copy(f, tmp_path / f.name)
    raw = bytearray(gzip.decompress((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setattr(data, "bundled_dir", lambda: tmp_path)
    with pytest.raises(DigitnetError, match="checksum mismatch"):
        load_mnist()


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, sample, gz):
    write_idx_dir(tmp_path, *sample, gz=gz)
    m = load_mnist(tmp_path)
    same(m.train, sample[0])
    same(m.test, sample[1])
    # a single images file finds its labels sibling
    m = load_mnist(tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if gz else "")))
    same(m.test, sample[1])


def test_kaggle_mnist_in_csv_round_trip(tmp_path, sample):
    header = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))
    write_csv(tmp_path / "mnist_train.csv", sample[0], header)
    write_csv(tmp_path / "mnist_test.csv", sample[1], header)
    m = load_mnist(tmp_path)
    same(m.train, sample[0])
    same(m.test, sample[1])
    m = load_mnist(tmp_path / "mnist_test.csv")  # the sibling train file is found
    same(m.train, sample[0])
    same(m.test, sample[1])


def test_kaggle_digit_recognizer_round_trip(tmp_path, sample):
    write_csv(tmp_path / "train.csv", sample[0], "label," + ",".join(f"pixel{i}" for i in range(784)))
    unlabelled = digitnet.Dataset(sample[1].images, None)
    write_csv(tmp_path / "test.csv", unlabelled, ",".join(f"pixel{i}" for i in range(784)))
    m = load_mnist(tmp_path)
    same(m.train, sample[0])
    same(m.test, unlabelled)


def test_headerless_csv(tmp_path, sample):
    write_csv(tmp_path / "digits.csv", sample[0], None)
    same(load_csv(tmp_path / "digits.csv"), sample[0])


def test_keras_npz_round_trip(tmp_path, sample):
    tr, te = sample
    np.savez(tmp_path / "mnist.npz", x_train=tr.images, y_train=tr.labels, x_test=te.images, y_test=te.labels)
    m = load_mnist(tmp_path / "mnist.npz")
    same(m.train, tr)
    same(m.test, te)
    assert load_mnist(tmp_path).train.images.shape == tr.images.shape


def test_classic_pickle_round_trip(tmp_path, sample):
    tr, te = sample
    as_float = lambda ds: (ds.images.reshape(len(ds), -1).astype(np.float32) / 256, ds.labels.astype(np.int64))
    obj = (as_float(tr.subset(slice(0, 30))), as_float(tr.subset(slice(30, 50))), as_float(te))
    with gzip.open(tmp_path / "mnist.pkl.gz", "wb") as f:
        pickle.dump(obj, f, protocol=2)
    m = load_mnist(tmp_path / "mnist.pkl.gz")
    same(m.train, tr)   # train + valid joined back
    same(m.test, te)


# --------------------------------------------------------------------------- malformed input
def test_idx_wrong_magic(tmp_path):
    with pytest.raises(DigitnetError, match="bad IDX magic number 0x00000801, expected 0x00000803"):
        parse_idx(idx_bytes(np.zeros(50, np.uint8)), "f", "images")


def test_idx_truncated_and_trailing(tmp_path):
    data = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DigitnetError, match="truncated"):
        parse_idx(data[:-10], "f", "images")
    with pytest.raises(DigitnetError, match="trailing"):
        parse_idx(data + b"xx", "f", "images")
    with pytest.raises(DigitnetError, match="too short"):
        parse_idx(data[:7], "f", "images")


def test_idx_truncated_gzip(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8)))[:-20])
    with pytest.raises(DigitnetError, match="corrupt or truncated gzip"):
        load_idx(p)


def test_idx_wrong_image_size_and_count_mismatch(tmp_path):
    (tmp_path / "a-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 32, 32), np.uint8)))
    with pytest.raises(DigitnetError, match=r"images of 32x32 pixels, expected 28x28"):
        load_idx(tmp_path / "a-images-idx3-ubyte")
    (tmp_path / "b-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    (tmp_path / "b-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DigitnetError, match="2 images but 3 labels"):
        load_idx(tmp_path / "b-images-idx3-ubyte", tmp_path / "b-labels-idx1-ubyte")


def test_idx_labels_out_of_range(tmp_path):
    (tmp_path / "i").write_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    (tmp_path / "l").write_bytes(idx_bytes(np.array([3, 12], np.uint8)))
    with pytest.raises(DigitnetError, match="label values must be in 0-9, found 12"):
        load_idx(tmp_path / "i", tmp_path / "l")


def _csv_with(tmp_path, mutate):
    rows = ["label," + ",".join(f"pixel{i}" for i in range(784))]
    for lab in (1, 2, 3):
        rows.append(",".join([str(lab)] + ["0"] * 784))
    rows = mutate(rows)
    p = tmp_path / "train.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r[:2] + [r[2] + ",0"] + r[3:], "line 3 has 786 columns, expected 785"),
    (lambda r: r[:2] + [r[2].rsplit(",", 1)[0]] + r[3:], "line 3 has 784 columns, expected 785"),
    (lambda r: r[:3] + ["11" + r[3][1:]], "label values must be in 0-9, found 11"),
    (lambda r: r[:3] + ["-1" + r[3][1:]], "label values must be in 0-9, found -1"),
    (lambda r: r[:1] + [r[1][:-1] + "256"] + r[2:], "pixel values must be in 0-255, found 256"),
    (lambda r: r[:1] + [r[1][:-1] + "abc"] + r[2:], "line 2, column 785: 'abc' is not a number"),
    (lambda r: r[:1] + [r[1][:-1] + "0.5"] + r[2:], "whole numbers"),
    (lambda r: r[:1] + [r[1][:-1] + "nan"] + r[2:], "whole numbers"),
    (lambda r: [r[0][:-9]] + r[1:], "header has 784 columns, expected 785"),
    (lambda r: r[:1], "no data rows"),
    (lambda r: [], "empty file"),
])
def test_csv_malformed(tmp_path, mutate, message):
    with pytest.raises(DigitnetError, match=message):
        load_csv(_csv_with(tmp_path, mutate))


def test_csv_binary_garbage(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(DigitnetError, match="not a text CSV"):
        load_csv(p)


def test_npz_malformed(tmp_path):
    np.savez(tmp_path / "a.npz", images=np.zeros((2, 28, 28)))
    with pytest.raises(DigitnetError, match="expected arrays x_train, y_train"):
        load_mnist(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x_train=np.array([object()], dtype=object), y_train=np.zeros(1))
    with pytest.raises(DigitnetError, match="dtype object is not a plain numeric type"):
        load_mnist(tmp_path / "b.npz")
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DigitnetError, match="not a readable .npz"):
        load_mnist(tmp_path / "c.npz")


def test_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    p = tmp_path / "mnist.pkl.gz"
    with gzip.open(p, "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(DigitnetError, match="unsafe pickle: refusing to load (posix|os).system"):
        load_mnist(p)
    assert not marker.exists()


def test_missing_path_and_unknown_layouts(tmp_path):
    with pytest.raises(DigitnetError, match="no such file"):
        load_mnist(tmp_path / "nope")
    with pytest.raises(DigitnetError, match="no MNIST files found"):
        load_mnist(tmp_path)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DigitnetError, match="unknown data format"):
        load_mnist(tmp_path / "x.txt")


def test_validate_shapes():
    with pytest.raises(DigitnetError, match="empty"):
        validate(np.zeros((0, 784)), None, "x")
    with pytest.raises(DigitnetError, match=r"got \(3, 783\)"):
        validate(np.zeros((3, 783)), None, "x")
    ds = validate(np.zeros((3, 784), np.int64), np.array([[1], [2], [3]]), "x")
    assert ds.images.shape == (3, 28, 28) and ds.labels.tolist() == [1, 2, 3]


def test_split_is_seeded_and_disjoint(mnist):
    a_tr, a_va = mnist.train.split(10000, seed=3)
    b_tr, b_va = mnist.train.split(10000, seed=3)
    c_tr, c_va = mnist.train.split(10000, seed=4)
    assert len(a_tr) == 50000 and len(a_va) == 10000
    assert np.array_equal(a_va.labels, b_va.labels) and np.array_equal(a_va.images, b_va.images)
    assert not np.array_equal(a_va.images, c_va.images)
    with pytest.raises(DigitnetError, match="validation size"):
        mnist.train.split(60000)


def test_batches_cover_everything_once(small, rng):
    seen = np.concatenate([y for _, y in small.train.batches(128, rng)])
    assert np.array_equal(np.sort(seen), np.sort(small.train.labels))
    xb, yb = next(small.train.batches(128, rng))
    assert xb.dtype == np.uint8 and xb.shape == (128, 28, 28)
