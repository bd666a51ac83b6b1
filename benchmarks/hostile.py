"""Hostile files against the real CLI: each refused in one line, with its time and peak RSS.

    python -m benchmarks.hostile [--workdir DIR]

Builds full-size versions of the hostile files that ``tests/test_hostile.py`` checks in miniature
(a gzip'd IDX file inflating to 1.5 GB behind a plausible header, an .npz with a 1 GB member it
does not need, a zero-stride ndarray pickle, ``Dense(784, 500000)`` metadata, a JPEG of 200,000
scans, ...), runs the ``digitnet`` command on each in a fresh process, and prints the exit
status, wall time, peak resident memory of that process (``wait4``) and the error line.
Building the files takes a minute or so (compressing 2.5 GB of zeros).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np


class ZeroStride:
    def __reduce__(self):
        return (np.ndarray, ((100_000_000, 784), np.dtype(np.uint8), b"\0", 0, (0, 0)))


def _zeros_into(f, n_bytes: int) -> None:
    block = bytes(2**22)
    for _ in range(n_bytes // len(block)):
        f.write(block)
    f.write(bytes(n_bytes % len(block)))


def build(d: Path) -> list[tuple[str, list[str]]]:
    """The hostile files in ``d``; returns (what, digitnet argv) pairs."""
    from digitnet import io as dio
    from digitnet.nn import MLP
    cases = []
    p = d / "bomb" / "train-images-idx3-ubyte.gz"
    p.parent.mkdir()
    with gzip.open(p, "wb", compresslevel=1) as f:
        f.write(struct.pack(">IIII", 0x803, 299_999, 28, 28))
        _zeros_into(f, 1_500_000_000)
    cases.append((f"IDX .gz of {p.stat().st_size:,} bytes inflating to 1.5 GB", ["evaluate", "--data", str(p)]))

    p = d / "mnist.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, a in (("x_train", np.zeros((100, 28, 28), np.uint8)), ("y_train", np.zeros(100, np.uint8))):
            buf = io.BytesIO()
            np.save(buf, a)
            z.writestr(f"{name}.npy", buf.getvalue())
        with z.open("junk.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (2**30,)})
            _zeros_into(f, 2**30)
    cases.append((f".npz of {p.stat().st_size:,} bytes with an unused 1 GiB member (accepted)",
                  ["train", "--data", str(p), "--epochs", "1", "--val-size", "0", "--quiet", "-o", str(d / "m.st")]))

    p = d / "mnist.pkl"
    p.write_bytes(pickle.dumps(((ZeroStride(), ZeroStride()),) * 3, protocol=2))
    cases.append((f"zero-stride ndarray pickle of {p.stat().st_size} bytes", ["evaluate", "--data", str(p)]))

    p = d / "w.pkl.gz"
    w = (np.zeros((784, 20_000), np.float32), np.zeros(20_000, np.float32), np.zeros((20_000, 10), np.float32),
         np.zeros(10, np.float32))
    p.write_bytes(gzip.compress(pickle.dumps(w)))
    cases.append((f"gzip'd pickle of {p.stat().st_size:,} bytes for a 784-20000-10 net",
                  ["import-pickle", str(p), "-o", str(d / "w.safetensors")]))

    raw = dio.dumps(MLP((16,), seed=1))
    n = struct.unpack("<Q", raw[:8])[0]
    header, body = json.loads(raw[8:8 + n]), raw[8 + n:]
    meta = json.loads(header["__metadata__"]["digitnet"])

    def model(name, h):
        text = json.dumps(h).encode()
        path = d / name
        path.write_bytes(struct.pack("<Q", len(text)) + text + body)
        return str(path)
    big = dict(meta, architecture=[{"type": "Dense", "in_features": 784, "out_features": 500_000}])
    cases.append(("Dense(784, 500000) metadata", ["info", model("dense.st", dict(header, __metadata__={
        "digitnet": json.dumps(big)}))]))
    bf = json.loads(json.dumps(header))
    bf["0.W"].update(dtype="BF16", data_offsets=[bf["0.W"]["data_offsets"][0], bf["0.W"]["data_offsets"][0] + 784 * 32])
    cases.append(("BF16 tensor", ["predict", "--model", model("bf16.st", bf), "x.png"]))
    deep = json.dumps(dict(meta, notes="X")).replace('"X"', "[" * 100_000 + "]" * 100_000)
    cases.append(("metadata nested 100,000 deep", ["info", model("deep.st", dict(header, __metadata__={
        "digitnet": deep}))]))

    from PIL import Image
    buf = io.BytesIO()
    Image.new("L", (512, 512), 255).save(buf, format="JPEG", progressive=True)
    p = d / "scans.jpg"
    p.write_bytes(buf.getvalue()[:-2] + b"\xff\xda\x00\x08\x01\x01\x00\x01\x01\x00" * 200_000 + b"\xff\xd9")
    cases.append((f"progressive JPEG of {p.stat().st_size:,} bytes, 200,000 scans", ["predict", str(p)]))
    p = d / "lab.tif"
    Image.new("LAB", (64, 64)).save(p)
    cases.append(("LAB TIFF", ["predict", str(p)]))
    a = np.zeros((64, 64), np.float32)
    a[10:20, 10:20] = np.inf
    p = d / "inf.tif"
    Image.fromarray(a, mode="F").save(p)
    cases.append(("float TIFF with inf", ["predict", str(p)]))
    loop = d / "loop"
    loop.mkdir()
    digit = Image.new("L", (28, 28))
    digit.paste(255, (12, 6, 16, 22))
    digit.save(loop / "d.png")
    os.symlink(loop, loop / "a")
    os.symlink(loop, loop / "b")
    cases.append(("glob through two symlink loops (accepted)", ["predict", f"{loop}/**/*.png"]))
    return cases


def run(argv: list[str]) -> tuple[int, float, float, str]:
    """(exit status, seconds, peak RSS in MB, last stderr line) of ``digitnet argv`` in a fresh process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "digitnet", *argv], stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
    if "Traceback (most recent call last):" in lines:
        lines.append("TRACEBACK")
    return os.waitstatus_to_exitcode(status), seconds, usage.ru_maxrss / 1024, lines[-1] if lines else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, help="where to build the files (default: a temporary folder)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        d = args.workdir or Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        print(f"{'case':<66} {'exit':>4} {'s':>6} {'MB':>6}  stderr")
        for what, cmd in build(d):
            code, seconds, rss, line = run(cmd)
            print(f"{what:<66} {code:>4} {seconds:>6.2f} {rss:>6.0f}  {line[:150]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
