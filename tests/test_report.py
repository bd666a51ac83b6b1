"""Plots return matplotlib figures; `digitnet report` writes every PNG and one self-contained HTML page."""

import base64
import re

import numpy as np
import pytest

import digitnet
from digitnet import DigitnetError
from digitnet.cli import main

pytest.importorskip("matplotlib", reason="matplotlib not installed (pip install '.[plot]')")
from matplotlib.figure import Figure  # noqa: E402

from digitnet import plots  # noqa: E402
from digitnet.report import PLOTS, write_report  # noqa: E402


@pytest.fixture(scope="module")
def trained(small):
    model = digitnet.MLP((16,), seed=0)
    digitnet.fit(model, small.train, epochs=2, val_size=500, seed=0, progress=False)
    return model


def test_every_plot_is_a_figure(trained, small):
    proba = trained.predict_proba(small.test.images)
    result = digitnet.evaluate(trained, small.test)
    figs = [plots.training_curves(trained.meta["history"]),
            plots.confusion_matrix(small.test.labels, proba.argmax(1)),
            plots.worst_mistakes(small.test.images, small.test.labels, proba, n=10),
            plots.per_class_metrics(result),
            plots.first_layer_weights(trained),
            plots.sample_predictions(small.test.images, proba, small.test.labels, n=12)]
    assert all(isinstance(f, Figure) for f in figs)
    # curves: train and validation lines for loss and accuracy
    loss_ax, acc_ax = figs[0].axes
    assert len(loss_ax.lines) == 2 and len(acc_ax.lines) == 2
    assert len(figs[4].axes) == 16                          # one tile per hidden unit
    assert "sure" in figs[2].axes[0].get_title()


def test_plots_refuse_what_they_cannot_draw(small):
    with pytest.raises(DigitnetError, match="no training history"):
        plots.training_curves([])
    perfect = np.eye(10)[small.test.labels[:50]]
    with pytest.raises(DigitnetError, match="no misclassified"):
        plots.worst_mistakes(small.test.images[:50], small.test.labels[:50], perfect)


def test_report_writes_every_file_and_embeds_them(trained, small, tmp_path):
    paths = write_report(trained, tmp_path / "rep", data=small.test)
    assert set(paths) == set(PLOTS) | {"html"}
    page = paths["html"].read_text()
    for name in PLOTS:
        png = paths[name].read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000, name
        assert f'href="{name}.png"' in page                       # the file next to the page
        assert base64.b64encode(png).decode() in page              # and embedded: one file works offline
    assert len(re.findall(r'src="data:image/png;base64,', page)) == len(PLOTS)
    assert "accuracy" in page and "<table>" in page


def test_report_of_an_imported_model_without_history_says_so(small, tmp_path):
    model = digitnet.MLP((8,), seed=0)                                    # never trained: no history
    paths = write_report(model, tmp_path, data=small.test)
    assert "training_curves" not in paths and (tmp_path / "confusion_matrix.png").exists()
    assert "no training history" in paths["html"].read_text()


def test_cli_report(tmp_path, capsys, trained, small):
    model_file = digitnet.save(trained, tmp_path / "m.safetensors")
    data = tmp_path / "mnist.npz"
    np.savez(data, x_train=small.train.images, y_train=small.train.labels,
             x_test=small.test.images, y_test=small.test.labels)
    out = tmp_path / "report"
    assert main(["report", str(model_file), "--data", str(data), "-o", str(out)]) == 0
    assert "report.html" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{n}.png" for n in PLOTS] + ["report.html"])
    (tmp_path / "afile").write_text("x")
    assert main(["report", "--model", str(model_file), "-o", str(tmp_path / "afile")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["report", "seed", "--model", str(model_file), "-o", str(out)]) == 2
    assert "two different models" in capsys.readouterr().err


def test_first_layer_weights_of_a_convnet_shows_kernels(rng):
    from types import SimpleNamespace

    from digitnet.nn import Layer

    conv = Layer()
    conv.params = {"W": rng.standard_normal((12, 1, 5, 5)), "b": np.zeros(12)}   # (out, in, k, k)
    fig = plots.first_layer_weights(SimpleNamespace(layers=[Layer(), conv]), n=8)
    tiles = [ax for ax in fig.axes if ax.images]
    assert len(tiles) == 8 and tiles[0].images[0].get_array().shape == (5, 5)
    assert "8 of 12 conv kernels" in fig.get_suptitle()


def test_report_without_matplotlib_is_a_clear_error(trained, small, tmp_path, monkeypatch, capsys):
    """No matplotlib: one-line error and exit 2, not a report with no plots in it."""
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)   # makes the import fail
    with pytest.raises(DigitnetError, match=r"matplotlib: pip install"):
        write_report(trained, tmp_path / "r", data=small.test)
    assert not (tmp_path / "r" / "report.html").exists()
    assert main(["report", "-o", str(tmp_path / "r2")]) == 2
    assert "digitnet[plot]" in capsys.readouterr().err
    assert not (tmp_path / "r2" / "report.html").exists()
