"""The server under clients that misbehave, on real sockets to 127.0.0.1 (uvicorn in a thread).

The server runs with short deadlines (ServerLimits below) so that every test
finishes in seconds; what is asserted is what the client sees (a status, a
closed connection), never how fast.
"""

import io
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("fastapi", reason="the web extra (fastapi) is not installed")
pytest.importorskip("uvicorn", reason="the web extra (uvicorn) is not installed")
pytest.importorskip("httptools", reason="the web extra (httptools) is not installed")

import uvicorn  # noqa: E402

import digitnet  # noqa: E402
from digitnet.web import app as web_app  # noqa: E402
from digitnet.web.app import MAX_BODY, create_app  # noqa: E402
from digitnet.web.server import ServerLimits, uvicorn_config  # noqa: E402
from helpers import scan_bomb  # noqa: E402

LIMITS = ServerLimits(header_timeout_s=1.0, body_timeout_s=1.5, keep_alive_s=0.5, max_header_bytes=4096,
                      max_headers=20, max_connections=40, linger_s=3.0, graceful_shutdown_s=3.0)
WAIT = 15.0   # how long a test waits for something that must happen (a close, an answer) before failing


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def start(app, limits=LIMITS):
    """``app`` under uvicorn with ``limits`` on a free port in a thread; returns (server, thread, port)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    srv = uvicorn.Server(uvicorn_config(app, limits, log_config=None, log_level="warning", access_log=False))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    return srv, thread, sock


@pytest.fixture(scope="module")
def server():
    log = Records()
    logging.getLogger("uvicorn.error").addHandler(log)
    srv, thread, sock = start(create_app({"seed": digitnet.load("seed")}, image_workers=2, decode_timeout_s=5.0))
    yield sock.getsockname()[1], log
    srv.should_exit = True
    thread.join(10)
    sock.close()
    logging.getLogger("uvicorn.error").removeHandler(log)


def connect(port: int, timeout: float = WAIT) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def response(s: socket.socket) -> tuple[int, dict, bytes]:
    """Read one response (status, headers, body by Content-Length) from ``s``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"connection closed before a response: {data[:200]!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers.get("content-length", 0)):
        chunk = s.recv(65536)
        assert chunk, "connection closed in the middle of a response body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def closed(s: socket.socket) -> bool:
    """True when the server closes ``s`` (whatever it sends first is read and dropped)."""
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def get(port: int, path: str = "/healthz") -> tuple[int, dict, bytes]:
    with connect(port) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        return response(s)


def drawn_png() -> bytes:
    img = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(img).line([(145, 40), (135, 240)], fill=0, width=28)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def post(port: int, body: bytes, content_type: str = "image/png", timeout: float = WAIT):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/predict", body, {"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


# --------------------------------------------------------------------------- slow and idle clients
def test_a_connection_that_sends_nothing_is_closed(server):
    port, _ = server
    with connect(port) as s:
        assert closed(s)
    assert get(port)[0] == 200


def test_headers_sent_a_byte_at_a_time_are_cut_off_with_408(server):
    port, _ = server
    with connect(port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        s.settimeout(0.2)
        answer = b""
        for _ in range(int(WAIT / 0.2)):
            try:
                s.sendall(b"X")
                answer += s.recv(65536)
            except socket.timeout:
                continue
            except OSError:   # reset: the server closed while we were still sending
                break
            if answer:
                break
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]


def test_a_body_that_stalls_is_cut_off_with_408(server):
    port, log = server
    with connect(port) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                  b"Content-Length: 5000\r\n\r\n\x89PNG")
        status, headers, body = response(s)
        assert status == 408 and headers["connection"] == "close" and b"body" in body
        assert closed(s)
    assert get(port)[0] == 200
    assert not [r for r in log.records if r.exc_info], "a stalled client was logged with a traceback"


def test_an_idle_kept_alive_connection_is_closed(server):
    port, _ = server
    with connect(port) as s:
        for _ in range(2):   # two requests on one connection: keep-alive works ...
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert response(s)[0] == 200
        assert closed(s)     # ... and an idle one is then closed


def test_many_idle_sockets_are_all_closed_and_healthz_answers_meanwhile(server):
    port, _ = server
    idle = [connect(port) for _ in range(30)]
    try:
        assert get(port)[0] == 200
        for s in idle:
            assert closed(s)
    finally:
        for s in idle:
            s.close()


