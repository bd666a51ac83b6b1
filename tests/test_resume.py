"""Kill-and-resume: a run killed with SIGKILL and resumed ends with the same weights as an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import digitnet
from digitnet import DigitnetError
from digitnet.checkpoint import read
from helpers import write_npz

ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory, mnist):
    return write_npz(tmp_path_factory.mktemp("resume"), mnist, 1000, 200)


def train_args(data, out, epochs=12):
    # Dropout, augmentation and shuffling all draw from the run's generator; Adam has state.
    return [sys.executable, "-m", "digitnet", "train", "--data", str(data), "--arch", "fc32-relu-drop0.2-fc10",
            "--optimizer", "adam", "--schedule", "onecycle", "--augment", "shift", "--epochs", str(epochs),
            "--val-size", "200", "--patience", "100", "--seed", "5", "--quiet", "-o", str(out)]


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, data):
    ckpt = tmp_path / "run.ckpt"
    killed = subprocess.Popen(train_args(data, tmp_path / "killed.safetensors") + ["--checkpoint", str(ckpt)],
                              env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not ckpt.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "training finished before it could be killed"
    done = read(ckpt)["meta"]["checkpoint"]["epochs_done"]
    assert 1 <= done < 12
    assert not (tmp_path / "killed.safetensors").exists()

    resumed = subprocess.run([sys.executable, "-m", "digitnet", "train", "--data", str(data), "--resume", str(ckpt),
                              "--quiet"], env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run(train_args(data, tmp_path / "straight.safetensors"), env=ENV, capture_output=True,
                              text=True)
    assert straight.returncode == 0, straight.stderr
    a, b = digitnet.load(tmp_path / "killed.safetensors"), digitnet.load(tmp_path / "straight.safetensors")
    assert len(a.meta["history"]) == len(b.meta["history"]) == 12
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(np.array_equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not (tmp_path / "straight.safetensors.ckpt").exists()     # the default checkpoint is cleaned up


def test_resume_refuses_a_plain_model_file(tmp_path):
    path = digitnet.save(digitnet.MLP((8,)), tmp_path / "m.safetensors")
    with pytest.raises(DigitnetError, match="not a training checkpoint"):
        read(path)
