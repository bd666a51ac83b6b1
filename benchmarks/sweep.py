"""One sweep worker vs two, sharing one PostgreSQL study: wall time for the same N trials.

Starts a throwaway PostgreSQL server (``initdb`` from Debian's ``postgresql``
package, a temporary folder, a free loopback port; run as the ``postgres`` user
when we are root), or uses ``--storage URL``. Then, ``--repeats`` times and
interleaved, it runs ``digitnet sweep SPACE --trials N`` as one process and as
two processes at once, each time on a fresh study, and times from the start of
the processes to the end of the last one. Every trial costs the same (only
``lr`` and the seed vary), so the ratio measures how well the workers share
the study, not which settings the sampler happened to pick.

Usage::

    python benchmarks/sweep.py [--trials 8] [--epochs 10] [--repeats 3] [--storage URL] [--out benchmarks/results]

Writes ``sweep.json`` and ``sweep.md`` into ``--out`` and prints the table.
The target: two workers take about half the wall time of one (on two free cores).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


@contextlib.contextmanager
def throwaway_postgres():
    """Yields the URL of a new PostgreSQL server; stops it and deletes its files afterwards."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb")) or (
        [Path(shutil.which("initdb"))] if shutil.which("initdb") else [])
    if not found:
        sys.exit("benchmarks/sweep.py: needs PostgreSQL's initdb (apt-get install postgresql) or --storage URL")
    bin_dir = found[-1].parent
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(tempfile.mkdtemp(prefix="digitnet-pg-"))
    as_user = []
    if os.geteuid() == 0:                      # the server refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    subprocess.run(as_user + [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
                   check=True, capture_output=True)
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root}"
    subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
                              "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def sweep_once(workers: int, space: Path, storage: str, study: str, trials: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "digitnet", "sweep", str(space), "--trials", str(trials), "--storage", storage,
           "--study", study, "-o", str(out), "--no-pruning"]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(workers)]
    for p in procs:
        p.wait()
    wall = time.perf_counter() - t0
    if any(p.returncode for p in procs):
        sys.exit(f"benchmarks/sweep.py: a worker failed: {' '.join(cmd)}")
    import optuna  # the study as it stands once every worker is done (a worker's own table may miss
    # the other's last trial, still running when it printed)
    trials = optuna.load_study(study_name=study, storage=storage.replace("postgresql://", "postgresql+psycopg://",
                                                                         1)).get_trials()
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    per_worker = collections.Counter(t.user_attrs["worker"]["pid"] for t in done)
    return {"workers": workers, "wall_s": wall, "span_s": span, "trials": len(done), "all_trials": len(trials),
            "trial_s": sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done),
            "per_worker": sorted(per_worker.values())}


def markdown(res: dict) -> str:
    one, two = res["one"], res["two"]
    lines = [(f"`digitnet sweep` of {res['trials']} trials ({res['epochs']} epochs of the 784-64-10 MLP on "
             f"{res['train_images']:,} images each), PostgreSQL storage, {res['repeats']} runs per setting, "
             f"interleaved; {res['cores']} cores"), "",
             ("| workers | wall time (min / median / max) | first trial start to last trial end, median "
             "| trial time, summed, median | trials per worker |"),
             "|---|---|---|---|---|"]
    for label, runs in (("1", one), ("2", two)):
        walls = [r["wall_s"] for r in runs]
        lines.append(f"| {label} | {min(walls):.1f} / {statistics.median(walls):.1f} / {max(walls):.1f} s | "
                     f"{statistics.median(r['span_s'] for r in runs):.1f} s | "
                     f"{statistics.median(r['trial_s'] for r in runs):.1f} s | "
                     f"{', '.join('+'.join(map(str, r['per_worker'])) for r in runs)} |")
    lines += ["", (f"two workers / one worker, median wall time: **{res['ratio']:.2f}** (target about 0.5); "
              f"trials' span: {res['span_ratio']:.2f}. The wall time includes each worker's start "
              "(imports, loading MNIST, connecting), which a second worker does not shorten.")]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--storage", metavar="URL", help="an existing PostgreSQL database [default: a throwaway server]")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))    # stop the throwaway server on `kill` too
    work = Path(tempfile.mkdtemp(prefix="digitnet-sweep-bench-"))
    space = work / "space.json"
    space.write_text(json.dumps({"lr": {"low": 0.02, "high": 0.3, "log": True}, "hidden": [64],
                                 "epochs": args.epochs, "val_size": 10000}))
    runs: dict[str, list] = {"one": [], "two": []}
    with contextlib.ExitStack() as stack:
        storage = args.storage or stack.enter_context(throwaway_postgres())
        stamp = int(time.time())
        for k in range(args.repeats):
            for key, workers in (("one", 1), ("two", 2)):
                study = f"bench-{stamp}-{k}-{workers}"
                r = sweep_once(workers, space, storage, study, args.trials, work / study)
                print(f"{workers} worker(s): {r['wall_s']:.1f} s, {r['trials']} trials {r['per_worker']}",
                      file=sys.stderr)
                runs[key].append(r)
    shutil.rmtree(work, ignore_errors=True)
    res = {"trials": args.trials, "epochs": args.epochs, "repeats": args.repeats, "train_images": 50000,
           "cores": os.cpu_count(), **runs,
           "ratio": statistics.median(r["wall_s"] for r in runs["two"])
           / statistics.median(r["wall_s"] for r in runs["one"]),
           "span_ratio": statistics.median(r["span_s"] for r in runs["two"])
           / statistics.median(r["span_s"] for r in runs["one"])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweep.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / "sweep.md").write_text(markdown(res) + "\n")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
