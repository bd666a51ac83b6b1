"""The web app served by uvicorn on a real socket: misbehaving clients, and a real browser drawing digits.

The browser test drives Debian's chromium through Playwright (Playwright cannot
download its own browser here). When /usr/bin/chromium is missing and we are
root, it is installed with apt-get; the test skips, saying why, only when that
is impossible. Screenshots go to artifacts/ (git-ignored).
"""

import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("fastapi", reason="the web extra (fastapi) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the web extra (uvicorn) is not installed")

from digitnet import MLP  # noqa: E402
from digitnet.preprocess import DIGIT_WORK_SIZE  # noqa: E402
from digitnet.web import app as web_app_module  # noqa: E402
from digitnet.web.app import MAX_BODY, create_app, load_models  # noqa: E402
from digitnet.web.inputs import INLINE_PIXELS, PAGE_DIGIT_SIDE  # noqa: E402
from helpers import debian_package, live_server  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def server():
    """The app (every shipped model) under uvicorn, configured as ``digitnet serve``, on a free 127.0.0.1 port."""
    models = {**load_models(), "untrained": MLP(seed=3)}   # every shipped model, plus one to switch to
    with live_server(create_app(models)) as url:
        yield url


def http(url: str, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes or goes quiet."""
    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=timeout) as s:
        s.sendall(raw)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and b"Content-Length" not in out.split(b"\r\n\r\n")[0].title():
                    break
                head, _, body = out.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
                if length and len(body) >= length[0]:
                    break
        except socket.timeout:
            pass
    return out


def healthz(url: str) -> bytes:
    return http(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")


# --------------------------------------------------------------------------- misbehaving clients
def test_a_huge_declared_body_is_refused_before_it_is_sent(server):
    t0 = time.monotonic()
    out = http(server, b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                       b"Content-Length: 10000000000\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413"), out[:100]
    assert time.monotonic() - t0 < 4   # answered at once, not after waiting for 10 GB


def test_a_chunked_body_is_cut_off_at_the_limit(server):
    chunk = b"\0" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY // len(chunk) + 2)) + b"0\r\n\r\n"
    out = http(server, b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n" + body)
    assert out.startswith(b"HTTP/1.1 413"), out[:100]


def test_stalled_and_abandoned_requests_do_not_block_others(server):
    u = urlsplit(server)
    stalled = []
    for _ in range(5):  # headers promise a body that never comes
        s = socket.create_connection((u.hostname, u.port))
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\nabc")
        stalled.append(s)
    s = socket.create_connection((u.hostname, u.port))  # half a body, then gone
    s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 900\r\n\r\n{\"pix")
    s.close()
    http(server, b"\x16\x03\x01garbage that is not HTTP\r\n\r\n", timeout=2)
    t0 = time.monotonic()
    assert healthz(server).startswith(b"HTTP/1.1 200")
    assert time.monotonic() - t0 < 2
    for s in stalled:
        s.close()
    assert healthz(server).startswith(b"HTTP/1.1 200")


# --------------------------------------------------------------------------- the browser
@pytest.fixture(scope="session")
def chromium():
    """Path of Debian's chromium, installed with apt-get when missing (and we may)."""
    pytest.importorskip("playwright.sync_api", reason="playwright (python package) is not installed")
    debian_package("chromium", lambda: os.path.exists(CHROMIUM))
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


# MNIST-like strokes, in fractions of the canvas: a slightly slanted "1"; a "7" as one stroke
DIGITS = {
    "1": [[(0.54, 0.14), (0.51, 0.5), (0.47, 0.86)]],
    "7": [[(0.26, 0.2), (0.74, 0.2), (0.6, 0.45), (0.46, 0.86)]],
}
# not a digit: a pen wandering in loops across the whole pad
SCRIBBLE = [[(0.15, 0.3), (0.85, 0.2), (0.2, 0.5), (0.8, 0.45), (0.3, 0.8), (0.9, 0.85), (0.1, 0.65),
             (0.6, 0.1), (0.5, 0.9)]]


def draw(page, strokes):
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=12)
        page.mouse.up()


