"""Peak resident memory of ``digitnet train`` on full MNIST, measured in a child process.

The child runs the ``digitnet`` command line (``digitnet.cli.main``) and then
reports its own high-water mark, VmHWM from /proc/self/status. (The rusage
that ``wait4`` returns for a child would not do: Linux carries the parent's
RSS at fork time over the exec, so a child of this benchmark process -- with
torch loaded -- would never look smaller than the parent.) A child that only
imports digitnet and loads MNIST gives the floor every training run starts from.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from .common import Context

CHILD = """
import resource, sys
from digitnet.cli import main
rc = main(sys.argv[1:]) if sys.argv[1:] else (__import__("digitnet").load_mnist() and 0)
try:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
except (OSError, StopIteration):
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == "darwin" else 1)
print(f"PEAK_RSS_KB={kb}", file=sys.stderr)
sys.exit(rc)
"""


def peak_rss_mb(cli_args: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of ``digitnet <cli_args>`` in a fresh interpreter."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, *cli_args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    secs = time.perf_counter() - t0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("PEAK_RSS_KB=")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"digitnet {' '.join(cli_args)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return int(lines[-1].split("=")[1]) / 1024, secs


def memory_case(ctx: Context) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        setting = ctx.fit_threads
        threads = [] if setting == "auto" else ["--threads", "blas" if setting is None else str(setting)]
        args = ["train", "--epochs", "1", "--quiet", *threads, "-o", os.path.join(tmp, "m.safetensors")]
        train_mb, secs = peak_rss_mb(args)
        floor_mb, _ = peak_rss_mb([])
    return {"command": "digitnet " + " ".join(args[:-2]) + " -o FILE",
            "peak_rss_mb": {"digitnet_train": train_mb, "import_and_load_mnist": floor_mb}, "wall_seconds": secs,
            "notes": "full bundled MNIST (60,000 training images, 10,000 held out for validation), default recipe "
                     "(784-64-10, batch 128), test-set evaluation and saving included; VmHWM of the child"}
