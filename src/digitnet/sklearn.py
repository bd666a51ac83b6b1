"""A scikit-learn classifier around digitnet's networks: ``DigitnetClassifier``.

scikit-learn supplies only the interface here (parameter handling, input
validation, ``score``, cloning); the network, its training and its
predictions are digitnet's NumPy code. Needs ``pip install "digitnet[sklearn]"``.

>>> from sklearn.datasets import load_digits
>>> from sklearn.model_selection import cross_val_score
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import MinMaxScaler
>>> from digitnet.sklearn import DigitnetClassifier
>>> X, y = load_digits(return_X_y=True)
>>> cross_val_score(make_pipeline(MinMaxScaler(), DigitnetClassifier()), X, y, cv=5).mean()  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError:  # pragma: no cover - depends on the install
    raise ImportError('digitnet.sklearn needs scikit-learn >= 1.6: pip install "digitnet[sklearn]"') from None

from . import io
from .data import Dataset
from .nn import MLP, Sequential, build
from .nn.spec import PRESETS, parse_spec
from .train import TrainConfig, fit

_IMAGE_LAYERS = {"Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "BatchNorm2D", "Flatten"}


class DigitnetClassifier(ClassifierMixin, BaseEstimator):
    """A digitnet network as a scikit-learn classifier.

    Any number of features and classes, any label type (``classes_`` holds
    the sorted labels; output ``i`` of the network is ``classes_[i]``).
    Inputs are used as given: scale them first (e.g. ``MinMaxScaler``), as
    for any neural network. float32 input trains a float32 network,
    anything else float64.

    Parameters
    ----------
    hidden : tuple of int, default=(256,)
        Hidden layer sizes of an MLP with ReLU (used when ``arch`` is None).
    arch : str or list, optional
        Any architecture :func:`digitnet.build` takes: a preset (``"cnn"``),
        a spec (``"fc256-bn-relu-drop0.2"``) or a JSON list of layers. The
        output layer (one unit per class) is appended unless the spec ends
        with a Dense layer; a preset's output layer is resized to the
        classes. Specs with convolutions or pooling need square images:
        ``n_features = s * s`` becomes input (1, s, s).
    epochs, batch_size, lr, optimizer, momentum, nesterov, betas, weight_decay, schedule, \
