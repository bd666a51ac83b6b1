"""``digitnet report``: a model's plots as PNG files plus one self-contained HTML page.

The HTML page embeds every image (base64 data URIs), so the single file
works offline, by e-mail or as a CI artifact; the PNGs sit next to it for
slides and documents.
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path

from . import __version__
from .errors import DigitnetError
from .fsutil import atomic_path, atomic_write, make_dirs
from .plots import has_validation

PLOTS = [
    "training_curves",
    "confusion_matrix",
    "per_class_metrics",
    "worst_mistakes",
    "first_layer_weights",
    "sample_predictions",
]

CAPTIONS = {
    "training_curves": "Loss and accuracy per epoch, training vs validation.",
    "confusion_matrix": "Rows: true digit; columns: predicted digit.",
    "per_class_metrics": "Precision (of the digits predicted as d, how many are d), recall (of the d's, how "
    "many were found) and F1 per digit.",
    "worst_mistakes": "The misclassified test digits the model was most confident about.",
    "first_layer_weights": "Each first-layer unit's weights as an image: the stroke patterns it responds to.",
    "sample_predictions": "Random test digits with the predicted label; wrong ones in red.",
}


def make_figures(model, data) -> tuple[dict, dict, list[str]]:
    """All report figures for ``model`` on the labelled ``data``: (figures, evaluate() result, notes)."""
    from . import plots
    from .metrics import evaluate, labels_as_outputs, predict_proba

    plots.require_matplotlib()  # without it every plot would fail: an error, not an empty report
    result = evaluate(model, data)
    proba = predict_proba(model, data.images)
    names = result["classes"]
    if model.reject_class is not None:  # plots over the real classes; the refusals are in result
        keep = [i for i in range(proba.shape[1]) if i != model.reject_class]
        proba, names = proba[:, keep], [names[i] for i in keep]
    labels = labels_as_outputs(model, data)
    digits = names == [str(c) for c in range(10)]
    classes = None if digits else names
    figs, notes = {}, []
    makers = {
        "training_curves": lambda: plots.training_curves(model.meta.get("history", [])),
        "confusion_matrix": lambda: plots.confusion_matrix(labels, proba.argmax(1), proba.shape[1], classes),
        "per_class_metrics": lambda: plots.per_class_metrics(result),
        "worst_mistakes": lambda: plots.worst_mistakes(data.images, labels, proba, classes=classes),
        "first_layer_weights": lambda: plots.first_layer_weights(model),
        "sample_predictions": lambda: plots.sample_predictions(data.images, proba, labels, classes=classes),
    }
    for name in PLOTS:
        try:
            figs[name] = makers[name]()
        except DigitnetError as exc:  # e.g. an imported model has no history: say so, draw the rest
            notes.append(f"{name.replace('_', ' ')}: {exc}")
    return figs, result, notes


def write_report(model, out_dir, data=None, title: str = "digitnet report") -> dict[str, Path]:
    """Write ``<name>.png`` for each plot and ``report.html``; returns their paths by name.

    Parameters
    ----------
    model : Sequential
    out_dir : str or Path
        Created if needed.
    data : Dataset, str or None
        A labelled test set, a dataset path for :func:`digitnet.load_mnist`,
        or None for the bundled MNIST test set.
    """
    from .data import Dataset, load_mnist

    if not isinstance(data, Dataset):
        mnist = load_mnist(data)
        if mnist.test is None or mnist.test.labels is None:
            raise DigitnetError(f"{data}: no labelled test set to report on")
        data = mnist.test
    out = make_dirs(out_dir, "report folder")
    figs, result, notes = make_figures(model, data)
    paths: dict[str, Path] = {}
    for name, fig in figs.items():
        paths[name] = out / f"{name}.png"
        with atomic_path(paths[name], "report") as tmp:  # a full disk leaves no half-written PNG
            fig.savefig(tmp, dpi=100, format="png")
    paths["html"] = atomic_write(out / "report.html", _html(model, data, result, paths, notes, title), "report")
    return paths


def _html(model, data, result, paths, notes, title) -> str:
    meta = model.meta
    arch = " → ".join(
        layer["type"] + (f"({layer['in_features']}→{layer['out_features']})" if layer["type"] == "Dense" else "")
        for layer in model.architecture()
    )
    facts = [
        ("architecture", arch),
        ("parameters", f"{model.n_params:,}"),
        ("test set", f"{data.name or 'test'} ({result['n']:,} images)"),
        ("accuracy", f"{result['accuracy'] * 100:.2f} %"),
        ("loss", f"{result['loss']:.4f}"),
    ]
    for key, label in (
        ("command", "trained with"),
        ("seed", "seed"),
        ("train_time_s", "training time (s)"),
        ("dataset_sha256", "training data sha256"),
    ):
        if key in meta:
            facts.append((label, str(meta[key])))
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    names = result.get("classes") or [str(c) for c in range(len(result["precision"]))]
    per_class = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{result['precision'][c] * 100:.2f}</td>"
        f"<td>{result['recall'][c] * 100:.2f}</td><td>{result['f1'][c] * 100:.2f}</td>"
        f"<td>{sum(result['confusion_matrix'][c])}</td></tr>"
        for c, name in enumerate(names)
    )
    captions = dict(CAPTIONS)
    if not has_validation(meta.get("history", [])):
        captions["training_curves"] = (
            "Loss and accuracy per epoch on the training set; the model was trained "
            "without a validation set, so there is no validation curve."
        )
    sections = []
    for name in PLOTS:
        if name not in paths:
            continue
        data_uri = "data:image/png;base64," + base64.b64encode(paths[name].read_bytes()).decode()
        heading = name.replace("_", " ").capitalize()
        sections.append(
            f'<section id="{name}"><h2>{heading}</h2><p>{html.escape(captions[name])}</p>'
            f'<img src="{data_uri}" alt="{heading}" data-file="{paths[name].name}">'
            f'<p class="file">also saved as <a href="{paths[name].name}">{paths[name].name}</a></p>'
            "</section>"
        )
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1050px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} th, td {{ padding: .25em .8em; text-align: left;
border-bottom: 1px solid #ddd; }} img {{ max-width: 100%; }} .file {{ color: #777; font-size: .85em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<table>{rows}</table>
{f"<ul class='notes'>{note_html}</ul>" if notes else ""}
<h2>Per-class precision, recall, F1 (%)</h2>
<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{per_class}</table>
{"".join(sections)}
<p class="file">digitnet {__version__}, {time.strftime("%Y-%m-%d %H:%M")}</p>
</body></html>
"""
