"""`digitnet finetune`: a person's folder of digits in, a model that reads them better out, MNIST kept."""

import json

import numpy as np
import pytest
from PIL import Image

import digitnet
from digitnet.augment import sample_bilinear
from digitnet.errors import DigitnetError
from digitnet.finetune import FinetuneConfig, finetune, holdout_split, load_folder, mixed_training_set
from helpers import run


def slanted(images, shear=-0.8):
    """A "writer" the models have not seen: a strong back-slant."""
    c = 13.5
    g = np.arange(28) - c
    ys = np.broadcast_to(c + g[None, :, None], (len(images), 28, 28))
    xs = c + g[None, None, :] - shear * g[None, :, None] + np.zeros((len(images), 1, 1))
    return np.clip(sample_bilinear(images.astype(np.float32) / 255, ys, xs) * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, mnist):
    root = tmp_path_factory.mktemp("mine")
    for d in range(10):
        idx = np.nonzero(mnist.train.labels == d)[0][:4]
        (root / str(d)).mkdir()
        for k, im in enumerate(slanted(mnist.train.images[idx])):
            Image.fromarray(255 - im).resize((84, 84), Image.BICUBIC).save(root / str(d) / f"{k}.png")
    (root / "3" / "notes.txt").write_text("ignored: not an image")
    (root / "3" / ".x.abc.tmp.png").write_bytes(b"half a file")      # an interrupted collect write
    return root


def test_load_folder(folder):
    data = load_folder(folder)
    assert data.images.shape == (40, 28, 28) and np.bincount(data.labels).tolist() == [4] * 10


def test_load_folder_errors(tmp_path):
    with pytest.raises(DigitnetError, match="no such folder"):
        load_folder(tmp_path / "missing")
    with pytest.raises(DigitnetError, match="no images in digit folders"):
        load_folder(tmp_path)
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DigitnetError, match=r"bad\.png: .*not a readable image"):
        load_folder(tmp_path)


def test_holdout_and_mix(mnist):
    own = digitnet.Dataset(mnist.test.images[:40], np.repeat(np.arange(10), 4).astype(np.uint8), "own")
    train, held = holdout_split(own, 0.25, seed=0)
    assert len(held) == 10 and sorted(held.labels.tolist()) == list(range(10)) and len(train) == 30
    mixed = mixed_training_set(train, mnist.train, FinetuneConfig(replay_min=300, own_share=0.5))
    assert len(mixed) == 300 + 30 * 10                                  # own repeated to half the set


def test_finetune_round_trip(capsys, folder, tmp_path, mnist):
    out = tmp_path / "mine.safetensors"
    code, stdout, err = run(capsys, "finetune", "--model", "seed", "--data", folder, "-o", out,
                            "--holdout", "0", "--epochs", "3", "--json")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["n_train"] == 40 and report["own_before"] is None
    own = load_folder(folder)
    before = (digitnet.load("seed").predict(own.images) == own.labels).mean()
    tuned = digitnet.load(out)
    after = (tuned.predict(own.images) == own.labels).mean()
    assert after > before and after >= 0.9
    assert report["mnist_after"] > report["mnist_before"] - 0.02                # MNIST not forgotten
    assert tuned.meta["finetune"]["samples"] == 40 and tuned.meta["test_accuracy"] == report["mnist_after"]
    # same seed, same weights
    code, _, _ = run(capsys, "finetune", "--model", "seed", "--data", folder, "-o", tmp_path / "again.safetensors",
                     "--holdout", "0", "--epochs", "3", "--json")
    again = digitnet.load(tmp_path / "again.safetensors")
    assert all(np.array_equal(a, b) for a, b in zip(tuned.state_dict().values(), again.state_dict().values()))


def test_finetune_text_report_with_holdout(capsys, folder, tmp_path):
    code, stdout, _ = run(capsys, "finetune", "--model", "seed", "--data", folder, "-o", tmp_path / "m.safetensors",
                          "--epochs", "1")
    assert code == 0 and "held-out samples (10):" in stdout and "MNIST test" in stdout and "->" in stdout


@pytest.mark.parametrize("argv, message", [
    (["--data", "nowhere"], "no such folder"),
    (["--lr", "2"], "expected a number in (0, 1)"),
    (["--epochs", "0"], "expected a positive integer"),
])
def test_finetune_cli_errors(capsys, folder, tmp_path, argv, message):
    base = {"--data": str(folder), "-o": str(tmp_path / "x.safetensors")}
    args = ["finetune", "--model", "seed"]
    for k, v in base.items():
        if k not in argv:
            args += [k, v]
    code, _, err = run(capsys, *args, *argv)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "x.safetensors").exists()


def test_finetune_output_is_a_folder(capsys, folder, tmp_path):
    code, _, err = run(capsys, "finetune", "--model", "seed", "--data", folder, "-o", tmp_path)
    assert code == 2 and "is a folder" in err


def test_finetune_api_keeps_base_record(mnist):
    model = digitnet.load("seed")
    history = list(model.meta.get("history", []))
    own = digitnet.Dataset(slanted(mnist.train.images[:50]), mnist.train.labels[:50], "own")
    finetune(model, own, FinetuneConfig(epochs=1, replay_min=200))
    assert model.meta.get("history", []) == history and "finetune" in model.meta
