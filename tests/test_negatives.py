"""Generated non-digits and the "not a digit" decision: seedable, MNIST-framed, calibrated as documented."""

import numpy as np
import pytest

from digitnet import DigitnetError
from digitnet.negatives import FAMILIES, LETTERS, LOOKS_LIKE_A_DIGIT, generate
from digitnet.reject import MAX_REFUSED, calibrate, decide, refused


def test_generate_is_seedable_and_framed_like_preprocessed_input(small):
    x = generate(40, seed=1, digits=small.train.images)
    assert x.shape == (40, 28, 28) and x.dtype == np.uint8
    assert np.array_equal(x, generate(40, seed=1, digits=small.train.images))
    assert not np.array_equal(x, generate(40, seed=2, digits=small.train.images))
    assert (x.max(axis=(1, 2)) == 255).all()                # the brightest ink is full scale, as to_mnist makes it
    rows, cols = x.any(axis=2), x.any(axis=1)
    assert (np.maximum(rows.sum(1), cols.sum(1)) <= 22).all()   # the longer side of the ink's box ~20 px


def test_every_family_draws_something_and_several_needs_digits(small):
    for family in FAMILIES:
        x = generate(3, seed=0, digits=small.train.images, families=[family])
        assert (x.reshape(3, -1) > 128).sum(axis=1).min() > 10, family
    x = generate(4, seed=0)                                 # no digits given: the other families only
    assert x.shape == (4, 28, 28)
    with pytest.raises(DigitnetError, match="families"):
        generate(2, families=["dogs"])


def test_letters_that_people_write_like_digits_are_not_negatives():
    for c in "OolISsZzBgq":
        assert c in LOOKS_LIKE_A_DIGIT and c not in LETTERS
    assert "X" in LETTERS and "k" in LETTERS
    for c in "ahijJyTDGQ":  # digit-like only in some hands: the model learns to refuse them
        assert c in LETTERS


def test_scribbles_take_two_turns_in_each_round(monkeypatch):
    from digitnet import negatives

    drawn = []
    for family, draw in list(negatives.DRAW.items()):
        monkeypatch.setitem(negatives.DRAW, family, lambda rng, f=family, d=draw, **kw: drawn.append(f) or d(rng, **kw))
    generate(12, seed=0)                                     # no digits: no "several"
    assert drawn == ["letter", "scribble", "scribble", "shape", "doodle", "noise"] * 2


def test_decide_refuses_when_the_reject_class_wins_or_no_digit_is_likely():
    p = np.full((3, 11), 0.01)
    p[0, 3] = 0.9                                           # a confident 3
    p[1, 10] = 0.9                                          # "not a digit" wins
    p[2, 7], p[2, 1], p[2, 10] = 0.3, 0.28, 0.25            # a weak 7, under the threshold
    a = decide(p, [str(d) for d in range(10)] + ["not a digit"], reject_class=10, threshold=0.4)
    assert [d.label for d in a] == [3, None, None]
    assert [d.guess for d in a] == [3, 0, 7]                 # all digits equally unlikely: the first
    assert a[1].reason == "not a digit (90 %)" and "likely" in a[2].reason and "7" in a[2].reason
    assert refused(p, 10, 0.4).tolist() == [False, True, True]
    # a digits-only model never refuses
    assert [d.label for d in decide(p[:, :10])] == [3, 0, 7]


def test_calibrate_refuses_at_most_the_chosen_share_of_digits():
    rng = np.random.default_rng(0)
    digits = rng.dirichlet(np.r_[np.full(10, 0.3), 0.05], 2000)
    digits[:, 4] += 3
    digits /= digits.sum(axis=1, keepdims=True)
    negatives = rng.dirichlet(np.r_[np.full(10, 0.3), 3.0], 500)
    cal = calibrate(digits, negatives, reject_class=10)
    assert cal["digits_refused"] <= MAX_REFUSED
    assert cal["threshold"] > 0 and cal["negatives_refused"] > 0.5
    assert refused(digits, 10, cal["threshold"]).mean() == pytest.approx(cal["digits_refused"])
