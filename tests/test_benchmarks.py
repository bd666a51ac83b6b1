"""The benchmark harness, run in its tiny mode so it cannot rot (no timing is asserted)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASES = ["mlp_train_bs32", "mlp_train_bs128", "mlp_train_bs512", "fullbatch_gd", "infer_b1", "infer_b10000",
         "peak_rss", "cnn"]
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--tiny", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "results.json").read_text()), (out / "results.md").read_text(), proc.stdout


def test_results_file_has_every_case(tiny_results):
    results, table, stdout = tiny_results
    assert list(results["cases"]) == CASES
    for name, case in results["cases"].items():
        assert case.get("status") != "error", (name, case)
    assert results["mode"] == "tiny" and results["threads"] >= 1
    assert results["versions"]["numpy"] and results["machine"]["cpu"]
    assert any(b.get("user_api") == "blas" for b in results["blas"]) or results["blas"][0].get("error")
    for label in ("bs 32", "bs 128", "bs 512", "full-batch", "batch 1", "batch 10,000", "peak RSS", "cnn"):
        assert label in table
    assert table in stdout


def test_numbers_are_positive(tiny_results):
    cases = tiny_results[0]["cases"]
    for bs in (32, 128, 512):
        assert cases[f"mlp_train_bs{bs}"]["seconds_per_epoch"]["digitnet"] > 0
    assert cases["fullbatch_gd"]["seconds_per_iteration"]["seed_style_float64"] > 0
    assert cases["infer_b1"]["seconds_per_call"]["digitnet"] > 0
    assert 20 < cases["peak_rss"]["peak_rss_mb"]["digitnet_train"] < 5000
    assert tiny_results[0]["machine"]["peak_sgemm_gflops"] > 0 and "ceiling" in tiny_results[1]


def test_mlp_floor_is_timed_on_the_threads_the_epoch_uses_and_on_the_blas_threads(tiny_results):
    from digitnet.nn.threads import user_chose_blas_threads

    results, table = tiny_results[0], tiny_results[1]
    # threads=auto trains these MLPs on one BLAS thread, unless a thread variable is set (then the BLAS's own)
    want = "the BLAS's own" if user_chose_blas_threads() else "one"
    for bs in (32, 128, 512):
        prof = results["cases"][f"mlp_train_bs{bs}"]["profile"]
        assert prof["gemm_blas_threads"] == want
        assert prof["gemm_only_seconds_per_epoch"] > 0 and prof["gemm_only_blas_threads_seconds_per_epoch"] > 0
    assert f"on the BLAS threads digitnet's epoch runs them on ({want})" in table
    assert "With the BLAS's own threads the same products take" in table
    b1 = results["cases"]["infer_b1"]["profile"]
    assert 0 < b1["uint8_conversion_alone"] and "the conversion alone" in table


def test_cnn_profile_splits_a_step_by_layer(tiny_results):
    prof = tiny_results[0]["cases"]["cnn"]["profile"]
    assert prof["seconds_per_batch"] > 0 and prof["batches"] == 3
    assert abs(sum(prof["share"].values()) - 1) < 0.01 and "0.Conv2D" in prof["share"]
    assert "by layer type" in tiny_results[1]
    assert prof["gemm_only_seconds_per_batch"] > 0 and prof["gemm_only_gflops"] > 0
    assert "matrix products alone, with the shapes and threads its kernels use" in tiny_results[1]


def test_cnn_product_floor_runs_each_product_of_a_step_once(monkeypatch):
    from digitnet.nn import build
    monkeypatch.syspath_prepend(str(ROOT))                        # the benchmarks package, as `python -m` finds it
    from benchmarks.profile import StepGemms
    gemms = StepGemms(build("cnn"), 8)
    # conv 1->24 5x5 on 28x28: forward and filter gradient, no input gradient for the first layer;
    # conv 24->32 3x3 on 12x12: forward, filter gradient and one input-gradient product per kernel offset;
    # dense 800->256 and 256->10: forward, weight gradient, input gradient
    assert len(gemms.products) == 2 + (2 + 9) + 3 + 3
    expected = (2 * 2 * 8 * 24 * 24 * 26 * 24 + 2 * 2 * 8 * 10 * 10 * 217 * 32 + 2 * 8 * 10 * 10 * 32 * 24 * 9
                + 3 * 2 * 8 * 800 * 256 + 3 * 2 * 8 * 256 * 10)
    assert gemms.flop == expected
    assert gemms() > 0


def test_seed_style_comparison_starts_from_the_same_weights(tiny_results):
    case = tiny_results[0]["cases"]["fullbatch_gd"]
    fp = case["init_fingerprint"]
    assert fp["digitnet"] == fp["seed_style"]
    assert case["max_param_diff_after"] < 1e-4      # float32 vs float64 after the same iterations


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (pip install '.[bench]')")
def test_torch_comparisons_use_identical_weights_data_order_and_optimizer(tiny_results):
    cases = tiny_results[0]["cases"]
    for bs in (32, 128, 512):
        case = cases[f"mlp_train_bs{bs}"]
        assert case["init_fingerprint"]["torch"] == case["init_fingerprint"]["digitnet"]
        # same start, same batches, same SGD: after one epoch the weights still agree to float32 rounding
        assert case["torch_max_param_diff_after_1_epoch"] < 1e-4
        assert case["ratio_vs_torch"] > 0
    for name in ("infer_b1", "infer_b10000"):
        assert cases[name]["init_fingerprint"]["torch"] == cases[name]["init_fingerprint"]["digitnet"]
        assert cases[name]["same_predictions"]
    cnn = cases["cnn"]
    if cnn.get("status") != "not available":
        assert cnn["init_fingerprint"]["torch"] == cnn["init_fingerprint"]["digitnet"]
        assert cnn["torch"]["seconds_per_epoch"] > 0


@pytest.mark.skipif(not HAS_SKLEARN, reason="scikit-learn not installed (pip install '.[bench]')")
def test_sklearn_comparison_uses_identical_weights(tiny_results):
    for bs in (32, 128, 512):
        case = tiny_results[0]["cases"][f"mlp_train_bs{bs}"]
        assert case["init_fingerprint"]["sklearn"] == case["init_fingerprint"]["digitnet"]
        assert case["seconds_per_epoch"]["sklearn"] > 0


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (pip install '.[bench]')")
def test_torch_translation_gives_the_same_outputs(rng):
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from benchmarks.torch_port import to_torch

    import digitnet
    model = digitnet.MLP((32, 16), seed=3)
    x = rng.random((5, 784)).astype(np.float32)
    with torch.no_grad():
        ours, theirs = model.forward(x), to_torch(model)(torch.from_numpy(x)).numpy()
    assert np.allclose(ours, theirs, atol=1e-5)


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (pip install '.[bench]')")
def test_torch_translation_of_the_cnn_preset(rng):
    import numpy as np
    import torch

    import digitnet.nn
    if not hasattr(digitnet.nn, "build"):
        pytest.skip("digitnet.nn.build not available")
    sys.path.insert(0, str(ROOT))
    from benchmarks.torch_port import fingerprint, to_torch, torch_state_in_digitnet_layout

    model = digitnet.nn.build("cnn", seed=2)
    for name, b in model.buffers.items():          # non-trivial running statistics
        b[...] = rng.random(b.shape) + (0.5 if name.endswith("var") else 0.0)
    net = to_torch(model).eval()
    assert fingerprint(torch_state_in_digitnet_layout(net, model)) == fingerprint(model.state_dict())
    images = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    x = model.prepare(images)
    with torch.no_grad():
        theirs = net(torch.from_numpy(x)).numpy()
    assert np.allclose(model.forward(x), theirs, atol=1e-4)


def test_accuracy_table_marks_targets_and_ensembles():
    """benchmarks/accuracy.py's table (docs/accuracy.md) from a results file (the trainings themselves take hours)."""
    spec = importlib.util.spec_from_file_location("accuracy_bench", ROOT / "benchmarks" / "accuracy.py")
    acc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(acc)

    def runs(*accs):
        return [{"seed": i, "test_accuracy": a, "train_time_s": 10.0, "cpu_s": 9.0} for i, a in enumerate(accs)]
    results = {"presets": {
        "seed": {"args": acc.RECIPES["seed"][1], "runs": runs(0.981, 0.979, 0.980),
                 "ensemble": {"seeds": [0, 1, 2], "test_accuracy": 0.983}},
        "cnn-large": {"args": acc.RECIPES["cnn-large"][1], "runs": runs(0.9964, 0.9959)},
        "mlp+augment": {"args": acc.RECIPES["mlp+augment"][1], "runs": runs(0.993, 0.994, 0.993, 0.991)}},
        "ensembles": {"cnn-large": {"models": ["cnn-large-0", "cnn-large-1"], "test_accuracy": 0.9971}}}
    rows = {r.split("|")[1].strip(): r for r in acc.table(results).splitlines() if r.startswith("| ")}
    assert "≥ 97.8 % ✓" in rows["`seed`"] and "**98.00 %**" in rows["`seed`"] and "ensemble of seeds 0, 1, 2: 98.30 %" \
        in rows["`seed`"]
    assert "✗ (missed) (2 seeds only)" in rows["`cnn-large`"] and "99.59 %" in rows["`cnn-large`"]
    assert "not run yet" in rows["`mlp`"]
    assert "≥ 99.2 % ✓ on seeds 0–2 (min over all 4: 99.10 %)" in rows["`mlp+augment`"]
    assert "≥ 99.7 % ✓" in rows["cnn-large: ensemble"] and "**99.71 %**" in rows["cnn-large: ensemble"]
    assert "not run yet" in rows["cnn-large, all recipes: ensemble"]


