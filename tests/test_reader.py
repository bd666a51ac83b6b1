"""The shipped default reader: used by predict/serve/load, and it answers "not a digit" for what is none."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import digitnet
from digitnet.preprocess import to_mnist
from digitnet.reject import decide
from helpers import run


@pytest.fixture(scope="module")
def reader():
    return digitnet.load()


def letter(text="K") -> Image.Image:
    img = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(img).text((100, 100), text, fill=0, font=ImageFont.load_default(size=120), anchor="mm")
    return img


def scribble(seed=0) -> Image.Image:
    """A pen wandering over the page without writing anything (a random walk with momentum)."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (240, 240), 255)
    pos, heading, pts = np.array([120.0, 120.0]), 0.0, []
    for _ in range(150):
        heading += rng.normal(0, 0.7)
        pos = np.clip(pos + 6 * np.array([np.cos(heading), np.sin(heading)]), 10, 230)
        pts.append(tuple(pos))
    ImageDraw.Draw(img).line(pts, fill=0, width=8, joint="curve")
    return img


def noise(seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(np.where(rng.random((120, 120)) < 0.06, 0, 255).astype(np.uint8))


def answer(model, img):
    proba = model.predict_proba(to_mnist(img)[None])
    return decide(proba, model.classes, model.reject_class, model.meta["reject_threshold"])[0]


def test_the_default_model_everywhere_is_the_reader(reader):
    from digitnet.cli._args import DEFAULT_MODEL
    from digitnet.io import shipped_models
    assert DEFAULT_MODEL == "reader" and "reader" in shipped_models()
    assert reader.reject_class == 10 and reader.classes[10] == "not a digit"
    assert "--negatives" in reader.meta["command"] and 0 < reader.meta["reject_threshold"] < 1
    assert digitnet.load("seed").reject_class is None and digitnet.load("cnn").classes == list("0123456789")
    pytest.importorskip("fastapi")
    from digitnet.web.app import load_models
    assert next(iter(load_models())) == "reader"


@pytest.mark.parametrize("make", [letter, scribble, noise], ids=["letter", "scribble", "noise"])
def test_a_letter_a_scribble_and_noise_are_not_digits(reader, make):
    a = answer(reader, make())
    assert a.label is None and a.reason


def test_mnist_test_digits_are_read_not_refused(reader, mnist):
    x, y = mnist.test.images[:2000], mnist.test.labels[:2000]
    answers = decide(reader.predict_proba(x), reader.classes, reader.reject_class, reader.meta["reject_threshold"])
    labels = np.array([-1 if a.label is None else a.label for a in answers])
    assert (labels == -1).mean() <= 0.01
    assert (labels == y).mean() >= 0.985


def test_predict_cli_says_not_a_digit_and_always_answer_guesses(tmp_path, capsys, mnist):
    path = tmp_path / "scribble.png"
    scribble().save(path)
    code, out, _ = run(capsys, "predict", path)
    assert code == 0 and f"{path}: ?" in out and "not a digit" in out
    code, out, _ = run(capsys, "predict", path, "--json")
    obj = json.loads(out)
    assert obj["label"] is None and "not a digit" in obj["reason"]
    assert len(obj["top_k"]) == 3 and all(0 <= t["label"] <= 9 for t in obj["top_k"])
    code, out, _ = run(capsys, "predict", path, "--json", "--always-answer")
    obj = json.loads(out)
    assert obj["label"] == obj["top_k"][0]["label"] and "reason" not in obj
    digit = tmp_path / "seven.png"
    Image.fromarray(255 - mnist.test.images[0]).resize((112, 112)).save(digit)   # a 7, dark on light
    code, out, _ = run(capsys, "predict", digit, "--json")
    assert json.loads(out)["label"] == int(mnist.test.labels[0])


def test_api_answers_null_for_a_scribble(reader):
    pytest.importorskip("httpx")
    import io

    from fastapi.testclient import TestClient

    from digitnet.web.app import create_app
    client = TestClient(create_app({"reader": reader, "seed": digitnet.load("seed")}))
    buf = io.BytesIO()
    scribble().save(buf, format="PNG")
    r = client.post("/api/predict", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert r.status_code == 200
    out = r.json()
    assert out["label"] is None and "not a digit" in out["reason"] and len(out["top_k"]) == 3
    r = client.post("/api/predict?always_answer=true", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert r.json()["label"] == r.json()["top_k"][0]["label"]
    r = client.post("/api/predict?model=seed", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert isinstance(r.json()["label"], int)             # a digits-only model always answers
    assert client.get("/api/model").json()["default"] == "reader"


def test_train_with_negatives_gives_a_model_that_can_refuse(tmp_path, capsys, mnist):
    from helpers import write_npz
    data = write_npz(tmp_path, mnist, 1500, 300)
    out = tmp_path / "r.safetensors"
    code, stdout, _ = run(capsys, "train", "--data", data, "--arch", "conv8k5-pool2-bn-relu-fc11", "--epochs", "1",
                          "--optimizer", "adam", "--augment", "real", "--negatives", "0.1", "--val-size", "500",
                          "--quiet", "-o", out)
    assert code == 0 and "'not a digit' threshold" in stdout
    model = digitnet.load(out)
    assert model.reject_class == 10 and model.classes[-1] == "not a digit"
    cal = model.meta["reject_calibration"]
    assert cal["n_digits"] == 500 and model.meta["reject_threshold"] == cal["threshold"]
    # a threshold refuses at most the chosen share of digits; an untrained-looking model refuses more by its
    # "not a digit" output alone, and then gets no threshold at all
    assert cal["digits_refused"] <= cal["max_refused"] + 1e-9 or cal["threshold"] == 0
    code, _, err = run(capsys, "train", "--data", data, "--arch", "conv8k5-pool2-bn-relu-fc10", "--epochs", "1",
                       "--negatives", "0.1", "--quiet", "-o", tmp_path / "bad.safetensors")
    assert code == 2 and "fc11" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "train", "--augment", "slant,mixup", "--quiet")
    assert code == 2 and "invalid choice" in err



def test_api_number_fields_follow_the_not_a_digit_answer(reader):
    """A refused image has no number, and its one digit entry says why; always_answer gives the guess."""
    pytest.importorskip("httpx")
    import io

    from fastapi.testclient import TestClient

    from digitnet.web.app import create_app
    client = TestClient(create_app({"reader": reader}))
    buf = io.BytesIO()
    scribble().save(buf, format="PNG")
    r = client.post("/api/predict", content=buf.getvalue(), headers={"content-type": "image/png"})
    body = r.json()
    assert r.status_code == 200 and body["label"] is None
    assert body["number"] is None and body["digits"][0]["label"] is None and body["digits"][0]["reason"]
    r = client.post("/api/predict?always_answer=true", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert r.json()["number"] == str(r.json()["label"]) and r.json()["digits"][0]["label"] is not None


def test_an_ensemble_of_readers_is_evaluated_as_one_reader(capsys):
    # its accuracy is the best digit's and its refusals are counted, as for one reader
    code, one, _ = run(capsys, "evaluate", "--json")
    code2, two, _ = run(capsys, "evaluate", "--json", "--model", "reader", "reader")
    one, two = json.loads(one), json.loads(two)
    assert code == code2 == 0
    for key in ("accuracy", "refused", "accuracy_answering"):
        assert two[key] == pytest.approx(one[key]), key
