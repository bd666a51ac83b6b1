"""What the numbers were measured on: machine, CPU, library versions, BLAS threads."""

from __future__ import annotations

import os
import platform
import sys


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def blas_info() -> list[dict]:
    """threadpoolctl's view of every BLAS/OpenMP library loaded in this process."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl not installed"}]
    keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "architecture", "threading_layer")
    return [{k: d.get(k) for k in keep} for d in threadpool_info()]


def numpy_blas_threads() -> int:
    """Threads NumPy's BLAS uses (what the user's OPENBLAS/OMP settings gave it)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return int(os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or os.cpu_count())
    import numpy  # noqa: F401  (make sure its BLAS is loaded)
    for d in threadpool_info():
        if d.get("user_api") == "blas" and "numpy" in (d.get("filepath") or ""):
            return int(d["num_threads"])
    for d in threadpool_info():
        if d.get("user_api") == "blas":
            return int(d["num_threads"])
    return os.cpu_count() or 1


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    import numpy
    out["numpy"] = numpy.__version__
    import digitnet
    out["digitnet"] = digitnet.__version__
    for name in ("torch", "sklearn", "threadpoolctl"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except ImportError:
            out[name] = None
    return out


def git_revision() -> str | None:
    """The checkout's commit (with "+changes" when the tree differs from it), or None outside git."""
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def machine() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("OPENBLAS", "OMP_", "MKL_", "GOTO")) or k == "KMP_AFFINITY"}
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "thread_env": env, "load_average_at_start": load}
