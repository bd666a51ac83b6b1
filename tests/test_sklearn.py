"""digitnet.sklearn.DigitnetClassifier: scikit-learn's own estimator checks, and use in its tools."""

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.datasets import load_digits, make_blobs  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import digitnet  # noqa: E402
from digitnet.sklearn import DigitnetClassifier  # noqa: E402


@parametrize_with_checks([DigitnetClassifier(), DigitnetClassifier(arch="fc16-bn-relu", epochs=20,
                                                                   optimizer="adam", lr=0.01)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=240, centers=4, n_features=5, random_state=0)
    return StandardScaler().fit_transform(X), y


def test_any_label_type_comes_back_as_given(blobs):
    X, y = blobs
    names = np.array(["ant", "bee", "cat", "dog"])[y]
    clf = DigitnetClassifier(epochs=10, random_state=0).fit(X, names)
    assert list(clf.classes_) == ["ant", "bee", "cat", "dog"] and clf.n_features_in_ == 5
    assert set(clf.predict(X)) <= set(clf.classes_) and clf.score(X, names) > 0.9
    proba = clf.predict_proba(X)
    assert proba.shape == (240, 4) and np.allclose(proba.sum(axis=1), 1)
    assert clf.model_.classes == ["ant", "bee", "cat", "dog"]


def test_learned_model_saves_as_a_digitnet_file_with_class_names(tmp_path, blobs):
    X, y = blobs
    clf = DigitnetClassifier(epochs=5, random_state=0).fit(X, y + 10)
    model = digitnet.load(digitnet.save(clf.model_, tmp_path / "blobs.safetensors"))
    assert model.classes == ["10", "11", "12", "13"]
    assert np.array_equal(clf.classes_[model.predict(X)], clf.predict(X))


def test_unfitted_estimator_raises_not_fitted():
    with pytest.raises(NotFittedError):
        DigitnetClassifier().predict(np.zeros((2, 3)))


def test_same_random_state_same_predictions(blobs):
    X, y = blobs
    a = DigitnetClassifier(epochs=5, random_state=3).fit(X, y).predict_proba(X)
    b = DigitnetClassifier(epochs=5, random_state=3).fit(X, y).predict_proba(X)
    c = DigitnetClassifier(epochs=5, random_state=4).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_float32_input_trains_a_float32_network(blobs):
    X, y = blobs
    clf = DigitnetClassifier(epochs=2, random_state=0).fit(X.astype(np.float32), y)
    assert clf.model_.dtype == np.float32 and clf.predict_proba(X).dtype == np.float32


def test_pickle_carries_the_network_as_a_model_file(blobs):
    X, y = blobs
    clf = DigitnetClassifier(epochs=3, random_state=0).fit(X, y)
    state = clf.__getstate__()
    assert isinstance(state["model_"], bytes) and state["model_"][8:9] == b"{"   # safetensors header
    assert "model_" in vars(clf) and not isinstance(clf.model_, bytes)           # the live one is untouched
    again = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_partial_fit_learns_batch_by_batch(blobs):
    X, y = blobs
    clf = DigitnetClassifier(random_state=0, lr=0.05)
    with pytest.raises(ValueError, match="classes must be given"):
        clf.partial_fit(X[:10], y[:10])
    for epoch in range(8):
        for i in range(0, 240, 60):
            clf.partial_fit(X[i:i + 60], y[i:i + 60], classes=np.arange(4))
    assert len(clf.history_) == 32 and clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="not in classes"):
        clf.partial_fit(X[:3], [0, 1, 7])
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:3, :2], y[:3])


def test_convolutional_arch_on_square_images():
    X, y = load_digits(return_X_y=True)
    clf = DigitnetClassifier(arch="conv8k3p1-relu-pool2-flatten", epochs=3, random_state=0).fit(X[:300] / 16, y[:300])
    assert clf.model_.input_shape == (1, 8, 8) and clf.model_.output_shape == (10,)
    with pytest.raises(ValueError, match="square images"):
        DigitnetClassifier(arch="cnn").fit(np.zeros((4, 10)), [0, 1, 0, 1])


@pytest.mark.parametrize("arch, outputs", [("fc32-relu", 3), ("fc32-relu-fc3", 3), ("seed", 3), ("5-8-3", 3),
                                           ('[{"type": "Dense", "out_features": 8}, {"type": "ReLU"}]', 3)])
def test_arch_gets_one_output_per_class(arch, outputs):
    X = np.random.default_rng(0).random((30, 5))
    clf = DigitnetClassifier(arch=arch, epochs=1, random_state=0).fit(X, np.arange(30) % 3)
    assert clf.model_.output_shape == (outputs,)


@pytest.mark.parametrize("params, match", [({"lr": -1}, "lr must be"), ({"optimizer": "rmsprop"}, "optimizer"),
                                           ({"arch": "fc32-bogus"}, "unknown layer"),
                                           ({"augment": "shift"}, "784 features")])
def test_bad_parameters_fail_in_fit_with_the_reason(blobs, params, match):
    X, y = blobs
    clf = DigitnetClassifier(**params)                 # scikit-learn: __init__ never validates
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)


def test_grid_search_over_digitnet_parameters(blobs):
    X, y = blobs
    grid = GridSearchCV(DigitnetClassifier(epochs=5, random_state=0), {"hidden": [(8,), (32,)], "lr": [0.05, 0.1]},
                        cv=3).fit(X, y)
    assert set(grid.best_params_) == {"hidden", "lr"} and grid.best_score_ > 0.9


def test_default_pipeline_scores_above_95_percent_on_sklearn_digits():
    """The target: 5-fold cross-validation on scikit-learn's 8x8 digits at the default parameters."""
    X, y = load_digits(return_X_y=True)
    scores = cross_val_score(make_pipeline(MinMaxScaler(), DigitnetClassifier(random_state=0)), X, y, cv=5)
    assert scores.mean() >= 0.95
