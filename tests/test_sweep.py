"""digitnet sweep: space files, the study's table, re-runnable trials, several workers sharing one study.

Workers are real processes (``python -m digitnet sweep``) sharing a journal file,
or a throwaway PostgreSQL server started here (Debian's ``postgresql``, installed
with apt-get when missing and we are root; skipped, saying why, only when that is
impossible). Trials are tiny: 1,000 training images, one epoch, a small MLP.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import debian_package, run, write_npz

optuna = pytest.importorskip("optuna", reason="the sweep extra (optuna) is not installed")

import digitnet
from digitnet import sweep

SPACE = {"hidden": {"low": 8, "high": 32}, "lr": {"low": 0.02, "high": 0.3, "log": True},
         "epochs": 1, "val_size": 200}


@pytest.fixture(scope="module")
def data(mnist, tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("sweepdata"), mnist, 1200, 300)


def space_file(directory: Path, space=SPACE, name="space.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(space))
    return path


def table(capsys, space, out, *extra):
    """The study's trials as --json prints them (the trial lines only)."""
    code, stdout, err = run(capsys, "sweep", space, "-o", out, "--trials", "0", "--json", *extra)
    assert code == 0, err
    return [json.loads(line) for line in stdout.splitlines() if '"number"' in line]


def worker(space, out, trials, data, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "digitnet", "sweep", str(space), "-o", str(out), "--trials",
                             str(trials), "--data", str(data), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(*procs, timeout=600):
    for p in procs:
        _out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err


def check_consistent(rows, n):
    """n finished trials (a worker may start one more while the last ones finish), none lost or twice."""
    numbers = sorted(r["number"] for r in rows)
    assert numbers == list(range(len(numbers)))
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert n <= len([r for r in rows if r["state"] in ("COMPLETE", "PRUNED")]) <= n + 1
    assert not [r for r in rows if r["state"] in ("RUNNING", "WAITING")]
    models = [r["model"] for r in complete]
    assert len(set(models)) == len(models) and all(Path(m).is_file() for m in models)
    for r in complete:
        assert 0 < r["value"] <= 1 and r["command"].startswith("digitnet train ")
    return complete


# --------------------------------------------------------------------------- one worker, in-process
def test_sweep_table_json_and_continue(capsys, tmp_path, data):
    space = space_file(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "sweep", space, "-o", out, "--trials", "2", "--data", data)
    assert code == 0, err
    assert "2/2 finished" in err and "best" in err                       # progress lines
    lines = stdout.splitlines()
    assert lines[0].split() == ["#", "state", "val", "acc", "time", "params", "model"]
    assert len(lines) == 3 and all("complete" in line for line in lines[1:])
    rows = table(capsys, space, out)
    assert [set(r) >= {"number", "state", "params", "value", "model"} for r in rows] == [True, True]
    assert rows[0]["value"] >= rows[1]["value"]                          # best first
    assert set(rows[0]["params"]) == {"hidden", "lr"}                    # what varies
    assert isinstance(rows[0]["params"]["hidden"], int)
    assert {r["seed"] for r in rows} == {0, 1}
    # the same command again continues the study: --trials is the study's total
    code, _, err = run(capsys, "sweep", space, "-o", out, "--trials", "3", "--data", data)
    assert code == 0, err
    rows = table(capsys, space, out)
    assert sorted(r["number"] for r in rows) == [0, 1, 2]
    assert check_consistent(rows, 3)


def test_trials_0_only_prints(capsys, tmp_path, data):
    space = space_file(tmp_path)
    code, _, err = run(capsys, "sweep", space, "-o", tmp_path / "none", "--trials", "0")
    assert code == 2 and err.startswith("digitnet: error:") and "no sweep there yet" in err
    assert not (tmp_path / "none").exists()
    run(capsys, "sweep", space, "-o", tmp_path / "out", "--trials", "1", "--data", data)
    before = (tmp_path / "out" / "sweep.journal").read_bytes()
    assert len(table(capsys, space, tmp_path / "out")) == 1
    assert (tmp_path / "out" / "sweep.journal").read_bytes() == before


def test_studies_sharing_a_folder_keep_their_own_models(capsys, tmp_path, data):
    space, out = space_file(tmp_path), tmp_path / "out"
    for name in ("a", "b"):
        code, _, err = run(capsys, "sweep", space, "-o", out, "--study", name, "--trials", "1", "--data", data)
        assert code == 0, err
    (a,), (b,) = table(capsys, space, out, "--study", "a"), table(capsys, space, out, "--study", "b")
    assert Path(a["model"]).parent.name == "a" and Path(b["model"]).parent.name == "b"
    assert Path(a["model"]).is_file() and Path(b["model"]).is_file()


def test_storage_may_be_a_journal_file_elsewhere(capsys, tmp_path, data):
    space, journal = space_file(tmp_path), tmp_path / "shared" / "study.journal"
    code, _, err = run(capsys, "sweep", space, "-o", tmp_path / "out", "--storage", journal, "--trials", "1",
                       "--data", data)
    assert code == 0, err
    assert journal.is_file() and not (tmp_path / "out" / "sweep.journal").exists()
    (row,) = table(capsys, space, tmp_path / "elsewhere", "--storage", journal)
    assert Path(row["model"]).parent == (tmp_path / "out" / "space").resolve()
    code, _, err = run(capsys, "sweep", space, "--storage", tmp_path / "none.journal", "--trials", "0")
    assert code == 2 and "no sweep there yet" in err and not (tmp_path / "none.journal").exists()


def test_trial_reruns_exactly_with_digitnet_train(capsys, tmp_path, data, monkeypatch):
    space = space_file(tmp_path, {**SPACE, "optimizer": ["sgd", "adamw"], "nesterov": [True, False],
                                  "seed": {"low": 0, "high": 1000}})
    run(capsys, "sweep", space, "-o", tmp_path / "out", "--trials", "1", "--data", data)
    (row,) = table(capsys, space, tmp_path / "out")
    argv = row["command"].split()
    assert argv[:2] == ["digitnet", "train"] and str(row["seed"]) in argv
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv[1:], "--quiet")
    assert code == 0, err
    again, swept = digitnet.load(tmp_path / argv[-1]), digitnet.load(row["model"])
    assert swept.meta["command"] == row["command"]
    for k, v in swept.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k], v)


