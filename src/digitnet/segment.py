"""Read a written number: segmentation by recognition.

Cutting a line of ink into digits before reading them fails on digits that
touch, overlap or are drawn in several strokes: no rule on the ink alone
knows where one digit ends. So, as the classic cheque readers do, cut too
often and let the classifier decide:

1. **candidate cuts** (:func:`primitives`): the ink's connected components,
   and within a component wide enough to hold two digits, cuts near the
   minima of its column projection and of its upper and lower contours
   (where two touching digits meet), each following the path from top to
   bottom that crosses the least ink (:func:`cut_paths`), so that digits
   that overlap as well as touch come apart whole. A component narrower than most digits
   (two touching "1"s) is cut too, but a piece may hold part of it only when
   it does not read as a sure digit whole. The result is a left-to-right
   list of *primitives*, each no more than one digit;
2. **scoring** (:class:`Scorer`, :func:`piece_score`): a *piece* is a run of
   consecutive primitives. Each piece goes through the same 28x28
   normalisation as a single digit (:func:`digitnet.preprocess.fit_mnist`)
   and the model; its score is the log-probability of its best digit plus
   priors: too wide for one digit, too short for the line, parts far apart,
   a cut through strokes, a boundary at a gap much narrower than the line's
   others. A model with a not-a-digit class (``model.reject_class``) lowers
   the score of pieces that are not digits through that class's share of the
   probability, and the search avoids the pieces it refuses;
3. **the search** (:func:`best_path`): the reading is the sequence of pieces
   covering all primitives with the highest total score, found by dynamic
   programming over the cut graph (nodes: the gaps between primitives; edges:
   pieces).

When the best reading still holds a piece the model refuses, the cuts missed
a join (a "1" leaning on its neighbour makes no minimum in any profile): the
search runs once more with that piece's columns cut every ``DENSE_SPACING``
line heights, and the better of the two readings is kept.
:func:`read_number` does all of it for one image. Segmenting costs several
times reading the image whole, so ``digitnet predict`` and the web API first
read it whole and segment only what :func:`needs_number_reading` calls a
possible number.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import DigitnetError
from .preprocess import as_ink, fit_mnist, ink_parts, keep_parts, upright
from .reject import refused as refused_mask

LINE_WORK_SIZE = 1024  # a line of digits is analysed at most this wide ...
LINE_HEIGHT = 64  # ... and its ink at most this tall (ample to find cuts; keeps pieces cheap)
LINE_PROBE_SIDE = 128  # the ink's height is measured first on a copy whose shorter side is this long
MAX_MERGE = 6  # a piece holds at most this many primitives
MAX_PRIMITIVES = 80  # more pieces of ink than this is not a number (a page of text, noise)
# Pieces per line height of the line's width: rows of 2-10 MNIST digits, spaced to overlapping, have at most
# 4.9 (benchmarks/written_numbers.py's rows), a drawn smiley 8; 128 x 128 pixels of noise have 45, and
# reading each of their pieces as a digit would cost about a second. Past this it is not read as a number.
MAX_DENSITY = 12.0
MIN_CUT_WIDTH = 0.75  # a component narrower than this times the line height is most likely one digit ...
NARROW_CUT_WIDTH = 0.45  # ... but one at least this wide may be two narrow ones touching ("11", "71") ...
NARROW_COST = 2.0  # ... which costs this per cut, and is cut only where the whole component ...
NARROW_SURE = 0.7  # ... is not a digit this likely (a "5" drawn in two strokes is, and its body is not cut)
CUT_MARGIN = 0.08  # cuts stay this far (times the line height) from a component's ends ...
CUT_SPACING = 0.2  # ... and from each other
DENSE_SPACING = 0.08  # a piece read as "not a digit" is cut again every this many line heights ...
DENSE_MERGE = 2  # ... and a digit may then hold this many more primitives
SEAM_REACH = 0.3  # a cut follows the path of least ink from top to bottom within this many line heights ...
SEAM_DRIFT = 0.05  # ... each pixel it strays from its column costing this much (an ink pixel: 1)
# Priors, in nats (units of log-probability); chosen on constructed rows (tests/test_segment.py)
# and on MNIST rows made as benchmarks/written_numbers.py makes them.
CUT_COST = 0.8  # per stroke a cut goes through; under DIGIT_COST's bonus, as a model that cannot say "not a
# digit" often reads two touching digits as one confident digit, and the cut must win against that
CUT_COST_REFUSING = 1.0  # per stroke, for a model that refuses two digits in one box: as much as the bonus, so
# cutting one stroke to read one more digit pays only when the two pieces read better than the whole (a stub cut
# off a digit's side reads as a fair "1")
HOLE_COST = 2.5  # a cut through a closed loop (the middle of a "0", "6", "8") is rarely between digits
HOLE_SIDE = 0.06  # ... when it leaves this much of the loop (times the line height) on each side
DIGIT_COST = -1.0  # per digit read; a bonus: two touching digits read as one confident digit
# is a commoner mistake than a part of a digit read as a whole one
WIDE = 0.9  # a piece wider than this times the line height ...
WIDE_COST = 6.0  # ... costs this per line height of extra width
SHORT = 0.7  # a piece shorter than this fraction of the line ...
SHORT_COST = 12.0  # ... costs this per line height it lacks
OVERLAP = 0.15  # separate components of one piece overlapping less than this times the line height...
APART_COST = 20.0  # ... cost this per line height of the shortfall
GAP_COST = 3.0  # a boundary at a gap much narrower than the line's widest gaps costs up to this ...
GAP_SHARE = 0.5  # ... "much narrower": under this share of the widest gap ...
GAP_ENOUGH = 0.25  # ... or of this many line heights, whichever is less (a gap this wide parts digits anyway)
REFUSED_COST = 4.0  # a piece the model calls "not a digit": the search looks for a reading in digits first
CLEAR_MARGIN = 2.0  # "clearly several digits": the best reading beats one digit by this much ...
CLEAR_MARGIN_CUT = 4.0  # ... or by this much, for a model that can say "not a digit", when it cuts through ink
CLEAR_PIECE = 0.5  # ... and, for a model that can say "not a digit", each digit is at least this likely ...
SIDE_BY_SIDE = 0.35  # ... and neighbours share at most this share of the wider one's columns


@dataclass
class Primitive:
    """Part of one connected component of ink, between two cuts (or the component's own edges).

    ``left`` and ``right`` are the cuts: per row of the line, the first
    column of this part and the first column past it (None: no cut on that
    side). ``x0 <= x < x1`` are the columns its pixels are in.
    """

    component: int
    x0: int
    x1: int
    left: np.ndarray | None = field(default=None, repr=False)
    right: np.ndarray | None = field(default=None, repr=False)
    cut_left: int = 0  # strokes crossed by the cut on the left (0: no cut, the component's own edge)
    cut_hole: bool = False  # the cut on the left goes through a hole of the component (a closed loop)
    cut_narrow: bool = False  # the cut on the left is in a component narrower than MIN_CUT_WIDTH line heights
    part: int = 0  # which part of its component, counted from the left


@dataclass
class Reading:
    """A number read from an image: one entry per digit, left to right."""

    digits: list[np.ndarray]  # (28, 28) uint8 each, as the network saw them
    proba: list[np.ndarray]  # the model's probabilities for each
    boxes: list[tuple[int, int, int, int]]  # (x0, y0, x1, y1) in the image's pixels, x1/y1 exclusive
    score: float = 0.0  # total score of this reading
    single_score: float = float("-inf")  # score of reading all the ink as one digit
    labels: list = field(default_factory=list)  # each digit's label (None: not a digit)
    sureness: list = field(default_factory=list)  # each digit's best digit probability (0: not a digit)
    can_refuse: bool = False  # the model has a not-a-digit output
    cuts: int = 0  # boundaries between the digits that cut through ink (digits that touch)
    recut: bool = False  # found by cutting again a piece first read as "not a digit"

    @property
    def number(self) -> str:
        return "".join("?" if lab is None else str(lab) for lab in self.labels)

    @property
    def clearly_several(self) -> bool:
        """True when the image holds several digits beyond doubt (not merely splittable).

        The best reading must beat reading all the ink as one digit by
        ``CLEAR_MARGIN``. With a model that can say "not a digit", every piece
        must also be likely a digit (``CLEAR_PIECE``), a reading that cuts
        through ink must beat the whole by ``CLEAR_MARGIN_CUT``, and a reading
        of only 1s must not come from cutting strokes apart: such a model
        refuses a star, a letter or a scribble whole, and cutting one always
        finds pieces that beat the refusal, but they seldom read much better
        than it, or as sure digits.
        The digits of a number stand side by side: neighbours that share more
        than ``SIDE_BY_SIDE`` of the wider one's columns are parts of one
        drawing (a face's outline halved around its eyes), not two digits.
        Nor is a reading found only by cutting a refused piece again (``recut``):
        cut finely enough, a letter or a scribble too reads as digits.
        """
        margin = self.score - self.single_score
        if len(self.digits) < 2 or margin < CLEAR_MARGIN:
            return False
        for (a0, _, a1, _), (b0, _, b1, _) in zip(self.boxes[:-1], self.boxes[1:]):
            if min(a1, b1) - max(a0, b0) > SIDE_BY_SIDE * max(a1 - a0, b1 - b0):
                return False
        if not self.can_refuse:
            return True
        if self.recut or (self.cuts and margin < CLEAR_MARGIN_CUT):
            return False
        # strokes of one shape cut apart read as 1s: an "n", "u", "H" or "m" as 11, 111, 1111
        ones_cut_apart = self.cuts > 0 and all(label == 1 for label in self.labels)
        return min(self.sureness) >= CLEAR_PIECE and not ones_cut_apart


# --------------------------------------------------------------------------- 1. candidate cuts
def line_ink(img) -> tuple[np.ndarray, float]:
    """The image's ink (bright on 0, specks dropped) at a working size, and original pixels per working pixel."""
    img = upright(img)
    w, h = img.size
    size = min(max(w, h), LINE_WORK_SIZE)
    # The ink's height is first measured on a smaller copy (the analysis costs per pixel), then the
    # ink is made once at the size that brings it to LINE_HEIGHT, or at ``size`` if it is short already.
    probe = min(size, int(np.ceil(LINE_PROBE_SIDE * max(w, h) / max(1, min(w, h)))))
    ink = as_ink(img, probe)
    rows = np.nonzero(ink.any(axis=1))[0]
    tall = (rows[-1] - rows[0] + 1) * size / probe if rows.size else 0.0  # ink height at ``size``
    if tall > LINE_HEIGHT:  # tall ink: shrink, keeping the aspect
        size = max(8, int(size * LINE_HEIGHT / tall))
    if size != probe:
        ink = as_ink(img, size)
    labels, keep = ink_parts(ink)
    ink = keep_parts(ink, labels, keep)
    return ink, max(w, h) / max(ink.shape)


def column_profile(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column of a boolean image: ink count, stroke crossings, top and bottom ink row (-1 where none)."""
    h, w = mask.shape
    count = mask.sum(axis=0)
    padded = np.zeros((h + 1, w), bool)
    padded[1:] = mask
    crossings = (padded[1:] & ~padded[:-1]).sum(axis=0)  # runs start where ink follows background
    any_ink = count > 0
    top = np.where(any_ink, mask.argmax(axis=0), -1)
    bottom = np.where(any_ink, h - 1 - mask[::-1].argmax(axis=0), -1)
    return count, crossings, top, bottom


def cut_columns(mask: np.ndarray, line_h: float) -> list[int]:
    """Candidate columns to cut one component at: where two touching digits would meet.

    Strict local minima of the column ink count (lightly smoothed), valleys
    of the upper contour (its lowest points) and peaks of the lower contour
    (its highest points), each at least ``CUT_MARGIN`` line heights from the
    component's ends and ``CUT_SPACING`` from each other (least ink first).
    A component narrower than ``NARROW_CUT_WIDTH`` line heights is not cut.
    A column is cut so that its pixels go to the right-hand piece.
    """
    w = mask.shape[1]
    if w < NARROW_CUT_WIDTH * line_h:
        return []
    count, crossings, top, bottom = column_profile(mask)
    margin = max(2, int(round(CUT_MARGIN * line_h)))
    window = max(2, int(round(CUT_SPACING * line_h / 2)))
    smooth = np.convolve(count.astype(float), np.ones(3) / 3, mode="same")
    candidates = set()
    inside = np.arange(w)
    inside = (inside >= margin) & (inside <= w - margin)
    for signal in (smooth, -top.astype(float), bottom.astype(float)):
        low, high = around_min_max(signal, window)
        # a minimum, and not inside a flat stretch (the middle of a flat stretch is its own candidate)
        candidates.update(np.nonzero(inside & (signal <= low) & (signal < high))[0].tolist())
    spacing = max(2, int(round(CUT_SPACING * line_h)))
    chosen: list[int] = []
    for c in sorted(candidates, key=lambda c: (crossings[c], count[c], c)):
        if all(abs(c - d) >= spacing for d in chosen):
            chosen.append(c)
    return sorted(chosen)


def around_min_max(signal: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Per position c: min and max of ``signal`` over the ``window`` values on each side of c (c itself left out)."""
    n = len(signal)
    out = []
    for pad, reduce in ((np.inf, np.min), (-np.inf, np.max)):  # padding that never wins the reduction
        windows = sliding_window_view(np.pad(signal, window, constant_values=pad), window)
        left, right = windows[:n], windows[window + 1 : window + 1 + n]  # orig c-window..c-1 and c+1..c+window
        out.append(reduce(np.stack([reduce(left, axis=1), reduce(right, axis=1)]), axis=0))
    return out[0], out[1]


def cut_paths(mask: np.ndarray, cuts: list[int], line_h: float) -> list[np.ndarray]:
    """For each cut column of one component's mask, the cut as a path: per row, its first column on the right.

    The path runs from top to bottom, one column at most sideways per row,
    and crosses the least ink within ``SEAM_REACH`` line heights of the
    column (and nearer it than to the neighbouring cuts), straying from the
    column only where that saves ink: a seam, found by dynamic programming
    over the rows. Two digits that touch at one point and overlap in
    columns are parted along the background between them, where a
    vertical cut would carve a piece of one into the other.
    """
    h, w = mask.shape
    reach = max(1, int(round(SEAM_REACH * line_h)))
    bounds = [0] + cuts + [w]
    paths = []
    for k, c in enumerate(cuts):
        lo = max(c - reach, (bounds[k] + c) // 2 + 1, 1)  # columns lo..hi-1 may start the right-hand side
        hi = min(c + reach + 1, (c + bounds[k + 2] + 1) // 2, w)
        cols = np.arange(lo, hi)
        cost = mask[:, lo:hi].astype(np.float64) + SEAM_DRIFT * np.abs(cols - c)
        padded = np.full(hi - lo + 2, np.inf)  # the best path's cost to each column, and no way in at the ends
        padded[1:-1] = cost[0]
        above = sliding_window_view(padded, 3)  # per column: the costs up-left, up, up-right
        step = np.zeros((h, hi - lo), np.int8)  # -1, 0, +1: where each row's best path came from
        for y in range(1, h):
            np.subtract(above.argmin(axis=1), 1, out=step[y], casting="unsafe")  # ties: leftmost
            padded[1:-1] = above.min(axis=1) + cost[y]
        total = padded[1:-1]
        x = int(np.argmin(total))
        path = np.empty(h, np.intp)
        for y in range(h - 1, -1, -1):
            path[y] = x
            x += int(step[y, x])
        path += lo
        straight = np.full(h, c)
        # a bend must part fewer strokes than the straight cut: a seam weaving through one digit's
        # strokes (into a loop, along a stroke) carves it up where the straight cut is cleaner
        paths.append(path if path_crossings(mask, path) < path_crossings(mask, straight) else straight)
    return paths


def path_crossings(mask: np.ndarray, path: np.ndarray) -> int:
    """Strokes a cut crosses: runs of ink along its path."""
    on = mask[np.arange(mask.shape[0]), path]
    return int(on[0]) + int((on[1:] & ~on[:-1]).sum())


def holes(mask: np.ndarray) -> list[np.ndarray]:
    """One component's holes (background it encloses, as closed loops do): a boolean mask each."""
    from .preprocess import components

    background, n = components(~np.pad(mask, 1))
    background = background[1:-1, 1:-1]
    edge = np.r_[background[0], background[-1], background[:, 0], background[:, -1]]
    outside = set(np.unique(edge).tolist())
    return [background == k for k in range(1, n + 1) if k not in outside]


def cuts_hole(hole_masks: list[np.ndarray], path: np.ndarray, line_h: float) -> bool:
    """Whether a cut parts a hole, leaving at least ``HOLE_SIDE`` line heights of it on each side.

    The thin gap a "1" leaning on a "0" encloses is no loop.
    """
    side = max(1, int(round(HOLE_SIDE * line_h)))
    for hole in hole_masks:
        rows, cols = np.nonzero(hole)
        offset = cols - path[rows]
        if (offset < -side).any() and (offset >= side).any():
            return True
    return False


def primitives(ink: np.ndarray, dense: tuple[tuple[int, int], ...] = ()) -> tuple[list[Primitive], np.ndarray, float]:
    """Over-segment a line of ink: (primitives left to right, component labels, line height in pixels).

    ``dense``: column ranges [x0, x1) of the line where a component is also cut at every
    ``DENSE_SPACING`` line heights, not only where :func:`cut_columns` finds a join.
    """
    labels, keep = ink_parts(ink)
    rows = np.nonzero(keep_parts(ink, labels, keep).any(axis=1))[0]
    line_h = float(rows[-1] - rows[0] + 1)
    prims: list[tuple[float, Primitive]] = []
    for k in keep:
        mask = labels == k
        cols = np.nonzero(mask.any(axis=0))[0]
        x0, x1 = int(cols[0]), int(cols[-1]) + 1
        sub = mask[:, x0:x1]
        cuts = cut_columns(sub, line_h)
        if dense:
            cuts = dense_cuts(cuts, x0, x1, dense, line_h)
        paths = cut_paths(sub, cuts, line_h)
        loops = holes(sub) if cuts else []
        narrow = x1 - x0 < MIN_CUT_WIDTH * line_h
        xx = np.arange(x1 - x0)
        edges: list[np.ndarray | None] = [None, *paths, None]
        n_parts = 0
        for a, b in zip(edges[:-1], edges[1:]):
            part = sub.copy()
            if a is not None:
                part &= xx >= a[:, None]
            if b is not None:
                part &= xx < b[:, None]
            weights = part.sum(axis=0)
            inked = np.nonzero(weights)[0]
            if inked.size == 0:
                continue
            centre = x0 + float(weights @ xx) / float(weights.sum())
            prim = Primitive(
                k,
                x0 + int(inked[0]),
                x0 + int(inked[-1]) + 1,
                left=None if a is None else a + x0,
                right=None if b is None else b + x0,
                part=n_parts,
            )
            n_parts += 1
            if a is not None:
                prim.cut_left = path_crossings(sub, a)
                prim.cut_hole = cuts_hole(loops, a, line_h)
                prim.cut_narrow = narrow
            prims.append((centre, prim))
    if len(prims) > MAX_PRIMITIVES:
        raise DigitnetError(
            f"too many separate pieces of ink ({len(prims)}) to read as one number; crop the image to the number"
        )
    heights = max(1.0, (max(p.x1 for _, p in prims) - min(p.x0 for _, p in prims)) / line_h)
    if not dense and len(prims) > MAX_DENSITY * heights:  # the dense rerun adds cuts of its own
        raise DigitnetError(
            f"{len(prims)} pieces of ink in a line {heights:.1f} times as wide as it is high: "
            "too scattered to be a written number"
        )
    prims.sort(key=lambda cp: cp[0])
    return [p for _, p in prims], labels, line_h


def dense_cuts(cuts: list[int], x0: int, x1: int, ranges, line_h: float) -> list[int]:
    """``cuts`` of the component at columns x0..x1-1 of the line, plus one every ``DENSE_SPACING`` line
    heights inside ``ranges`` (line columns), away from the component's ends and the cuts already there."""
    step = max(2, int(round(DENSE_SPACING * line_h)))
    margin = max(2, int(round(CUT_MARGIN * line_h)))
    out = set(cuts)
    for a, b in ranges:
        for c in range(max(a, x0 + margin), min(b, x1 - margin) + 1, step):
            if all(abs(c - x0 - d) >= step for d in out):
                out.add(c - x0)
    return sorted(out)


def column_group(prims: list[Primitive], component: int) -> list[Primitive]:
    """The primitives of ``component`` and of every component linked to it by shared columns."""
    span = [min(p.x0 for p in prims if p.component == component), max(p.x1 for p in prims if p.component == component)]
    group = {component}
    grown = True
    while grown:
        grown = False
        for p in prims:
            if p.component not in group and p.x0 < span[1] and p.x1 > span[0]:
                group.add(p.component)
                grown = True
        span = [min(p.x0 for p in prims if p.component in group), max(p.x1 for p in prims if p.component in group)]
    return [p for p in prims if p.component in group]


def piece_mask(prims: list[Primitive], labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Boolean image of the pixels of some primitives, over the columns they span, and the first of those columns.

    Only those columns: a line holds many pieces, each a few digits wide at most.
    """
    x_lo, x_hi = min(p.x0 for p in prims), max(p.x1 for p in prims)
    mask = np.zeros((labels.shape[0], x_hi - x_lo), bool)
    for p in prims:
        part = labels[:, p.x0 : p.x1] == p.component
        xx = np.arange(p.x0, p.x1)
        if p.left is not None:
            part &= xx >= p.left[:, None]
        if p.right is not None:
            part &= xx < p.right[:, None]
        mask[:, p.x0 - x_lo : p.x1 - x_lo] |= part
    return mask, x_lo


# --------------------------------------------------------------------------- 2. scoring
class Scorer:
    """Turns the model's probabilities into digit probabilities and piece scores.

    ``model``: one model or a list (an ensemble, probabilities averaged). When a
    model has a ``reject_class`` (an output meaning "not a digit"), that column
    is kept out of the digits: a piece the model calls "not a digit" has little
    probability left for its best digit, so it scores badly, and
    :meth:`labels` reports it as None.
    """

    def __init__(self, model):
        from .metrics import check_ensemble

        self.models = list(model) if isinstance(model, (list, tuple)) else [model]
        check_ensemble(self.models)
        self.reject = getattr(self.models[0], "reject_class", None)
        self.can_refuse = isinstance(self.reject, int)  # the models have a not-a-digit output

    def proba(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) uint8 -> (N, C) probabilities, averaged over the models."""
        from .metrics import predict_proba

        return np.asarray(predict_proba(self.models if len(self.models) > 1 else self.models[0], images), np.float64)

    def digit_columns(self, n_outputs: int) -> np.ndarray:
        cols = np.arange(n_outputs)
        return cols[cols != self.reject] if self.can_refuse else cols

    def log_best(self, proba: np.ndarray) -> np.ndarray:
        """Log-probability of each row's most likely digit."""
        digit = proba[:, self.digit_columns(proba.shape[1])]
        return np.log(np.maximum(digit.max(axis=1), 1e-12))

    def labels(self, proba: np.ndarray) -> list:
        """Each row's label: its most likely output, None when that is the not-a-digit class."""
        cols = self.digit_columns(proba.shape[1])
        out = []
        for p in proba:
            best = int(p.argmax())
            out.append(None if self.can_refuse and best == self.reject else int(cols[p[cols].argmax()]))
        return out


def piece_prior(prims: list[Primitive], box: tuple[int, int, int, int], line_h: float) -> float:
    """The shape part of a piece's score (<= 0): too wide, too short, or parts far apart.

    ``box``: the piece's ink box, as :func:`piece_image` gives it.
    """
    h, w = box[3] - box[1], box[2] - box[0]
    score = -WIDE_COST * max(0.0, w / line_h - WIDE)
    score -= SHORT_COST * max(0.0, SHORT - h / line_h)
    spans: dict[int, list[int]] = {}  # each component's columns in the piece
    for p in prims:
        span = spans.setdefault(p.component, [p.x0, p.x1])
        span[0], span[1] = min(span[0], p.x0), max(span[1], p.x1)
    ordered = sorted(spans.values())
    reach, apart = ordered[0][1], -np.inf  # how far apart side by side the components are
    for a, b in ordered[1:]:
        apart, reach = max(apart, a - reach), max(reach, b)
    if len(ordered) > 1:
        # the strokes of one digit overlap horizontally (the bar of a "5" over its body); digits side by side don't
        score -= APART_COST * max(0.0, apart / line_h + OVERLAP)
    return score


def boundary_cuts(prims: list[Primitive]) -> list[list[Primitive]]:
    """Per boundary j (between primitives j-1 and j; index 0 unused): the cuts through ink it parts.

    Primitives are ordered by their centres, so a boundary need not fall at
    a component's own cut to part it (the outline of a face parted around
    its eyes): each part whose left neighbour in its component lies on the
    other side of the boundary stands for the cut between them.
    """
    side = {}
    for i, p in enumerate(prims):
        side[p.component, p.part] = i
    out: list[list[Primitive]] = [[] for _ in prims]
    for j in range(1, len(prims)):
        out[j] = [p for p in prims if p.part and (side[p.component, p.part - 1] < j) != (side[p.component, p.part] < j)]
    return out


def boundary_gaps(prims: list[Primitive]) -> np.ndarray:
    """The horizontal gap at each boundary between primitives j-1 and j (index j; 0 unused), in pixels.

    The gap is from the rightmost ink left of the boundary to the leftmost
    ink right of it: negative where the two sides overlap, 0 at a cut.
    """
    gaps = np.zeros(len(prims))
    for j in range(1, len(prims)):
        gaps[j] = min(p.x0 for p in prims[j:]) - max(p.x1 for p in prims[:j])
    return gaps


def gap_costs(gaps: np.ndarray, line_h: float) -> np.ndarray:
    """What a boundary at each gap costs: people space the digits of one number alike.

    In a line whose digits stand apart, a boundary at a much narrower gap than
    the widest ones most likely parts two strokes of one digit (a broken "0",
    a "1" drawn twice over), which the classifier alone may read as two
    confident digits. In a line of close or touching digits the widest gap is
    small, and so are these costs.
    """
    if len(gaps) < 2:
        return np.zeros(len(gaps))
    ref = min(GAP_SHARE * float(gaps[1:].max()), GAP_ENOUGH * line_h)
    if ref <= 0:
        return np.zeros(len(gaps))
    return GAP_COST * np.clip(1 - gaps / ref, 0, 1)


def piece_image(
    prims: list[Primitive], labels: np.ndarray, ink: np.ndarray
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A piece as the network sees it, (28, 28) uint8, and its box (x0, y0, x1, y1) in working pixels."""
    mask, x_lo = piece_mask(prims, labels)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    crop = ink[y0:y1, x_lo + x0 : x_lo + x1] * mask[y0:y1, x0:x1]
    return fit_mnist(crop), (x_lo + x0, y0, x_lo + x1, y1)


# --------------------------------------------------------------------------- 3. the search
def best_path(n: int, edge_score, max_len: int = MAX_MERGE, cut_cost=lambda j: 0.0) -> tuple[list[int], float]:
    """The best way to cover primitives 0..n-1 with consecutive pieces, by dynamic programming.

    ``edge_score(i, j)`` scores the piece of primitives i..j-1 (or returns
    None when it is not allowed); ``cut_cost(j)`` is what placing a boundary
    before primitive j costs. Returns the boundaries ``[0, ..., n]`` of the
    best reading and its total score.
    """
    best = np.full(n + 1, -np.inf)
    back = np.zeros(n + 1, np.intp)
    best[0] = 0.0
    for j in range(1, n + 1):
        for i in range(max(0, j - max_len), j):
            if best[i] == -np.inf:
                continue
            s = edge_score(i, j)
            if s is None:
                continue
            total = best[i] + s - (cut_cost(i) if i else 0.0)
            if total > best[j]:
                best[j], back[j] = total, i
    if best[n] == -np.inf:
        raise DigitnetError("no way to read this ink as digits")
    path = [n]
    while path[-1]:
        path.append(int(back[path[-1]]))
    return path[::-1], float(best[n])


def read_number(img, model, max_merge: int = MAX_MERGE) -> Reading:
    """Read the digits of a line of ink (a written number), left to right.

    Parameters
    ----------
    img : PIL.Image.Image, str, Path, bytes or file object
        Any image :func:`digitnet.preprocess.to_mnist` accepts.
    model : Sequential or list of Sequential
        The classifier (a list: an ensemble).
    max_merge : int
        The most primitives one digit may be made of.

    Returns
    -------
    Reading
        ``number`` (text), and per digit its 28x28 image, probabilities,
        label and box in the image's pixels.
    """
    scorer = Scorer(model)
    ink, scale = line_ink(img)
    reading, refused = _read(ink, scale, scorer, max_merge)
    if refused:
        # A piece the model calls "not a digit" is most often two digits joined where no candidate
        # cut was found (a "1" leaning on its neighbour): the search runs again with that part of
        # the line cut every DENSE_SPACING line heights, and keeps the better reading.
        with contextlib.suppress(DigitnetError):
            again, _ = _read(ink, scale, scorer, max_merge + DENSE_MERGE, tuple(refused))
            if again.score > reading.score:
                again.recut = True
                return again
    return reading


def _read(ink: np.ndarray, scale: float, scorer: Scorer, max_merge: int, dense=()) -> tuple[Reading, list]:
    """The best reading of a line's ink, and the column ranges of its pieces read as "not a digit"."""
    prims, labels, line_h = primitives(ink, dense)
    n = len(prims)
    spans = [(i, j) for j in range(1, n + 1) for i in range(max(0, j - max_merge), j)]
    if (0, n) not in spans:
        spans.append((0, n))  # all the ink as one digit, for comparison
    images: list[np.ndarray] = []
    boxes: dict[tuple[int, int], tuple[int, int, int, int]] = {}
    priors: dict[tuple[int, int], float] = {}
    for i, j in spans:
        img28, box = piece_image(prims[i:j], labels, ink)
        images.append(img28)
        boxes[i, j] = box
        priors[i, j] = piece_prior(prims[i:j], box, line_h)
    # each narrow component with cuts is read whole, with the ink that shares its columns (the bar of a
    # "5" drawn in two strokes): its cuts are allowed only when that does not read as a digit
    narrow = sorted({p.component for p in prims if p.cut_narrow})
    for c in narrow:
        images.append(piece_image(column_group(prims, c), labels, ink)[0])
    proba = scorer.proba(np.stack(images))
    whole = dict(zip(narrow, proba[len(spans) :]))
    proba = proba[: len(spans)]
    log_best = scorer.log_best(proba)
    row = {span: k for k, span in enumerate(spans)}
    score = {span: float(log_best[row[span]]) + priors[span] - DIGIT_COST for span in spans}
    digit = scorer.labels(proba)  # per piece image; None: the model calls it not a digit
    search: dict[tuple[int, int], float | None] = {
        span: score[span] - REFUSED_COST * (digit[row[span]] is None) for span in spans
    }

    gap_cost = gap_costs(boundary_gaps(prims), line_h)

    # a piece may not hold part of a narrow component that reads well whole (primitives are ordered by
    # their centres, so a piece can take part of a component without a boundary at its cut)
    kept_whole = [
        c
        for c, pr in whole.items()
        if scorer.labels(pr[None])[0] is not None and np.exp(scorer.log_best(pr[None])[0]) >= NARROW_SURE
    ]
    for c in kept_whole:
        n_parts = sum(p.component == c for p in prims)
        for i, j in spans:
            if 0 < sum(p.component == c for p in prims[i:j]) < n_parts:
                search[i, j] = None

    parted = boundary_cuts(prims)
    per_stroke = CUT_COST_REFUSING if scorer.can_refuse else CUT_COST

    def cut_cost(j: int) -> float:
        through = sum(per_stroke * p.cut_left + HOLE_COST * p.cut_hole + NARROW_COST * p.cut_narrow for p in parted[j])
        return through + gap_cost[j]

    path, total = best_path(n, lambda i, j: search.get((i, j)), max_merge, cut_cost)
    pieces = list(zip(path[:-1], path[1:]))
    k = [row[p] for p in pieces]
    refused = [(boxes[p][0], boxes[p][2]) for p, r in zip(pieces, k) if digit[r] is None]
    reading = Reading(
        digits=[images[r] for r in k],
        proba=[proba[r] for r in k],
        boxes=[_scaled(boxes[p], scale) for p in pieces],
        score=total,
        single_score=score[0, n],
        labels=[digit[r] for r in k],
        sureness=[0.0 if digit[r] is None else float(np.exp(log_best[r])) for r in k],
        can_refuse=scorer.can_refuse,
        cuts=sum(any(p.cut_left > 0 for p in parted[i]) for i, _ in pieces[1:]),
    )
    return reading, refused


def _scaled(box: tuple[int, int, int, int], scale: float) -> tuple[int, int, int, int]:
    """A box in working pixels as a box in the image's pixels."""
    x0, y0, x1, y1 = (int(round(v * scale)) for v in box)
    return x0, y0, x1, y1


# -- which images are worth reading as a number ----------------------------------------------------------------
# see needs_number_reading. Trained with label smoothing 0.1, the reader aims at about 0.91 for a clean digit,
# so 0.9 would call a third of clean drawings unsure; images of several digits stay far below 0.85.
SURE = 0.85
# A digit is seldom wider than tall; a line of two or more digits is, two touching digits about 1.3 times. A
# sloppy digit can be a little wider than tall too (a round 0, a 2 or 4 drawn wide): below 1.3 the number
# reading is paid for such digits and finds no number the refusal of the whole did not already send to it
# (benchmarks/number_gate.py).
WIDE_INK = 1.3


def ink_aspect(seen: np.ndarray) -> float:
    """Width / height of the ink of a 28x28 digit as the network saw it (the framing keeps the aspect)."""
    ink = seen > 64
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    if rows.size == 0:
        return 1.0
    return float((cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1))


def needs_number_reading(net, proba: np.ndarray, seen: np.ndarray, threshold: float | None = None) -> bool:
    """Whether an image read whole (``proba``, framed as ``seen``) may be several digits, worth segmenting.

    A model without a "not a digit" output reads a row of digits as one confident digit, so for it
    every image is read as a number too. A model with one was trained to refuse several digits in one
    box: the image is segmented when that model refuses it whole, or is unsure of it (best digit under
    ``SURE``) and its ink is wider than tall (``WIDE_INK``). A sure digit, or an unsure one no wider
    than a digit, is one digit. Segmenting costs several times the whole image's reading, and most
    images are one digit, some of them drawn sloppily. ``threshold``: the refusal threshold, when not
    ``net``'s own (an ensemble's is its models' highest).
    """
    reject = getattr(net, "reject_class", None)
    if reject is None:
        return True
    if threshold is None:
        threshold = net.meta.get("reject_threshold", 0.0)
    if refused_mask(proba[None], reject, threshold)[0]:
        return True
    return bool(np.delete(proba, reject).max() < SURE and ink_aspect(seen) >= WIDE_INK)
