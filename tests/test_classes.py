"""Models with any number of classes and named outputs: build, train, save, load."""

import json

import numpy as np
import pytest

import digitnet
from digitnet import DigitnetError, io
from digitnet.data import Dataset
from digitnet.nn import MLP, build


def test_digit_models_name_their_outputs_0_to_9():
    model = MLP((8,), seed=0)
    assert model.classes == [str(d) for d in range(10)] and model.reject_class is None


def test_preset_output_layer_follows_the_classes():
    model = build("cnn", classes=["cat", "dog", "fish"])
    assert model.output_shape == (3,) and model.classes == ["cat", "dog", "fish"]
    assert build("seed", n_classes=26).output_shape == (26,)


def test_spec_must_end_with_one_output_per_class():
    with pytest.raises(DigitnetError, match="must end with 3 outputs"):
        build("fc32-relu-fc10", n_classes=3)
    with pytest.raises(DigitnetError, match="must start with 784 and end with 4"):
        build("784-32-10", n_classes=4)


def test_spec_takes_any_input_shape():
    model = build("conv4k3-relu-gap-fc5", n_classes=5, input_shape=(1, 8, 8))
    assert model.input_shape == (1, 8, 8) and model.predict_proba(np.zeros((2, 64), np.float32)).shape == (2, 5)


@pytest.mark.parametrize("names", [["a", "b"], ["a", "a", "b"]])
def test_bad_class_names_are_refused(names):
    with pytest.raises(DigitnetError, match="class names"):
        MLP((4,), n_classes=3, classes=names)


def test_reject_class_must_be_an_output_index():
    model = MLP((4,), n_classes=3)
    with pytest.raises(DigitnetError, match="reject_class"):
        model.reject_class = 3


def test_names_and_reject_class_survive_save_and_load(tmp_path):
    model = MLP((8,), n_classes=4, classes=["α", "b", "c", "none"])
    model.reject_class = 3
    path = digitnet.save(model, tmp_path / "m.safetensors")
    loaded = digitnet.load(path)
    assert loaded.classes == ["α", "b", "c", "none"] and loaded.reject_class == 3
    meta = digitnet.info(path)
    assert meta["classes"] == ["α", "b", "c", "none"] and meta["reject_class"] == 3
    assert "classes" not in loaded.meta


def test_a_file_without_classes_is_a_digit_model(tmp_path):
    model = MLP((8,), seed=0)
    tensors = {k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}
    meta = io.model_metadata(model)
    del meta["classes"], meta["reject_class"]
    loaded = io.from_parts(tensors, meta, "m")
    assert loaded.classes == [str(d) for d in range(10)] and loaded.reject_class is None


@pytest.mark.parametrize("classes, reject, match", [("abc", None, "list of strings"),
                                                    (["a", "b"], None, "2 class names"),
                                                    (None, 10, "reject_class")])
def test_bad_classes_metadata_is_one_clear_error(classes, reject, match):
    model = MLP((8,), seed=0)
    tensors = {k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}
    meta = json.loads(json.dumps(io.model_metadata(model)))
    meta.update(classes=classes, reject_class=reject)
    with pytest.raises(DigitnetError, match=match):
        io.from_parts(tensors, meta, "m")


def _blobs(n_classes, n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n).astype(np.uint8)
    images = np.zeros((n, 28, 28), np.uint8)
    for c in range(n_classes):                      # class c: a bright square at its own place
        images[labels == c, 2 + 5 * c:6 + 5 * c, 4:10] = 255
    return images, labels


def test_training_on_named_classes_names_the_model():
    images, labels = _blobs(3)
    data = Dataset(images, labels, "blobs", ("red", "green", "blue"))
    model = MLP((16,), n_classes=3, seed=0)
    digitnet.fit(model, data, epochs=3, val_size=0, progress=False)
    assert model.classes == ["red", "green", "blue"]
    assert digitnet.evaluate(model, data)["accuracy"] > 0.9


def test_labels_beyond_the_outputs_are_refused():
    images, labels = _blobs(5)
    with pytest.raises(DigitnetError, match="has label 4 but the model has only 3 outputs"):
        digitnet.fit(MLP((8,), n_classes=3), Dataset(images, labels, "blobs"), epochs=1, val_size=0,
                     progress=False)


def test_curves_say_whether_there_is_a_validation_curve():
    pytest.importorskip("matplotlib")
    from digitnet.plots import training_curves
    without = [{"epoch": 1, "loss": 1.0, "train_acc": 0.5, "val_acc": None, "val_loss": None},
               {"epoch": 2, "loss": 0.5, "train_acc": 0.7, "val_acc": None, "val_loss": None}]
    fig = training_curves(without)
    titles = [ax.get_title() for ax in fig.axes]
    assert all("no validation set" in t for t in titles) and not any("vs validation" in t for t in titles)
    assert [len(ax.lines) for ax in fig.axes] == [1, 1]
    with_val = [dict(h, val_acc=0.6, val_loss=0.9) for h in without]
    fig = training_curves(with_val)
    assert all("training vs validation" in ax.get_title() for ax in fig.axes)
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]


def test_report_of_a_named_model_without_validation(tmp_path):
    pytest.importorskip("matplotlib")
    from digitnet.report import write_report
    images, labels = _blobs(3)
    data = Dataset(images, labels, "blobs", ("red", "green", "blue"))
    model = MLP((16,), n_classes=3, seed=0)
    digitnet.fit(model, data, epochs=2, val_size=0, progress=False)
    page = write_report(model, tmp_path, data=data)["html"].read_text()
    assert "<td>green</td>" in page and "no validation curve" in page
    assert "training vs validation" not in page
