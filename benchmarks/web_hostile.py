"""Hostile clients against ``digitnet serve``: does the server stay up, answer ``/healthz``, and close what it should?

Starts ``python -m digitnet serve`` (the default model) on a free 127.0.0.1 port (its default
limits, as a user gets them) and runs, one after the other:

- ``scan_bombs``: four clients each sending, again and again, a 2 MB progressive JPEG of
  ~200,000 empty scans (each a decoder pass over every block: seconds to tens of seconds);
- ``largest_jpeg``: four clients sending the slowest JPEG the server still decodes
  (2048x2048 pixels, 100 scans), which goes to the decoding threads;
- ``noise_drawings``: four clients sending 128x128 pixels of noise as PNG, the size the page
  sends a drawn digit in: read as one digit on the event loop (the slowest such image, ~10 ms),
  refused, then handed to the decoding threads to be read as a number, which its scattered ink
  is not;
- ``json_bombs``: four clients sending 64 kB of tiny nested JSON lists (the JSON size limit),
  slow to parse on the event loop, refused from a count of their brackets;
- ``base64_bodies``: four clients sending the largest JSON body with an image in base64 the
  server parses (512 kB), whose bytes are no image: parsed and decoded on the event loop, then refused;
- ``idle_sockets``: 300 connections that never send a byte;
- ``slowloris``: 100 connections that send their headers one byte a second;
- ``oversized_urllib``: urllib POSTing a 6 MB body (it sends all before it reads);
- ``connection_cap``: the server's connection cap filled with idle sockets, then one more request.

During each phase a prober requests ``GET /healthz`` on a fresh connection, one after
the other, and records its latency and status. The server's CPU time per hostile request
(and its share of one core) is reported too: unlike latencies, it hardly depends on what
else the machine runs. Reported per phase: the hostile requests' statuses, /healthz
p50/p99/max, how long until the server closed every hostile socket, and every 5xx that
was not a deliberate 503. Writes ``--out``.json and .md.

    python benchmarks/web_hostile.py                 # the full run (about 2 minutes)
    python benchmarks/web_hostile.py --quick         # shorter phases, fewer sockets
    python benchmarks/web_hostile.py --quick --phases scan_bombs,idle_sockets
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import random
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- hostile payloads
def scan_bomb(scans: int, size: int = 512) -> bytes:
    """A progressive JPEG of a drawn stroke followed by ``scans`` empty scans."""
    from PIL import Image, ImageDraw
    img = Image.new("L", (size, size), 255)
    ImageDraw.Draw(img).line([(size // 2, size // 8), (size // 2, size * 7 // 8)], fill=0, width=size // 10)
    buf = io.BytesIO()
    img.save(buf, "JPEG", progressive=True)
    return buf.getvalue()[:-2] + b"\xff\xda\x00\x08\x01\x01\x00\x00\x00\x00" * scans + b"\xff\xd9"


def largest_jpeg() -> bytes:
    """A 2048x2048 progressive JPEG with as many scans as the server accepts (100)."""
    from digitnet.preprocess import MAX_JPEG_SCANS
    base = scan_bomb(0, 2048)
    scans = base.count(b"\xff\xda")
    return scan_bomb(MAX_JPEG_SCANS - scans, 2048)


def noise_drawing() -> bytes:
    """128x128 pixels of noise: the largest image the server reads on its event loop, and the slowest such."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def json_bomb() -> bytes:
    """Tiny nested JSON lists, up to the server's JSON size limit: the slowest JSON of that size to parse."""
    from digitnet.web.app import MAX_JSON_BODY
    head = b'{"pixels": ['
    return head + b"[0]," * ((MAX_JSON_BODY - len(head) - 5) // 4) + b"[0]]}"


def base64_body() -> bytes:
    """The largest JSON body with an image in base64 the server parses, holding random bytes: every step up to
    the refusal (parsing, base64 decoding, reading the header) runs on the event loop."""
    from digitnet.web.app import MAX_BASE64_BODY
    head, tail = b'{"image": "data:image/png;base64,', b'"}'
    n = (MAX_BASE64_BODY - len(head) - len(tail)) // 4
    return head + base64.b64encode(random.Random(0).randbytes(3 * n)) + tail


# --------------------------------------------------------------------------- a raw HTTP client
def request(port: int, raw: bytes, timeout: float = 60.0) -> tuple[int | None, float]:
    """Send ``raw``, read the response's status; (status or None on a connection error, seconds)."""
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(raw)
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        status = int(data.split()[1]) if data.startswith(b"HTTP/1.1 ") else None
    except OSError:
        status = None
    return status, time.perf_counter() - t0


def post(body: bytes, content_type: str) -> bytes:
    return (b"POST /api/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: %s\r\n"
            b"Content-Length: %d\r\n\r\n" % (content_type.encode(), len(body))) + body


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


class Prober:
    """GET /healthz on a fresh connection, one after the other, until stopped.

    In a process of its own, so that the hostile clients' threads do not delay it (they share a GIL).
    """

    def __init__(self, port: int):
        import multiprocessing
        ctx = multiprocessing.get_context("fork")
        self.stop = ctx.Event()
        self.receiver, sender = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=self._run, args=(port, self.stop, sender), daemon=True)

    @staticmethod
    def _run(port, stop, sender):
        samples = []
        while not stop.is_set():
            samples.append(request(port, HEALTHZ, timeout=30))
            time.sleep(0.01)
        sender.send(samples)

    def start(self):
        self.process.start()

    def summary(self) -> dict:
        self.stop.set()
        samples = self.receiver.recv()
        self.process.join(60)
        ms = np.array([t for _, t in samples]) * 1000
        def pct(q):
            return round(float(np.percentile(ms, q)), 1) if len(ms) else None
        return {"requests": len(ms), "statuses": statuses(samples), "p50_ms": pct(50), "p99_ms": pct(99),
                "max_ms": round(float(ms.max()), 1) if len(ms) else None}


