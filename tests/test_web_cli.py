"""``digitnet serve``: its user errors, and a real server process answering."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from helpers import debian_package

from digitnet.cli import main

pytest.importorskip("fastapi", reason="the web extra (fastapi) is not installed")
pytest.importorskip("uvicorn", reason="the web extra (uvicorn) is not installed")


@pytest.mark.parametrize("argv, message", [
    (["serve", "--port", "99999"], "expected a TCP port"),
    (["serve", "--port", "http"], "expected a TCP port"),
    (["serve", "--workers", "0"], "expected a positive integer"),
    (["serve", "--model", "nope"], "no model file or shipped model named 'nope'"),
    (["serve", "--model", "seed", "--model", "seed"], "two models are both named 'seed'"),
    (["serve", "--allow-origin", "localhost:3000"], "expected an origin like http://localhost:3000"),
    (["serve", "--allow-origin", "http://localhost:3000/page"], "expected an origin like"),
])
def test_serve_user_errors_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("digitnet: error:") and message in err and "\n" not in err


def test_serve_on_a_taken_port_is_one_line_before_it_says_it_serves(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--model", "seed", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("digitnet: error:") and f"127.0.0.1:{port}" in err and "in use" in err
    assert err.count("\n") == 1 and "serving" not in err


def test_serve_without_the_web_extra_says_how_to_get_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)   # import uvicorn -> ImportError
    assert main(["serve"]) == 2
    assert "pip install 'digitnet[web]'" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_digitnet_serve_runs_a_server(mnist, workers):
    port = free_port()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "digitnet", "serve", "--port", str(port), "--workers", str(workers),
                             "--allow-origin", "http://localhost:3000"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    health = json.load(r)
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "digitnet serve did not answer within 30 s"
                time.sleep(0.1)
        assert health["status"] == "ok" and health["models"][0] == "reader"   # the default reader first
        body = json.dumps({"pixels": mnist.test.images[0].tolist()}).encode()
        req = urllib.request.Request(url + "/api/predict", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.load(r)["label"] == int(mnist.test.labels[0])
        for origin, allowed in (("http://localhost:3000", True), ("https://elsewhere.example", False)):
            req = urllib.request.Request(url + "/healthz", headers={"Origin": origin})
            with urllib.request.urlopen(req, timeout=5) as r:    # --allow-origin reached every worker
                assert (r.headers.get("access-control-allow-origin") == origin) == allowed
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert f"127.0.0.1:{port}" in out.decode()   # uvicorn said where it listens
    if workers > 1:
        assert out.decode().count("Started server process") == workers, out.decode()


@pytest.mark.parametrize("only", [[], ["page", "json_image", "too_large"]])
def test_the_load_test_script_runs(tmp_path, only):
    """benchmarks/load_test.py in miniature: it must work, whatever the timings (none are asserted)."""
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "load_test.py"
    out = tmp_path / "load"
    done = subprocess.run([sys.executable, str(script), "--requests", "300", "--warmup", "20", "--clients", "4",
                           "--workers", "2", "--out", str(out)] + (["--only", *only] if only else []),
                          capture_output=True, text=True, timeout=120, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.with_suffix(".json").read_text())
    s = report["summary"]
    assert s["requests"] == 300 and s["server_5xx"] == 0 and s["client_errors"] == 0 and not s["unexpected"]
    assert set(s["by_kind"]) == set(only or [k for k, share in report["mix"].items() if share])
    for kind in ["json_28x28"] if not only else ["page", "json_image"]:
        assert set(s["by_kind"][kind]) == {"200"}, (kind, s["by_kind"][kind])
    assert set(s["by_kind"]["too_large"]) == {"413"}
    assert report["rss_mb"]["after"] > 0 and out.with_suffix(".md").read_text().startswith("# Load test")
    assert report["workers"] == 2 and report["server_cpu_ms_per_request"] > 0


def test_the_load_test_script_runs_with_wrk(tmp_path):
    """--client wrk (installed with apt-get when missing): the kinds asked for minus what wrk cannot send, in
    shares that add up to 1, each status put down to its kind."""
    import shutil
    from pathlib import Path
    debian_package("wrk", lambda: shutil.which("wrk") is not None)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "load_test.py"
    out = tmp_path / "load"
    done = subprocess.run([sys.executable, str(script), "--client", "wrk", "--duration", "2", "--warmup", "20",
                           "--clients", "4", "--only", "json_28x28", "bad_json", "too_large", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.with_suffix(".json").read_text())
    s = report["summary"]
    assert report["client"] == "wrk" and report["mix"] == {"json_28x28": 0.5, "bad_json": 0.5}
    assert s["requests"] > 50 and s["server_5xx"] == 0 and s["client_errors"] == 0 and not s["unexpected"]
    assert set(s["by_kind"]) == {"json_28x28", "bad_json"}
    assert set(s["by_kind"]["json_28x28"]) == {"200"} and set(s["by_kind"]["bad_json"]) == {"422"}
    assert s["predictions_per_s"] > 0 and 0 < s["latency_ms"]["p50"] <= s["latency_ms"]["p99"] <= s["latency_ms"]["max"]
    assert "(wrk, one connection per thread)" in out.with_suffix(".md").read_text()


def test_serve_with_workers_on_a_taken_port_is_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--model", "seed", "--port", str(port), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("digitnet: error:") and "in use" in err and err.count("\n") == 1


workers = pytest.importorskip("digitnet.web.workers")
linux_proc = pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux's /proc")


def _children(pid):
    kids = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            kids |= {int(k) for k in f.read().split()}
    return kids


def _workers_of(pid):
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    out = set()
    for k in _children(pid):
        try:
            with open(f"/proc/{k}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"spawn_main" in cmd and b"resource_tracker" not in cmd:
            out.add(k)
    return out


def _wait(cond, seconds, what):
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@linux_proc
def test_a_dead_worker_is_replaced_and_workers_outlive_no_supervisor():
    port = free_port()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "digitnet", "serve", "--model", "seed", "--port", str(port),
                             "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}/healthz"

    def answers(timeout=2):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status == 200
        except OSError:
            return False
    try:
        _wait(lambda: len(_workers_of(proc.pid)) == 2 and answers(), 60, "the server did not start")
        first = _workers_of(proc.pid)
        victim = min(first)
        os.kill(victim, 9)
        _wait(lambda: len(_workers_of(proc.pid)) == 2 and victim not in _workers_of(proc.pid), 30,
              "the killed worker was not replaced")
        for _ in range(20):                     # both sockets are served again: every request answers
            assert answers(timeout=30)          # (one waiting for the new worker to start)
        survivors = _workers_of(proc.pid)
        proc.kill()                             # the supervisor dies without stopping its workers
        proc.wait(10)
        _wait(lambda: not any(os.path.exists(f"/proc/{k}") and open(f"/proc/{k}/stat").read().split()[2] != "Z"
                              for k in survivors), 30, "workers kept running without their supervisor")
    finally:
        if proc.poll() is None:
            proc.kill()


def _established_on(pid, port):
    """How many established TCP connections process ``pid`` holds on local ``port``."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":   # 01: ESTABLISHED
                inodes.add(fields[9])
    held = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with __import__("contextlib").suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            held += target.startswith("socket:[") and target[8:-1] in inodes
    return held


@linux_proc
def test_keep_alive_connections_are_shared_evenly_between_workers():
    """Each new connection goes to a worker with the fewest open: 8 opened one after another split 4 / 4."""
    import http.client
    port = free_port()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "digitnet", "serve", "--model", "seed", "--port", str(port),
                             "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    connections = []
    try:
        _wait(lambda: len(_workers_of(proc.pid)) == 2 and _established_on(proc.pid, port) == 0, 60, "no workers")
        for _ in range(8):
            deadline = time.monotonic() + 60
            while True:                                  # until both workers accept
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                try:
                    conn.request("GET", "/healthz")
                    assert conn.getresponse().read()
                    break
                except OSError:
                    conn.close()
                    assert time.monotonic() < deadline, "the server did not answer"
                    time.sleep(0.1)
            connections.append(conn)                     # kept open: keep-alive
        split = sorted(_established_on(k, port) for k in _workers_of(proc.pid))
        assert split == [4, 4]
    finally:
        for conn in connections:
            conn.close()
        proc.kill()
        proc.wait(10)
