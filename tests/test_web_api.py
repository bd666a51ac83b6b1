"""The web API in-process (FastAPI's TestClient): every input kind, every kind of hostile input."""

import base64
import io
import json
import tempfile
import warnings

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("fastapi", reason="the web extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="httpx (for FastAPI's TestClient) is not installed")
pytest.importorskip("python_multipart", reason="python-multipart is not installed")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx vs httpx2
    from fastapi.testclient import TestClient

import digitnet
from digitnet.web.app import MAX_BODY, create_app
from helpers import scan_bomb


def png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def drawn_one() -> Image.Image:
    """A '1' drawn the way the page draws it: black stroke on a white 280x280 canvas."""
    img = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(img).line([(145, 40), (135, 240)], fill=0, width=28)
    return img


@pytest.fixture(scope="module")
def models():
    return {"seed": digitnet.load("seed"), "untrained": digitnet.MLP(seed=3)}


@pytest.fixture(scope="module")
def client(models):
    return TestClient(create_app(models))


@pytest.fixture(scope="module")
def digit(mnist):
    return mnist.test.images[0], int(mnist.test.labels[0])


def check_prediction(r, label=None, k=3, model="seed"):
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model"] == model
    assert len(out["probabilities"]) == 10 and abs(sum(out["probabilities"]) - 1) < 1e-4
    assert [t["label"] for t in out["top_k"]][0] == out["label"] and len(out["top_k"]) == k
    assert np.asarray(out["image"]).shape == (28, 28)
    if label is not None:
        assert out["label"] == label
    return out


# --------------------------------------------------------------------------- happy paths
def test_health_and_model_metadata(client):
    assert client.get("/healthz").json() == {"status": "ok", "models": ["seed", "untrained"]}
    info = client.get("/api/model").json()
    assert info["default"] == "seed"
    seed = info["models"][0]
    assert seed["name"] == "seed" and seed["n_params"] == 50890 and seed["input_shape"] == [784]
    assert seed["test_accuracy"] == digitnet.info("seed")["test_accuracy"]


@pytest.mark.parametrize("path", ["/healthz", "/api/model", "/", "/static/app.js"])
def test_head_is_answered_like_get_without_the_body(client, path):
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))


def test_head_where_there_is_no_get(client):
    assert client.head("/api/predict").status_code == 405


def test_multipart_upload(client):
    out = check_prediction(client.post("/api/predict", files={"file": ("one.png", png(drawn_one()), "image/png")},
                                       data={"top_k": "5"}), label=1, k=5)
    assert max(map(max, out["image"])) > 200  # the stroke, white on black as in MNIST


def test_an_upload_under_another_field_name_is_read(client):
    """curl -F image=@digit.png: the one part sent as a file is the image, whatever its field's name."""
    for name in ("image", "img", "upload"):
        check_prediction(client.post("/api/predict", files={name: ("one.png", png(drawn_one()), "image/png")},
                                     data={"top_k": "2"}), label=1, k=2)


def test_raw_png_and_jpeg_bodies(client):
    check_prediction(client.post("/api/predict", content=png(drawn_one()), headers={"content-type": "image/png"}),
                     label=1)
    check_prediction(client.post("/api/predict?top_k=2", content=png(drawn_one(), "JPEG"),
                                 headers={"content-type": "image/jpeg"}), label=1, k=2)