def test_ensemble_top_matches_evaluate(capsys, tmp_path, data):
    space = space_file(tmp_path)
    run(capsys, "sweep", space, "-o", tmp_path / "out", "--trials", "3", "--data", data)
    code, stdout, err = run(capsys, "sweep", space, "-o", tmp_path / "out", "--trials", "0", "--json",
                            "--ensemble-top", "2", "--data", data)
    assert code == 0, err
    lines = [json.loads(line) for line in stdout.splitlines()]
    trials, (ens,) = lines[:-1], lines[-1:]
    assert ens["ensemble"] == [r["model"] for r in trials[:2]]
    code, stdout, _ = run(capsys, "evaluate", "--model", *ens["ensemble"], "--data", data, "--json")
    assert json.loads(stdout)["accuracy"] == ens["test_accuracy"]
    code, _, err = run(capsys, "sweep", space, "-o", tmp_path / "out", "--trials", "0", "--ensemble-top", "4")
    assert code == 2 and "only 3 complete trials" in err


def test_pruned_trial_stops_training(small):
    """The callback hands fit() Optuna's decision: a pruned trial trains no further epoch."""
    reports = []

    class Trial:

        def report(self, value, step):
            reports.append((step, value))

        def should_prune(self):
            return True

    model = digitnet.MLP(hidden=(8,), seed=0)
    report = sweep._ReportToOptuna(Trial())
    history = digitnet.fit(model, small.train, None, epochs=3, val_size=200, progress=False, callbacks=[report])
    assert len(history) == 1 and report.pruned_at == 1
    assert reports == [(1, history[0]["val_acc"])]
    reports.clear()
    one = sweep._ReportToOptuna(Trial())         # the last epoch is never pruned: the model is done
    digitnet.fit(digitnet.MLP(hidden=(8,), seed=0), small.train, None, epochs=1, val_size=200, progress=False,
                 callbacks=[one])
    assert one.pruned_at is None and len(reports) == 1


def test_example_space_files_are_valid():
    from digitnet.sweep_space import load_space
    examples = sorted((Path(__file__).parent.parent / "examples").glob("*.toml"))
    assert examples
    spaces = {path.stem: load_space(path) for path in examples}      # raises on a bad one
    ensemble = spaces["cnn-large-ensemble"]
    assert ensemble["arch"].value == "cnn-large" and ensemble["epochs"].choices == [12, 15, 30]


