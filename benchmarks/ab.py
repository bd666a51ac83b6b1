"""Is a change as fast as what it replaces? ``python -m benchmarks`` on two source trees, interleaved.

Usage::

    python -m benchmarks.ab BASE [--new REV] [--rounds 3] [--max-slower 0.05] [--out DIR] [-- BENCHMARK ARGS]

``BASE`` (and ``--new``, default: this working tree) is a git revision. Each
revision's files are exported with ``git archive`` to a temporary folder and
the suite runs there, importing that revision's ``digitnet`` (``PYTHONPATH``),
with this interpreter. Runs alternate base, new, new, base, base, ... so that
a machine whose speed drifts favours neither side. For every timed figure of
every case (seconds per epoch, iteration or call; peak memory) the report
gives each side's median over the rounds, the new/base ratio of the medians
and the min-max of the per-round ratios, and the same ratio measured against
the reference timed in the same run (PyTorch, the seed-style step, ...),
which cancels most of the machine's drift. A figure is "slower" when both
median ratios exceed ``1 + max_slower``.

Writes ``ab.json`` and ``ab.md`` to ``--out`` (default ``benchmarks/results``)
and exits 1 if any figure is slower.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def export(rev: str | None, dest: Path) -> Path:
    """The source tree of git revision ``rev`` in ``dest`` (None: this working tree, used in place)."""
    if rev is None:
        return ROOT
    dest.mkdir(parents=True)
    archive = dest.with_suffix(".tar")
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), rev], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    archive.unlink()
    return dest


def run_suite(tree: Path, out: Path, args: list[str]) -> dict:
    """One ``python -m benchmarks`` run in ``tree`` (its own ``digitnet``), its results.json."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src") + os.pathsep + str(tree)}
    probe = subprocess.run([sys.executable, "-c", "import digitnet; print(digitnet.__file__)"], env=env, cwd=tree,
                           capture_output=True, text=True, check=True)
    if not Path(probe.stdout.strip()).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"ab: {tree} imports digitnet from {probe.stdout.strip()}, not its own src/")
    subprocess.run([sys.executable, "-m", "benchmarks", "--out", str(out), *args], env=env, cwd=tree, check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads((out / "results.json").read_text())


def figures(results: dict) -> dict[str, tuple[float, float | None]]:
    """Every digitnet figure of one run, ``{"case: figure": (digitnet, reference or None)}``."""
    out: dict[str, tuple[float, float | None]] = {}
    for case, r in results["cases"].items():
        for key, value in r.items():
            if key.startswith("seconds_per") and isinstance(value, dict) and "digitnet" in value:
                refs = [v for k, v in value.items() if k != "digitnet"]
                out[f"{case}: {key}"] = (value["digitnet"], refs[0] if refs else None)
        if isinstance(r.get("digitnet"), dict) and "seconds_per_epoch" in r["digitnet"]:
            ref = r.get("torch", {}).get("seconds_per_epoch") if isinstance(r.get("torch"), dict) else None
            out[f"{case}: seconds_per_epoch"] = (r["digitnet"]["seconds_per_epoch"], ref)
        if isinstance(r.get("peak_rss_mb"), dict) and "digitnet_train" in r["peak_rss_mb"]:
            out[f"{case}: peak_rss_mb"] = (r["peak_rss_mb"]["digitnet_train"], r["peak_rss_mb"].get("import_and_load_mnist"))
    return out


def compare(base_runs: list[dict], new_runs: list[dict], max_slower: float) -> list[dict]:
    """Per figure present in every run: medians, ratios (plain and against the reference) and the verdict."""
    base, new = [figures(r) for r in base_runs], [figures(r) for r in new_runs]
    names = [n for n in base[0] if all(n in f for f in base + new)]
    rows = []
    for n in names:
        b, w = np.array([f[n][0] for f in base]), np.array([f[n][0] for f in new])
        per_round = w / b
        row = {"figure": n, "base_median": float(np.median(b)), "new_median": float(np.median(w)),
               "ratio": float(np.median(w) / np.median(b)),
               "ratio_min": float(per_round.min()), "ratio_max": float(per_round.max())}
        if all(f[n][1] for f in base + new):
            rb = np.array([f[n][0] / f[n][1] for f in base])
            rw = np.array([f[n][0] / f[n][1] for f in new])
            row["ratio_vs_reference"] = float(np.median(rw) / np.median(rb))
        worst = min(row["ratio"], row.get("ratio_vs_reference", row["ratio"]))
        row["slower"] = bool(worst > 1 + max_slower)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    given = list(argv)
    bench_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base", help="git revision to compare against")
    ap.add_argument("--new", default=None, help="git revision to test (default: this working tree)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of the suite per side (interleaved)")
    ap.add_argument("--max-slower", type=float, default=0.05, help="the largest slowdown accepted, as a fraction")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="digitnet-ab-") as tmp:
        trees = {"base": export(args.base, Path(tmp) / "base"), "new": export(args.new, Path(tmp) / "new")}
        runs: dict[str, list[dict]] = {"base": [], "new": []}
        order = [("base", "new") if i % 2 == 0 else ("new", "base") for i in range(args.rounds)]
        for i, pair in enumerate(order):
            for side in pair:
                print(f"round {i + 1}/{args.rounds}: {side}", file=sys.stderr, flush=True)
                runs[side].append(run_suite(trees[side], Path(tmp) / f"out-{side}-{i}", bench_args))
    rows = compare(runs["base"], runs["new"], args.max_slower)
    cmd = "python -m benchmarks.ab " + " ".join(given)
    result = {"command": cmd.strip(), "benchmark_args": bench_args, "base": args.base, "new": args.new or "working tree",
              "new_git_revision": runs["new"][0].get("git_revision"), "rounds": args.rounds,
              "max_slower": args.max_slower, "machine": runs["new"][0].get("machine"),
              "wall_seconds": round(time.perf_counter() - t0, 1), "figures": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ab.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"`{result['command']}`: {args.base} (base) against "
          f"{result['new']} ({result['new_git_revision']}), {args.rounds} interleaved runs each", "",
          "| figure | base (median) | new (median) | new / base (per-run min-max) | against the reference | verdict |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        vs = f"{r['ratio_vs_reference']:.3f}" if "ratio_vs_reference" in r else ""
        md.append(f"| {r['figure']} | {r['base_median']:.4g} | {r['new_median']:.4g} | {r['ratio']:.3f} "
                  f"({r['ratio_min']:.3f}-{r['ratio_max']:.3f}) | {vs} | {'slower' if r['slower'] else 'kept'} |")
    (out / "ab.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 1 if any(r["slower"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
