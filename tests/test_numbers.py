"""Numbers everywhere: the CLI (text and JSON), the Python API and /api/predict read a row of digits."""

import json
import warnings

import numpy as np
import pytest
from PIL import Image

import digitnet
from helpers import run


def number_image(mnist, indices, spacing=8, scale=3):
    """MNIST test digits side by side, black on white, enlarged like a scan."""
    canvas, x = np.zeros((40, 16 + 40 * len(indices))), 6
    for i in indices:
        d = mnist.test.images[i].astype(float)
        cols = np.nonzero(d.any(axis=0))[0]
        d = d[:, cols[0]:cols[-1] + 1]
        canvas[6:34, x:x + d.shape[1]] = np.maximum(canvas[6:34, x:x + d.shape[1]], d)
        x += d.shape[1] + spacing
    img = Image.fromarray(255 - canvas[:, :x + 6].astype(np.uint8))
    return img.resize((img.width * scale, img.height * scale), Image.BICUBIC)


@pytest.fixture(scope="module")
def files(tmp_path_factory, mnist):
    d = tmp_path_factory.mktemp("numbers")
    number_image(mnist, [0, 1, 2, 3]).save(d / "number.png")                 # "7210"
    number_image(mnist, [0, 1, 2], spacing=-1).save(d / "touching.png")      # "721", touching
    Image.fromarray(255 - np.pad(mnist.test.images[4], 12)).resize((120, 120)).save(d / "single.png")
    return d


def want(mnist, indices):
    return "".join(str(mnist.test.labels[i]) for i in indices)


def test_cli_reads_a_number_without_split_and_says_so(capsys, files, mnist):
    code, out, _ = run(capsys, "predict", "--model", "cnn", "--json", files / "number.png")
    entry = json.loads(out)
    assert code == 0 and entry["number"] == want(mnist, [0, 1, 2, 3]) == entry["label"]
    assert [d["label"] for d in entry["digits"]] == [int(c) for c in entry["number"]]
    boxes = [d["box"] for d in entry["digits"]]
    assert all(len(b) == 4 and b[0] < b[2] and b[1] < b[3] for b in boxes)
    assert [b[0] for b in boxes] == sorted(b[0] for b in boxes)
    assert all(len(d["top_k"]) == 3 for d in entry["digits"])
    code, out, _ = run(capsys, "predict", "--model", "cnn", files / "number.png")
    assert out.startswith(f"{files / 'number.png'}: {want(mnist, [0, 1, 2, 3])} ")


def test_cli_split_reads_touching_digits(capsys, files, mnist):
    code, out, _ = run(capsys, "predict", "--model", "cnn", "--split", "--json", files / "touching.png")
    assert code == 0 and json.loads(out)["number"] == want(mnist, [0, 1, 2])


def test_cli_single_digit_stays_a_digit(capsys, files, mnist):
    _, out, _ = run(capsys, "predict", "--model", "cnn", "--json", files / "single.png")
    entry = json.loads(out)
    assert entry["label"] == mnist.test.labels[4] and entry["number"] == str(entry["label"])
    assert "digits" not in entry and len(entry["box"]) == 4


def test_python_api_reads_the_same(files, mnist):
    model = digitnet.load("cnn")
    reading = digitnet.read_number(Image.open(files / "number.png"), model)
    assert reading.number == want(mnist, [0, 1, 2, 3]) and len(reading.boxes) == 4
    from digitnet.preprocess import read_number
    assert read_number(files / "touching.png", model).number == want(mnist, [0, 1, 2])


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from digitnet.web.app import create_app
    return TestClient(create_app({"cnn": digitnet.load("cnn")}))


def test_api_returns_number_and_digits(client, files, mnist):
    data = (files / "number.png").read_bytes()
    out = client.post("/api/predict", files={"file": ("n.png", data)}).json()
    assert out["number"] == want(mnist, [0, 1, 2, 3]) and len(out["digits"]) == 4
    d = out["digits"][0]
    assert d["label"] == mnist.test.labels[0] and len(d["box"]) == 4 and np.asarray(d["image"]).shape == (28, 28)
    raw = client.post("/api/predict", content=data, headers={"content-type": "image/png"}).json()
    assert raw["number"] == out["number"]
    touching = client.post("/api/predict?split=true", content=(files / "touching.png").read_bytes(),
                           headers={"content-type": "image/png"}).json()
    assert touching["number"] == want(mnist, [0, 1, 2])


def test_api_single_digit_and_pixels(client, files, mnist):
    out = client.post("/api/predict", files={"file": ("s.png", (files / "single.png").read_bytes())}).json()
    assert out["number"] == str(out["label"]) and len(out["digits"]) == 1
    px = client.post("/api/predict", json={"pixels": mnist.test.images[0].tolist()}).json()
    assert px["number"] == str(px["label"]) and px["digits"][0]["box"] is None


def test_api_bad_split_is_a_422(client, files):
    r = client.post("/api/predict?split=maybe", content=(files / "single.png").read_bytes(),
                    headers={"content-type": "image/png"})
    assert r.status_code == 422 and "split must be true or false" in r.json()["detail"]
    r = client.post("/api/predict", files={"file": ("s.png", (files / "single.png").read_bytes())},
                    data={"split": "2"})
    assert r.status_code == 422


