"""Your own classes in folders, and Fashion-MNIST / KMNIST / EMNIST in their layouts (files written here)."""

import gzip
import json

import numpy as np
import pytest
from helpers import run
from PIL import Image, ImageDraw

import digitnet
from digitnet import DigitnetError
from digitnet.data import load_mnist
from digitnet.folders import load_folders

SHAPES = ("circle", "cross", "square", "triangle")


def draw(shape: str, rng, size: int = 64) -> Image.Image:
    """A black shape on white, placed and sized a little differently each time, like a user's drawings."""
    img = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(img)
    c = size / 2 + rng.uniform(-6, 6, 2)
    r = rng.uniform(14, 22)
    box = [c[0] - r, c[1] - r, c[0] + r, c[1] + r]
    w = int(rng.integers(3, 6))
    if shape == "circle":
        d.ellipse(box, outline=0, width=w)
    elif shape == "cross":
        d.line(box, fill=0, width=w)
        d.line([box[0], box[3], box[2], box[1]], fill=0, width=w)
    elif shape == "square":
        d.rectangle(box, outline=0, width=w)
    else:
        d.polygon([(c[0], c[1] - r), (c[0] - r, c[1] + r), (c[0] + r, c[1] + r)], outline=0, width=w)
    return img


def write_shapes(root, n_train=30, n_test=6, split=True, seed=0):
    rng = np.random.default_rng(seed)
    for part, n in (("train", n_train), ("test", n_test)) if split else ((".", n_train),):
        for shape in SHAPES:
            folder = root / part / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                draw(shape, rng).save(folder / f"{i}.{'jpg' if i % 3 == 0 else 'png'}")
    return root


def test_class_folders_load_through_the_predict_preprocessing(tmp_path):
    from digitnet.preprocess import to_mnist
    root = write_shapes(tmp_path / "shapes", n_train=3, n_test=2)
    mnist = load_mnist(root)
    assert mnist.train.classes == SHAPES and mnist.test.classes == SHAPES
    assert len(mnist.train) == 12 and len(mnist.test) == 8
    assert mnist.train.images.shape == (12, 28, 28) and sorted(set(mnist.train.labels)) == [0, 1, 2, 3]
    first = sorted((root / "train" / "circle").iterdir())[0]
    assert np.array_equal(mnist.train.images[0], to_mnist(first))


def test_class_folders_without_split_are_all_training_data(tmp_path):
    mnist = load_folders(write_shapes(tmp_path / "shapes", n_train=2, split=False))
    assert mnist.test is None and len(mnist.train) == 8


def test_numeric_class_names_sort_as_numbers(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("2", "10", "1"):
        (tmp_path / name).mkdir()
        draw("circle", rng).save(tmp_path / name / "a.png")
    assert load_mnist(tmp_path).train.classes == ("1", "2", "10")


@pytest.mark.parametrize("make, match", [
    (lambda r: (r / "a").mkdir() or (r / "b").mkdir() or draw("circle", np.random.default_rng(0)).save(r / "a/x.png"),
     "class folder.s. b hold no"),
    (lambda r: (r / "a").mkdir() or (r / "a/x.png").write_bytes(b"not an image"), r"x.png: not a readable image"),
    (lambda r: (r / "a").mkdir() or Image.new("L", (40, 40), 255).save(r / "a/blank.png"), r"blank.png: "),
])
def test_bad_class_folders_are_one_clear_error(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(DigitnetError, match=match):
        load_mnist(tmp_path)


def test_test_class_missing_from_training_is_refused(tmp_path):
    root = write_shapes(tmp_path / "s", n_train=1, n_test=1)
    (root / "test" / "star").mkdir()
    draw("cross", np.random.default_rng(1)).save(root / "test" / "star" / "s.png")
    with pytest.raises(DigitnetError, match="'star' is not among the training classes"):
        load_mnist(root)


def test_four_classes_of_own_images_train_and_predict_by_name(tmp_path, capsys):
    """The target: a 4-class folder trains with `digitnet train --data DIR` and predicts by class name."""
    root = write_shapes(tmp_path / "shapes", n_train=40, n_test=8)
    model_path = tmp_path / "shapes.safetensors"
    code, out, err = run(capsys, "train", "--data", root, "--epochs", "15", "--batch-size", "16",
                         "--quiet", "-o", model_path)
    assert code == 0, err
    acc = float(out.split("test accuracy")[1].split("%")[0])
    assert acc >= 90
    assert digitnet.load(model_path).classes == list(SHAPES)
    code, out, err = run(capsys, "predict", "--model", model_path, "--json", root / "test" / "triangle")
    assert code == 0, err
    labels = [json.loads(line)["class"] for line in out.splitlines()]
    assert len(labels) == 8 and labels.count("triangle") >= 6
    code, out, err = run(capsys, "evaluate", "--model", model_path, "--data", root)
    assert code == 0 and "triangle" in out and "square" in out
    code, out, err = run(capsys, "info", model_path)
    assert code == 0 and "4: circle, cross, square, triangle" in out


# --------------------------------------------------------------------------- MNIST-layout datasets
def write_idx(path, array):
    header = (0x800 + array.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, np.uint8).tobytes()))


