"""The page in a real browser: number mode (a wide canvas read as a row of digits) and --collect."""

import pytest

pytest.importorskip("fastapi", reason="the web extra (fastapi) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the web extra (uvicorn) is not installed")

import digitnet  # noqa: E402
from digitnet.web.app import create_app  # noqa: E402
from helpers import live_server  # noqa: E402
from test_web_live import (  # noqa: E402, F401
    ARTIFACTS, DIGITS, browser, chromium, draw, only_the_app, open_page, png_header, record_uploads)


@pytest.fixture(scope="module")
def collect_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("collected")


@pytest.fixture(scope="module")
def server(collect_dir):
    with live_server(create_app({"cnn": digitnet.load("cnn")}, collect=collect_dir)) as url:
        yield url


def in_slot(strokes, slot, slots=3):
    """A digit's strokes (fractions of a square canvas) moved into one third of the wide canvas."""
    return [[((slot + x) / slots, y) for x, y in stroke] for stroke in strokes]


def settled(page):
    page.wait_for_function("document.body.dataset.busy === 'false'", timeout=15_000)


def test_number_mode_reads_a_row_of_digits(browser, server):
    ctx, page, requests = open_page(browser, server, viewport={"width": 1000, "height": 800})
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        assert page.locator("#number").is_hidden()
        page.check("#number-mode")
        assert page.locator("#number").is_visible()
        box = page.locator("#pad").bounding_box()
        assert 2.9 < box["width"] / box["height"] < 3.1
        record_uploads(page)
        draw(page, in_slot(DIGITS["1"], 0) + in_slot(DIGITS["7"], 1) + in_slot(DIGITS["1"], 2))
        settled(page)
        width, height, depth, colour = png_header(page.evaluate("uploads")[-1])
        assert width > 2 * height and (depth, colour) == (8, 0)         # the number's crop, greyscale
        assert page.locator("#number-text").get_attribute("data-number") == "171"
        assert page.locator("#digits li").count() == 3
        assert page.locator("#digits li .label").all_text_contents() == ["1", "7", "1"]
        page.screenshot(path=str(ARTIFACTS / "web-number.png"))
        page.keyboard.press("Escape")
        assert page.locator("#number-text").get_attribute("data-number") == ""
        assert page.locator("#digits li").count() == 0
        assert page.locator("#collect").is_hidden()                     # corrections are for single digits
        page.uncheck("#number-mode")
        box = page.locator("#pad").bounding_box()
        assert abs(box["width"] - box["height"]) < 1
        assert only_the_app(requests, server) == []
    finally:
        ctx.close()


def test_wrong_tap_the_right_digit_saves_the_drawing(browser, server, collect_dir):
    ctx, page, requests = open_page(browser, server, viewport={"width": 1000, "height": 800})
    try:
        assert page.locator("#collect").is_visible()
        draw(page, DIGITS["7"])
        settled(page)
        page.click("#collect-digits button[data-digit='7']")
        page.wait_for_function("document.getElementById('collect-status').dataset.saved === '7'")
        saved = list((collect_dir / "7").glob("*.png"))
        assert len(saved) == 1
        from digitnet.finetune import load_folder
        data = load_folder(collect_dir)
        assert data.labels.tolist() == [7]
        assert only_the_app(requests, server) == []
    finally:
        ctx.close()
