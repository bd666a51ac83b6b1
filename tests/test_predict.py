"""`digitnet predict`: files, folders, globs, stdin, --split, --show, Kaggle submissions, ensembles."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import digitnet
from helpers import run



@pytest.fixture(scope="module")
def folder(tmp_path_factory, mnist):
    """Six test digits as black-on-white PNG/JPEG files, like scans or drawings."""
    d = tmp_path_factory.mktemp("digits") / "scans" / "today"
    d.mkdir(parents=True)
    for i in range(6):
        img = Image.fromarray(255 - mnist.test.images[i]).resize((84, 84), Image.BICUBIC)
        img.save(d / f"d{i}.{'png' if i < 4 else 'jpg'}")
    (d / "notes.txt").write_text("not an image, ignored in a folder")
    return d


def labels_of(stdout):
    return [json.loads(line)["label"] for line in stdout.splitlines()]


def test_folder_glob_and_quoted_glob(capsys, folder, mnist):
    want = mnist.test.labels[:6].tolist()
    code, out, _ = run(capsys, "predict", "--json", folder)
    assert code == 0 and labels_of(out) == want
    code, out, _ = run(capsys, "predict", "--json", f"{folder}/*.png")     # a pattern the shell did not expand
    assert labels_of(out) == want[:4]
    code, out, _ = run(capsys, "predict", "--json", f"{folder.parent.parent}/**/d[45].jpg")
    assert labels_of(out) == want[4:]


def test_top_k_text_and_json(capsys, folder):
    code, out, _ = run(capsys, "predict", "--top-k", "4", "--json", folder / "d0.png")
    entry = json.loads(out)
    assert entry["input"].endswith("d0.png") and len(entry["top_k"]) == 4
    probs = [t["probability"] for t in entry["top_k"]]
    assert probs == sorted(probs, reverse=True) and entry["top_k"][0]["label"] == entry["label"]
    code, out, _ = run(capsys, "predict", "--top-k", "2", folder / "d0.png")
    assert out.startswith(f"{folder / 'd0.png'}: 7") and out.count("%") == 2


def test_stdin(folder, mnist):
    cmd = [sys.executable, "-m", "digitnet", "predict", "--json", "-"]
    res = subprocess.run(cmd, input=(folder / "d1.png").read_bytes(), capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) ["input"] == "<stdin>"
    assert json.loads(res.stdout)["label"] == mnist.test.labels[1]
    res = subprocess.run(cmd, input=b"", capture_output=True, timeout=120)
    assert res.returncode == 2 and b"stdin: no data" in res.stderr


def test_show_saves_what_the_network_saw(capsys, folder, tmp_path):
    code, _, err = run(capsys, "predict", "--show", tmp_path / "seen", folder)
    assert code == 0 and "saved 6 pictures" in err
    files = sorted((tmp_path / "seen").iterdir())
    assert [f.name for f in files][:2] == ["d0.seen.png", "d1.seen.png"] and len(files) == 6
    img = Image.open(files[0])
    assert img.width >= 2 * 112 and img.height >= 112     # the input next to the enlarged 28x28


def test_split_reads_a_number(capsys, tmp_path, mnist):
    row = Image.new("L", (4 * 40 + 20, 50), 255)
    for i in range(4):
        row.paste(Image.fromarray(255 - mnist.test.images[i]), (10 + i * 40, 10))
    row.save(tmp_path / "number.png")
    want = "".join(map(str, mnist.test.labels[:4]))
    code, out, _ = run(capsys, "predict", "--split", "--json", tmp_path / "number.png")
    entry = json.loads(out)
    assert code == 0 and entry["label"] == want and len(entry["digits"]) == 4
    code, out, _ = run(capsys, "predict", "--split", tmp_path / "number.png")
    assert f": {want}" in out


def test_kaggle_submission(capsys, tmp_path, mnist):
    test_csv = tmp_path / "test.csv"
    header = ",".join(f"pixel{i}" for i in range(784))
    test_csv.write_text(header + "\n" + "\n".join(",".join(map(str, im.ravel())) for im in mnist.test.images[:25]) + "\n")
    out = tmp_path / "submission.csv"
    code, stdout, _ = run(capsys, "predict", test_csv, "--kaggle-submission", out)
    assert code == 0 and "25 predictions" in stdout
    lines = out.read_text().splitlines()
    assert lines[0] == "ImageId,Label" and len(lines) == 26
    ids, labels = zip(*(map(int, l.split(",")) for l in lines[1:]))
    assert list(ids) == list(range(1, 26))
    assert np.mean(np.array(labels) == mnist.test.labels[:25]) >= 0.9
    code, _, err = run(capsys, "predict", tmp_path / "x.png", "--kaggle-submission", out)
    assert code == 2 and "expects one CSV" in err


def test_ensemble_averages_models(capsys, tmp_path, folder, small):
    a = digitnet.MLP((16,), seed=1)
    digitnet.fit(a, small.train, epochs=1, seed=1, progress=False, val_size=0)
    pa = digitnet.save(a, tmp_path / "a.safetensors")
    code, out, _ = run(capsys, "predict", "--json", "--top-k", "10", "--model", "seed", "--model", pa, folder / "d2.png")
    got = {t["label"]: t["probability"] for t in json.loads(out)["top_k"]}
    x = digitnet.preprocess.to_mnist(folder / "d2.png")[None]
    want = (digitnet.load("seed").predict_proba(x)[0] + a.predict_proba(x)[0]) / 2
    assert np.allclose([got[c] for c in range(10)], want, atol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["predict", "nothing/here/*.png"], "no files match"),
    (["predict", "/nonexistent.png"], "no such file"),
    (["predict", "--top-k", "0", "x.png"], "positive integer"),
])
def test_user_errors(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1


def test_empty_folder_blank_image_and_bad_show(capsys, tmp_path, folder):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "predict", tmp_path / "empty")
    assert code == 2 and "no image files" in err
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    code, _, err = run(capsys, "predict", tmp_path / "blank.png")
    assert code == 2 and "blank.png: the image is blank" in err
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "predict", "--show", tmp_path / "file", folder / "d0.png")
    assert code == 2 and "not a folder" in err


def test_batch_goes_on_past_bad_inputs(capsys, tmp_path):
    """Each bad input has its own line, in the order given; the others are classified; exit 2 at the end."""
    from PIL import Image
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    Image.fromarray(digit).save(tmp_path / "a.png")
    Image.fromarray(digit).save(tmp_path / "c.png")
    (tmp_path / "b.png").write_bytes(b"not an image")
    args = [tmp_path / "a.png", tmp_path / "missing.png", tmp_path / "b.png", tmp_path / "c.png"]
    code, out, err = run(capsys, "predict", "--json", *args)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 2 and [r["input"] for r in rows] == [str(a) for a in args]
    assert [("error" in r) for r in rows] == [False, True, True, False]
    assert "no such file" in rows[1]["error"] and "not a readable image" in rows[2]["error"]
    assert err.count("digitnet: error:") == 3 and "2 of 4 inputs could not be read" in err
    code, out, err = run(capsys, "predict", *args)
    assert code == 2 and len(out.splitlines()) == 2 and "Traceback" not in err


def test_answers_are_printed_as_the_inputs_are_read(capsys, monkeypatch, folder, mnist):
    """A chunk of inputs is read, answered and printed before the next chunk is read."""
    from digitnet import predict
    from digitnet.cli import predict as cli_predict
    monkeypatch.setattr(cli_predict, "ANSWER_CHUNK", 2)
    lines_before, total = [], [0]
    real = predict._read_one

    def reading(*args, **kwargs):
        total[0] += capsys.readouterr().out.count("\n")
        lines_before.append(total[0])               # answers printed before this input was read
        return real(*args, **kwargs)
    monkeypatch.setattr(predict, "_read_one", reading)
    from digitnet.cli import main
    code = main(["predict", "--json", str(folder)])
    rest = capsys.readouterr().out
    assert code == 0 and lines_before == [0, 0, 2, 2, 4, 4]
    assert total[0] + rest.count("\n") == 6
    assert json.loads(rest.splitlines()[-1])["label"] == mnist.test.labels[5]