def _sample(n, n_classes, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, n_classes, n).astype(np.uint8)


def test_fashion_mnist_idx_files_in_a_fashion_folder_are_named(tmp_path):
    d = tmp_path / "FashionMNIST" / "raw"
    d.mkdir(parents=True)
    for stem in ("train", "t10k"):
        images, labels = _sample(20, 10)
        write_idx(d / f"{stem}-images-idx3-ubyte.gz", images)
        write_idx(d / f"{stem}-labels-idx1-ubyte.gz", labels)
    mnist = load_mnist(d)
    assert mnist.train.classes[0] == "T-shirt/top" and mnist.test.classes[9] == "Ankle boot"
    assert "Fashion-MNIST" in mnist.source


def test_fashion_mnist_kaggle_csv_is_named(tmp_path):
    images, labels = _sample(5, 10)
    rows = ["label," + ",".join(f"pixel{i}" for i in range(1, 785))]
    rows += [f"{y}," + ",".join(map(str, x.ravel())) for x, y in zip(images, labels)]
    for part in ("train", "test"):
        (tmp_path / f"fashion-mnist_{part}.csv").write_text("\n".join(rows))
    mnist = load_mnist(tmp_path)
    assert np.array_equal(mnist.train.images, images) and mnist.test.classes[1] == "Trouser"


def test_kmnist_npz_files_are_named(tmp_path):
    for part in ("train", "test"):
        images, labels = _sample(12, 10)
        np.savez_compressed(tmp_path / f"kmnist-{part}-imgs.npz", images)
        np.savez_compressed(tmp_path / f"kmnist-{part}-labels.npz", labels)
    mnist = load_mnist(tmp_path)
    assert len(mnist.train) == 12 and mnist.train.classes[0] == "お" and "KMNIST" in mnist.source


def _write_emnist(d, split, images, labels, mapping=None):
    for part in ("train", "test"):
        write_idx(d / f"emnist-{split}-{part}-images-idx3-ubyte.gz", images.transpose(0, 2, 1))
        write_idx(d / f"emnist-{split}-{part}-labels-idx1-ubyte.gz", labels)
    if mapping:
        (d / f"emnist-{split}-mapping.txt").write_text(mapping)


def test_emnist_letters_are_untransposed_and_counted_from_zero(tmp_path):
    images, labels = _sample(26, 26)
    (tmp_path / "gzip").mkdir()
    _write_emnist(tmp_path / "gzip", "letters", images, labels + 1)        # EMNIST letters: labels 1..26
    mnist = load_mnist(tmp_path)
    assert np.array_equal(mnist.train.images, images) and np.array_equal(mnist.train.labels, labels)
    assert mnist.train.classes[0] == "A" and len(mnist.train.classes) == 26 and "letters" in mnist.source


def test_emnist_mapping_file_names_the_classes(tmp_path):
    images, labels = _sample(10, 3)
    _write_emnist(tmp_path, "custom", images, labels, "0 48\n1 65 97\n2 98\n")
    mnist = load_mnist(tmp_path / "emnist-custom-train-images-idx3-ubyte.gz")
    assert mnist.train.classes == ("0", "A", "b")


@pytest.mark.parametrize("with_gzip", [False, True])
def test_load_emnist_on_a_folder_without_its_files_is_one_clear_error(tmp_path, with_gzip):
    from digitnet.variants import load_emnist

    (tmp_path / "notes.txt").write_text("not EMNIST")
    if with_gzip:
        (tmp_path / "gzip").mkdir()
    with pytest.raises(DigitnetError, match="no EMNIST files"):
        load_emnist(tmp_path)


def test_emnist_folder_with_several_splits_asks_for_one(tmp_path):
    images, labels = _sample(4, 10)
    _write_emnist(tmp_path, "digits", images, labels)
    _write_emnist(tmp_path, "mnist", images, labels)
    with pytest.raises(DigitnetError, match="several EMNIST splits .digits, mnist."):
        load_mnist(tmp_path)


def test_emnist_digits_look_like_mnist_to_a_trained_model(tmp_path, mnist):
    """Written transposed as EMNIST stores them, read back upright: the shipped digit model recognises them."""
    digits = mnist.test.subset(slice(0, 500))
    _write_emnist(tmp_path, "digits", digits.images, digits.labels)
    data = load_mnist(tmp_path)
    assert digitnet.evaluate(digitnet.load("seed"), data.test)["accuracy"] > 0.9
    model = digitnet.build("fc16-relu-fc10", classes=data.train.classes)
    digitnet.fit(model, data.train, epochs=1, val_size=0, progress=False)
    assert model.classes == list("0123456789")