def test_requests_on_one_connection_with_large_bodies(server, mnist):
    """The header limit counts header bytes only, not the bodies that share a connection's reads."""
    port, _ = server
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (900, 900), dtype=np.uint8))
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    big = buf.getvalue()
    assert len(big) > 500_000
    pixels = json.dumps({"pixels": mnist.test.images[0].tolist()}).encode()
    with connect(port) as s:
        for body, ctype in ((big, b"image/png"), (pixels, b"application/json"), (big, b"image/png")):
            s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
                      % (ctype, len(body)) + body)
            status, _, out = response(s)
            assert status in (200, 422), out[:200]   # noise may read as blank; never a limit or a 5xx


# --------------------------------------------------------------------------- headers
@pytest.mark.parametrize("head", [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 6000 + b"\r\n\r\n",
    b"GET /healthz?" + b"q" * 6000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(30)) + b"\r\n",
], ids=["one-long-header", "long-url", "too-many-headers"])
def test_header_size_and_count_are_limited(server, head):
    port, _ = server
    with connect(port) as s:
        s.sendall(head)
        status, _, body = response(s)
        assert status == 431 and b"header" in body
        assert closed(s)


def test_a_header_line_that_never_ends_is_refused(server):
    port, _ = server
    with connect(port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        answer = b""
        try:
            for _ in range(100):
                s.sendall(b"a" * 1024)
                s.settimeout(0.01)
                try:
                    answer += s.recv(65536)
                except socket.timeout:
                    pass
                if answer:
                    break
        except OSError:
            pass
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]


# --------------------------------------------------------------------------- bodies too large
def test_urllib_sending_its_whole_oversized_body_sees_413(server):
    """http.client writes the whole body before it reads: the server must read it before closing."""
    port, _ = server
    for _ in range(3):   # 6 MB: more than the socket buffers hold, so an unread body would reset the connection
        status, out = post(port, b"\0" * (3 * MAX_BODY))
        assert status == 413 and "at most" in out["detail"]
    assert get(port)[0] == 200


def test_a_chunked_body_over_the_limit_sees_413_after_sending_it_all(server):
    port, _ = server
    chunk = b"%x\r\n%s\r\n" % (65536, b"\0" * 65536)
    with connect(port) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + chunk * (MAX_BODY // 65536 + 8) + b"0\r\n\r\n")
        status, headers, body = response(s)
        assert status == 413 and headers["connection"] == "close"
        assert closed(s)


# --------------------------------------------------------------------------- connections
def test_connections_over_the_cap_get_503(server):
    port, _ = server
    held = []
    try:
        for _ in range(LIMITS.max_connections):
            held.append(connect(port))
        time.sleep(0.3)   # let the server accept them all
        with connect(port) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = response(s)
            assert status == 503 and b"connections" in body and headers["connection"] == "close"
    finally:
        for s in held:
            s.close()
    for _ in range(50):     # the server notices the closes
        if get(port)[0] == 200:
            break
        time.sleep(0.1)
    assert get(port)[0] == 200


def test_a_client_that_goes_away_mid_upload_is_one_log_line(server):
    port, log = server
    before = len(log.records)
    with connect(port) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                  b"Content-Length: 100000\r\n\r\n" + b"\0" * 1000)
        time.sleep(0.2)
    for _ in range(int(WAIT / 0.1)):
        new = log.records[before:]
        if any("went away" in r.getMessage() for r in new):
            break
        time.sleep(0.1)
    new = log.records[before:]
    assert [r.getMessage() for r in new if "went away" in r.getMessage()], [r.getMessage() for r in new]
    assert not [r for r in new if r.exc_info or "Exception" in r.getMessage()]


# --------------------------------------------------------------------------- decoding off the event loop
@pytest.fixture
def slow_decode(monkeypatch):
    """Replace the image decode with one that blocks until released (as a scan bomb would)."""
    release, started = threading.Event(), []

    def decode(data, max_pixels, net, split):
        started.append(1)
        release.wait(WAIT)
        return np.zeros((28, 28), np.uint8), np.full(len(net.classes), 1 / len(net.classes)), None  # no number

    monkeypatch.setattr(web_app, "read_image", decode)
    yield release, started
    release.set()