def test_no_pruning(tmp_path):
    store = sweep.storage(None, tmp_path)
    assert isinstance(sweep.open_study(store, "a").pruner, optuna.pruners.MedianPruner)
    assert isinstance(sweep.open_study(store, "a", pruning=False).pruner, optuna.pruners.NopPruner)


def test_interrupts_wait_for_safe_points():
    from digitnet.interrupts import Interrupts
    with Interrupts() as it:
        os.kill(os.getpid(), signal.SIGINT)          # outside training(): remembered
        time.sleep(0.01)
        assert it.pending
        with pytest.raises(KeyboardInterrupt):
            it.check()
        with pytest.raises(KeyboardInterrupt), it.training():
            with it.held():                          # a storage write inside training
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)
                written = True                       # the write completes ...
            raise AssertionError("not reached")      # ... and the interrupt comes after it
        assert written
        with pytest.raises(KeyboardInterrupt), it.training():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
            raise AssertionError("not reached")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --------------------------------------------------------------------------- bad space files
@pytest.mark.parametrize("text, says", [
    ('{"widht": [1, 2]}', "unknown field 'widht'"),
    ('{"lr": {"low": 0.1, "high": 0.01}}', "lr: low must be below high"),
    ('{"lr": {"low": 0, "high": 0.1, "log": true}}', "lr: a log range needs low > 0"),
    ('{"lr": {"low": 0.01}}', "lr: a range is"),
    ('{"epochs": {"low": 1.5, "high": 3}}', "epochs: is an integer"),
    ('{"optimizer": {"low": 1, "high": 2}}', "optimizer: is not a number"),
    ('{"optimizer": ["sgd", "lion"]}', "optimizer: optimizer must be one of"),
    ('{"epochs": [0, 1]}', "epochs: epochs must be >= 1"),
    ('{"hidden": []}', "hidden: the list of choices is empty"),
    ('{"hidden": [[128, 0]]}', "hidden: layer sizes must be positive"),
    ('{"arch": ["fc10", "conv3x"]}', "arch:"),
    ('{"arch": ["seed"], "hidden": [64]}', "either arch or hidden"),
    ('{"val_size": 0}', "val_size: 0 leaves no validation set"),
    ('{"lr": [0.1, 0.1]}', "lr: the choices repeat"),
    ('{"lr": [null]}', "lr: expected a number, string or boolean"),
    ('[1, 2]', "expected a mapping"),
    ('{"lr": [0.1,', "not valid JSON"),
])
def test_bad_space_is_one_line_naming_it(capsys, tmp_path, text, says):
    path = tmp_path / "space.json"
    path.write_text(text)
    code, out, err = run(capsys, "sweep", path, "-o", tmp_path / "out")
    assert code == 2 and out == ""
    assert err.startswith("digitnet: error:") and says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_toml_space_and_its_errors(capsys, tmp_path, data):
    good = tmp_path / "good.toml"
    good.write_text('hidden = ["16", [32, 16]]\nepochs = 1\nval_size = 200\nlr = {low = 0.05, high = 0.2}\n')
    code, _, err = run(capsys, "sweep", good, "-o", tmp_path / "out", "--trials", "2", "--data", data)
    assert code == 0, err
    rows = table(capsys, good, tmp_path / "out")
    assert {r["params"]["hidden"] for r in rows} <= {"16", "32,16"}
    assert {digitnet.load(r["model"]).meta["arch"] for r in rows} <= {"fc16-relu-fc10", "fc32-relu-fc16-relu-fc10"}
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = [0.1\n")
    code, _, err = run(capsys, "sweep", bad, "-o", tmp_path / "out2")
    assert code == 2 and "bad.toml: not valid TOML" in err
    code, _, err = run(capsys, "sweep", tmp_path / "missing.toml", "-o", tmp_path / "out2")
    assert code == 2 and "cannot read the space file" in err


def test_unreachable_database_is_one_line(capsys, tmp_path):
    port = _free_port()
    code, _, err = run(capsys, "sweep", space_file(tmp_path), "-o", tmp_path / "out", "--trials", "1",
                       "--storage", f"postgresql://me:secret@127.0.0.1:{port}/nothing")
    assert code == 2 and err.startswith("digitnet: error: --storage") and len(err.strip().splitlines()) == 1
    assert "secret" not in err


# --------------------------------------------------------------------------- several workers
def test_two_workers_share_a_journal_file(capsys, tmp_path, data):
    # trials long enough (about 0.6 s each) that the first worker cannot finish all six before the second
    # one has started, even on a busy machine: at one epoch it did all six in under a second
    space, out = space_file(tmp_path, {**SPACE, "epochs": 150}), tmp_path / "out"
    a, b = worker(space, out, 6, data), worker(space, out, 6, data)
    finish(a, b)
    complete = check_consistent(table(capsys, space, out), 6)
    assert {r["worker"]["pid"] for r in complete} == {a.pid, b.pid}


def kill_mid_trial(space, out, data, study_rows, extra=()):
    """Start a worker, SIGKILL it while its second trial trains; returns the killed trial's number."""
    slow = {**SPACE, "epochs": 30}
    space.write_text(json.dumps(slow))
    p = worker(space, out, 3, data, *extra)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        running = [r for r in study_rows() if r["state"] == "RUNNING" and r["number"] == 1 and r["command"]]
        if running:
            break
        assert p.poll() is None, p.communicate()
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not list(out.glob("*/trial-0001.safetensors"))
    space.write_text(json.dumps(SPACE))
    return running[0]


def test_worker_killed_mid_trial_leaves_the_study_consistent(capsys, tmp_path, data):
    space, out = space_file(tmp_path), tmp_path / "out"

    def rows():
        if not (out / "sweep.journal").exists():
            return []
        store = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "sweep.journal")))
        try:
            return sweep.rows(optuna.load_study(study_name="space", storage=store))
        except KeyError:
            return []

    killed = kill_mid_trial(space, out, data, rows)
    code, _, err = run(capsys, "sweep", space, "-o", out, "--trials", "3", "--data", data)
    assert code == 0, err
    assert "trial 1: its worker is gone; marked failed and queued again" in err
    after = table(capsys, space, out)
    failed = [r for r in after if r["state"] == "FAIL"]
    assert [r["number"] for r in failed] == [1]
    (rerun,) = [r for r in after if r["retry_of"] == 1]
    assert rerun["state"] == "COMPLETE" and rerun["params"] == killed["params"] and rerun["seed"] == killed["seed"]
    assert len([r for r in after if r["state"] == "COMPLETE"]) == 3


