"""Plots of a model and its results; every function returns a matplotlib Figure.

Needs matplotlib (``pip install "digitnet[plot]"``). In a notebook the
figures display themselves; elsewhere save them with ``fig.savefig(path)``.
Nothing here calls ``plt.show()`` or changes global matplotlib state.

>>> import digitnet, digitnet.plots as dp
>>> model, test = digitnet.load("seed"), digitnet.load_mnist().test
>>> proba = model.predict_proba(test.images)
>>> dp.confusion_matrix(test.labels, proba.argmax(1)).savefig("cm.png")
"""

from __future__ import annotations

import numpy as np

from .errors import DigitnetError


def require_matplotlib():
    """The matplotlib Figure class, or a DigitnetError saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise DigitnetError('plots need matplotlib: pip install "digitnet[plot]"') from None
    return Figure


def _figure(figsize):
    # A bare Figure (not pyplot): no global state, no GUI backend, safe in threads and servers.
    return require_matplotlib()(figsize=figsize, layout="constrained")


def has_validation(history: list[dict]) -> bool:
    """Whether a training history holds validation measurements (a run with ``val_size=0`` has none)."""
    return any(h.get("val_loss") is not None or h.get("val_acc") is not None for h in history)


def training_curves(history: list[dict]):
    """Loss and accuracy per epoch from ``model.meta["history"]``: training, and validation when it was measured.

    The titles say which curves are drawn: a model trained without a
    validation set gets training curves only, titled so.
    """
    if not history:
        raise DigitnetError(
            "no training history: this model was not trained with digitnet.fit (an imported model has none)"
        )
    fig = _figure((10, 3.8))
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    val = has_validation(history)
    which = "training vs validation" if val else "training set only (no validation set)"
    ax_loss.plot(epochs, [h["loss"] for h in history], "o-", label="train")
    if val:
        ax_loss.plot(epochs, [h.get("val_loss") for h in history], "s-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title=f"Loss: {which}", yscale="log")
    ax_acc.plot(epochs, [100 * h["train_acc"] for h in history], "o-", label="train")
    if val:
        ax_acc.plot(
            epochs,
            [100 * h["val_acc"] if h.get("val_acc") is not None else None for h in history],
            "s-",
            label="validation",
        )
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title=f"Accuracy: {which}")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def confusion_matrix(y_true, y_pred, n_classes: int | None = None, classes=None):
    """Counts of true (rows) vs predicted (columns) labels, diagonal in the colour scale's range too.

    ``classes`` names the labels (default 0 ... n_classes - 1; n_classes defaults to 10 or ``len(classes)``).
    """
    from .metrics import confusion_matrix as cm_counts

    n_classes = n_classes or (len(classes) if classes is not None else 10)
    cm = cm_counts(np.asarray(y_true), np.asarray(y_pred), n_classes)
    fig = _figure((6.2, 5.4))
    ax = fig.subplots()
    # log scale so the few confusions are visible next to the ~1,000 correct ones
    im = ax.imshow(np.log1p(cm), cmap="Blues")
    for t in range(n_classes):
        for p in range(n_classes):
            if cm[t, p]:
                ax.text(
                    p,
                    t,
                    str(cm[t, p]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if np.log1p(cm[t, p]) > 0.6 * np.log1p(cm.max()) else "black",
                )
    ax.set(
        xticks=range(n_classes),
        yticks=range(n_classes),
        xlabel="predicted",
        ylabel="true",
        title=f"Confusion matrix ({int(cm.trace())}/{int(cm.sum())} correct)",
    )
    if classes is not None:
        ax.set_xticklabels(classes, rotation=90 if max(len(str(c)) for c in classes) > 2 else 0)
        ax.set_yticklabels(classes)
    fig.colorbar(im, ax=ax, label="log(1 + count)")
    return fig


def digit_grid(images, titles, ncols: int = 8, title: str | None = None, colors=None):
    """A grid of 28x28 digits with a caption each."""
    n = len(images)
    if n == 0:
        raise DigitnetError("nothing to show: no images given")
    nrows = -(-n // ncols)
    fig = _figure((1.3 * ncols, 1.5 * nrows + (0.4 if title else 0)))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < n:
            ax.imshow(np.asarray(images[i]).reshape(28, 28), cmap="gray", vmin=0, vmax=255)
            ax.set_title(titles[i], fontsize=8, color=colors[i] if colors else "black")
    if title:
        fig.suptitle(title)
    return fig


def _namer(classes):
    return (lambda c: str(c)) if classes is None else (lambda c: str(classes[c]))


def worst_mistakes(images, labels, proba, n: int = 24, classes=None):
    """The misclassified digits the model was most sure about: true label, prediction, confidence."""
    proba, labels, name = np.asarray(proba), np.asarray(labels), _namer(classes)
    pred = proba.argmax(axis=1)
    wrong = np.nonzero(pred != labels)[0]
    if wrong.size == 0:
        raise DigitnetError("no misclassified digits to show: every prediction is right")
    order = wrong[np.argsort(-proba[wrong, pred[wrong]], kind="stable")][:n]
    titles = [f"true {name(labels[i])} → {name(pred[i])}\n{proba[i, pred[i]] * 100:.0f}% sure" for i in order]
    return digit_grid(
        images[order], titles, title=f"Most confident mistakes ({wrong.size} of {len(labels)} misclassified)"
    )


def per_class_metrics(result: dict):
    """Precision, recall and F1 per digit, from :func:`digitnet.evaluate`'s result."""
    fig = _figure((8, 3.6))
    ax = fig.subplots()
    x = np.arange(len(result["precision"]))
    for name, off in (("precision", -0.27), ("recall", 0), ("f1", 0.27)):
        ax.bar(x + off, 100 * np.asarray(result[name]), width=0.27, label=name)
    lo = min(min(result[m]) for m in ("precision", "recall", "f1")) * 100
    ax.set(
        xticks=x,
        xlabel="class",
        ylabel="%",
        ylim=(max(0, lo - 3), 100.5),
        title=f"Per-class metrics (accuracy {result['accuracy'] * 100:.2f} %)",
    )
    if result.get("classes"):
        ax.set_xticklabels(result["classes"], rotation=90 if max(len(c) for c in result["classes"]) > 2 else 0)
    ax.legend(loc="lower right", ncols=3)
    ax.grid(axis="y", alpha=0.3)
    return fig


