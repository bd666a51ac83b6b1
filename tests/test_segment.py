"""Segmentation by recognition: candidate cuts, piece scores, the dynamic programme, read_number."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

import digitnet
from digitnet import segment
from digitnet.errors import DigitnetError
from digitnet.preprocess import components


@pytest.fixture(scope="module")
def cnn():
    return digitnet.load("cnn")


def row(mnist, indices, spacing):
    """MNIST test digits side by side, black on white; ``spacing`` < 0 makes them share columns."""
    canvas, x, joins = np.zeros((40, 16 + 40 * len(indices))), 6, []
    for i in indices:
        d = mnist.test.images[i].astype(float)
        cols = np.nonzero(d.any(axis=0))[0]
        d = d[:, cols[0]:cols[-1] + 1]
        canvas[6:34, x:x + d.shape[1]] = np.maximum(canvas[6:34, x:x + d.shape[1]], d)
        x += d.shape[1] + spacing
        joins.append(x)
    return Image.fromarray(255 - canvas[:, :x + 6].astype(np.uint8)), joins[:-1]


def five_in_two_strokes():
    img = Image.new("L", (160, 200), 255)
    d = ImageDraw.Draw(img)
    d.line([(50, 40), (50, 95)], fill=0, width=12)                  # the body: down, then the belly
    d.arc((35, 75, 125, 165), start=-110, end=140, fill=0, width=12)
    d.line([(62, 35), (125, 30)], fill=0, width=12)                 # the bar, drawn apart
    return img


def wide_zero(aspect):
    img = Image.new("L", (int(120 * aspect) + 40, 160), 255)
    ImageDraw.Draw(img).ellipse((20, 20, 20 + int(120 * aspect), 140), outline=0, width=12)
    return img


def test_best_path_picks_the_best_cover():
    good = {(0, 2): -0.1, (2, 3): -0.2, (3, 4): -0.1}
    path, total = segment.best_path(4, lambda i, j: good.get((i, j), -5.0))
    assert path == [0, 2, 3, 4] and total == pytest.approx(-0.4)
    # a boundary that costs more than it gains is not placed
    path, _ = segment.best_path(4, lambda i, j: good.get((i, j), -5.0) if (i, j) != (0, 4) else -1.0,
                                cut_cost=lambda j: 1.0)
    assert path == [0, 4]
    path, _ = segment.best_path(4, lambda i, j: 0.0, max_len=2)     # pieces of at most 2 primitives
    assert max(b - a for a, b in zip(path[:-1], path[1:])) <= 2
    with pytest.raises(DigitnetError):
        segment.best_path(3, lambda i, j: None)


def test_touching_digits_get_a_cut_near_the_join_and_read_right(mnist, cnn):
    img, joins = row(mnist, [0, 1], spacing=-1)                     # "72", sharing a column
    ink, _ = segment.line_ink(img)
    assert components(ink > 0)[1] == 1                              # really one piece of ink
    prims, _, line_h = segment.primitives(ink)
    starts = [int(np.median(p.left)) for p in prims if p.cut_left]         # where each cut runs
    assert any(abs(s - joins[0]) <= 0.15 * line_h for s in starts), (starts, joins)
    reading = segment.read_number(img, cnn)
    assert reading.number == "72" and reading.clearly_several


@pytest.mark.parametrize("indices", [[3, 2, 1], [11, 12, 13, 14], [20, 21]])
def test_touching_rows_read_right(mnist, cnn, indices):
    img, _ = row(mnist, indices, spacing=-1)
    want = "".join(str(mnist.test.labels[i]) for i in indices)
    assert segment.read_number(img, cnn).number == want


@pytest.mark.parametrize("name", ["cnn", "reader"])
def test_a_five_in_two_strokes_stays_one_digit(name):
    img = five_in_two_strokes()
    ink, _ = segment.line_ink(img)
    assert components(ink > 0)[1] >= 2                              # drawn apart: separate pieces of ink
    prims, _, _ = segment.primitives(ink)
    assert any(p.cut_narrow for p in prims)                         # its body could be cut: the reading keeps it
    reading = segment.read_number(img, digitnet.load(name))
    assert reading.number == "5" and len(reading.boxes) == 1 and not reading.clearly_several


@pytest.mark.parametrize("indices", [[29, 57], [2, 74]])
def test_two_touching_ones_are_cut_though_narrower_than_a_digit(mnist, indices):
    """"11" touching is one piece of ink narrower than most single digits: cut only because it reads badly whole."""
    img, _ = row(mnist, indices, spacing=-1)
    ink, _ = segment.line_ink(img)
    assert components(ink > 0)[1] == 1
    prims, _, line_h = segment.primitives(ink)
    assert all(p.cut_narrow for p in prims[1:]) and len(prims) > 1
    assert segment.read_number(img, digitnet.load("reader")).number == "11"


@pytest.mark.parametrize("aspect", [1.2, 1.5])
def test_a_wide_zero_is_not_cut(cnn, aspect):
    img = wide_zero(aspect)
    ink, _ = segment.line_ink(img)
    prims, _, _ = segment.primitives(ink)
    assert len(prims) > 1                                           # the search had cuts to choose from
    assert any(p.cut_hole for p in prims)
    assert segment.read_number(img, cnn).number == "0"


def test_boxes_are_in_image_pixels_left_to_right(mnist, cnn):
    img, _ = row(mnist, [0, 1, 2], spacing=8)
    big = img.resize((img.width * 4, img.height * 4))
    reading = segment.read_number(big, cnn)
    assert reading.number == "721"
    xs = [b[0] for b in reading.boxes]
    assert xs == sorted(xs) and all(0 <= b[0] < b[2] <= big.width and 0 <= b[1] < b[3] <= big.height
                                    for b in reading.boxes)
    assert all(d.shape == (28, 28) and d.dtype == np.uint8 for d in reading.digits)


class FakeModel:
    """Outputs fixed probabilities; 11 classes, the last meaning "not a digit"."""

    reject_class = 10

    def __init__(self, proba):
        self.proba = np.asarray(proba, np.float64)

    def predict_proba(self, images, batch_size=2048):
        return np.repeat(self.proba[None], len(images), axis=0)


def test_scorer_keeps_the_not_a_digit_class_out_of_digits():
    p = np.full(11, 0.01)
    p[10], p[3] = 0.8, 0.11
    scorer = segment.Scorer(FakeModel(p / p.sum()))
    proba = scorer.proba(np.zeros((2, 28, 28), np.uint8))
    assert scorer.labels(proba) == [None, None]
    assert scorer.log_best(proba)[0] == pytest.approx(np.log(0.11 / p.sum()))
    q = p.copy()
    q[10], q[3] = 0.01, 0.9
    assert segment.Scorer(FakeModel(q / q.sum())).labels(proba[:1] * 0 + q / q.sum()) == [3]


def test_the_shipped_readers_not_a_digit_output_is_never_read_as_a_digit(mnist):
    reader = digitnet.load("reader")
    assert segment.Scorer(reader).reject == reader.reject_class == 10
    # ink that is not a digit beside a digit: its label is None ("?"), never the output index 10
    img, _ = row(mnist, [0], spacing=8)
    star = Image.new("L", (60, img.height), 255)
    ImageDraw.Draw(star).polygon([(30, 4), (38, 50), (4, 20), (56, 20), (22, 50)], outline=0, width=5)
    both = Image.new("L", (img.width + 60, img.height), 255)
    both.paste(img, (0, 0))
    both.paste(star, (img.width, 0))
    reading = segment.read_number(both, reader)
    assert reading.labels[-1] is None and reading.number.endswith("?")
    assert all(lab is None or 0 <= lab <= 9 for lab in reading.labels)


def test_not_a_digit_scores_badly_and_reads_as_question_mark(mnist):
    p = np.full(11, 0.001)
    p[10] = 0.99
    reading = segment.read_number(row(mnist, [0, 1], spacing=8)[0], FakeModel(p / p.sum()))
    assert set(reading.number) == {"?"} and reading.score < -4


def test_too_many_pieces_of_ink_is_a_clear_error(cnn):
    rng = np.random.default_rng(0)
    noise = np.full((200, 1000), 255, np.uint8)
    for y, x in zip(rng.integers(5, 190, 400), rng.integers(5, 990, 400)):
        noise[y:y + 4, x:x + 4] = 0
    with pytest.raises(DigitnetError, match="too many separate pieces"):
        segment.read_number(Image.fromarray(noise), cnn)


def test_scattered_ink_is_not_read_as_a_number(mnist, cnn, monkeypatch):
    """128 x 128 pixels of noise: tens of pieces in one line height; reading each as a digit took a second."""
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128), dtype=np.uint8))
    ink, _ = segment.line_ink(noise)
    read = []
    real_proba = segment.Scorer.proba
    monkeypatch.setattr(segment.Scorer, "proba", lambda self, images: read.append(len(images)) or real_proba(self, images))
    with pytest.raises(DigitnetError, match="too scattered to be a written number"):
        segment.read_number(noise, cnn)
    assert read == []                                            # refused before any piece was read
    with pytest.raises(DigitnetError, match="too scattered"):
        segment.primitives(ink)
    img, _ = row(mnist, list(range(10)), spacing=-2)                                 # ten touching digits
    prims, _, line_h = segment.primitives(segment.line_ink(img)[0])
    width = max(p.x1 for p in prims) - min(p.x0 for p in prims)
    assert len(prims) <= segment.MAX_DENSITY * width / line_h


@pytest.mark.parametrize("can_refuse,sureness,several", [
    (True, [0.9, 0.8], True),
    (True, [0.9, 0.3], False),      # a piece barely a digit: a model that refuses non-digits is not sure
    (True, [0.9, 0.0], False),      # a piece it calls not a digit
    (False, [0.9, 0.3], True),      # a model without a not-a-digit output has only the margin to go by
])
def test_clearly_several_needs_sure_pieces_from_a_model_that_can_refuse(can_refuse, sureness, several):
    blank = np.zeros((28, 28), np.uint8)
    reading = segment.Reading(digits=[blank, blank], proba=[], boxes=[], score=0.0,
                              single_score=-segment.CLEAR_MARGIN, labels=[1, 2], sureness=sureness,
                              can_refuse=can_refuse)
    assert reading.clearly_several is several
    reading.single_score = -0.5 * segment.CLEAR_MARGIN       # the margin is still needed
    assert not reading.clearly_several


def test_reader_pieces_carry_their_sureness(mnist):
    img, _ = row(mnist, [0, 1, 2], spacing=8)
    reading = segment.read_number(img, digitnet.load("reader"))
    want = "".join(str(mnist.test.labels[i]) for i in (0, 1, 2))
    assert reading.number == want and reading.can_refuse and reading.clearly_several
    assert all(0.5 < s <= 1 for s in reading.sureness) and len(reading.sureness) == 3


@pytest.mark.parametrize("labels,cuts,several", [
    ([1, 1], 0, True),          # two separate strokes: "11"
    ([1, 1], 1, False),         # two strokes of one shape cut apart: an "n" or "u" more likely
    ([7, 1], 1, True),          # touching digits that are not all 1s
])
def test_ones_cut_apart_are_not_clearly_several(labels, cuts, several):
    blank = np.zeros((28, 28), np.uint8)
    reading = segment.Reading(digits=[blank, blank], proba=[], boxes=[], score=0.0,
                              single_score=-segment.CLEAR_MARGIN_CUT, labels=labels, sureness=[0.9, 0.9],
                              can_refuse=True, cuts=cuts)
    assert reading.clearly_several is several


@pytest.mark.parametrize("can_refuse,cuts,margin,several", [
    (True, 0, segment.CLEAR_MARGIN, True),              # digits apart: the plain margin
    (True, 1, segment.CLEAR_MARGIN, False),             # cut apart: a letter or scribble cut in two reads so well
    (True, 1, segment.CLEAR_MARGIN_CUT, True),          # cut apart and far better than the whole
    (False, 1, segment.CLEAR_MARGIN, True),             # a model that cannot refuse: one digit is the other answer
])
def test_a_reading_cut_through_ink_needs_a_wider_margin_from_a_model_that_can_refuse(can_refuse, cuts, margin,
                                                                                      several):
    blank = np.zeros((28, 28), np.uint8)
    reading = segment.Reading(digits=[blank, blank], proba=[], boxes=[], score=0.0, single_score=-margin,
                              labels=[7, 2], sureness=[0.9, 0.9], can_refuse=can_refuse, cuts=cuts)
    assert reading.clearly_several is several


def _letter(letter: str) -> Image.Image:
    matplotlib = pytest.importorskip("matplotlib")     # for a font every machine with it has: DejaVu Sans
    from pathlib import Path

    from PIL import ImageFont

    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), 110)
    img = Image.new("L", (160, 160), 255)
    ImageDraw.Draw(img).text((20, 5), letter, font=font, fill=0)
    return img


@pytest.mark.parametrize("letter", ["M", "N", "W", "u"])
def test_letters_of_upright_strokes_are_not_read_as_numbers_by_the_reader(letter):
    reading = segment.read_number(_letter(letter), digitnet.load("reader"))
    assert not reading.clearly_several, reading.number


def test_a_sign_cut_in_two_is_not_read_as_a_number_by_the_reader():
    # cut through its ink, an "R" reads as "12" or "13", each piece a fair digit, but the reading does not
    # beat the refused whole by CLEAR_MARGIN_CUT
    reading = segment.read_number(_letter("R"), digitnet.load("reader"))
    assert reading.cuts and len(reading.digits) == 2, reading.number
    assert not reading.clearly_several, reading.number


def test_a_sign_of_digit_like_pieces_is_not_read_as_a_number_by_the_reader():
    # a "%" falls into pieces that read as "0" and "6" (or, cut through, "9" and "6"); a ring with the slash
    # through it is no likely digit (CLEAR_PIECE), so the pieces are not a number
    reading = segment.read_number(_letter("%"), digitnet.load("reader"))
    assert len(reading.digits) == 2 and not reading.clearly_several, reading.number


def test_a_boundary_away_from_a_cut_still_pays_for_the_cut():
    # primitives in centre order: the left part of a ring, a dot inside it, the ring's right part (cut through
    # two strokes): a boundary before the dot parts the ring as surely as one before its right part
    P = segment.Primitive
    ring_left, dot, ring_right = P(0, 0, 30, part=0), P(1, 20, 26, part=0), P(0, 30, 60, cut_left=2, part=1)
    parted = segment.boundary_cuts([ring_left, dot, ring_right])
    assert parted[1] == [ring_right] and parted[2] == [ring_right]
    assert segment.boundary_cuts([ring_left, ring_right, dot])[2] == []   # the whole ring before the dot


def test_neighbours_sharing_most_of_their_columns_are_not_clearly_several():
    blank = np.zeros((28, 28), np.uint8)

    def reading(boxes):
        return segment.Reading(digits=[blank, blank], proba=[], boxes=boxes, score=0.0,
                               single_score=-segment.CLEAR_MARGIN, labels=[6, 3], sureness=[0.9, 0.9],
                               can_refuse=True)
    assert reading([(0, 0, 40, 50), (36, 0, 80, 50)]).clearly_several        # digits that overlap a little
    assert not reading([(0, 0, 60, 50), (30, 0, 80, 50)]).clearly_several    # halves of one drawing


@pytest.mark.parametrize("width", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("size", [100, 120])
def test_a_smiley_is_not_read_as_a_number_by_the_reader(width, size):
    img = Image.new("L", (size + 20, size + 20), 230)
    draw = ImageDraw.Draw(img)
    k = size / 120
    draw.ellipse([15 * k, 15 * k, 105 * k, 105 * k], outline=40, width=width)
    draw.ellipse([40 * k, 40 * k, 48 * k, 48 * k], fill=40)
    draw.ellipse([72 * k, 40 * k, 80 * k, 48 * k], fill=40)
    draw.arc([35 * k, 45 * k, 85 * k, 90 * k], 20, 160, fill=40, width=width)
    reading = segment.read_number(img, digitnet.load("reader"))
    assert not reading.clearly_several, reading.number


def test_a_cut_costs_more_with_a_model_that_can_refuse(mnist, cnn, monkeypatch):
    # CUT_COST prices a cut through strokes for a model that cannot say "not a digit", CUT_COST_REFUSING for
    # one that can: made prohibitive, each keeps its own kind of model from cutting "72" apart, and only that
    img, _ = row(mnist, [0, 1], spacing=-1)
    reader = digitnet.load("reader")
    assert segment.read_number(img, cnn).number == segment.read_number(img, reader).number == "72"
    monkeypatch.setattr(segment, "CUT_COST", 50.0)
    assert segment.read_number(img, cnn).number != "72"
    assert segment.read_number(img, reader).number == "72"
    monkeypatch.setattr(segment, "CUT_COST", 0.8)
    monkeypatch.setattr(segment, "CUT_COST_REFUSING", 50.0)
    assert segment.read_number(img, cnn).number == "72"
    assert segment.read_number(img, reader).number != "72"


def test_dense_cuts_fill_only_the_given_columns_away_from_the_ends_and_other_cuts():
    line_h = 50.0                                   # steps of 4 px, margins of 4 px
    cuts = segment.dense_cuts([30], x0=100, x1=200, ranges=[(120, 150)], line_h=line_h)
    added = sorted(set(cuts) - {30})
    assert added and all(20 <= c <= 50 for c in added)                  # inside the range (component columns)
    assert all(b - a >= 4 for a, b in zip(cuts[:-1], cuts[1:]))         # spaced, the first cut kept
    assert segment.dense_cuts([], x0=100, x1=110, ranges=[(0, 400)], line_h=line_h) == [4]  # ends kept clear


@pytest.mark.parametrize(("indices", "spacing"), [([135, 578], -2), ([199, 80, 111], -1)])
def test_a_piece_refused_whole_is_cut_again_and_read(mnist, indices, spacing):
    """Touching digits whose join no profile finds read as one refused piece ("1?"), until that piece
    is cut again finely."""
    reader = digitnet.load("reader")
    img, _ = row(mnist, indices, spacing)
    want = "".join(str(mnist.test.labels[i]) for i in indices)
    ink, scale = segment.line_ink(img)
    first, refused = segment._read(ink, scale, segment.Scorer(reader), segment.MAX_MERGE)
    assert refused and "?" in first.number                              # the candidate cuts alone miss it
    reading = segment.read_number(img, reader)
    assert reading.number == want and reading.recut
    assert not reading.clearly_several                                  # read as asked (--split), not unasked
