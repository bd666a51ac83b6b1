"""Augmentation: shapes, labels and value range kept, seedable, and the transforms do what they say."""

import numpy as np
import pytest

import digitnet
from digitnet import DigitnetError
from digitnet.augment import KINDS, augment


@pytest.mark.parametrize("kind", KINDS)
def test_keeps_shape_and_range_and_is_seedable(kind, small):
    x = small.train.images[:64]
    a = augment(x, np.random.default_rng(1), kind)
    assert a.shape == x.shape and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    assert np.array_equal(a, augment(x, np.random.default_rng(1), kind))
    if kind == "none":
        assert np.allclose(a, x / 255)
    else:
        assert not np.array_equal(a, augment(x, np.random.default_rng(2), kind))
        # a small transform keeps most of the ink (the digit stays recognisable)
        assert abs(a.sum() / (x.sum() / 255) - 1) < 0.15


def test_integer_shift_moves_the_image():
    x = np.zeros((1, 28, 28), np.uint8)
    x[0, 10:14, 12:15] = 255
    rng = np.random.default_rng(0)
    shift = np.random.default_rng(0).uniform(-2, 2, size=(1, 2))   # what augment will draw
    a = augment(x, rng, "shift", max_shift=2.0)
    ys, xs = np.mgrid[:28, :28]
    centre = (a[0] * ys).sum() / a[0].sum(), (a[0] * xs).sum() / a[0].sum()   # bilinear keeps the centroid exact
    assert centre == pytest.approx((11.5 + shift[0, 0], 13 + shift[0, 1]), abs=0.02)


def test_labels_are_kept_when_training_with_augmentation(small):
    from digitnet.nn import build
    model = build("fc32-relu-fc10")
    h = digitnet.fit(model, small.train, epochs=2, augment="elastic", val_size=500, progress=False)
    assert h[-1]["val_acc"] > 0.7          # augmented images still carry their labels


def test_bad_kind_and_shape():
    with pytest.raises(DigitnetError, match="augment must be one of"):
        augment(np.zeros((1, 28, 28), np.uint8), np.random.default_rng(0), "mixup")
    with pytest.raises(DigitnetError, match=r"\(B, 28, 28\)"):
        augment(np.zeros((1, 27, 27), np.uint8), np.random.default_rng(0), "shift")