def statuses(results) -> dict[str, int]:
    out: dict[str, int] = {}
    for s, _ in results:
        out[str(s)] = out.get(str(s), 0) + 1
    return out


# --------------------------------------------------------------------------- phases
def flood(port: int, raw: bytes, clients: int, seconds: float) -> dict:
    """``clients`` threads sending ``raw`` again and again for ``seconds``."""
    results: list = []
    end = time.monotonic() + seconds

    def client():
        while time.monotonic() < end:
            results.append(request(port, raw))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ms = np.array([t for _, t in results]) * 1000
    return {"requests": len(results), "statuses": statuses(results),
            "p50_ms": round(float(np.percentile(ms, 50)), 1), "max_ms": round(float(ms.max()), 1)}


def held_sockets(port: int, n: int, trickle: bool, limit_s: float) -> dict:
    """Open ``n`` sockets (idle, or trickling a header byte a second); when did the server close each?"""
    socks, opened = [], time.monotonic()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if trickle:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
        socks.append(s)
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    closed_at: dict[int, float] = {}
    answers: dict[str, int] = {}
    next_byte = time.monotonic() + 1
    while len(closed_at) < n and time.monotonic() - opened < limit_s:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 "):
                answers[data.split()[1].decode()] = answers.get(data.split()[1].decode(), 0) + 1
            if not data:
                closed_at[s.fileno()] = time.monotonic() - opened
                sel.unregister(s)
        if trickle and time.monotonic() >= next_byte:
            next_byte += 1
            for s in socks:
                if s.fileno() not in closed_at:
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
    for s in socks:
        s.close()
    times = sorted(closed_at.values())
    return {"sockets": n, "closed_by_server": len(times), "answers": answers,
            "all_closed_within_s": round(times[-1], 1) if len(times) == n else None,
            "median_close_s": round(times[len(times) // 2], 1) if times else None}


def oversized_urllib(port: int) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/predict", b"\0" * (6 * 1024 * 1024),
                                 {"Content-Type": "image/png"})
    results = []
    for _ in range(5):
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                results.append(str(r.status))
        except urllib.error.HTTPError as exc:
            results.append(str(exc.code))
        except OSError as exc:
            results.append(type(exc).__name__)
    return {"tries": len(results), "statuses": {s: results.count(s) for s in set(results)}}


def connection_cap(port: int, cap: int) -> dict:
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(cap)]
    time.sleep(1.0)
    status, _ = request(port, HEALTHZ)
    for s in socks:
        s.close()
    time.sleep(1.0)
    after, _ = request(port, HEALTHZ)
    return {"held": cap, "one_more": status, "after_closing": after}


# --------------------------------------------------------------------------- run
PHASES = ("scan_bombs", "largest_jpeg", "noise_drawings", "json_bombs", "base64_bodies", "idle_sockets", "slowloris",
          "oversized_urllib", "connection_cap")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of the server process: contention-independent, unlike latencies."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server() -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "digitnet", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while request(port, HEALTHZ, timeout=2)[0] != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start: {proc.stderr.read().decode()[-500:]}")
        time.sleep(0.2)
    return proc, port


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 s floods, 50 idle and 20 slow sockets")
    p.add_argument("--phases", default=",".join(PHASES), help="comma-separated phases to run, in this order")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "web_hostile"),
                   help="output path without suffix (.json and .md are written)")
    args = p.parse_args(argv)
    chosen = [ph.strip() for ph in args.phases.split(",") if ph.strip()]
    if unknown := set(chosen) - set(PHASES):
        p.error(f"unknown phase(s) {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}")
    sys.path.insert(0, str(ROOT / "src"))
    from digitnet.web.server import ServerLimits
    limits = ServerLimits()
    seconds, idle_n, slow_n = (3, 50, 20) if args.quick else (15, 300, 100)

    proc, port = start_server()
    phases: dict[str, dict] = {}
    try:
        baseline = Prober(port)
        baseline.start()
        time.sleep(seconds / 3)
        phases["baseline"] = {"healthz": baseline.summary()}
        hostile = {
            "scan_bombs": lambda: flood(port, post(scan_bomb(200_000), "image/jpeg"), 4, seconds),
            "largest_jpeg": lambda: flood(port, post(largest_jpeg(), "image/jpeg"), 4, seconds),
            "noise_drawings": lambda: flood(port, post(noise_drawing(), "image/png"), 4, seconds),
            "json_bombs": lambda: flood(port, post(json_bomb(), "application/json"), 4, seconds),
            "base64_bodies": lambda: flood(port, post(base64_body(), "application/json"), 4, seconds),
            "idle_sockets": lambda: held_sockets(port, idle_n, False, 60),
            "slowloris": lambda: held_sockets(port, slow_n, True, 60),
            "oversized_urllib": lambda: oversized_urllib(port),
            "connection_cap": lambda: connection_cap(port, limits.max_connections),
        }
        for name in chosen:
            run = hostile[name]
            prober = Prober(port)
            prober.start()
            cpu0, t0 = cpu_s(proc.pid), time.monotonic()
            result = run()
            cpu = cpu_s(proc.pid) - cpu0
            result["server_cpu_share"] = round(cpu / (time.monotonic() - t0), 3)   # of one core
            if result.get("requests"):
                result["server_cpu_ms_per_request"] = round(cpu / result["requests"] * 1000, 2)
            phases[name] = {"hostile": result, "healthz": prober.summary()}
            print(f"{name}: {json.dumps(phases[name])}", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    server_log = proc.stderr.read().decode(errors="replace")

    def unexpected_5xx(phase: dict) -> int:
        n = 0
        for part in phase.values():
            for s, count in (part.get("statuses") or part.get("answers") or {}).items():
                n += count if s.startswith("5") and s != "503" else 0
        return n

    report = {
        "command": "python benchmarks/web_hostile.py" + (" --quick" if args.quick else "")
                   + (f" --phases {','.join(chosen)}" if tuple(chosen) != PHASES else ""),
        "limits": limits.__dict__,
        "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg(), "python": platform.python_version()},
        "phases": phases,
        "unexpected_5xx": sum(unexpected_5xx(ph) for ph in phases.values()),
        "server_tracebacks": server_log.count("Traceback"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


def markdown(r: dict) -> str:
    lines = [f"# Hostile clients: `{r['command']}`", "",
             f"{r['machine']['cpus']} CPUs, load average {r['machine']['loadavg'][0]:.1f} "
             "(a loaded machine makes every latency here larger).", "",
             "| phase | hostile requests / sockets | /healthz statuses | /healthz p50 / p99 / max ms |",
             "|---|---|---|---|"]
    for name, ph in r["phases"].items():
        h = ph["healthz"]
        hostile = ph.get("hostile", {})
        what = ", ".join(f"{k} {v}" for k, v in hostile.items() if k not in ("p50_ms",)) if hostile else "-"
        lines.append(f"| {name} | {what} | {h['statuses']} | {h['p50_ms']} / {h['p99_ms']} / {h['max_ms']} |")
    lines += ["", f"5xx other than a deliberate 503: {r['unexpected_5xx']}; tracebacks in the server's log: "
              f"{r['server_tracebacks']}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
