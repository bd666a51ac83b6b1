"""CLI: each subcommand's happy path and its error exit codes."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from digitnet.cli import main
from digitnet.nn import MLP
from helpers import run, write_npz


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, mnist):
    return write_npz(tmp_path_factory.mktemp("data"), mnist, 3000, 500)



def test_train_saves_a_model_with_metadata(tmp_path, capsys, tiny_data):
    out = tmp_path / "m.safetensors"
    code, stdout, err = run(capsys, "train", "--data", str(tiny_data), "--hidden", "32", "--epochs", "2",
                            "--val-size", "500", "--seed", "3", "--threads", "1", "-o", str(out))
    assert code == 0, err
    assert "test accuracy" in stdout and out.exists() and " 1 thread;" in stdout
    assert "epoch   2/2" in err                      # per-epoch lines with loss/acc
    code, stdout, _ = run(capsys, "info", "--model", str(out), "--json")
    meta = json.loads(stdout)
    assert meta["seed"] == 3 and len(meta["history"]) == 2
    assert meta["command"].startswith("digitnet train --data")
    assert meta["architecture"][0] == {"type": "Dense", "in_features": 784, "out_features": 32, "init": "he"}
    assert meta["blas"]["threads"] == 1 and meta["train_config"]["threads"] == 1
    code, stdout, _ = run(capsys, "info", "--model", str(out))
    assert "1 thread(s) while training" in stdout


def test_train_full_batch_and_deeper(tmp_path, capsys, tiny_data):
    out = tmp_path / "m.safetensors"
    code, stdout, err = run(capsys, "train", "--data", str(tiny_data), "--hidden", "32,16", "--batch-size", "full",
                            "--epochs", "3", "--val-size", "500", "--quiet", "-o", str(out))
    assert code == 0, err
    assert "trained 3 epochs" in stdout and err.count("\n") <= 2


def test_evaluate_defaults_to_shipped_seed_on_bundled_test_set(capsys):
    code, stdout, _ = run(capsys, "evaluate", "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["n"] == 10000 and result["accuracy"] >= 0.975
    assert np.array(result["confusion_matrix"]).sum() == 10000
    code, stdout, _ = run(capsys, "evaluate")
    assert "confusion matrix" in stdout and "precision" in stdout


def test_evaluate_on_other_data(capsys, tiny_data):
    code, stdout, _ = run(capsys, "evaluate", "--data", str(tiny_data), "--json")
    assert code == 0 and json.loads(stdout)["n"] == 500


def test_predict_images_and_csv(tmp_path, capsys, mnist):
    paths = []
    for i in range(3):
        img = Image.fromarray(255 - mnist.test.images[i])  # black on white, like a drawing
        paths.append(tmp_path / f"d{i}.png")
        img.save(paths[-1])
    csv = tmp_path / "pix.csv"
    csv.write_text("\n".join(",".join(map(str, mnist.test.images[i].ravel())) for i in range(3)) + "\n")
    code, stdout, _ = run(capsys, "predict", "--json", "--top-k", "2", *map(str, paths), str(csv))
    assert code == 0
    lines = [json.loads(l) for l in stdout.splitlines()]
    assert len(lines) == 6 and all(len(l["top_k"]) == 2 for l in lines)
    assert [l["label"] for l in lines[3:]] == mnist.test.labels[:3].tolist()
    code, stdout, _ = run(capsys, "predict", str(paths[0]))
    assert stdout.startswith(f"{paths[0]}: ")


def test_info_text(capsys):
    code, stdout, _ = run(capsys, "info")
    assert code == 0 and "Conv2D(" in stdout and "reader" in stdout and "test accuracy" in stdout and "digitnet train" in stdout


def test_import_pickle(tmp_path, capsys):
    m = MLP((64,), seed=0)
    p = m.params
    (tmp_path / "w.pkl").write_bytes(pickle.dumps((p["0.W"].T, p["0.b"][:, None], p["2.W"].T, p["2.b"][:, None])))
    code, stdout, err = run(capsys, "import-pickle", str(tmp_path / "w.pkl"), "-o", str(tmp_path / "w.safetensors"))
    assert code == 0, err
    assert "test accuracy" in stdout and (tmp_path / "w.safetensors").exists()


def test_an_ensemble_of_models_with_other_classes_is_one_error_line(tmp_path, capsys):
    from digitnet import io

    digits, letters = MLP((8,), seed=0), MLP((8,), seed=1)
    letters.classes = list("abcdefghij")                  # same shape, other classes: nothing to average
    io.save(digits, tmp_path / "d.safetensors"), io.save(letters, tmp_path / "l.safetensors")
    Image.new("L", (40, 40), 255).save(tmp_path / "x.png")
    for command in (["predict", "--model", tmp_path / "d.safetensors", "--model", tmp_path / "l.safetensors",
                     tmp_path / "x.png"],
                    ["evaluate", "--model", tmp_path / "d.safetensors", tmp_path / "l.safetensors"]):
        code, stdout, err = run(capsys, *map(str, command))
        assert code == 2 and stdout == "" and err.count("\n") == 1, err
        assert "the models of an ensemble must have the same outputs" in err


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "expected a positive integer"),
    (["train", "--epochs", "9" * 400], "expected a positive integer"),  # too long for a float: no OverflowError
    (["train", "--batch-size", "lots"], "positive integer or 'full'"),
    (["train", "--threads", "0"], "expected a positive integer, 'auto' or 'blas'"),
    (["train", "--threads", "many"], "expected a positive integer, 'auto' or 'blas'"),
    (["train", "--hidden", "64,x"], "comma-separated layer sizes"),
    (["train", "--lr", "-1"], "positive number"),
    (["train", "--seed", "-1"], "expected an integer >= 0"),
    (["train", "--arch", "fc99999999-fc10"], "more than 20,000,000 parameters"),  # refused, not allocated
    (["train", "--data", "/nonexistent/mnist"], "no such file"),
    (["train", "--bogus"], "train: unknown option --bogus"),
    (["predict", "--bogus=1", "x.png"], "predict: unknown option --bogus"),
    (["info", "seed", "extra"], "info: unexpected argument 'extra'"),
    (["info", "--model", "seed", "--model", "cnn"], "argument --model: given twice"),
    (["evaluate", "--model", "nonexistent-model"], "no model file or shipped model"),
    (["evaluate", "--model", "seed", "reader"], "the models of an ensemble must have the same outputs"),
    (["predict", "/nonexistent.png"], "no such file"),
    (["info", "--model", "/nonexistent.safetensors"], "cannot read model"),
    (["import-pickle", "/nonexistent.pkl", "-o", "x.safetensors"], "cannot read"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    ([], "required"),
])
def test_user_errors_exit_2_with_one_line(capsys, argv, message):
    code, stdout, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("digitnet: error:") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.count("digitnet") == 1 or "see digitnet" in err or "digitnet train --resume" in err  # one prefix


def test_predict_non_image_and_malicious_pickle(tmp_path, capsys):
    (tmp_path / "x.png").write_text("not an image")
    code, _, err = run(capsys, "predict", str(tmp_path / "x.png"))
    assert code == 2 and "not a readable image" in err
    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("true",))
    (tmp_path / "e.pkl").write_bytes(pickle.dumps(Evil()))
    code, _, err = run(capsys, "import-pickle", str(tmp_path / "e.pkl"), "-o", str(tmp_path / "o.safetensors"))
    assert code == 2 and "refusing to load" in err and not (tmp_path / "o.safetensors").exists()
    Image.new("L", (8, 8)).save(tmp_path / "d.png")  # the wrong file: its bytes parse as opcodes for a while
    code, _, err = run(capsys, "import-pickle", str(tmp_path / "d.png"), "-o", str(tmp_path / "o.safetensors"))
    assert code == 2 and "d.png: not a pickle file (it begins with byte 0x89)" in err


def test_unreadable_and_damaged_images_say_why(tmp_path, capsys, monkeypatch):
    png = tmp_path / "d.png"
    Image.new("L", (40, 40), 255).save(png)
    (tmp_path / "cut.png").write_bytes(png.read_bytes()[:60])  # a PNG whose data stops early
    code, _, err = run(capsys, "predict", str(tmp_path / "cut.png"))
    assert code == 2 and "not a readable image (damaged or truncated" in err
    real_open = os.open

    def denied(path, *args, **kwargs):  # what a file without read permission gives (root reads any file)
        if str(path) == str(png):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    code, _, err = run(capsys, "predict", str(png))
    assert code == 2 and err.strip() == f"digitnet: error: {png}: permission denied"


def test_traceback_flag_shows_the_trace(capsys):
    from digitnet import DigitnetError
    with pytest.raises(DigitnetError):
        main(["--traceback", "evaluate", "--model", "nonexistent-model"])


def test_help_shows_defaults_and_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "digitnet", "train", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "default: 128" in proc.stdout and "--batch-size" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "digitnet", "train", "--epochs", "x"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("argv", [["info"], ["--version"]])
def test_ctrl_c_during_shutdown_keeps_the_exit_status(argv):
    """SIGINT once the work is done, while the interpreter shuts down (here from an atexit hook)."""
    code = ("import atexit, os, runpy, signal, sys\n"
            "atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))\n"
            f"sys.argv = ['digitnet', *{argv!r}]\n"
            "runpy.run_module('digitnet', run_name='__main__', alter_sys=True)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout and not p.stderr, p.stderr
