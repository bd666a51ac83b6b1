"""Load test for ``digitnet serve``: concurrent clients, valid and malformed requests, latency and memory.

Starts ``python -m digitnet serve --model reader --workers 2`` on a free 127.0.0.1 port (or
uses ``--url`` to test a server you started), warms it up, then runs
``--clients`` concurrent keep-alive connections until ``--requests`` requests
are done or ``--duration`` seconds pass. Each request is drawn from a fixed
mix (seeded): JSON 28x28 pixels, JSON 784 pixels, a multipart PNG upload and a
raw PNG body (all valid), and malformed ones (bad JSON, a wrong shape, NaN,
values out of range, not an image, an unknown model, a decompression bomb, a
body over the limit by Content-Length). ``--only page`` sends only the drawing
page's own request (a digit's crop as a greyscale PNG, in the page's form);
``--only json_image`` a canvas's PNG as a data URL in JSON.

The client is a minimal HTTP/1.1 client on asyncio streams, so that it costs
the shared CPU as little as possible. ``--client wrk`` sends the same requests
with wrk (``apt-get install wrk``), a C client that takes about two thirds of
its CPU a request; it runs for ``--duration`` seconds, leaves out the body over
the limit (wrk sends only complete requests), and gives latency percentiles
over all requests, not per kind. Reports requests/s, predictions/s
(valid requests answered 200), p50/p90/p99/max latency, status counts by
request kind, and the server's RSS before and after. Writes ``--out``.json and .md.

    OPENBLAS_NUM_THREADS=1 python benchmarks/load_test.py              # 10,000 requests, 8 clients, flat out
    OPENBLAS_NUM_THREADS=1 python benchmarks/load_test.py --rate 650  # latency at 650 requests/s (520 valid)
    OPENBLAS_NUM_THREADS=1 python benchmarks/load_test.py --workers 1 # one server process
    OPENBLAS_NUM_THREADS=1 python benchmarks/load_test.py --only page # the drawing page's request alone
    python benchmarks/load_test.py --requests 2000 --clients 4        # quicker
    OPENBLAS_NUM_THREADS=1 python benchmarks/load_test.py --client wrk --duration 20 --only page
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import math
import os
import platform
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

HERE = Path(__file__).resolve().parent
TARGETS = {"predictions_per_s": 500, "p99_ms": 20.0, "server_5xx": 0, "rss_growth_mb": 10.0}


# --------------------------------------------------------------------------- requests
def _request(path: str, body: bytes, content_type: str, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


DRAWINGS = 1000  # different drawings sent as PNG


def page_png(img) -> bytes:
    """The PNG the drawing page makes of a drawing (app.js, greyPNG): 8-bit grey, rows unfiltered, deflated."""
    import struct
    import zlib

    a = np.asarray(img.convert("L"))
    rows = np.concatenate([np.zeros((len(a), 1), np.uint8), a], axis=1)  # filter type 0 before each row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", a.shape[1], a.shape[0], 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes()))
            + chunk(b"IEND", b""))


def as_the_page_sends(canvas, side: int | None = None, margin: int = 28):
    """A drawing as the page uploads it (app.js, inkedPart): cropped to the ink plus a stroke's width,
    scaled to at most ``side`` px (the page's ``PAGE_DIGIT_SIDE``), greyscale (the page sends it as
    :func:`page_png`; a canvas's own PNG is RGBA)."""
    from PIL import Image

    ink = np.argwhere(np.asarray(canvas.convert("L")) < 250)
    (y0, x0), (y1, x1) = ink.min(0), ink.max(0)
    box = (max(0, x0 - margin), max(0, y0 - margin), min(canvas.width, x1 + margin + 1),
           min(canvas.height, y1 + margin + 1))
    crop = canvas.crop(box)
    if side is None:
        from digitnet.web.inputs import PAGE_DIGIT_SIDE
        side = PAGE_DIGIT_SIDE
    scale = min(1.0, side / max(crop.size))
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    return crop.resize(size, Image.BOX).convert("L")


def build_requests(seed: int = 0) -> tuple[dict[str, list[bytes]], dict[str, float], set[str]]:
    """Raw HTTP requests of each kind, the mix (kind -> share), and the kinds that are valid."""
    from PIL import Image

    import digitnet
    test = digitnet.load_mnist().test.images
    images = test[:50]
    rng = np.random.default_rng(seed)
    boundary = "digitnetloadtest"

    def multipart(png: bytes) -> bytes:
        return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.png\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()

    # drawings of the first DRAWINGS test digits: enough that the few a reader is unsure of (and reads
    # again as a possible number, ~10x the cost) come about as often as among drawn digits (a few in
    # 1,000, as benchmarks/number_gate.py counts them)
    canvases = [Image.fromarray(255 - img).resize((280, 280), Image.BILINEAR) for img in test[:DRAWINGS]]
    drawings = [as_the_page_sends(c) for c in canvases]
    # other clients: a canvas's RGBA PNG of the crop, as large as the server reads one digit inline (128 px)
    from digitnet.web.inputs import INLINE_PIXELS
    inline_side = math.isqrt(INLINE_PIXELS)
    pngs = [_png(as_the_page_sends(c, side=inline_side).convert("RGBA")) for c in canvases]

    def page_form(png: bytes) -> bytes:  # app.js's FormData for a digit
        return multipart(png)[: -len(f"--{boundary}--\r\n")] + (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"top_k\"\r\n\r\n3\r\n--{boundary}--\r\n").encode()

    kinds = {
        "json_28x28": [_request("/api/predict", json.dumps({"pixels": img.tolist()}).encode(), "application/json")
                       for img in images],
        "json_784": [_request("/api/predict?top_k=5", json.dumps({"pixels": img.ravel().tolist()}).encode(),
                              "application/json") for img in images],
        "multipart_png": [_request("/api/predict", multipart(p), f"multipart/form-data; boundary={boundary}")
                          for p in pngs],
        "raw_png": [_request("/api/predict", p, "image/png") for p in pngs],
        # a canvas's toDataURL() posted as JSON, as many web clients send a drawing
        "json_image": [_request("/api/predict", json.dumps({"image": "data:image/png;base64,"
                                                            + base64.b64encode(p).decode()}).encode(),
                                "application/json") for p in pngs],
        "page": [_request("/api/predict", page_form(page_png(d)), f"multipart/form-data; boundary={boundary}")
                 for d in drawings],
        "bad_json": [_request("/api/predict", b'{"pixels": [1, 2,', "application/json")],
        "wrong_shape": [_request("/api/predict", json.dumps({"pixels": [[0] * 27] * 28}).encode(),
                                 "application/json")],
        "nan": [_request("/api/predict", ('{"pixels": [' + "0," * 783 + "NaN]}").encode(), "application/json")],
        "out_of_range": [_request("/api/predict", json.dumps({"pixels": [999] * 784}).encode(),
                                  "application/json")],
        "not_an_image": [_request("/api/predict", rng.bytes(2000), "image/png")],
        "unknown_model": [_request("/api/predict?model=nope", json.dumps({"pixels": [0] * 784}).encode(),
                                   "application/json")],
        "bomb": [_request("/api/predict", _png(Image.new("1", (20000, 20000))), "image/png")],
        # headers only: the server must answer 413 without waiting for the 3 MB it was promised
        "too_large": [b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                      b"Content-Length: 3000000\r\n\r\n"],
    }
    mix = {"json_28x28": 0.40, "json_784": 0.15, "multipart_png": 0.15, "raw_png": 0.10,
           "bad_json": 0.03, "wrong_shape": 0.03, "nan": 0.03, "out_of_range": 0.02, "not_an_image": 0.03,
           "unknown_model": 0.02, "bomb": 0.02, "too_large": 0.02,
           "page": 0.0, "json_image": 0.0}  # outside the mix: --only page, --only json_image
    valid = {"json_28x28", "json_784", "multipart_png", "raw_png", "page", "json_image"}
    return kinds, mix, valid


# --------------------------------------------------------------------------- client
async def _read_response(reader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    await reader.readexactly(length)
    return status, close


async def client(host, port, schedule, results, deadline, start, rate):
    reader = writer = None
    while schedule and time.perf_counter() < deadline:
        i, kind, raw = schedule.pop()
        t0 = time.perf_counter()
        if rate:  # open loop: request i is due at start + i / rate; latency counts from then,
            due = start + i / rate          # so a late send (all clients busy) counts as waiting
            if due > t0:
                await asyncio.sleep(due - t0)
            t0 = due
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(raw)
            await writer.drain()
            status, close = await asyncio.wait_for(_read_response(reader), 10)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
            results.append((kind, f"client error: {type(exc).__name__}", time.perf_counter() - t0))
            close = True
        else:
            results.append((kind, status, time.perf_counter() - t0))
        if close and writer is not None:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def run_load(url, kinds, mix, n_requests, n_clients, duration, seed, rate=None):
    u = urlsplit(url)
    rng = random.Random(seed)
    names = list(mix)
    picks = rng.choices(names, weights=[mix[k] for k in names], k=n_requests)
    schedule = [(i, k, rng.choice(kinds[k])) for i, k in enumerate(picks)][::-1]   # popped from the end
    results: list = []
    t0 = time.perf_counter()
    deadline = t0 + duration
    await asyncio.gather(*(client(u.hostname, u.port, schedule, results, deadline, t0, rate)
                           for _ in range(n_clients)))
    return results, time.perf_counter() - t0


# --------------------------------------------------------------------------- wrk client
# One connection per wrk thread, one request at a time: each response answers the thread's latest
# request(), so each status can be put down to its request's kind (wrk also calls request() once to
# check the script, a request never sent). Each thread reads the raw requests from one file; they
# cycle through a seeded schedule drawn from the mix as the built-in client draws it; done() writes
# the counts and latency percentiles as JSON.
WRK_SCRIPT = r"""
local kinds, starts, order = {kinds}, {starts}, {order}
local threads = {{}}
function setup(thread) thread:set("offset", #threads * 7919); table.insert(threads, thread) end
function init(args)
  local f = io.open({data}, "rb")
  local data = f:read("*a")
  f:close()
  reqs = {{}}
  for j = 1, #kinds do reqs[j] = data:sub(starts[j] + 1, starts[j + 1]) end
  i, last, counts = offset, nil, {{}}
end
function request()
  i = i % #order + 1
  last = order[i]
  return reqs[last]
end
function response(status, headers, body)
  local key = kinds[last] .. " " .. status
  counts[key] = (counts[key] or 0) + 1
end
function done(summary, latency, requests)
  local f = io.open({out}, "w")
  f:write("{{\"duration_us\": ", summary.duration, ", \"requests\": ", summary.requests, ", \"errors\": {{")
  local e = summary.errors
  f:write("\"connect\": ", e.connect, ", \"read\": ", e.read, ", \"write\": ", e.write, ", \"timeout\": ", e.timeout, "}}")
  f:write(", \"latency_us\": {{\"p50\": ", latency:percentile(50), ", \"p90\": ", latency:percentile(90),
          ", \"p99\": ", latency:percentile(99), ", \"max\": ", latency.max, "}}, \"counts\": {{")
  local total, first = {{}}, true
  for _, t in ipairs(threads) do
    for key, n in pairs(t:get("counts")) do total[key] = (total[key] or 0) + n end
  end
  for key, n in pairs(total) do
    f:write((first and "" or ", ") .. "\"" .. key .. "\": " .. n); first = false
  end
  f:write("}}}}\n")
  f:close()
end
"""


# headers that promise a body never sent: wrk checks each request is complete, and refuses to start
WRK_CANNOT_SEND = {"too_large"}


def _lua_string(raw: bytes) -> str:
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}" for b in raw) + '"'


def run_wrk(url, kinds, mix, n_clients, duration, seed, schedule=20_000):
    """The mix sent by wrk for ``duration`` seconds: (results like run_load's, latency percentiles ms, elapsed).

    ``mix`` may not hold a kind of ``WRK_CANNOT_SEND``.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("--client wrk: wrk is not installed (apt-get install wrk)")
    rng = random.Random(seed)
    names = list(mix)
    flat = [(k, r) for k in names for r in kinds[k]]
    first = {}
    for j, (k, _) in enumerate(flat):
        first.setdefault(k, j)
    picks = rng.choices(names, weights=[mix[k] for k in names], k=schedule)
    order = [first[k] + rng.randrange(len(kinds[k])) + 1 for k in picks]  # Lua counts from 1
    starts = np.cumsum([0] + [len(r) for _, r in flat])
    with tempfile.TemporaryDirectory() as tmp:
        script, data, out = Path(tmp) / "load.lua", Path(tmp) / "requests.bin", Path(tmp) / "done.json"
        data.write_bytes(b"".join(r for _, r in flat))
        script.write_text(WRK_SCRIPT.format(
            kinds="{" + ", ".join(f'"{k}"' for k, _ in flat) + "}",
            starts="{" + ", ".join(map(str, starts)) + "}", order="{" + ", ".join(map(str, order)) + "}",
            data=_lua_string(str(data).encode()), out=_lua_string(str(out).encode())))
        subprocess.run([wrk, "-t", str(n_clients), "-c", str(n_clients), "-d", f"{duration:g}s", "--timeout", "10s",
                        "-s", str(script), url], check=True, stdout=subprocess.DEVNULL)
        done = json.loads(out.read_text())
    results = []
    for key, n in done["counts"].items():
        kind, status = key.rsplit(" ", 1)
        results += [(kind, int(status), None)] * n
    errors = sum(done["errors"].values())
    results += [("(connection)", "client error", None)] * errors
    latency = {k: round(v / 1000, 2) for k, v in done["latency_us"].items()}
    return results, latency, done["duration_us"] / 1e6


# --------------------------------------------------------------------------- server
def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (``--workers N``: uvicorn's worker processes and helpers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue                            # exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of the server: the process and its children, summed."""
    total = 0.0
    for p in process_tree(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the server (with its children) has used: contention-independent, unlike wall time."""
    total = 0.0
    for p in process_tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def start_server(model: str, workers: int = 1):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    proc = subprocess.Popen([sys.executable, "-m", "digitnet", "serve", "--model", model, "--port", str(port),
                             "--workers", str(workers)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.1)


# --------------------------------------------------------------------------- report
def summarise(results, elapsed, valid, latency: dict | None = None) -> dict:
    """Counts and latencies of ``results`` (kind, status, seconds); wrk's own percentiles when ``latency`` is given."""
    timed = latency is None
    lat = np.array([r[2] for r in results]) * 1000 if timed else np.array([])
    ok_lat = np.array([r[2] for r in results if r[0] in valid and r[1] == 200]) * 1000 if timed else np.array([])
    n_ok = sum(1 for r in results if r[0] in valid and r[1] == 200)
    by_kind: dict[str, dict[str, int]] = {}
    for kind, status, _ in results:
        by_kind.setdefault(kind, {}).setdefault(str(status), 0)
        by_kind[kind][str(status)] += 1
    statuses: dict[str, int] = {}
    for kind, status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    pct = (lambda a, q: round(float(np.percentile(a, q)), 2) if len(a) else None)
    kind_ms = {k: {"p50": pct(a, 50), "p99": pct(a, 99)} for k in by_kind
               for a in [np.array([r[2] for r in results if r[0] == k]) * 1000 if timed else np.array([])]}
    wrong = {k: v for k, v in by_kind.items() if (k in valid) != (set(v) == {"200"})}
    return {
        "requests": len(results), "elapsed_s": round(elapsed, 3),
        "requests_per_s": round(len(results) / elapsed, 1),
        "predictions_per_s": round(n_ok / elapsed, 1),
        "latency_ms": latency or {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99), "max": pct(lat, 100)},
        "valid_latency_ms": {"p50": pct(ok_lat, 50), "p99": pct(ok_lat, 99)},
        "status_counts": dict(sorted(statuses.items())),
        "server_5xx": sum(v for k, v in statuses.items() if k.startswith("5")),
        "client_errors": sum(v for k, v in statuses.items() if k.startswith("client")),
        "by_kind": by_kind, "latency_ms_by_kind": kind_ms,
        "unexpected": wrong,   # valid kinds not all 200, or malformed kinds answered 200
    }


def markdown(r: dict) -> str:
    s = r["summary"]
    workers = f" --workers {r['workers']}" if r.get("workers", 1) > 1 else ""
    lines = [f"# Load test: `digitnet serve --model {r['model']}{workers}`", "",
             f"`{r['command']}` on {r['machine']}; {r['clients']} concurrent clients"
             f"{' (wrk, one connection per thread)' if r.get('client') == 'wrk' else ''}"
             f"{', open loop at %g requests/s' % r['rate'] if r['rate'] else ', closed loop'}, {s['requests']:,} requests "
             f"({r['malformed_share'] * 100:.0f} % malformed), {s['elapsed_s']} s.", "",
             "| measure | value | target | met |", "|---|---|---|---|"]
    checks = [("predictions/s (valid requests answered 200)", s["predictions_per_s"],
               f">= {TARGETS['predictions_per_s']}", s["predictions_per_s"] >= TARGETS["predictions_per_s"]),
              ("requests/s (all)", s["requests_per_s"], "", None),
              ("latency p50 / p90 ms", f"{s['latency_ms']['p50']} / {s['latency_ms']['p90']}", "", None),
              ("latency p99 ms", s["latency_ms"]["p99"], f"<= {TARGETS['p99_ms']}",
               s["latency_ms"]["p99"] <= TARGETS["p99_ms"]),
              ("latency max ms", s["latency_ms"]["max"], "", None),
              ("server 5xx", s["server_5xx"], "0", s["server_5xx"] == 0),
              ("client errors (connection)", s["client_errors"], "0", s["client_errors"] == 0)]
    if r.get("rss_mb"):
        m = r["rss_mb"]
        checks.append(("server RSS before -> after MB", f"{m['before']} -> {m['after']} (+{m['growth']})",
                       f"growth < {TARGETS['rss_growth_mb']}", m["growth"] < TARGETS["rss_growth_mb"]))
    if r.get("server_cpu_ms_per_request"):
        c = r["server_cpu_ms_per_request"]
        checks.append(("server CPU per request ms (capacity of one free core)",
                       f"{c} (~{1000 / c:.0f} requests/s)", "", None))
    checks.append(("load-test client CPU per request ms", r["client_cpu_ms_per_request"], "", None))
    checks.append(("machine load average (1 min) after the run", r["load_average_after"], "", None))
    for name, value, target, met in checks:
        lines.append(f"| {name} | {value} | {target} | {'' if met is None else ('yes' if met else '**no**')} |")
    if r.get("client") == "wrk":  # wrk's percentiles are over all requests
        lines += ["", "Status codes by request kind:", "", "| kind | statuses |", "|---|---|"]
        lines += [f"| {k} | {', '.join(f'{c}: {n}' for c, n in sorted(v.items()))} |"
                  for k, v in sorted(s["by_kind"].items())]
    else:
        lines += ["", "Status codes and latency by request kind:", "", "| kind | statuses | p50 ms | p99 ms |",
                  "|---|---|---|---|"]
        lines += [f"| {k} | {', '.join(f'{c}: {n}' for c, n in sorted(v.items()))} | "
                  f"{s['latency_ms_by_kind'][k]['p50']} | {s['latency_ms_by_kind'][k]['p99']} |"
                  for k, v in sorted(s["by_kind"].items())]
    if s["unexpected"]:
        lines += ["", f"**Unexpected answers**: {json.dumps(s['unexpected'])}"]
    return "\n".join(lines) + "\n"


def _own_cpu_s() -> float:
    """CPU seconds of this process and of its finished children (wrk), user and system."""
    return sum(os.times()[:2]) + sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--requests", type=int, default=10_000, help="requests in the measured run")
    p.add_argument("--clients", type=int, default=8, help="concurrent keep-alive connections")
    p.add_argument("--duration", type=float, default=120.0, help="stop after this many seconds at most")
    p.add_argument("--rate", type=float, help="open loop: send this many requests/s in all (latency is then "
                                              "measured from when each request was due); default: each client "
                                              "sends its next request as soon as it has the answer")
    # 500 requests of the mix leave the image path's memory still growing to its working size (the same size
    # 500 image requests alone reach): a 'before' taken then counts that warm-up as growth
    p.add_argument("--warmup", type=int, default=3000, help="requests before measuring (and before RSS 'before')")
    p.add_argument("--only", nargs="+", metavar="KIND", help="send only these request kinds, in equal shares "
                                                             "(e.g. json_28x28 raw_png), to see what each one costs; "
                                                             "'page' is the drawing page's own request")
    p.add_argument("--model", default="reader", help="model the started server loads (the default reader, as digitnet serve)")
    p.add_argument("--workers", type=int, default=2, help="server processes (digitnet serve --workers): "
                                                           "one per core of the 2-core machine the targets name")
    p.add_argument("--client", choices=["asyncio", "wrk"], default="asyncio",
                   help="who sends the measured requests: the built-in client (--requests, per-kind latency) "
                        "or wrk for --duration seconds (lighter on the cores the server shares)")
    p.add_argument("--url", help="test this running server instead of starting one (no RSS then)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results" / "load_test"), help="results path without extension")
    args = p.parse_args(argv)

    if args.client == "wrk" and args.rate:
        p.error("--rate: an open loop needs the built-in client (--client asyncio)")
    kinds, mix, valid = build_requests(args.seed)
    if args.only:
        unknown = set(args.only) - set(mix)
        if unknown:
            p.error(f"unknown kinds {sorted(unknown)}; known: {', '.join(mix)}")
        mix = dict.fromkeys(args.only, 1 / len(args.only))  # in equal shares
    if args.client == "wrk":
        mix = {k: v for k, v in mix.items() if k not in WRK_CANNOT_SEND}
        if not mix:
            p.error(f"--client wrk cannot send {', '.join(sorted(WRK_CANNOT_SEND))}")
        mix = {k: v / sum(mix.values()) for k, v in mix.items()}
    proc = None
    url = args.url
    if url is None:
        proc, url = start_server(args.model, args.workers)
    try:
        asyncio.run(run_load(url, kinds, mix, args.warmup, args.clients, args.duration, args.seed + 1))
        before = rss_mb(proc.pid) if proc else None
        cpu_before = cpu_s(proc.pid) if proc else None
        own_before = _own_cpu_s()
        latency = None
        if args.client == "wrk":
            results, latency, elapsed = run_wrk(url, kinds, mix, args.clients, args.duration, args.seed)
        else:
            results, elapsed = asyncio.run(run_load(url, kinds, mix, args.requests, args.clients, args.duration,
                                                    args.seed, args.rate))
        after = rss_mb(proc.pid) if proc else None
        cpu_used = cpu_s(proc.pid) - cpu_before if proc else None
        own_used = _own_cpu_s() - own_before
        alive = proc is None or proc.poll() is None
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    summary = summarise(results, elapsed, valid, latency)
    report = {
        "command": "python benchmarks/load_test.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": args.model, "workers": args.workers, "clients": args.clients, "rate": args.rate, "warmup": args.warmup,
        "client": args.client,
        "malformed_share": round(sum(v for k, v in mix.items() if k not in valid), 3), "mix": mix,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "server_alive_after": alive, "targets": TARGETS, "summary": summary,
        "rss_mb": ({"before": round(before, 1), "after": round(after, 1), "growth": round(after - before, 1)}
                   if proc else None),
        "server_cpu_ms_per_request": round(1000 * cpu_used / len(results), 3) if proc else None,
        "client_cpu_ms_per_request": round(1000 * own_used / len(results), 3),
        "load_average_after": round(os.getloadavg()[0], 2),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0 if alive and summary["server_5xx"] == 0 and not summary["unexpected"] else 1


if __name__ == "__main__":
    sys.exit(main())