def draw_by_touch(ctx, page, strokes):
    """Real touch input (Chrome DevTools protocol), so the page sees pointerType 'touch'."""
    cdp = ctx.new_cdp_session(page)
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = []
        for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
            points += [(x0 + (x1 - x0) * t / 12, y0 + (y1 - y0) * t / 12) for t in range(12)]
        points.append(stroke[-1])
        for i, (x, y) in enumerate(points):
            kind = "touchStart" if i == 0 else "touchMove"
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
                {"x": box["x"] + x * box["width"], "y": box["y"] + y * box["height"]}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def settled_label(page) -> str:
    page.wait_for_function("document.body.dataset.busy === 'false'", timeout=10_000)
    return page.locator("#prediction").get_attribute("data-label")


def open_page(browser, server, **context):
    # bypass_csp: the test's own waits evaluate JavaScript, which the page's CSP forbids; it also
    # means a reference to an outside URL would really be requested and so be caught below
    ctx = browser.new_context(bypass_csp=True, **context)
    page = ctx.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda exc: requests.append(f"page error: {exc}"))   # caught by only_the_app
    page.goto(server + "/")
    page.wait_for_function("document.body.dataset.ready === 'true'")
    return ctx, page, requests


def record_uploads(page):
    """From now on the page's uploads are listed in ``window.uploads``: [file name, size, first 26 bytes as text]."""
    page.evaluate("""() => {
        window.uploads = [];
        const send = window.fetch;
        window.fetch = async (url, options) => {
            const file = options && options.body instanceof FormData ? options.body.get("file") : null;
            if (file) {
                const head = new Uint8Array(await file.slice(0, 26).arrayBuffer());
                window.uploads.push([file.name, file.size, String.fromCharCode(...head)]);
            }
            return send(url, options);
        };
    }""")


def png_header(upload) -> tuple[int, int, int, int]:
    """An upload's PNG width, height, bit depth and colour type (from record_uploads' first bytes)."""
    name, _size, head = upload
    data = head.encode("latin-1")
    assert name == "digit.png" and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", upload
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), data[24], data[25]


def only_the_app(requests, server):
    return [u for u in requests if not (u.startswith(server + "/") or u.startswith("data:"))]


def test_page_sends_a_digit_at_the_side_the_server_expects():
    app_js = (Path(web_app_module.__file__).parent / "static" / "app.js").read_text()
    assert f"const DIGIT_SIDE = {PAGE_DIGIT_SIDE};" in app_js
    assert PAGE_DIGIT_SIDE <= DIGIT_WORK_SIZE and PAGE_DIGIT_SIDE**2 <= INLINE_PIXELS  # read whole, on the loop


