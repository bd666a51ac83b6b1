"""Augmentation: shapes, labels and value range kept, seedable, and the transforms do what they say."""

import numpy as np
import pytest

import digitnet
from digitnet import DigitnetError
from digitnet.augment import GEOMETRIC, KINDS, REAL_WORLD, augment


@pytest.mark.parametrize("kind", KINDS)
def test_keeps_shape_and_range_and_is_seedable(kind, small):
    x, y = small.train.images[:64], small.train.labels[:64]
    a = augment(x, np.random.default_rng(1), kind, labels=y)
    assert a.shape == x.shape and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    assert np.array_equal(a, augment(x, np.random.default_rng(1), kind, labels=y))
    if kind == "none":
        assert np.allclose(a, x / 255)
    else:
        assert not np.array_equal(a, augment(x, np.random.default_rng(2), kind, labels=y))
    if kind in GEOMETRIC and kind != "none":
        # a small transform keeps most of the ink (the digit stays recognisable)
        assert abs(a.sum() / (x.sum() / 255) - 1) < 0.15


def ink_box_and_centre(a):
    """Longer side of each image's ink box (pixels > 20 % of its peak) and its centre of mass."""
    ink = a > 0.2 * a.max(axis=(1, 2), keepdims=True)
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    side = np.maximum(rows.sum(axis=1), cols.sum(axis=1))    # no gaps in MNIST-framed digits' extent
    g = np.arange(28)
    m = a.sum(axis=(1, 2))
    return side, np.stack([a.sum(axis=2) @ g / m, a.sum(axis=1) @ g / m], 1)


@pytest.mark.parametrize("kind", [k for k in REAL_WORLD if k != "jitter"])
def test_real_world_kinds_end_in_mnist_framing(kind, small):
    # what preprocess.to_mnist gives the model for a real image: box ~20 px, centre of mass at the centre, peak 1
    a = augment(small.train.images[:64], np.random.default_rng(3), kind, labels=small.train.labels[:64])
    side, centre = ink_box_and_centre(a)
    assert np.median(side) == pytest.approx(20, abs=2)
    assert np.abs(centre - 14).max() < 1.5
    assert np.allclose(a.max(axis=(1, 2)), 1)


def test_each_real_world_kind_changes_the_digit_in_its_own_way(small):
    x = small.train.images[:64]
    base = augment(x, np.random.default_rng(3), "jitter")
    outs = {k: augment(x, np.random.default_rng(3), k) for k in REAL_WORLD}
    ink = {k: (v > 0.5).sum() for k, v in outs.items()}
    assert ink["stroke"] != ink["slant"]
    side, centre = ink_box_and_centre(base)
    assert np.abs(centre - 14).max() > 1                   # jitter leaves digits off-centre
    # lowres and blur soften edges: fewer pixels that are neither ink nor background... than crisp MNIST
    crisp = augment(x, np.random.default_rng(3), "none")
    mid = {k: ((v > 0.1) & (v < 0.9)).mean() for k, v in {"none": crisp, **outs}.items()}
    assert mid["blur"] > mid["none"] and mid["lowres"] > mid["none"]


def test_real_mixes_clean_and_distorted_digits_and_kinds_combine(small):
    x = small.train.images[:256]
    a = augment(x, np.random.default_rng(5), "real")
    assert a.shape == x.shape and a.dtype == np.float32
    changed = np.abs(a - x / 255).mean(axis=(1, 2))
    assert (changed < 0.05).any() and (changed > 0.1).any()
    both = augment(x, np.random.default_rng(5), "slant,lowres")
    assert np.array_equal(both, augment(x, np.random.default_rng(5), "slant,lowres"))
    assert not np.array_equal(both, augment(x, np.random.default_rng(5), "slant"))
    with pytest.raises(DigitnetError, match="augment must be one of"):
        augment(x, np.random.default_rng(0), "slant,affine")   # geometric kinds stand alone


def test_labels_are_kept_with_real_world_augmentation(small):
    from digitnet.nn import build
    model = build("fc64-relu-fc10")
    h = digitnet.fit(model, small.train, epochs=3, augment="real", val_size=500, progress=False, optimizer="adam", lr=2e-3)
    assert h[-1]["val_acc"] > 0.7          # chance is 0.1: augmented digits keep their labels


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


