"""Faults of the machine: every command that writes says why in one line and leaves no partial file.

The faults are made without root tricks: a parent path that is a file, a folder nobody may write
(``/sys``), and, by replacing ``os.fsync`` or ``tempfile.mkstemp``, a full disk and a read-only
file system.
"""

import errno
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import run, write_npz

import digitnet
from digitnet import DigitnetError, fsutil
from digitnet.nn import MLP


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, mnist):
    d = tmp_path_factory.mktemp("inputs")
    data = write_npz(d, mnist, 300, 100)
    m = MLP((8,), seed=0)
    W1, b1, W2, b2 = (m.params[k] for k in ("0.W", "0.b", "2.W", "2.b"))
    (d / "w.pkl").write_bytes(pickle.dumps((W1, b1, W2, b2)))
    from PIL import Image
    img = np.zeros((28, 28), np.uint8)
    img[6:22, 12:16] = 255
    Image.fromarray(img).save(d / "one.png")
    header = ",".join(f"pixel{i}" for i in range(784))
    (d / "test.csv").write_text(header + "\n" + ",".join(str(v) for v in img.ravel()) + "\n")
    return {"data": data, "pickle": d / "w.pkl", "image": d / "one.png", "csv": d / "test.csv"}


# (name, argv given the output path, output is a folder)
COMMANDS = {
    "train": (lambda i, out: ["train", "--data", i["data"], "--epochs", "1", "--val-size", "0", "--quiet", "-o", out], False),
    "import-pickle": (lambda i, out: ["import-pickle", i["pickle"], "--no-eval", "-o", out], False),
    "export": (lambda i, out: ["export", "seed", "--onnx", out], False),
    "report": (lambda i, out: ["report", "seed", "--data", i["data"], "-o", out], True),
    "predict --show": (lambda i, out: ["predict", i["image"], "--show", out], True),
    "predict --kaggle-submission": (lambda i, out: ["predict", i["csv"], "--kaggle-submission", out], False),
}
SUFFIX = {"train": ".safetensors", "import-pickle": ".safetensors", "export": ".onnx",
          "predict --kaggle-submission": ".csv"}


def files_under(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())


def out_path(base, name, folder):
    return base / ("out" if folder else f"out{SUFFIX[name]}")


def check_one_line(capsys, argv, reason):
    code, _, err = run(capsys, *argv)
    lines = [ln for ln in err.splitlines() if ln.startswith("digitnet: error:")]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "cannot write" in lines[0] and reason in lines[0], lines[0]


@pytest.mark.parametrize("name", COMMANDS)
def test_parent_is_a_file(name, inputs, tmp_path, capsys):
    pytest.importorskip("matplotlib") if name == "report" else None
    argv, folder = COMMANDS[name]
    (tmp_path / "afile").write_text("x")
    check_one_line(capsys, argv(inputs, out_path(tmp_path / "afile", name, folder)),
                   "not a folder")
    assert files_under(tmp_path) == ["afile"]


@pytest.mark.parametrize("name", COMMANDS)
def test_folder_nobody_may_write(name, inputs, capsys):
    if os.access("/sys", os.W_OK) and not os.path.ismount("/sys"):
        pytest.skip("/sys is writable here")
    argv, folder = COMMANDS[name]
    out = out_path(Path("/sys"), name, folder)
    check_one_line(capsys, argv(inputs, out), "")
    assert not out.exists()


@pytest.mark.parametrize("name", COMMANDS)
def test_full_disk(name, inputs, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib") if name == "report" else None
    argv, folder = COMMANDS[name]

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    check_one_line(capsys, argv(inputs, out_path(tmp_path, name, folder)), "no space left on the device")
    assert files_under(tmp_path) == []                     # no partial PNG, model or temporary file


@pytest.mark.parametrize("name", COMMANDS)
def test_read_only_file_system(name, inputs, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib") if name == "report" else None
    argv, folder = COMMANDS[name]

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    check_one_line(capsys, argv(inputs, out_path(tmp_path, name, folder)), "the file system is read-only")
    assert files_under(tmp_path) == []


def test_train_that_cannot_save_points_to_its_checkpoint(inputs, tmp_path, capsys, monkeypatch):
    """The disk fills up after training: the error says where the trained weights are."""
    real = fsutil.atomic_write

    def full_for_models(path, data, what=""):
        if what == "model":
            raise DigitnetError(f"cannot write model {path}: no space left on the device")
        return real(path, data, what)
    monkeypatch.setattr(fsutil, "atomic_write", full_for_models)
    monkeypatch.setattr(digitnet.io, "atomic_write", full_for_models)
    code, _, err = run(capsys, "train", "--data", inputs["data"], "--epochs", "1", "--val-size", "0", "--quiet",
                       "-o", tmp_path / "m.safetensors")
    ckpt = tmp_path / "m.safetensors.ckpt"
    assert code == 2 and "no space left" in err and f"--resume {ckpt}" in err
    assert digitnet.load(ckpt).meta["history"]                 # the work is there


def test_atomic_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    p = fsutil.atomic_write(tmp_path / "f.txt", "old")
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(DigitnetError, match="cannot write .*f.txt: I/O error"):
        fsutil.atomic_write(p, "new")
    assert p.read_text() == "old" and files_under(tmp_path) == ["f.txt"]


def test_atomic_path_keeps_the_suffix_for_writers_that_read_it(tmp_path):
    with fsutil.atomic_path(tmp_path / "plot.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"png")
    assert files_under(tmp_path) == ["plot.png"]


@pytest.mark.parametrize("where", ["parent is a file", "unwritable"])
def test_sweep_folder_that_cannot_be_made(where, inputs, tmp_path, capsys):
    pytest.importorskip("optuna")
    space = tmp_path / "space.json"
    space.write_text('{"hidden": {"low": 8, "high": 16}, "epochs": 1}')
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "sw" if where == "parent is a file" else Path("/sys/digitnet-sweep")
    if where == "unwritable" and os.access("/sys", os.W_OK) and not os.path.ismount("/sys"):
        pytest.skip("/sys is writable here")
    check_one_line(capsys, ["sweep", space, "--trials", "1", "--data", inputs["data"], "-o", out],
                   "not a folder" if where == "parent is a file" else "")
    assert files_under(tmp_path) == ["afile", "space.json"]


FILE_COMMANDS = [name for name, (_, folder) in COMMANDS.items() if not folder]


@pytest.mark.skipif(not Path("/dev/full").is_char_device(), reason="no /dev/full here")
@pytest.mark.parametrize("name", FILE_COMMANDS)
def test_dev_full_is_a_full_disk_and_stays_a_device(name, inputs, capsys):
    """Writing into /dev/full fails as a full disk does; renaming a file over it would have replaced the
    device (as root, silently, with 'saved /dev/full')."""
    argv, _ = COMMANDS[name]
    check_one_line(capsys, argv(inputs, "/dev/full"), "no space left on the device")
    assert Path("/dev/full").is_char_device()
    assert not Path("/dev/full.ckpt").exists()


def test_a_pipe_is_written_into_and_a_socket_refused(tmp_path):
    import socket
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    fsutil.atomic_write(fifo, b"model bytes")
    reader.join(10)
    assert got == [b"model bytes"] and fifo.is_fifo()

    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        with pytest.raises(DigitnetError, match="not a regular file"):
            fsutil.atomic_write(sock_path, b"x")
    assert sock_path.is_socket()