@pytest.mark.parametrize("query", ["split=703", "always_answer=maybe", "always_answer=2"])
def test_api_bad_yes_no_query_is_a_422_whatever_the_body(client, mnist, query):
    """JSON pixels are one digit and never split, but a query the schema calls boolean is still checked."""
    r = client.post(f"/api/predict?{query}", json={"pixels": mnist.test.images[0].tolist()})
    name = query.split("=")[0]
    assert r.status_code == 422 and f"{name} must be true or false" in r.json()["detail"]
    ok = client.post(f"/api/predict?{name}=yes", json={"pixels": mnist.test.images[0].tolist()})
    assert ok.status_code == 200


def test_api_with_the_reader_skips_segmenting_only_a_sure_single_digit(files, mnist, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from digitnet.web import numbers
    from digitnet.web.app import create_app

    client = TestClient(create_app({"reader": digitnet.load("reader")}))
    calls = []
    real = numbers.read_number
    monkeypatch.setattr(numbers, "read_number", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = client.post("/api/predict", files={"file": ("n.png", (files / "number.png").read_bytes())}).json()
    assert out["number"] == want(mnist, [0, 1, 2, 3]) and calls     # several digits: refused whole, then read
    calls.clear()
    one = client.post("/api/predict", files={"file": ("s.png", (files / "single.png").read_bytes())}).json()
    assert one["number"] == str(mnist.test.labels[4]) == str(one["label"]) and not calls
    split = client.post("/api/predict?split=true", content=(files / "single.png").read_bytes(),
                        headers={"content-type": "image/png"}).json()
    assert split["number"] == str(mnist.test.labels[4]) and calls   # asked to split: always segmented


def test_cli_with_the_reader_segments_only_what_may_be_several_digits(capsys, files, mnist, monkeypatch):
    """As the API: a sure single digit is read whole only (its box from the whole reading); a number still is one."""
    from digitnet import segment
    calls = []
    real = segment.read_number
    monkeypatch.setattr(segment, "read_number", lambda *a, **k: calls.append(1) or real(*a, **k))
    _, out, _ = run(capsys, "predict", "--json", files / "single.png")
    entry = json.loads(out)
    assert entry["label"] == mnist.test.labels[4] and "digits" not in entry and not calls
    x0, y0, x1, y1 = entry["box"]                    # the 28x28 digit padded by 12 and scaled from 52 to 120 px
    ink = np.nonzero(np.pad(mnist.test.images[4], 12) > 0)
    want_box = (ink[1].min() * 120 / 52, ink[0].min() * 120 / 52, (ink[1].max() + 1) * 120 / 52,
                (ink[0].max() + 1) * 120 / 52)
    assert np.allclose((x0, y0, x1, y1), want_box, atol=4), (entry["box"], want_box)
    _, out, _ = run(capsys, "predict", "--json", files / "number.png")
    assert json.loads(out)["number"] == want(mnist, [0, 1, 2, 3]) and calls
    calls.clear()
    _, out, _ = run(capsys, "predict", "--json", "--model", "reader", "--model", "reader", files / "single.png")
    assert json.loads(out)["label"] == mnist.test.labels[4] and not calls         # an ensemble decides the same way
    _, out, _ = run(capsys, "predict", "--json", "--model", "reader", "--model", "reader", files / "number.png")
    assert json.loads(out)["number"] == want(mnist, [0, 1, 2, 3]) and calls
    calls.clear()
    _, out, _ = run(capsys, "predict", "--json", "--split", files / "single.png")
    assert json.loads(out)["number"] == str(mnist.test.labels[4]) and calls   # asked to split: always segmented


def test_the_api_segments_only_what_may_be_several_digits():
    from digitnet.segment import SURE, WIDE_INK, needs_number_reading

    reader, cnn = digitnet.load("reader"), digitnet.load("cnn")
    square, wide = np.zeros((28, 28), np.uint8), np.zeros((28, 28), np.uint8)
    square[4:24, 4:24] = 255
    wide[9:19, 2:26] = 255                                   # ink 2.4 times wider than tall
    assert WIDE_INK < 2.4

    def proba(best, p_best, p_reject=0.0):
        p = np.full(11, (1 - p_best - p_reject) / 9)
        p[best], p[10] = p_best, p_reject
        return p
    sure, unsure, refused = proba(3, SURE + 0.05), proba(3, SURE - 0.2, 0.1), proba(3, 0.2, 0.7)
    assert not needs_number_reading(reader, sure, wide)      # a sure digit is one digit, however wide
    assert not needs_number_reading(reader, unsure, square)  # a sloppy digit no wider than a digit
    assert needs_number_reading(reader, unsure, wide)        # unsure and wide: maybe two digits
    assert needs_number_reading(reader, refused, square)     # several digits in one box are refused whole
    assert needs_number_reading(cnn, sure[:10], square)      # a model that cannot refuse: always