def test_interrupted_worker_queues_its_trial_again(capsys, tmp_path, data):
    """Ctrl-C: exit 130, the running trial failed and queued again, no model file; rerunning completes it."""
    space, out = space_file(tmp_path), tmp_path / "out"

    def rows():
        if not (out / "sweep.journal").exists():
            return []
        store = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "sweep.journal")))
        try:
            return sweep.rows(optuna.load_study(study_name="space", storage=store))
        except KeyError:
            return []

    slow = {**SPACE, "epochs": 30}
    space.write_text(json.dumps(slow))
    p = worker(space, out, 2, data)
    while not [r for r in rows() if r["state"] == "RUNNING" and r["command"]]:
        assert p.poll() is None, p.communicate()
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=300)
    # 130, or ended by the SIGINT itself (-2) when it lands as the interpreter exits: both are Ctrl-C's exits
    assert p.returncode in (130, -signal.SIGINT) and "queued again" in err and "Traceback" not in err, err
    before = rows()
    assert [r["state"] for r in sorted(before, key=lambda r: r["number"])] == ["FAIL", "WAITING"]
    assert not list(out.glob("**/*.safetensors")) and not list(out.glob("**/.*tmp"))
    space.write_text(json.dumps(SPACE))
    code, _, err = run(capsys, "sweep", space, "-o", out, "--trials", "2", "--data", data)
    assert code == 0, err
    after = table(capsys, space, out)
    (rerun,) = [r for r in after if r["retry_of"] == 0]
    assert rerun["state"] == "COMPLETE" and rerun["seed"] == 0 and rerun["params"] == before[0]["params"]
    assert [r["state"] for r in after].count("COMPLETE") == 2


