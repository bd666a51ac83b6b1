"""Small helpers shared by several test modules."""

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time

import numpy as np

from digitnet.cli import main


def run(capsys, *argv):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_npz(directory, mnist, n_train: int, n_test: int):
    """A Keras-layout mnist.npz with the first n_train / n_test bundled images; returns its path."""
    tr, te = mnist.train.subset(slice(0, n_train)), mnist.test.subset(slice(0, n_test))
    path = directory / "mnist.npz"
    np.savez(path, x_train=tr.images, y_train=tr.labels, x_test=te.images, y_test=te.labels)
    return path


def within_budget(fn, *args, max_mb: float = 64, hang_s: int = 30):
    """Call ``fn(*args)``; returns ("ok", result) or ("refused", DigitnetError), and checks the budget.

    Memory: the peak of Python and NumPy allocations during the call (tracemalloc) must stay under
    ``max_mb``. Hangs: a call still running after ``hang_s`` seconds fails (SIGALRM); that is a hang
    guard, far above any honest run, not a speed check. Any other exception propagates: a traceback.
    """
    import signal
    import tracemalloc

    from digitnet import DigitnetError

    def hang(signum, frame):
        raise AssertionError(f"{getattr(fn, '__name__', fn)} still running after {hang_s} s: a hang")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(hang_s)
    tracemalloc.start()
    try:
        try:
            outcome = ("ok", fn(*args))
        except DigitnetError as exc:
            assert "\n" not in str(exc), f"error message is not one line: {exc!r}"
            outcome = ("refused", exc)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert peak < max_mb * 2**20, f"peak allocation {peak / 2**20:.0f} MB > {max_mb} MB budget"
    return outcome


def scan_bomb(scans: int) -> bytes:
    """A progressive JPEG of a 512x512 digit followed by ``scans`` empty scans.

    Each scan costs the decoder a pass over every block: tens of thousands of them take seconds.
    """
    import io

    from PIL import Image, ImageDraw
    img = Image.new("L", (512, 512), 255)
    ImageDraw.Draw(img).line([(256, 64), (256, 448)], fill=0, width=50)
    buf = io.BytesIO()
    img.save(buf, "JPEG", progressive=True)
    return buf.getvalue()[:-2] + b"\xff\xda\x00\x08\x01\x01\x00\x00\x00\x00" * scans + b"\xff\xd9"


@contextlib.contextmanager
def live_server(app, **config):
    """``app`` under uvicorn, configured as ``digitnet serve`` (``config`` added), on a free 127.0.0.1 port.

    Yields the server's base URL; the server stops on exit.
    """
    import uvicorn

    from digitnet.web.server import uvicorn_config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    srv = uvicorn.Server(uvicorn_config(app, log_level="warning", access_log=False, **config))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not srv.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        srv.should_exit = True
        thread.join(10)
        sock.close()


def debian_package(package: str, present) -> None:
    """Install Debian's ``package`` with apt-get unless ``present()``; skip, saying why, when that is impossible."""
    import pytest

    if present():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{package} is missing and cannot be installed (not root or no apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", package]):
        done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"could not install {package} with {' '.join(cmd)}: {done.stderr.strip()[-300:]}")
    if not present():
        pytest.skip(f"apt-get installed {package} but what the tests need is still missing")