def test_healthz_answers_while_slow_decodes_hold_every_thread(server, slow_decode):
    port, _ = server
    release, started = slow_decode
    results = []
    uploads = [threading.Thread(target=lambda: results.append(post(port, drawn_png())[0])) for _ in range(4)]
    for t in uploads:
        t.start()
    for _ in range(int(WAIT / 0.05)):
        if len(started) >= 2:
            break
        time.sleep(0.05)
    assert len(started) == 2                # both threads busy, two uploads waiting
    assert get(port)[0] == 200              # and the event loop answers meanwhile
    assert get(port, "/api/model")[0] == 200
    release.set()
    for t in uploads:
        t.join(WAIT)
    assert sorted(results) == [200, 200, 200, 200]


def test_a_decode_past_its_deadline_is_422_and_a_full_pool_503(server, slow_decode):
    port, _ = server
    release, started = slow_decode
    results = []
    uploads = [threading.Thread(target=lambda: results.append(post(port, drawn_png()))) for _ in range(7)]
    for t in uploads:
        t.start()
    for t in uploads:
        t.join(WAIT)
    release.set()
    codes = sorted(code for code, _ in results)
    # 2 threads + 4 waiting: the 7th is refused at once; the 2 running overrun (422); the 4 waiting never
    # get a thread before the deadline (503)
    assert codes == [422, 422, 503, 503, 503, 503, 503], results
    assert any("took longer than" in out["detail"] for code, out in results if code == 422)
    assert all("busy" in out["detail"] for code, out in results if code == 503)


def test_scan_bombs_are_refused_and_healthz_answers_while_they_are_in_flight(server):
    port, _ = server
    bomb = scan_bomb(50_000)
    results, health = [], []
    bombs = [threading.Thread(target=lambda: results.append(post(port, bomb, "image/jpeg"))) for _ in range(4)]
    for t in bombs:
        t.start()
    health.append(get(port)[0])
    while any(t.is_alive() for t in bombs):
        health.append(get(port)[0])
    for t in bombs:
        t.join(WAIT)
    assert [code for code, _ in results] == [422] * 4 and "scans" in results[0][1]["detail"]
    assert set(health) == {200}
    assert post(port, drawn_png())[0] == 200


# --------------------------------------------------------------------------- shutdown
def test_shutdown_does_not_wait_for_slow_clients():
    srv, thread, sock = start(create_app({"seed": digitnet.load("seed")}))
    port = sock.getsockname()[1]
    idle, stalled = connect(port), connect(port)
    stalled.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 9000\r\n\r\n")
    time.sleep(0.3)
    srv.should_exit = True
    thread.join(WAIT)
    try:
        assert not thread.is_alive(), "the server is still waiting for its clients"
        assert closed(idle) and closed(stalled)
    finally:
        idle.close()
        stalled.close()
        sock.close()


def test_the_hostile_client_benchmark_runs(tmp_path):
    """benchmarks/web_hostile.py in miniature (two phases): it must work, whatever the timings (none asserted)."""
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "web_hostile.py"
    out = tmp_path / "hostile"
    done = subprocess.run([sys.executable, str(script), "--quick", "--phases",
                           "scan_bombs,base64_bodies,oversized_urllib", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.with_suffix(".json").read_text())
    assert list(report["phases"]) == ["baseline", "scan_bombs", "base64_bodies", "oversized_urllib"]
    for phase in ("scan_bombs", "base64_bodies"):
        bombs = report["phases"][phase]
        assert set(bombs["hostile"]["statuses"]) == {"422"} and set(bombs["healthz"]["statuses"]) == {"200"}
    assert report["phases"]["oversized_urllib"]["hostile"]["statuses"] == {"413": 5}
    assert report["unexpected_5xx"] == 0 and report["server_tracebacks"] == 0
    assert out.with_suffix(".md").read_text().startswith("# Hostile clients")


def test_the_decode_pool_predicts_on_one_thread(monkeypatch):
    """A server process keeps to one core: a number's many digits do not split over threads of their own."""
    import asyncio

    from digitnet.nn import threads
    from digitnet.web.pool import DecodePool
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    for var in threads.THREAD_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    assert threads.inference_count() == 4                      # elsewhere, one thread per core
    pool = DecodePool(2, 5.0)
    try:
        assert asyncio.run(pool.run(threads.inference_count)) == 1
    finally:
        pool.close()