def test_warp_bends_strokes_smoothly_and_keeps_the_ink(small):
    x = small.train.images[:64]
    warped = augment(x, np.random.default_rng(6), "warp")
    plain = augment(x, np.random.default_rng(6), "style")       # no labels: only the same framing
    changed = np.abs(warped - plain).mean(axis=(1, 2))
    assert (changed > 0.005).all() and np.median(changed) > 0.03  # every digit moved
    # a smooth displacement of a few pixels (then the framing again): about as much ink, no speckle
    ratio = warped.sum(axis=(1, 2)) / plain.sum(axis=(1, 2))
    assert abs(np.median(ratio) - 1) < 0.15 and ((ratio > 0.5) & (ratio < 2)).all()
    speckle = (warped > 0.3) & ~np.pad(warped > 0.3, ((0, 0), (1, 1), (1, 1)))[:, :-2, 1:-1] \
        & ~np.pad(warped > 0.3, ((0, 0), (1, 1), (1, 1)))[:, 2:, 1:-1]
    assert speckle.sum() < 0.02 * (warped > 0.3).sum()


def test_style_writes_continental_ones_and_crossed_sevens_and_leaves_other_digits(small):
    from digitnet.augment import _style
    x, y = small.train.images[:400], small.train.labels[:400]
    styled = augment(x, np.random.default_rng(4), "style", labels=y)
    plain = augment(x, np.random.default_rng(4), "style")           # without labels: nothing to add
    assert np.array_equal(plain, augment(x, np.random.default_rng(4), "style", labels=np.zeros_like(y)))
    ones, sevens, others = y == 1, y == 7, (y != 1) & (y != 7)
    assert np.array_equal(styled[others], plain[others])
    # the strokes themselves, before the digit is framed again
    before = x.astype(np.float32) / 255
    after = _style(before, np.random.default_rng(4), np.ones(len(x), bool), y)
    added = after - before
    assert (added >= 0).all() and not added[others].any()
    drawn = added.sum(axis=(1, 2)) > 3
    assert 0.3 < drawn[ones].mean() < 0.7                            # half the 1s get a flag
    assert 0.15 < drawn[sevens].mean() < 0.55                        # a third of the 7s a crossbar
    for k in np.nonzero(ones & drawn)[0][:10]:                       # a flag starts at the top, left of the stem
        rows, cols = np.nonzero(added[k] > 0.3)
        stem_rows, stem_cols = np.nonzero(before[k] > 0.3)
        top = stem_rows.min()
        assert rows.min() <= top + 1 and cols.min() < stem_cols[stem_rows <= top + 1].mean() - 1
    for k in np.nonzero(sevens & drawn)[0][:10]:                     # a crossbar: level, across the middle
        rows, _ = np.nonzero(added[k] > 0.3)
        top, bottom = np.nonzero(before[k].any(axis=1))[0][[0, -1]]
        assert rows.max() - rows.min() <= 4 and top + 0.3 * (bottom - top) < rows.mean() < top + 0.7 * (bottom - top)


def test_style_puts_a_foot_on_few_of_the_flagged_ones(small):
    # a foot on many would teach that a narrow "2" (a flag, a stem, a base) is a "1"
    from digitnet.augment import _style
    one = small.train.images[small.train.labels == 1][0].astype(np.float32) / 255
    x = np.repeat(one[None], 600, axis=0)
    added = _style(x, np.random.default_rng(0), np.ones(len(x), bool), np.ones(len(x), int)) - x
    flagged = added.sum(axis=(1, 2)) > 3
    bottom = np.nonzero(one.any(axis=1))[0][-1]
    footed = added[:, bottom - 1 :].sum(axis=(1, 2)) > 1
    assert 0.35 < flagged.mean() < 0.65 and not footed[~flagged].any()
    assert 0.05 < footed[flagged].mean() < 0.3


def test_style_gets_labels_only_when_they_are_digits(small):
    from digitnet.data import Dataset
    from digitnet.train import _labels_are_digits
    assert _labels_are_digits(small.train)
    digits = Dataset(small.train.images, small.train.labels, "mine", tuple("0123456789"))
    clothes = Dataset(small.train.images, small.train.labels, "fashion", tuple(f"class {i}" for i in range(10)))
    assert _labels_are_digits(digits) and not _labels_are_digits(clothes)


def test_aspect_makes_narrow_and_wide_digits_and_fills_boxes(small):
    from digitnet.augment import _box_ratio
    x, y = small.train.images, small.train.labels
    before = _box_ratio(x / 255)
    after = _box_ratio(augment(x, np.random.default_rng(4), "aspect"))
    upright_ones = (y == 1) & (before <= 0.35)
    # widening alone leaves an upright 1 a thin bar; filling a box (as forms and size-normalising scanners do)
    # makes about half of them at least half as wide as tall
    assert upright_ones.sum() > 30 and (after[upright_ones] >= 0.5).mean() > 0.3
    assert (after < 0.8 * before).any() and (after > 1.2 * before).any()
