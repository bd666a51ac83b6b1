"""`digitnet serve --collect DIR`: corrected drawings saved only with the flag, only valid, atomically, bounded."""

import io
import warnings

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("python_multipart")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import digitnet
from digitnet.finetune import load_folder
from digitnet.web.app import create_app
from helpers import run


def drawing(digit_line=((140, 40), (135, 240))) -> bytes:
    img = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(img).line(list(digit_line), fill=0, width=28)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def models():
    return {"seed": digitnet.load("seed")}


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_without_the_flag_nothing_is_written(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    client = TestClient(create_app(models))
    assert client.post("/api/collect", files={"file": ("d.png", drawing())}, data={"label": "1"}).status_code == 404
    assert client.get("/api/collect").status_code == 404
    assert client.post("/api/predict", files={"file": ("d.png", drawing())}).status_code == 200
    assert list(tmp_path.iterdir()) == []


def test_saves_under_the_digit_and_finetune_reads_it(models, tmp_path):
    client = TestClient(create_app(models, collect=tmp_path / "mine"))
    r = client.post("/api/collect", files={"file": ("../../evil.png", drawing())}, data={"label": "1"})
    assert r.status_code == 200 and r.json()["counts"]["1"] == 1
    saved = files_under(tmp_path / "mine")
    assert len(saved) == 1 and saved[0].startswith("1/") and saved[0].endswith(".png") and "evil" not in saved[0]
    img = Image.open(tmp_path / "mine" / saved[0])
    assert img.mode == "L" and max(img.size) <= 640
    assert client.get("/api/collect").json()["counts"]["1"] == 1
    data = load_folder(tmp_path / "mine")
    assert data.labels.tolist() == [1] and data.images.shape == (1, 28, 28)


@pytest.mark.parametrize("label", ["a", "10", "-1", "", " ", "../1", "1.0", "٣"])
def test_only_valid_labels(models, tmp_path, label):
    client = TestClient(create_app(models, collect=tmp_path))
    r = client.post("/api/collect", files={"file": ("d.png", drawing())}, data={"label": label})
    assert r.status_code == 422 and "label must be one digit" in r.json()["detail"]
    assert files_under(tmp_path) == []


def test_misuse_is_a_clear_4xx(models, tmp_path):
    client = TestClient(create_app(models, collect=tmp_path))
    r = client.post("/api/collect", files={"file": ("d.png", b"not an image")}, data={"label": "3"})
    assert r.status_code == 422 and "not a readable image" in r.json()["detail"]
    r = client.post("/api/collect", files={"file": ("d.png", b"")}, data={"label": "3"})
    assert r.status_code == 422
    r = client.post("/api/collect", data={"label": "3"})
    assert r.status_code in (415, 422)
    r = client.post("/api/collect", files={"file": ("d.png", drawing())})
    assert r.status_code == 422 and "'label'" in r.json()["detail"]
    r = client.post("/api/collect", content=drawing(), headers={"content-type": "image/png"})
    assert r.status_code == 415
    assert files_under(tmp_path) == []


def test_bounded_in_count_and_size(models, tmp_path, monkeypatch):
    from digitnet.web import collect
    app = create_app(models, collect=tmp_path)
    client = TestClient(app)
    app2 = create_app(models, collect=collect.Collector(tmp_path / "small", 10**6, max_per_digit=2, max_total=3))
    small = TestClient(app2)
    post = lambda lab: small.post("/api/collect", files={"file": ("d.png", drawing())}, data={"label": lab})
    assert [post("1").status_code, post("1").status_code] == [200, 200]
    r = post("1")
    assert r.status_code == 409 and "full" in r.json()["detail"]
    assert post("2").status_code == 200
    assert post("3").status_code == 409                                 # 3 in all
    assert len(files_under(tmp_path / "small")) == 3
    # a huge noisy image is shrunk and refused when still too large as PNG
    monkeypatch.setattr(collect, "MAX_FILE_BYTES", 1000)
    noise = np.random.default_rng(0).integers(0, 256, (600, 600), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    r = client.post("/api/collect", files={"file": ("n.png", buf.getvalue())}, data={"label": "4"})
    assert r.status_code == 422 and "too large to store" in r.json()["detail"]
    assert not (tmp_path / "4").exists()


def test_an_interrupted_write_leaves_no_file(models, tmp_path, monkeypatch):
    import digitnet.io as dio
    client = TestClient(create_app(models, collect=tmp_path))

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(dio.os, "fsync", broken_fsync)
    r = client.post("/api/collect", files={"file": ("d.png", drawing())}, data={"label": "5"})
    assert r.status_code == 503 and "no space left" in r.json()["detail"].lower()
    assert str(tmp_path) not in r.json()["detail"]                     # the server's paths stay private
    assert files_under(tmp_path) == []                                  # no partial file, no temp file


def test_serve_collect_flag(capsys, tmp_path):
    (tmp_path / "afile").write_text("x")
    code, _, err = run(capsys, "serve", "--model", "seed", "--collect", tmp_path / "afile")
    assert code == 2 and "exists and is not a folder" in err