def test_ctrl_c_at_any_moment_leaves_a_consistent_study(capsys, tmp_path, data):
    """SIGINT at random moments of a worker running many short trials (storage writes most of the time).

    The study asks for more trials than a worker finishes in the test's time, so every SIGINT
    lands in a running sweep, and the worker must stop with 130.
    """
    space, out = space_file(tmp_path, {**SPACE, "val_size": 100}), tmp_path / "out"
    rng = np.random.default_rng(0)
    for _ in range(4):
        p = worker(space, out, 100_000, data)
        journal, size = out / "sweep.journal", (out / "sweep.journal").stat().st_size if out.exists() else 0
        while not journal.exists() or journal.stat().st_size == size:     # past Python's start: writing
            assert p.poll() is None, p.communicate()
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 2.0))
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=300)
        assert p.returncode == 130 and "Traceback" not in err, err
        assert err.rstrip().endswith("digitnet: interrupted"), err
        rows = table(capsys, space, out)
        assert not [r for r in rows if r["state"] == "RUNNING"]
        assert all(Path(r["model"]).is_file() for r in rows if r["state"] == "COMPLETE")
        assert not list(out.glob("**/.*tmp")) and not list(out.glob("*.lock"))


def test_diverging_trials_fail_and_count(capsys, tmp_path, data):
    space = space_file(tmp_path, {"lr": [1e9, 2e9], "epochs": 1, "val_size": 200, "momentum": 0.99})
    code, _, err = run(capsys, "sweep", space, "-o", tmp_path / "out", "--trials", "2", "--data", data)
    assert code == 0, err
    assert "training diverged" in err and "2/2 finished" in err
    rows = table(capsys, space, tmp_path / "out")
    assert [r["state"] for r in rows] == ["FAIL", "FAIL"] and not [r for r in rows if r["model"]]


# --------------------------------------------------------------------------- PostgreSQL
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="module")
def postgres():
    """URL of a throwaway PostgreSQL server on a free loopback port, stopped and deleted afterwards."""
    pytest.importorskip("psycopg", reason="the sweep extra's PostgreSQL driver (psycopg) is not installed")
    debian_package("postgresql", lambda: _pg_bin() is not None)
    bin_dir, port = _pg_bin(), _free_port()
    root = Path(tempfile.mkdtemp(prefix="digitnet-pg-"))
    as_user = []
    if os.geteuid() == 0:          # the server refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data_dir = root / "data"
    subprocess.run(as_user + [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", "-A", "trust",
                              "--no-sync"], check=True, capture_output=True, timeout=300)
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=50"
    subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-o", opts, "-l", str(root / "log"),
                              "-w", "start"], check=True, capture_output=True, timeout=300)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
                       check=False, capture_output=True, timeout=300)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_a_postgresql_study(capsys, tmp_path, data, postgres):
    space, out = space_file(tmp_path), tmp_path / "out"
    store = ["--storage", postgres, "--study", "two-workers"]
    a, b = worker(space, out, 6, data, *store), worker(space, out, 6, data, *store)
    finish(a, b)
    rows = table(capsys, space, out, *store)
    complete = check_consistent(rows, 6)
    assert {r["worker"]["pid"] for r in complete} == {a.pid, b.pid}
    code, stdout, _ = run(capsys, "sweep", space, "-o", out, "--trials", "0", *store)
    assert code == 0 and len(stdout.splitlines()) == 1 + len(rows)        # the table: every worker's trials


def test_postgresql_worker_killed_mid_trial(capsys, tmp_path, data, postgres):
    """A trial whose worker stopped beating is failed and queued again by any other worker, on any machine."""
    space, out = space_file(tmp_path), tmp_path / "out"
    store_args = ["--storage", postgres, "--study", "killed", "--heartbeat", "1"]

    store = sweep.storage(postgres, out)

    def rows():
        try:
            return sweep.rows(optuna.load_study(study_name="killed", storage=store))
        except KeyError:
            return []

    killed = kill_mid_trial(space, out, data, rows, store_args)
    # the heartbeat path, as a worker on another machine sees it (this machine would also find the dead pid)
    study = optuna.load_study(study_name="killed", storage=sweep.storage(postgres, out, heartbeat=1))
    time.sleep(2.5)
    optuna.storages.fail_stale_trials(study)
    code, _, err = run(capsys, "sweep", space, "-o", out, "--trials", "3", *store_args, "--data", data)
    assert code == 0, err
    after = table(capsys, space, out, *store_args)
    assert [r["number"] for r in after if r["state"] == "FAIL"] == [1]
    (rerun,) = [r for r in after if r["retry_of"] == 1]
    assert rerun["state"] == "COMPLETE" and rerun["params"] == killed["params"] and rerun["seed"] == killed["seed"]
    assert len([r for r in after if r["state"] == "COMPLETE"]) == 3
