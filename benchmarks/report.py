"""results.json -> a markdown table of ratios, each with its target and whether it was met.

Ratios are digitnet's time over the reference's (lower is better) from the same run; where a case
timed both in turn several times, the cell also gives the min-max of the per-repeat ratios.
"""

from __future__ import annotations


def _t(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _r(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3f}×" if x < 1 else f"{x:.2f}×"     # 3 decimals: 0.351× is a miss of ≤ 0.35×


def _or_skip(case: dict, lib: str, text: str) -> str:
    """``text``, or why ``lib`` was not measured."""
    skip = case.get(lib)
    return f"skipped ({skip['reason'].split(' (')[0]})" if isinstance(skip, dict) and "reason" in skip else text


# (case, ratio key, limit, text): every target is "ratio <= limit"
TARGETS = [
    *[(f"mlp_train_bs{bs}", key, limit, text) for bs in (32, 128, 512)
      for key, limit, text in (("ratio_vs_torch", 0.45, "≤ 0.45× torch"), ("ratio_vs_sklearn", 0.7, "≤ 0.7× sklearn"))],
    ("mlp_train_bs128", "ratio_vs_gemm_only", 1.6, "≤ 1.6× its matrix products alone"),
    ("fullbatch_gd", "ratio_vs_seed_style", 1 / 3, "≤ 0.33× seed-style"),
    ("infer_b1", "ratio_vs_bare_forward", 1.25, "≤ 1.25× bare NumPy forward"),
    ("infer_b1", "ratio_vs_torch", 0.3, "≤ 0.3× torch"),
    ("infer_b10000", "ratio_vs_torch", 1 / 1.2, "≥ 1.2× torch throughput"),
    ("cnn", "ratio_epoch_vs_torch", 0.8, "≤ 0.8× torch"),
    ("cnn", "ratio_time_to_99_vs_torch", 0.8, "≤ 0.8× torch"),
]


def targets_of(name: str, keys: tuple[str, ...] | None = None) -> list[tuple[str, float, str]]:
    return [(k, lim, text) for case, k, lim, text in TARGETS if case == name and (keys is None or k in keys)]


def _judge(name: str, case: dict, keys: tuple[str, ...] | None = None) -> tuple[str, bool | None]:
    """The targets' text for a table row and whether all measured ones were met (None: none measured)."""
    found = targets_of(name, keys)
    measured = [case.get(k) <= lim for k, lim, _ in found if case.get(k) is not None]
    return ", ".join(t for _, _, t in found), (all(measured) if measured else None)


def _rs(case: dict, ratio_key: str, spread_key: str) -> str:
    """A ratio with the min-max of its per-repeat ratios, when the case recorded them."""
    sp = (case.get("ratio_spread") or {}).get(spread_key)
    text = _r(case.get(ratio_key))
    return f"{text} ({_r(sp['min'])}–{_r(sp['max'])})" if sp and case.get(ratio_key) is not None else text


def _ok(cond: bool | None) -> str:
    return "–" if cond is None else ("met" if cond else "**missed**")


def _status(case: dict) -> str | None:
    if case.get("status") in ("error", "skipped", "not available"):
        return f"{case['status']}: {case.get('reason', '')}"
    return None


def rows(results: dict) -> list[list[str]]:
    out = []
    cases = results["cases"]
    for name, case in cases.items():
        s = _status(case)
        if s:
            out.append([name, s, "", "", "", "", "", ""])
            continue
        if name.startswith("mlp_train"):
            sec = case["seconds_per_epoch"]
            gf = case["gflops_effective"]["digitnet"]
            bs = case["batch_size"]
            target, met = _judge(name, case)
            gemm = (f"; {_r(case['ratio_vs_gemm_only'])} its matrix products alone"
                    if case.get("ratio_vs_gemm_only") is not None else "")
            out.append([f"MLP 784-64-10 train, bs {bs}, per epoch",
                        f"{_t(sec['digitnet'])} ({gf:.0f} GFLOP/s{gemm})",
                        _or_skip(case, "torch", _t(sec.get("torch"))), _rs(case, "ratio_vs_torch", "vs_torch"),
                        _or_skip(case, "sklearn", _t(sec.get("sklearn"))),
                        _rs(case, "ratio_vs_sklearn", "vs_sklearn"), target, _ok(met)])
        elif name == "fullbatch_gd":
            sec = case["seconds_per_iteration"]
            r = case["ratio_vs_seed_style"]
            target, met = _judge(name, case)
            out.append(["seed full-batch GD, per iteration (vs float64 seed-style NumPy)", _t(sec["digitnet"]),
                        _t(sec["seed_style_float64"]) + " (seed-style)", _rs(case, "ratio_vs_seed_style",
                                                                             "vs_seed_style"), "", "", target,
                        _ok(met)])
        elif name.startswith("infer_b"):
            sec = case["seconds_per_call"]
            b = case["batch_size"]
            ratio = case.get("ratio_vs_torch")
            target, met = _judge(name, case)
            if b == 1:
                label = "inference latency, batch 1 (predict)"
                bare = case.get("ratio_vs_bare_forward")
                d = _t(sec["digitnet"]) + (f" ({_r(bare)} bare forward)" if bare is not None else "")
                t = _t(sec.get("torch"))
            else:
                label = f"inference, batch {b:,} (predict)"
                sps = case["samples_per_second"]
                d = f"{_t(sec['digitnet'])} ({sps['digitnet'] / 1e6:.2f} M/s)"
                t = f"{_t(sec.get('torch'))} ({sps['torch'] / 1e6:.2f} M/s)" if "torch" in sec else "–"
            out.append([label, d, _or_skip(case, "torch", t), _rs(case, "ratio_vs_torch", "vs_torch"), "", "",
                        target, _ok(met)])
        elif name == "peak_rss":
            mb = case["peak_rss_mb"]
            out.append([f"peak RSS, `{case['command']}`", f"{mb['digitnet_train']:.0f} MB",
                        f"(import + load MNIST alone: {mb['import_and_load_mnist']:.0f} MB)", "", "", "",
                        "≤ 250 MB", _ok(mb["digitnet_train"] <= 250)])
        elif name == "cnn":
            d, t = case["digitnet"], case.get("torch", {})
            if "seconds_per_epoch" in t:
                target, met = _judge(name, case, ("ratio_epoch_vs_torch",))
                out.append(["`cnn` preset, per epoch", _t(d["seconds_per_epoch"]), _t(t["seconds_per_epoch"]),
                            _rs(case, "ratio_epoch_vs_torch", "epoch_vs_torch"), "", "", target, _ok(met)])
                target, met = _judge(name, case, ("ratio_time_to_99_vs_torch",))
                if d["time_to_target"] is None and t["time_to_target"] is not None:
                    met = False
                out.append([f"`cnn` time to 99 % test acc ({case['recipe']['epochs']} epochs max)",
                            _ttt(d), _ttt(t), _r(case.get("ratio_time_to_99_vs_torch")), "", "",
                            target, _ok(met)])
            else:
                out.append(["`cnn` preset, per epoch", _t(d["seconds_per_epoch"]), t.get("reason", "–"),
                            "", "", "", "", "–"])
                out.append(["`cnn` time to 99 % test acc", _ttt(d), "", "", "", "", "≤ 0.8× torch", "–"])
    return out


def profile_lines(results: dict) -> list[str]:
    """Where the time goes: the matrix products alone against the whole measured step."""
    out = []
    for name, case in results["cases"].items():
        prof = case.get("profile")
        if not prof:
            continue
        if name.startswith("mlp_train"):
            d = case["seconds_per_epoch"]["digitnet"]
            on = prof.get("gemm_blas_threads")
            out.append(f"- bs {case['batch_size']}: the epoch's matrix products alone"
                       + (f", on the BLAS threads digitnet's epoch runs them on ({on})," if on else "")
                       + f" take {_t(prof['gemm_only_seconds_per_epoch'])} ({prof['gemm_only_gflops']:.0f} GFLOP/s); "
                       f"digitnet's epoch {_t(d)}, so {prof['overhead_share_of_digitnet_epoch'] * 100:.0f} % is "
                       "everything else (gather + convert, activations, loss, SGD update, Python).")
            if "gemm_only_blas_threads_seconds_per_epoch" in prof:
                out.append(f"  With the BLAS's own threads the same products take "
                           f"{_t(prof['gemm_only_blas_threads_seconds_per_epoch'])} (the epoch is "
                           f"{_r(prof['ratio_vs_gemm_only_blas_threads'])} that).")
            m = results.get("machine", {})
            if m.get("peak_sgemm_gflops") and case["batch_size"] == 128:
                peak, n = m["peak_sgemm_gflops"], m.get("peak_sgemm_n", 2048)
                # the ceiling is timed on the BLAS's own threads: compare the products timed on the same
                same = prof.get("gemm_only_blas_threads_seconds_per_epoch", prof["gemm_only_seconds_per_epoch"])
                out.append(f"- ceiling: one large float32 GEMM ({n}³) runs at {peak:.0f} GFLOP/s on this machine and "
                           f"thread count; the bs 128 epoch's own matrix products reach "
                           f"{case['gflop_per_epoch'] / same:.0f} GFLOP/s on the same threads (their shapes are small).")
        elif name == "fullbatch_gd":
            g = prof["gemm_only_seconds"]
            out.append(f"- full-batch GD: matrix products alone {_t(g['digitnet_float32'])} in float32 vs "
                       f"{_t(g['seed_style_float64'])} in float64 (ratio {prof['gemm_only_ratio']:.2f}, the floor "
                       f"for this comparison); other work is {prof['overhead_share']['digitnet'] * 100:.0f} % of "
                       f"digitnet's iteration, {prof['overhead_share']['seed_style_float64'] * 100:.0f} % of "
                       "the seed-style one.")
        elif name == "cnn" and "share" in prof:
            by_type: dict[str, float] = {}
            for layer, share in prof["share"].items():
                kind = layer.split(".", 1)[-1]
                by_type[kind] = by_type.get(kind, 0.0) + share
            parts = ", ".join(f"{k} {v * 100:.0f} %" for k, v in sorted(by_type.items(), key=lambda kv: -kv[1]))
            out.append(f"- `cnn` training step (batch {prof['batch_size']}, {_t(prof['seconds_per_batch'])} "
                       f"per batch, forward + backward by layer type): {parts}.")
            if "gemm_only_seconds_per_batch" in prof:
                floor = prof["gemm_only_seconds_per_batch"]
                out.append(f"  Its matrix products alone, with the shapes and threads its kernels use, take "
                           f"{_t(floor)} ({prof['gemm_only_gflops']:.0f} GFLOP/s), "
                           f"{floor / prof['seconds_per_batch'] * 100:.0f} % of the step.")
        elif name.startswith("infer_b"):
            out.append(f"- inference batch {case['batch_size']:,}: bare NumPy forward + argmax on an already "
                       f"converted float batch takes {_t(prof['minimal_numpy_forward_float_input'])}; "
                       f"predict() {_t(case['seconds_per_call']['digitnet'])} (adds uint8 conversion and checks"
                       + (f"; the conversion alone, `model.prepare`, takes {_t(prof['uint8_conversion_alone'])}"
                          if "uint8_conversion_alone" in prof else "") + ").")
    return out


def _auto_note(results: dict) -> str:
    """What digitnet's default ``threads="auto"`` chose for the cnn case, when it chose its own threads."""
    used = results["cases"].get("cnn", {}).get("digitnet", {}).get("threads_used") or {}
    if (used.get("layers") or 1) > 1:
        return (f" digitnet's default `--threads auto` trained `cnn` on {used['layers']} threads of its own "
                f"(BLAS {used.get('blas')}); the MLP minibatch cases on one thread, full-batch GD on the BLAS's.")
    return ""


def _ttt(run: dict) -> str:
    accs = " → ".join(f"{a * 100:.2f}" for a in run["test_accuracy"])
    if run["time_to_target"] is None:
        return f"not reached ({accs} %)"
    return f"{_t(run['time_to_target'])} ({run['epochs_to_target']} ep; {accs} %)"


def markdown(results: dict) -> str:
    v, m = results["versions"], results["machine"]
    blas = [b for b in results.get("blas", []) if b.get("user_api") == "blas"]
    blas_txt = "; ".join(f"{b.get('prefix')} {b.get('version')} {b.get('architecture')} ({b.get('num_threads')} threads)"
                         for b in blas) or "see results.json"
    head = ["| case | digitnet | PyTorch CPU | digitnet / torch | scikit-learn | digitnet / sklearn | target | |",
            "|---|---|---|---|---|---|---|---|"]
    body = ["| " + " | ".join(r) + " |" for r in rows(results)]
    env = ", ".join(f"{k}={val}" for k, val in sorted(m.get("thread_env", {}).items())) or "none set"
    lines = [f"Command: `{results['command']}` ({results['mode']} mode, median of {results['repeats']} repeats "
             f"after a warm-up; {results.get('wall_seconds', '?')} s in all), started {results['started']}.", "",
             *head, *body, "",
             *(["Profile (same run):", *profile_lines(results), ""] if profile_lines(results) else []),
             f"Machine: {m['cpu']}, {m['cpu_count']} CPUs, {m['platform']}; load average at start "
             f"{tuple(round(x, 2) for x in m['load_average_at_start'] or ())}.",
             (f"Threads: digitnet `--threads {results['digitnet_threads']}` (its layers split each batch over "
              f"{results['digitnet_threads']} threads, NumPy's BLAS on 1); torch.set_num_threads({results['threads']}); "
              f"environment: {env}." if results.get("digitnet_threads") else
              f"Threads: {results['threads']} (NumPy's BLAS; torch.set_num_threads the same); environment: {env}."
              + _auto_note(results)),
             f"Versions: Python {v['python']}, NumPy {v['numpy']}, digitnet {v['digitnet']} "
             f"(git {results.get('git_revision') or '?'}), torch {v.get('torch')}, "
             f"scikit-learn {v.get('sklearn')}, threadpoolctl {v.get('threadpoolctl')}. BLAS: {blas_txt}."]
    return "\n".join(lines) + "\n"


def _threads_label(results: dict) -> str:
    """How a run set its threads, in a few words."""
    if results.get("digitnet_threads"):
        return f"`--threads {results['digitnet_threads']}` (torch {results['threads']})"
    if results.get("digitnet_threads_setting") == "blas":
        return f"`--threads blas`: BLAS {results['threads']} (torch {results['threads']})"
    if _auto_note(results):
        return (f"default `auto`: MLP minibatches on 1 thread, full batch on BLAS {results['threads']}, "
                f"`cnn` on own threads (torch {results['threads']})")
    env = results.get("machine", {}).get("thread_env", {})
    how = " ".join(f"{k}={v}" for k, v in sorted(env.items()) if k != "MKL_NUM_THREADS") or "no thread variables"
    return f"BLAS {results['threads']} (torch {results['threads']}), {how}"


def summary(runs: list[tuple[str, dict]]) -> str:
    """One row per case, one column per run: the digitnet / reference ratios (and batch-1 latency) side by side."""
    def ratio(case, key):
        return _r(case.get(key)) if case and case.get(key) is not None else "–"

    def cell(results: dict, name: str) -> str:
        case = results["cases"].get(name)
        if not case or _status(case):
            return "–"
        if name.startswith("mlp_train") or name == "infer_b10000":
            return ratio(case, "ratio_vs_torch")
        if name == "fullbatch_gd":
            return ratio(case, "ratio_vs_seed_style")
        if name == "infer_b1":
            return f"{_t(case['seconds_per_call']['digitnet'])} ({ratio(case, 'ratio_vs_torch')})"
        return "–"

    rows = [("MLP bs 32 epoch, × torch", "mlp_train_bs32"), ("MLP bs 128 epoch, × torch", "mlp_train_bs128"),
            ("MLP bs 512 epoch, × torch", "mlp_train_bs512"), ("full-batch GD, × seed-style float64", "fullbatch_gd"),
            ("predict batch 1 (× torch)", "infer_b1"), ("predict batch 10,000, × torch", "infer_b10000")]
    head = "| digitnet / reference | " + " | ".join(f"{_threads_label(res)} (`{path}`)"
                                                  for path, res in runs) + " |"
    lines = [head, "|---" * (len(runs) + 1) + "|"]
    for label, name in rows:
        lines.append(f"| {label} | " + " | ".join(cell(res, name) for _, res in runs) + " |")
    for label, key in (("`cnn` epoch, × torch", "ratio_epoch_vs_torch"),
                       ("`cnn` time to 99 %, × torch", "ratio_time_to_99_vs_torch")):
        lines.append(f"| {label} | " + " | ".join(ratio(res["cases"].get("cnn"), key) for _, res in runs) + " |")
    return "\n".join(lines) + "\n"


def worst(runs: list[dict]) -> list[dict]:
    """Per target: each run's ratio and the worst (largest) of them, for ``--repeat-runs K``."""
    out = []
    for name, key, limit, text in TARGETS:
        values = [r["cases"].get(name, {}).get(key) for r in runs]
        got = [v for v in values if v is not None]
        if got:
            out.append({"case": name, "ratio": key, "target": text, "limit": limit, "runs": values,
                        "worst": max(got), "met": max(got) <= limit})
    return out


def worst_markdown(rows: list[dict]) -> str:
    k = max(len(r["runs"]) for r in rows) if rows else 0
    lines = [f"Worst of {k} consecutive runs (each run's ratio, digitnet / reference; lower is better):", "",
             "| case | ratio | " + " | ".join(f"run {i + 1}" for i in range(k)) + " | worst | target | |",
             "|---|---|" + "---|" * k + "---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['ratio'].removeprefix('ratio_')} | "
                     + " | ".join(_r(v) for v in r["runs"]) + f" | {_r(r['worst'])} | {r['target']} | {_ok(r['met'])} |")
    return "\n".join(lines) + "\n"
