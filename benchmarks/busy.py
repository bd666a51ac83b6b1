"""The default ``digitnet train`` on a busy machine: runs beside one CPU-bound process.

A user's machine is rarely idle. This runs the plain ``digitnet train`` (no flags but
``--quiet`` and ``-o``) and the same command with each explicit ``--threads`` setting,
interleaved (default, --threads 1, --threads blas, default, ...), while one other
process spins on a core, and reports each setting's min / median / max wall time and

* spread: the default's max / min over its runs (target <= 1.5);
* the default's median over ``--threads 1``'s median (target <= 1.25).

Usage::

    python -m benchmarks.busy [--runs 5] [--epochs 20] [--batch-size full] [--no-load] [--out benchmarks/results]

Writes ``busy.json`` and ``busy.md`` into ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {"default": [], "--threads 1": ["--threads", "1"], "--threads blas": ["--threads", "blas"]}
SPIN = "while True: pass"


def train_once(extra: list[str], epochs: int | None, out: Path, env: dict, batch_size: str | None = None) -> float:
    cmd = [sys.executable, "-m", "digitnet", "train", "--quiet", "-o", str(out), *extra]
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    if batch_size is not None:
        cmd += ["--batch-size", batch_size]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def stats(xs: list[float]) -> dict:
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs), "runs": xs}


def markdown(res: dict) -> str:
    lines = [f"`{res['command']}` — {res['runs']} runs per setting, interleaved, "
             f"{'beside one CPU-bound process' if res['load'] else 'no other load'}; "
             f"{res['cores']} cores", "",
             "| setting | min | median | max | max / min |", "|---|---|---|---|---|"]
    for name, s in res["settings"].items():
        command = "digitnet train" + ("" if name == "default" else f" {name}")
        lines.append(f"| `{command}` | {s['min']:.2f} s | {s['median']:.2f} s | {s['max']:.2f} s "
                     f"| {s['max'] / s['min']:.2f} |")
    t = res["targets"]
    lines += ["", f"- default max / min: {t['spread']:.2f} (target <= 1.5: {'met' if t['spread'] <= 1.5 else 'missed'})",
              f"- default median / `--threads 1` median: {t['vs_one_thread']:.2f} "
              f"(target <= 1.25: {'met' if t['vs_one_thread'] <= 1.25 else 'missed'})"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.busy", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="timed runs per setting (after one warm-up run of each)")
    p.add_argument("--epochs", type=int, default=None, help="override the default epochs (a quicker check)")
    p.add_argument("--batch-size", default=None, help="override the default batch size (e.g. full)")
    p.add_argument("--no-load", action="store_true", help="no CPU-bound process beside the runs")
    p.add_argument("--out", default="benchmarks/results", help="folder for busy.json and busy.md")
    args = p.parse_args(argv)
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}   # the defaults, as a user has them
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    spinner = None if args.no_load else subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.runs + 1):
                for name, extra in SETTINGS.items():
                    t = train_once(extra, args.epochs, Path(tmp) / "m.safetensors", env, args.batch_size)
                    if i:                                   # run 0 warms the page cache and imports
                        times[name].append(round(t, 3))
                    print(f"[busy] {name}: {t:.2f} s", file=sys.stderr, flush=True)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    settings = {name: stats(xs) for name, xs in times.items()}
    res = {"command": "python -m benchmarks.busy " + " ".join(argv if argv is not None else sys.argv[1:]),
           "runs": args.runs, "load": not args.no_load, "cores": os.cpu_count(), "settings": settings,
           "targets": {"spread": settings["default"]["max"] / settings["default"]["min"],
                       "vs_one_thread": settings["default"]["median"] / settings["--threads 1"]["median"]}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "busy.json").write_text(json.dumps(res, indent=1))
    (out / "busy.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