def test_drawing_digits_in_a_real_browser(browser, server):
    ctx, page, requests = open_page(browser, server, viewport={"width": 1000, "height": 760})
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        assert page.locator("#prediction").text_content() == "?"
        assert page.locator("#model option").all_text_contents()[0].startswith("reader")
        for digit, strokes in DIGITS.items():
            draw(page, strokes)
            assert settled_label(page) == digit
            assert page.locator("#prediction").text_content() == digit
            assert page.locator("#bars li.top").count() == 1
            # a confident guess shows as a long bar (its width is animated: wait for it to get there)
            page.wait_for_function(
                "() => document.querySelector('#bars li.top .fill').getBoundingClientRect().width"
                " > 0.5 * document.querySelector('#bars li.top .track').getBoundingClientRect().width",
                timeout=2_000,
            )
            shot = ARTIFACTS / f"web-draw-{digit}.png"
            page.screenshot(path=str(shot))
            print(f"screenshot: {shot}")
            page.keyboard.press("Escape")   # the clear shortcut
            assert page.locator("#prediction").text_content() == "?"
        # a scribble is answered "not a digit", not with a digit
        draw(page, SCRIBBLE)
        assert settled_label(page) == "none"
        assert page.locator("#prediction").text_content() == "?"
        assert "not a digit" in page.locator("#confidence").text_content()
        page.screenshot(path=str(ARTIFACTS / "web-draw-scribble.png"))
        page.keyboard.press("Escape")
        # predictions update while the pen is still down (debounced), not only when it lifts
        box = page.locator("#pad").bounding_box()
        page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.15 * box["height"])
        page.mouse.down()
        before = sum(u.endswith("/api/predict") for u in requests)
        for i in range(1, 6):
            page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + (0.15 + 0.14 * i) * box["height"], steps=4)
            page.wait_for_timeout(150)
        assert sum(u.endswith("/api/predict") for u in requests) - before >= 2
        page.mouse.up()
        page.keyboard.press("Delete")
        assert page.locator("#prediction").text_content() == "?"
        # the image the network saw is drawn in the small canvas: not all black
        draw(page, DIGITS["1"])
        settled_label(page)
        lit = page.evaluate("Array.from(document.getElementById('seen').getContext('2d')"
                            ".getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 == 0 && v > 128).length")
        assert 20 < lit < 300
        # what the page uploads: the "1" cropped with a margin (tall and narrow), at most PAGE_DIGIT_SIDE,
        # with its ink
        w, h, dark = page.evaluate("""(() => {
            const c = inkedPart(DIGIT_SIDE);
            const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let dark = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] < 128) dark++;
            return [c.width, c.height, dark];
        })()""")
        assert max(w, h) == PAGE_DIGIT_SIDE and w < h / 2, (w, h)
        assert 0 < dark < 0.5 * w * h
        # ... sent as an 8-bit greyscale PNG of that crop; the canvas's own RGBA PNG where the browser has no
        # CompressionStream
        page.keyboard.press("Escape")
        record_uploads(page)
        draw(page, DIGITS["1"])
        assert settled_label(page) == "1"
        assert png_header(page.evaluate("uploads")[-1]) == (w, h, 8, 0)  # colour type 0: grey
        page.keyboard.press("Escape")
        page.evaluate("delete window.CompressionStream")
        draw(page, DIGITS["1"])
        assert settled_label(page) == "1"
        assert png_header(page.evaluate("uploads")[-1]) == (w, h, 8, 6)  # colour type 6: RGBA
        # switching the model asks again, and the answer names the model
        assert "reader" in page.locator("#confidence").text_content()
        page.select_option("#model", "untrained")
        page.wait_for_function("document.getElementById('confidence').textContent.includes('untrained')")
        settled_label(page)
        page.click("#clear")
        assert page.locator("#prediction").get_attribute("data-label") == ""
        assert any(u.endswith("/api/predict") for u in requests)
        assert only_the_app(requests, server) == []
    finally:
        ctx.close()


def test_phone_sized_screen_and_api_docs_page(browser, server):
    ctx, page, requests = open_page(browser, server, viewport={"width": 360, "height": 740},
                                    is_mobile=True, has_touch=True, device_scale_factor=2)
    try:
        box = page.locator("#pad").bounding_box()
        assert box["width"] <= 360 and abs(box["width"] - box["height"]) < 1
        assert page.evaluate("document.documentElement.scrollWidth") <= 360   # no sideways scrolling
        draw_by_touch(ctx, page, DIGITS["7"])
        assert settled_label(page) == "7"
        page.screenshot(path=str(ARTIFACTS / "web-phone.png"), full_page=True)
        page.goto(server + "/docs")
        page.locator(".opblock-summary-path", has_text="/api/predict").wait_for()    # rendered by Swagger UI
        page.screenshot(path=str(ARTIFACTS / "web-docs.png"))
        assert only_the_app(requests, server) == []
    finally:
        ctx.close()