def test_json_image_in_base64_as_clients_send_it(client):
    """A canvas's toDataURL(), bare base64, its URL-safe form without padding, MIME's line breaks: each is read."""
    data = png(drawn_one())
    b64 = base64.b64encode(data).decode()
    for image in ("data:image/png;base64," + b64, "DATA:image/png;charset=binary;base64," + b64, b64,
                  base64.urlsafe_b64encode(data).decode().rstrip("="),
                  "\r\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))):
        check_prediction(client.post("/api/predict", json={"image": image}), label=1)
    jpeg = base64.b64encode(png(drawn_one(), "JPEG")).decode()
    check_prediction(client.post("/api/predict", json={"image": jpeg, "top_k": 5, "model": "seed"}), label=1, k=5)
    out = check_prediction(client.post("/api/predict", json={"image": b64, "split": True}), label=1)
    assert out["number"] == "1" and len(out["digits"]) == 1 and out["digits"][0]["box"] is not None


def test_a_json_image_may_be_larger_than_json_pixels_and_its_numbers_stay_short(client):
    from digitnet.web.app import MAX_JSON_BODY, MAX_BASE64_BODY
    rng = np.random.default_rng(0)
    page = np.asarray(drawn_one(), np.float32) + rng.normal(0, 6, (280, 280))   # paper grain: PNG compresses badly
    big = png(Image.fromarray(np.clip(page, 0, 255).astype(np.uint8)).resize((420, 420)))
    assert MAX_JSON_BODY < len(base64.b64encode(big)) < MAX_BASE64_BODY
    check_prediction(client.post("/api/predict", json={"image": base64.b64encode(big).decode()}), label=1)
    larger = base64.b64encode(png(drawn_one().resize((1200, 1200)), "TIFF")).decode()
    assert len(larger) > MAX_BASE64_BODY
    r = client.post("/api/predict", json={"image": larger})
    assert r.status_code == 413 and "as a file upload or as the raw body" in r.json()["detail"]
    # a large body with "image" in it is parsed with numbers bounded: thousands of digits are refused at once
    body = b'{"image": "", "top_k": ' + b"9" * (MAX_JSON_BODY + 10) + b"}"
    r = client.post("/api/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and f"a number of {MAX_JSON_BODY + 10:,} characters" in r.json()["detail"]


def test_json_pixels_28x28_flat_and_unit_range(client, mnist):
    for i in range(3):
        img, label = mnist.test.images[i], int(mnist.test.labels[i])
        out = check_prediction(client.post("/api/predict", json={"pixels": img.tolist()}), label=label)
        assert out["image"] == img.tolist()  # JSON pixels are used as they are
        check_prediction(client.post("/api/predict", json={"pixels": img.ravel().tolist(), "top_k": 1}),
                         label=label, k=1)
        unit = (img / 255.0).tolist()
        check_prediction(client.post("/api/predict", json={"pixels": unit, "range": "0-1"}), label=label)


def test_the_api_agrees_with_the_python_api(client, models, mnist):
    img = mnist.test.images[5]
    out = client.post("/api/predict", json={"pixels": img.tolist()}).json()
    assert np.allclose(out["probabilities"], models["seed"].predict_proba(img[None])[0], atol=1e-6)


def test_choosing_a_model(client, digit):
    img, _ = digit
    a = check_prediction(client.post("/api/predict", json={"pixels": img.tolist(), "model": "untrained"}),
                         model="untrained")
    b = check_prediction(client.post("/api/predict?model=untrained", json={"pixels": img.tolist()}),
                         model="untrained")
    c = check_prediction(client.post("/api/predict", files={"file": ("one.png", png(drawn_one()))},
                                     data={"model": "untrained"}), model="untrained")
    seed = client.post("/api/predict", json={"pixels": img.tolist()}).json()
    assert a["probabilities"] == b["probabilities"] != seed["probabilities"]
    assert c["model"] == "untrained"


def test_openapi_documents_the_api(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/model", "/healthz"} <= set(spec["paths"])
    body = spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json", "image/png", "image/jpeg"} <= set(body)
    assert "422" in spec["paths"]["/api/predict"]["post"]["responses"]
    query = {q["name"]: q for q in spec["paths"]["/api/predict"]["post"]["parameters"]}
    assert set(query) == {"model", "top_k", "split", "always_answer"} and query["top_k"]["schema"]["maximum"] == 10
    page = client.get("/docs")
    assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text


def test_docs_page_is_swagger_ui_served_by_the_app(client):
    page = client.get("/docs")
    assert "default-src 'self'" in page.headers["content-security-policy"] and "<script>" not in page.text
    bundle = client.get("/docs-assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text and len(bundle.content) > 500_000
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200
    assert "/openapi.json" in client.get("/static/docs.js").text


def test_page_and_assets_are_served_by_the_app(client):
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css", "/static/docs.js"):
        assert client.get(asset).status_code == 200, asset
    # no outside URL anywhere in what the page loads
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


def test_cors_is_off_by_default(client, models):
    headers = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
    r = client.options("/api/predict", headers=headers)
    assert "access-control-allow-origin" not in r.headers
    r = client.get("/healthz", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in r.headers
    opened = TestClient(create_app(models, cors_origins=["https://elsewhere.example"]))
    r = opened.get("/healthz", headers={"Origin": "https://elsewhere.example"})
    assert r.headers["access-control-allow-origin"] == "https://elsewhere.example"


# --------------------------------------------------------------------------- hostile input
def test_body_over_the_limit_is_413_by_content_length(client):
    r = client.post("/api/predict", content=b"\0" * (MAX_BODY + 1), headers={"content-type": "image/png"})
    assert r.status_code == 413 and "at most" in r.json()["detail"]
    r = client.post("/api/predict", files={"file": ("big.png", b"\0" * MAX_BODY)})
    assert r.status_code == 413


def test_json_body_over_its_own_limit_is_413(client, mnist):
    from digitnet.web.app import MAX_JSON_BODY
    pretty = json.dumps({"pixels": (mnist.test.images[0] / 255).tolist(), "range": "0-1"}, indent=4)
    assert len(pretty) < MAX_JSON_BODY    # a real request, pretty-printed, fits with room to spare
    check_prediction(client.post("/api/predict", content=pretty, headers={"content-type": "application/json"}))
    bomb = b'{"pixels": [' + b"[0]," * (MAX_JSON_BODY // 4) + b"[0]]}"   # many tiny lists: slow to parse
    r = client.post("/api/predict", content=bomb, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "JSON request body too large" in r.json()["detail"]


def test_streamed_body_over_the_limit_is_413_without_content_length(client):
    sent = []

    def chunks():  # no Content-Length: sent chunked, counted as it arrives
        for _ in range(64):
            sent.append(1)
            yield b"\0" * 65536

    r = client.post("/api/predict", content=chunks(), headers={"content-type": "image/png"})
    assert r.status_code == 413


def test_body_limit_is_configurable(models):
    small = TestClient(create_app(models, max_body=200))
    data = png(drawn_one())
    assert len(data) > 200
    assert small.post("/api/predict", content=data, headers={"content-type": "image/png"}).status_code == 413
    assert small.get("/healthz").status_code == 200


@pytest.mark.parametrize("body, message", ids=lambda v: v[:40].decode() if isinstance(v, bytes) else "", argvalues=[
    (b"not json", "not valid JSON"),
    (b"[" * 60_000, "60,000 '\\[' characters"),                 # nested deeper than the parser's recursion
    (b'{"pixels": [' + b"[0]," * 2000 + b"[0]]}", "2,002 '\\[' characters"),   # many tiny lists: slow to parse
    (b'{"pixels": [' + b"0," * 2000 + b"0]}", "2,000 ',' characters"),
    (b'{"pixels": 0, "x": ' + b'{"a": 0},' * 10 + b"0}", "11 '{' characters"),
    (b'[1, 2, 3]', "expected a JSON object"),
    (b'{"pixel": []}', "with neither"),
    (json.dumps({"pixels": [0] * 784, "image": ""}).encode(), "with both"),
    (json.dumps({"image": 7}).encode(), "'image' must be a string"),
    (json.dumps({"image": "not base64!"}).encode(), "'image' is not valid base64"),
    (json.dumps({"image": "data:image/png;base64"}).encode(), "without the comma"),
    (json.dumps({"image": "data:image/png,iVBORw0KGgo="}).encode(), "data URL must be base64"),
    (json.dumps({"image": "data:image/png" + ";" * 50_000 + "base64,iVBORw0KGgo="}).encode(), "50,020 characters before its data"),
    (json.dumps({"image": "data:text/html;base64,PGI+"}).encode(), "holds 'text/html', not an image"),
    (json.dumps({"image": "aGVsbG8=", "range": "0-1"}).encode(), "unknown field.*'range' with 'image'"),
    (json.dumps({"image": "aGVsbG8=", "split": "perhaps"}).encode(), "split must be true or false"),
    (b'{"pixels": [1, 2, 3]}', "28 rows of 28 numbers or a flat list of 784"),
    (json.dumps({"pixels": [[0] * 28] * 27 + [[0] * 27]}).encode(), "row 27 has 27 values"),
    (json.dumps({"pixels": [[0] * 28] * 28 + [[0] * 28]}).encode(), "got a list of 29"),
    (json.dumps({"pixels": [0] * 783 + ["7"]}).encode(), "expected a number"),
    (json.dumps({"pixels": [0] * 783 + [True]}).encode(), "expected a number"),
    (json.dumps({"pixels": [[0] * 28] * 27 + [[0] * 27 + [None]]}).encode(), "expected a number"),
    (json.dumps({"pixels": [0] * 783 + [float("nan")]}).encode(), "finite"),
    (json.dumps({"pixels": [0] * 783 + [float("inf")]}).encode(), "finite"),
    (json.dumps({"pixels": [0] * 783 + [256]}).encode(), r"\[0, 255\]"),
    (json.dumps({"pixels": [0] * 783 + [-1]}).encode(), r"\[0, 255\]"),
    (json.dumps({"pixels": [0] * 783 + [2], "range": "0-1"}).encode(), r"\[0, 1\]"),
    (json.dumps({"pixels": [0] * 784, "range": "0-100"}).encode(), "'range' must be one of"),
    (json.dumps({"pixels": [0] * 784, "range": []}).encode(), "'range' must be one of"),
    (json.dumps({"pixels": [0] * 784, "range": {"a": 1}}).encode(), "'range' must be one of"),
    (json.dumps({"pixels": [0] * 783 + [10 ** 400]}).encode(), "integer of 401 digits"),
    (json.dumps({"pixels": [[0] * 28] * 27 + [[0] * 27 + [-10 ** 400]]}).encode(), "integer of 401 digits"),
    (json.dumps({"pixels": [0] * 784, "top_k": 0}).encode(), "top_k must be an integer from 1 to 10"),
    (json.dumps({"pixels": [0] * 784, "top_k": "many"}).encode(), "top_k must be an integer"),
    (json.dumps({"pixels": [0] * 784, "model": "nope"}).encode(), "unknown model 'nope'; loaded: seed, untrained"),
    (json.dumps({"pixels": [0] * 784, "extra": 1}).encode(), "unknown field"),
    (json.dumps({"pixels": [0] * 784, "model": None}).encode(), "'model' must be a model name"),
])
def test_bad_json_is_422_with_a_clear_message(client, body, message):
    r = client.post("/api/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail
    import re
    assert re.search(message, detail), detail


def lab_tiff() -> bytes:
    buf = io.BytesIO()
    Image.new("LAB", (40, 40), (50, 20, 20)).save(buf, "TIFF")
    return buf.getvalue()


@pytest.mark.parametrize("data, message", [
    (lab_tiff(), "image mode LAB is not supported"),
    (scan_bomb(5000), "scans; at most 100"),
], ids=["lab-tiff", "scan-bomb"])
def test_images_pillow_cannot_or_should_not_decode_are_422(client, data, message):
    for r in (client.post("/api/predict", files={"file": ("x.img", data, "image/tiff")}),
              client.post("/api/predict", content=data, headers={"content-type": "image/jpeg"}),
              client.post("/api/predict", json={"image": base64.b64encode(data).decode()})):
        assert r.status_code == 422 and message in r.json()["detail"], r.text


def test_ordinary_progressive_jpegs_pass_the_scan_check(client):
    from digitnet.preprocess import MAX_JPEG_SCANS
    from digitnet.web.inputs import check_image_bytes
    buf = io.BytesIO()
    drawn_one().convert("RGB").save(buf, "JPEG", progressive=True, quality=95)
    check_image_bytes(buf.getvalue())
    check_image_bytes(scan_bomb(MAX_JPEG_SCANS - 20))
    check_prediction(client.post("/api/predict", content=buf.getvalue(), headers={"content-type": "image/jpeg"}),
                     label=1)


@pytest.mark.parametrize("data, message", [
    (b"definitely not an image", "not a readable image"),
    (b"", "empty"),
    (png(Image.new("L", (50, 50)))[:60], "not a readable image"),       # truncated PNG
    (png(Image.new("L", (50, 50), 255)), "blank"),                      # nothing drawn
])
def test_bad_images_are_422_in_every_transport(client, data, message):
    for r in (client.post("/api/predict", files={"file": ("x.png", data, "image/png")}),
              client.post("/api/predict", content=data, headers={"content-type": "image/png"}),
              client.post("/api/predict", json={"image": base64.b64encode(data).decode()})):
        assert r.status_code == 422 and message in r.json()["detail"], r.text


def test_decompression_bomb_is_refused(client):
    bomb = png(Image.new("1", (20000, 20000)))  # 48 kB that would decode to 400 megapixels
    assert len(bomb) < 100_000
    for r in (client.post("/api/predict", files={"file": ("bomb.png", bomb, "image/png")}),
              client.post("/api/predict", json={"image": base64.b64encode(bomb).decode()})):
        assert r.status_code == 422 and ("too large" in r.json()["detail"] or "pixels" in r.json()["detail"])
    # under PIL's own bomb threshold but over the app's limit: refused from the header
    big = png(Image.new("1", (3000, 3000)))
    r = client.post("/api/predict", content=big, headers={"content-type": "image/png"})
    assert r.status_code == 422 and "at most 4,194,304 pixels" in r.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"content-type": "application/x-www-form-urlencoded"}],
                         ids=["no Content-Type", "curl --data-binary's form type"])
def test_an_image_sent_without_its_type_is_read(client, headers):
    from digitnet.preprocess import image_formats
    for fmt in sorted(set(image_formats()) - {"DIB"}):   # every format digitnet reads that has a signature (a DIB has none)
        buf = io.BytesIO()
        drawn_one().convert("RGB" if fmt == "JPEG" else "L").save(buf, format=fmt)
        r = client.post("/api/predict", content=buf.getvalue(), headers=headers)
        assert r.status_code == 200 and r.json()["label"] == 1, (fmt, r.text)
    r = client.post("/api/predict", content=b"label=1&pixels=0", headers=headers)
    if headers:   # a form without the image
        assert r.status_code == 422 and "needs the image in field 'image'" in r.json()["detail"]
    else:
        assert r.status_code == 415 and "unsupported Content-Type" in r.json()["detail"]


def test_a_form_post_of_a_data_url_is_read(client):
    """$.post("/api/predict", {image: canvas.toDataURL()}): a form-encoded data URL, or bare base64."""
    from urllib.parse import urlencode
    b64 = base64.b64encode(png(drawn_one())).decode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for body in (urlencode({"image": "data:image/png;base64," + b64}),
                 urlencode({"image": b64, "top_k": 2, "model": "seed"}),
                 "image=" + b64 + "&top_k=2"):                  # '+' left unescaped: read as a space, restored
        k = 2 if "top_k" in body else 3
        check_prediction(client.post("/api/predict", content=body.encode(), headers=form), label=1, k=k)
    out = check_prediction(client.post("/api/predict", content=urlencode({"image": b64, "split": "true"}).encode(),
                                       headers=form), label=1)
    assert out["number"] == "1" and out["digits"][0]["box"] is not None
    for body, status, message in [
        (urlencode({"image": b64, "colour": "red"}), 422, "only image, model, top_k, split"),
        ("image=a&image=b", 422, "given twice"),
        ("&".join(f"f{i}=1" for i in range(20)), 422, "at most 8 fields"),
        (urlencode({"image": "not base64!"}), 422, "not valid base64"),
        (urlencode({"image": b64, "top_k": "0"}), 422, "top_k"),
        ("image=" + "A" * 600_000, 413, "form body too large"),
    ]:
        r = client.post("/api/predict", content=body.encode(), headers=form)
        assert r.status_code == status and message in r.json()["detail"], (body[:40], r.text[:200])


def test_malformed_requests_are_4xx(client):
    r = client.post("/api/predict", content=b"hello", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "unsupported Content-Type" in r.json()["detail"]
    r = client.post("/api/predict", content=b"--x\r\n", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 422 and "boundary" in r.json()["detail"]
    r = client.post("/api/predict", content=b"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",
                    headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 422 and "multipart" in r.json()["detail"]
    long = "b" * 5000    # python-multipart refuses boundaries over 256 bytes
    r = client.post("/api/predict", content=f"--{long}\r\n\r\n--{long}--\r\n".encode(),
                    headers={"content-type": f"multipart/form-data; boundary={long}"})
    assert r.status_code == 422 and "multipart" in r.json()["detail"]
    r = client.post("/api/predict", files={"image": (None, b"one.png")})   # a form field, not a file
    assert r.status_code == 422 and "needs the image in a 'file' field" in r.json()["detail"]
    r = client.post("/api/predict", files={"a": ("a.png", png(drawn_one())), "b": ("b.png", png(drawn_one()))})
    assert r.status_code == 422 and "got file parts 'a', 'b'" in r.json()["detail"]    # which one is the digit?
    r = client.post("/api/predict", files={"file": ("one.png", png(drawn_one()))}, data={"top_k": "99"})
    assert r.status_code == 422 and "top_k" in r.json()["detail"]
    r = client.post("/api/predict?top_k=0", content=png(drawn_one()), headers={"content-type": "image/png"})
    assert r.status_code == 422 and "top_k" in r.json()["detail"]
    r = client.post("/api/predict?model=cnn9", content=png(drawn_one()), headers={"content-type": "image/png"})
    assert r.status_code == 422 and "unknown model" in r.json()["detail"]
    r = client.post("/api/predict", content=b"{}", headers={"content-type": "application/json",
                                                            "content-length": "banana"})
    assert r.status_code == 400
    assert client.get("/healthz").status_code == 200  # and the app is still fine


def test_uploads_are_never_written_to_disk(client, monkeypatch):
    """Starlette's own form parser spools uploads over 1 MB to a temp file; ours must not."""
    import starlette.formparsers
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    spooled = []   # every temporary file anyone asks for while the spies are in place

    def spy(original):
        def recorded(*a, **kw):
            spooled.append(original.__name__)
            return original(*a, **kw)
        return recorded

    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp", "SpooledTemporaryFile"):
        monkeypatch.setattr(tempfile, name, spy(getattr(tempfile, name)))
    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", tempfile.SpooledTemporaryFile)

    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (1100, 1100), dtype=np.uint8))
    upload = png(noise)
    assert 1024 * 1024 < len(upload) < MAX_BODY - 1000   # bigger than starlette's spool threshold

    async def form_route(request):  # the control: what a plain UploadFile endpoint would do
        await request.form()
        return PlainTextResponse("ok")
    control = TestClient(Starlette(routes=[Route("/", form_route, methods=["POST"])]))
    control.post("/", files={"file": ("noise.png", upload, "image/png")})
    assert "TemporaryFile" in spooled, "the control should have spooled to disk (else this test proves nothing)"

    spooled.clear()
    r = client.post("/api/predict", files={"file": ("noise.png", upload, "image/png")})
    assert r.status_code == 200 and spooled == []


def test_fast_and_careful_pixel_checks_agree(mnist):
    from digitnet.web.inputs import pixels_to_array
    img = mnist.test.images[7]
    for pixels, rng in ((img.tolist(), "0-255"), (img.ravel().tolist(), "0-255"), ((img / 255).tolist(), "0-1")):
        fast = pixels_to_array(pixels, rng, may_hold_bools=False)
        careful = pixels_to_array(pixels, rng, may_hold_bools=True)
        assert fast.dtype == np.float32 and fast.shape == (28, 28) and np.array_equal(fast, careful)
    assert np.allclose(fast * 255, img, atol=1e-3)
    with pytest.raises(digitnet.DigitnetError, match="expected a number"):
        pixels_to_array([0] * 783 + [True], may_hold_bools=True)


@pytest.mark.parametrize("content_type", ["application/json", "image/png", "multipart/form-data; boundary=b",
                                          "application/octet-stream", "text/plain", ""])
def test_random_bodies_never_crash_the_server(client, content_type):
    from hypothesis import HealthCheck, given, settings, strategies as st

    pieces = st.sampled_from([b"--b\r\n", b'Content-Disposition: form-data; name="file"\r\n\r\n', b"--b--\r\n",
                              b'{"pixels": ', b"[", b"]", b"0,", b"NaN", b"1e999", b"\x89PNG\r\n\x1a\n", b"\0"])

    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.lists(st.one_of(pieces, st.binary(max_size=64)), max_size=30))
    def check(parts):
        r = client.post("/api/predict", content=b"".join(parts), headers={"content-type": content_type})
        assert 400 <= r.status_code < 500 and isinstance(r.json()["detail"], str)

    check()


def test_named_classes_come_back_by_name(tmp_path):
    from fastapi.testclient import TestClient
    from digitnet.nn import MLP
    from digitnet.web.app import create_app
    model = MLP((8,), n_classes=3, classes=["cat", "dog", "<b>fish</b>"], seed=0)
    client = TestClient(create_app({"pets": model}))
    got = client.post("/api/predict", json={"pixels": [[0] * 28] * 28, "top_k": 3}).json()
    assert got["classes"] == ["cat", "dog", "<b>fish</b>"] and got["class"] == got["classes"][got["label"]]
    assert [t["class"] for t in got["top_k"]] == [got["classes"][t["label"]] for t in got["top_k"]]
    assert client.get("/api/model").json()["models"][0]["classes"] == ["cat", "dog", "<b>fish</b>"]


def test_a_small_drawing_is_read_on_the_event_loop_and_the_rest_in_the_decoding_threads(monkeypatch, mnist):
    """The page's drawing of one digit (at most 128 x 128) skips the thread hand-over; a larger image, or a
    small one that must be read as a number, still goes to the threads and their deadline."""
    from digitnet.web import inputs
    from digitnet.web.pool import DecodePool
    ran = []
    real_run = DecodePool.run

    async def run(self, fn, *args):
        ran.append(fn.__name__)
        return await real_run(self, fn, *args)
    monkeypatch.setattr(DecodePool, "run", run)
    client = TestClient(create_app({"reader": digitnet.load("reader")}))
    seven = Image.fromarray(255 - mnist.test.images[0])                      # a 7
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 120), dtype=np.uint8))
    for img, expected_runs in ((seven.resize((128, 128)), []), (seven.resize((129, 128)), ["read_image"]),
                               (noise, ["read_as_number"])):
        ran.clear()
        r = client.post("/api/predict", content=png(img), headers={"Content-Type": "image/png"})
        assert r.status_code == 200 and ran == expected_runs, (img.size, ran)
        if img is not noise:
            assert r.json()["label"] == 7
    ran.clear()
    r = client.post("/api/predict?split=true", content=png(seven.resize((64, 64))), headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and ran == ["read_image"]                    # asked for a number: the threads
    ran.clear()
    bomb = png(Image.new("1", (20000, 20000)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                       # no warning about a huge claimed size
        assert inputs.header_pixels(bomb) == inputs.BOMB_PIXELS                # past Pillow's own limit
        assert inputs.header_pixels(png(Image.new("1", (3000, 3000)))) == 3000 * 3000
        r = client.post("/api/predict", content=bomb, headers={"Content-Type": "image/png"})
    assert r.status_code == 422 and "too large" in r.json()["detail"] and ran == []   # refused from its header, here
    r = client.post("/api/predict", content=b"\x89PNG\r\n\x1a\n not really", headers={"Content-Type": "image/png"})
    assert r.status_code == 422 and "not a readable image (not PNG, JPEG" in r.json()["detail"] and ran == []
    assert inputs.header_pixels(b"\x89PNG\r\n\x1a\n not really") == 0                 # no header found: at once, here
    assert inputs.header_pixels(b"") == 0 and inputs.INLINE_PIXELS == 128 * 128
    ran.clear()
    seed = TestClient(create_app({"seed": digitnet.load("seed")}))              # no "not a digit": read as a number
    r = seed.post("/api/predict", content=png(seven.resize((128, 128))), headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and ran == ["read_image"]


def test_answers_are_json_with_the_values_the_json_module_writes():
    from digitnet.web.app import Answer

    content = {"label": None, "probabilities": [1e-06, 2.5e-05, 0.5, 1.0], "class": "é", "image": [[0, 255]],
               "top_k": [{"label": 3, "probability": 0.999999}]}
    body = Answer(content).body
    assert json.loads(body) == content == json.loads(json.dumps(content))
    assert Answer({"p": [float("nan"), float("inf")]}).body == b'{"p":[null,null]}'   # JSON has neither