def first_layer_weights(model, n: int = 32):
    """What the first layer looks for: Dense 784->N columns as 28x28 images, or conv kernels."""
    layer = next((la for la in model.layers if "W" in la.params), None)  # the first layer with weights
    if layer is None:
        raise DigitnetError("the model has no layer with weights to show")
    W = layer.params["W"]
    if W.ndim == 2 and W.shape[0] == 784:  # Dense (784, N): column j is unit j's template
        tiles, what = W.T[:n].reshape(-1, 28, 28), f"first {min(n, W.shape[1])} of {W.shape[1]} hidden units"
    elif W.ndim == 4:  # Conv2D (out, in, k, k)
        tiles, what = W[:n].mean(axis=1), f"{min(n, W.shape[0])} of {W.shape[0]} conv kernels"
    else:
        raise DigitnetError(f"cannot draw first-layer weights of shape {W.shape}")
    ncols = 8
    nrows = -(-len(tiles) // ncols)
    fig = _figure((1.2 * ncols, 1.25 * nrows + 0.4))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < len(tiles):
            lim = float(np.abs(tiles[i]).max()) or 1.0
            ax.imshow(tiles[i], cmap="RdBu_r", vmin=-lim, vmax=lim)  # red: positive, blue: negative
    fig.suptitle(f"First-layer weights: {what} (red +, blue −)")
    return fig


def sample_predictions(images, proba, labels=None, n: int = 24, seed: int = 0, classes=None):
    """Random digits with the predicted label and confidence (red when wrong)."""
    proba, name = np.asarray(proba), _namer(classes)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(images), min(n, len(images)), replace=False))
    pred = proba.argmax(axis=1)
    titles = [f"{name(pred[i])} ({proba[i, pred[i]] * 100:.0f}%)" for i in idx]
    colors = None
    if labels is not None:
        colors = ["black" if pred[i] == labels[i] else "red" for i in idx]
        titles = [t + ("" if c == "black" else f"\ntrue {name(labels[i])}") for t, c, i in zip(titles, colors, idx)]
    return digit_grid(np.asarray(images)[idx], titles, colors=colors, title="Sample predictions")
