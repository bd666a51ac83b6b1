"""``python -m benchmarks``: run the cases, write results.json and results.md."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from pathlib import Path

import digitnet
from digitnet.nn.threads import training_threads

from . import env
from .common import Context
from .profile import peak_gemm_gflops
from .report import markdown, worst, worst_markdown

CASES = ("mlp_train_bs32", "mlp_train_bs128", "mlp_train_bs512", "fullbatch_gd", "infer_b1", "infer_b10000",
         "peak_rss", "cnn")


def run_case(name: str, ctx: Context) -> dict:
    from . import cnn, fullbatch, memory, mlp
    if name.startswith("mlp_train_bs"):
        return mlp.train_case(ctx, int(name.rsplit("bs", 1)[1]))
    if name == "fullbatch_gd":
        return fullbatch.fullbatch_case(ctx)
    if name.startswith("infer_b"):
        return mlp.inference_case(ctx, int(name.rsplit("b", 1)[1]))
    if name == "peak_rss":
        return memory.memory_case(ctx)
    if name == "cnn":
        return cnn.cnn_case(ctx)
    raise ValueError(name)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                description="digitnet vs PyTorch CPU and scikit-learn, same run, same machine. "
                                            "Thread counts follow your OPENBLAS_NUM_THREADS / OMP_NUM_THREADS; "
                                            "torch is given as many threads as NumPy's BLAS has.")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES))
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per case (median reported), after a warm-up")
    p.add_argument("--quick", action="store_true", help="3 repeats, 2 cnn epochs on 20,000 images")
    p.add_argument("--tiny", action="store_true", help="a smoke test: 1,024 training images, 2 repeats, 1 cnn epoch")
    p.add_argument("--cnn-epochs", type=int, default=3, help="epochs of the cnn time-to-99 %% runs")
    p.add_argument("--threads", default="auto", metavar="N|auto|blas",
                   help="digitnet's setting, as `digitnet train --threads`: N (its layers split batches over N "
                        "threads, its BLAS on one; torch and the references get N threads too), blas (the "
                        "BLAS's own threads) or auto (digitnet's default)")
    p.add_argument("--repeat-runs", type=int, default=1, metavar="K",
                   help="run the whole suite K times in a row and report, per target, each run's ratio and the "
                        "worst of the K")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results", help="folder for results.json and results.md")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.threads in ("auto", "blas"):
        fit_threads = "auto" if args.threads == "auto" else None     # what every training run gets: fit(threads=)
    elif args.threads.isdigit() and int(args.threads) >= 1:
        fit_threads = int(args.threads)
    else:
        print(f"--threads must be a positive integer, auto or blas; got {args.threads!r}", file=sys.stderr)
        return 2
    n_threads = fit_threads if isinstance(fit_threads, int) else None
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        print(f"unknown case(s) {unknown}; known: {', '.join(CASES)}", file=sys.stderr)
        return 2
    mnist = digitnet.load_mnist()
    train, test = mnist.train, mnist.test
    repeats, cnn_epochs = args.repeats, args.cnn_epochs
    if args.quick:
        repeats, cnn_epochs = min(repeats, 3), min(cnn_epochs, 2)
        cnn_train = train.subset(slice(0, 20000), "mnist[train][:20000]")
    if args.tiny:
        repeats, cnn_epochs = 2, 1
        train, test = train.subset(slice(0, 1024), "tiny-train"), test.subset(slice(0, 512), "tiny-test")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(train=train, test=test, repeats=max(1, repeats), seed=args.seed,
                  threads=n_threads or env.numpy_blas_threads(), tiny=args.tiny, quick=args.quick,
                  cnn_epochs=cnn_epochs, out_dir=str(out), digitnet_threads=n_threads, fit_threads=fit_threads)
    results = {
        "command": " ".join(["python -m benchmarks", *(shlex.quote(a) for a in argv)]),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": "tiny" if args.tiny else "quick" if args.quick else "full",
        "repeats": ctx.repeats, "threads": ctx.threads, "digitnet_threads": n_threads,
        "digitnet_threads_setting": args.threads,
        "machine": env.machine(), "versions": env.versions(),
        "git_revision": env.git_revision(),
        "cases": {},
    }
    results["machine"]["peak_sgemm_n"] = n = 512 if args.tiny else 2048
    results["machine"]["peak_sgemm_gflops"] = round(peak_gemm_gflops(n), 1)
    t_start = time.perf_counter()
    runs = []
    for k in range(max(1, args.repeat_runs)):
        if runs:
            results["cases"] = {}
        for name in cases:
            print(f"[benchmarks] {name} ..." + (f" (run {k + 1}/{args.repeat_runs})" if args.repeat_runs > 1 else ""),
                  file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            case_ctx = ctx
            if name == "cnn" and args.quick and not args.tiny:
                case_ctx = Context(**{**ctx.__dict__, "train": cnn_train})
            try:
                with training_threads(n_threads):   # as fit(threads=N) would for each training run
                    results["cases"][name] = run_case(name, case_ctx)
            except Exception as exc:                       # record and go on: one broken case keeps the rest
                results["cases"][name] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
            results["cases"][name]["wall_seconds_case"] = round(time.perf_counter() - t0, 2)
            _write(out, results)
        runs.append({"cases": results["cases"]})
        if args.repeat_runs > 1:
            results["runs"] = runs
            results["worst"] = worst(runs)
    results["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    results["blas"] = env.blas_info()                  # after the cases: every library is loaded by now
    _write(out, results)
    print((out / "results.md").read_text(), end="")
    print(f"[benchmarks] wrote {out / 'results.json'} and {out / 'results.md'} "
          f"({results['wall_seconds']} s)", file=sys.stderr)
    return 1 if any(c.get("status") == "error" for c in results["cases"].values()) else 0


def _write(out: Path, results: dict) -> None:
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1, default=str))
    os.replace(tmp, out / "results.json")
    text = markdown(results)
    if results.get("worst"):
        text += "\n" + worst_markdown(results["worst"])
    (out / "results.md").write_text(text)