def test_threads_mode_runs_digitnet_as_train_threads_does(tmp_path):
    """`--threads 2`: digitnet's layers split batches (recorded), the memory case trains with --threads 2."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--tiny", "--threads", "2", "--cases",
                           "mlp_train_bs128,peak_rss,cnn", "--out", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["digitnet_threads"] == 2 and results["threads"] == 2 and results["digitnet_threads_setting"] == "2"
    assert "--threads 2" in results["cases"]["peak_rss"]["command"]
    assert all(c.get("status") != "error" for c in results["cases"].values())
    assert "digitnet `--threads 2`" in (tmp_path / "results.md").read_text()
    blas = subprocess.run([sys.executable, "-m", "benchmarks", "--tiny", "--threads", "blas", "--cases", "peak_rss",
                           "--out", str(tmp_path / "blas")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert blas.returncode == 0, blas.stderr[-2000:]
    results = json.loads((tmp_path / "blas" / "results.json").read_text())
    assert results["digitnet_threads"] is None and results["digitnet_threads_setting"] == "blas"
    assert "--threads blas" in results["cases"]["peak_rss"]["command"]
    bad = subprocess.run([sys.executable, "-m", "benchmarks", "--threads", "0"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--threads must be a positive integer, auto or blas" in bad.stderr


def test_docs_summary_puts_runs_side_by_side(tiny_results, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))                       # `pytest` alone does not put the repo on sys.path
    from benchmarks import update_docs
    results = tiny_results[0]
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(results))
    page = tmp_path / "docs" / "benchmarks.md"
    page.parent.mkdir()
    page.write_text("intro\n<!-- bench-summary:start -->\nold\n<!-- bench-summary:end -->\nend\n")
    monkeypatch.chdir(tmp_path)
    assert update_docs.main(["--summary", "a", "b"]) == 0
    text = page.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("end\n")
    assert "(`a/results.md`)" in text and "(`b/results.md`)" in text and "`cnn` time to 99 %" in text
    ratio = results["cases"]["mlp_train_bs32"].get("ratio_vs_torch")
    if ratio is not None:
        from benchmarks.report import _r
        assert f"| MLP bs 32 epoch, × torch | {_r(ratio)} | {_r(ratio)} |" in text
    assert update_docs.main(["--summary", "a"]) == 0
    page.write_text("no markers\n")
    assert update_docs.main(["--summary", "a"]) == 2


def test_busy_machine_case_times_every_thread_setting(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.busy", "--runs", "1", "--epochs", "1", "--no-load",
                           "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "busy.json").read_text())
    assert set(res["settings"]) == {"default", "--threads 1", "--threads blas"}
    assert all(s["min"] > 0 and len(s["runs"]) == 1 for s in res["settings"].values())
    assert "| `digitnet train --threads 1` |" in (tmp_path / "busy.md").read_text()


def test_repeat_runs_report_every_runs_ratio_and_the_worst(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--tiny", "--repeat-runs", "2", "--cases",
                           "mlp_train_bs128,infer_b1", "--out", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["runs"]) == 2
    gemm = next(w for w in results["worst"] if w["case"] == "mlp_train_bs128" and w["ratio"] == "ratio_vs_gemm_only")
    assert len(gemm["runs"]) == 2 and gemm["worst"] == max(gemm["runs"]) > 0
    spread = results["cases"]["mlp_train_bs128"]["ratio_spread"]["vs_gemm_only"]
    assert spread["min"] <= spread["median"] <= spread["max"]
    assert "Worst of 2 consecutive runs" in (tmp_path / "results.md").read_text()


def test_ab_reads_every_figure_of_the_tiny_run_and_flags_only_a_real_slowdown(tiny_results):
    sys.path.insert(0, str(ROOT))
    from benchmarks.ab import compare, figures

    results = tiny_results[0]
    found = figures(results)
    assert "mlp_train_bs128: seconds_per_epoch" in found and "infer_b1: seconds_per_call" in found
    assert "peak_rss: peak_rss_mb" in found and all(v[0] > 0 for v in found.values())
    slow = json.loads(json.dumps(results))
    slow["cases"]["infer_b1"]["seconds_per_call"]["digitnet"] *= 1.2     # 20 % slower, the reference unchanged
    rows = {r["figure"]: r for r in compare([results, results], [results, slow], max_slower=0.05)}
    assert rows["infer_b1: seconds_per_call"]["slower"] and rows["infer_b1: seconds_per_call"]["ratio_max"] > 1.19
    assert not any(r["slower"] for n, r in rows.items() if n != "infer_b1: seconds_per_call")
    # the whole machine 20 % slower in one run (the reference too): not the change's fault
    drift = json.loads(json.dumps(results))
    drift["cases"]["infer_b1"]["seconds_per_call"] = {k: v * 1.2 for k, v in drift["cases"]["infer_b1"]["seconds_per_call"].items()}
    rows = {r["figure"]: r for r in compare([results], [drift], max_slower=0.05)}
    assert not rows["infer_b1: seconds_per_call"]["slower"] or "ratio_vs_reference" not in rows["infer_b1: seconds_per_call"]


def test_number_gate_writes_its_table(tmp_path):
    """benchmarks/number_gate.py at a few images per set: one row per set, counts that add up, in OUT.md."""
    out = tmp_path / "gate"
    proc = subprocess.run([sys.executable, "benchmarks/number_gate.py", "--n", "6", "--rows", "3", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (tmp_path / "gate.md").read_text().splitlines()
    assert lines[0].startswith("model reader: python benchmarks/number_gate.py --n 6")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[3:]]
    assert [r[0] for r in rows][:2] == ["page drawings of one digit", "2-3 digits in one image"] and len(rows) == 6
    for name, images, unsure, segmented, several, both in rows:
        assert int(images) == (6 if name.startswith("page") else 3)
        assert int(images) >= int(unsure) >= int(segmented) >= int(both) and int(several) >= int(both)
    assert proc.stdout.strip() == "\n".join(lines)


def test_page_side_writes_its_table(tmp_path):
    """benchmarks/page_side.py at a few drawings: one row per side, shares and counts in range, in OUT.md."""
    out = tmp_path / "side"
    proc = subprocess.run([sys.executable, "benchmarks/page_side.py", "--n", "6", "--rows", "3", "--sides", "64", "32",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (tmp_path / "side.md").read_text().splitlines()
    assert lines[0].startswith("`python benchmarks/page_side.py --n 6")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[4:]]
    assert [r[0] for r in rows] == ["64", "32"]
    for side, right, refused, numbers, ms, size, *spacings in rows:
        assert 0 <= float(right.rstrip(" %")) <= 100 and 0 <= float(refused.rstrip(" %")) <= 100
        assert 0 <= int(numbers) <= 6 and float(ms) > 0 and int(size.replace(",", "")) > 0
        assert len(spacings) == 4 and all(3 >= int(a) >= int(b) >= 0 for a, b in (c.split(" / ") for c in spacings))
    assert proc.stdout.strip() == "\n".join(lines)


@pytest.mark.parametrize("module", sorted(
    "benchmarks" if p.stem == "run" else f"benchmarks.{p.stem}"
    for p in (ROOT / "benchmarks").glob("*.py") if "argparse" in p.read_text()))
def test_every_benchmark_explains_its_options(module):
    # argparse formats help strings with %: a bare "99 %" prints the argument's internals instead
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:") and "option_strings" not in proc.stdout