warmup_epochs, step_epochs, step_gamma, clip_norm, label_smoothing, augment, patience, threads, \
val_size, checkpoint, progress
        The :class:`digitnet.TrainConfig` options, same names and meaning;
        defaults as there except ``epochs=50`` and ``batch_size=32`` (a
        small data set needs more steps than its size gives at MNIST's
        settings), ``label_smoothing=0.1``, ``val_size=0`` (no validation
        split unless asked) and ``progress=False``; these defaults score
        above 0.95 in ``benchmarks/sklearn_digits.py``. ``augment`` needs
        784 features (28x28 images).
    random_state : int, RandomState or None, default=None
        Seeds the weights, the shuffling and dropout; an int is used as
        digitnet's ``seed`` directly, so the same int gives the same weights.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str, when ``X`` had string column names
    model_ : digitnet.Sequential
        The trained network; ``model_.classes`` holds ``str(c)`` of each
        class, so ``digitnet.save(clf.model_, path)`` writes a model file
        that names its outputs.
    history_ : list of dict
        Per-epoch loss and accuracy, as :func:`digitnet.fit` returns.
    """

    def __init__(
        self,
        hidden=(256,),
        arch=None,
        *,
        epochs=50,
        batch_size=32,
        lr=0.1,
        optimizer="sgd",
        momentum=0.9,
        nesterov=False,
        betas=(0.9, 0.999),
        weight_decay=5e-4,
        schedule="cosine",
        warmup_epochs=0.0,
        step_epochs=10,
        step_gamma=0.1,
        clip_norm=0.0,
        label_smoothing=0.1,
        augment="none",
        patience=0,
        threads="auto",
        val_size=0,
        checkpoint=None,
        progress=False,
        random_state=None,
    ):
        self.hidden = hidden
        self.arch = arch
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.momentum = momentum
        self.nesterov = nesterov
        self.betas = betas
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.step_epochs = step_epochs
        self.step_gamma = step_gamma
        self.clip_norm = clip_norm
        self.label_smoothing = label_smoothing
        self.augment = augment
        self.patience = patience
        self.threads = threads
        self.val_size = val_size
        self.checkpoint = checkpoint
        self.progress = progress
        self.random_state = random_state

    # -- training ------------------------------------------------------------------------
    def fit(self, X, y):
        """Build a fresh network for ``X``'s features and ``y``'s classes and train it.

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32))
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        config = self._config()  # bad options fail before any work
        self.model_ = self._new_model(X.shape[1], len(self.classes_), X.dtype, config.seed)
        self.history_ = fit(self.model_, self._dataset(X, codes), config=config)
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``(X, y)``; the first call needs ``classes`` (all labels there will be).

        Each call trains at the constant learning rate ``lr`` (a schedule
        needs the total number of epochs, which ``partial_fit`` cannot know)
        without a validation split; the optimizer's momentum starts afresh
        each call.

        Returns
        -------
        self
        """
        first = not hasattr(self, "model_")
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32), reset=first)
        check_classification_targets(y)
        if first:
            if classes is None:
                raise ValueError("classes must be given to the first call of partial_fit")
            self.classes_ = np.unique(classes)
            seed = self._config().seed
            self.model_ = self._new_model(X.shape[1], len(self.classes_), X.dtype, seed)
            self.history_ = []
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"classes={np.unique(classes)!r} is not the same as on the first call of partial_fit: {self.classes_!r}"
            )
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(f"y has labels {unknown[:5]!r} that are not in classes {self.classes_!r}")
        codes = np.searchsorted(self.classes_, y)
        config = self._config(
            epochs=len(self.history_) + 1,
            schedule="constant",
            warmup_epochs=0.0,
            val_size=0,
            patience=0,
            seed=self._config().seed + len(self.history_),
        )
        self.history_ = fit(self.model_, self._dataset(X, codes), config=config)
        return self

    def _config(self, **override) -> TrainConfig:
        """The TrainConfig for these parameters (digitnet's own validation and messages)."""
        # negatives: generated non-digits for a digit model's "not a digit" output, not an estimator option
        names = [f.name for f in fields(TrainConfig) if f.name not in ("seed", "negatives")]
        options = {name: getattr(self, name) for name in names}
        rs = self.random_state
        options["seed"] = (
            rs
            if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool)
            else int(check_random_state(rs).randint(np.iinfo(np.int32).max))
        )
        return TrainConfig.from_kwargs(**{**options, **override})

    def _new_model(self, n_features: int, n_classes: int, dtype, seed: int) -> Sequential:
        if self.augment != "none" and n_features != 784:
            raise ValueError(
                f"augment={self.augment!r} works on 28x28 images (784 features); X has {n_features} features"
            )
        if self.arch is None:
            hidden = (self.hidden,) if isinstance(self.hidden, (int, np.integer)) else tuple(self.hidden)
            model = MLP(hidden, n_inputs=n_features, n_classes=n_classes, seed=seed, dtype=dtype)
        else:
            arch, image = _output_layer(self.arch, n_classes)
            if image:
                side = math.isqrt(n_features)
                if side * side != n_features:
                    raise ValueError(
                        f"arch {self.arch!r} has convolutions or pooling: it needs square images "
                        f"(n_features = side * side), X has {n_features} features"
                    )
                shape: tuple[int, ...] = (1, side, side)
            else:
                shape = (n_features,)
            model = build(arch, seed=seed, dtype=dtype, n_classes=n_classes, input_shape=shape)
        model.classes = [str(c) for c in self.classes_] if _distinct_names(self.classes_) else None
        return model

    @staticmethod
    def _dataset(X: np.ndarray, codes: np.ndarray) -> Dataset:
        return Dataset(X, codes.astype(np.intp), "X")

    # -- prediction -----------------------------------------------------------------------
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        return self.model_.predict_proba(X)

    def predict_log_proba(self, X) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample (a label from ``classes_``)."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    # -- pickling: the network travels as a digitnet model file (safetensors bytes), not as objects
    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ may hand back the live __dict__
        if "model_" in state:
            state["model_"] = io.dumps(state["model_"])
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), bytes):
            model = io.from_parts(*io.parse_bytes(state["model_"], "DigitnetClassifier"), "DigitnetClassifier")
            state = {**state, "model_": model}
        super().__setstate__(state)


def _output_layer(arch, n_classes: int) -> tuple[str | list, bool]:
    """``arch`` with an output layer of ``n_classes`` units, and whether it takes images."""
    if isinstance(arch, list):
        image = any(isinstance(e, dict) and e.get("type") in _IMAGE_LAYERS for e in arch)
        if arch and isinstance(arch[-1], dict) and arch[-1].get("type") != "Dense":
            arch = [*arch, {"type": "Dense", "out_features": n_classes}]
        return arch, image
    if not isinstance(arch, str):
        raise ValueError(f"arch must be a preset name, a spec string or a list of layers, got {arch!r}")
    name = arch.strip()
    if name.startswith("["):
        import json

        try:
            return _output_layer(json.loads(name), n_classes)
        except ValueError:
            return name, False  # build() says what is wrong with it
    spec = PRESETS.get(name.lower(), name)
    if spec.replace("-", "").isdigit():  # 64-100-3: the sizes say it all
        return name, False
    tokens = parse_spec(spec)
    image = any(kind in ("conv", "maxpool", "avgpool", "gap") for kind, _ in tokens)
    if name.lower() not in PRESETS and tokens[-1][0] != "dense":
        name = f"{name}-fc{n_classes}"
    return name, image


def _distinct_names(classes) -> bool:
    names = [str(c) for c in classes]
    return len(set(names)) == len(names)


__all__ = ["DigitnetClassifier"]
