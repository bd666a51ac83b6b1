"""The image path shared by `digitnet predict` and the web app: real images -> MNIST-like digits."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import digitnet
from digitnet import DigitnetError
from digitnet.preprocess import components, dilate, open_image, percentile, split_digits, to_mnist


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def big(digit: np.ndarray, s: int) -> Image.Image:
    return Image.fromarray(digit).resize((28 * s, 28 * s), Image.BICUBIC)


def off_centre(digit: np.ndarray) -> Image.Image:
    canvas = Image.new("L", (150, 110))
    canvas.paste(big(digit, 2), (85, 4))          # near the top-right corner
    return canvas


def with_alpha(digit: np.ndarray) -> Image.Image:
    """Black ink drawn on a transparent canvas (what a drawing app exports)."""
    b = big(digit, 3)
    zero = Image.new("L", b.size, 0)
    return Image.merge("RGBA", [zero, zero, zero, b])


def small_on_a_page(digit: np.ndarray) -> Image.Image:
    """Dark ink ~8 % of a large light image's height (a phone photo of a page): analysed again, cropped."""
    page = np.full((800, 1000), 235.0)
    page[150:234, 610:694] -= 0.8 * np.asarray(big(digit, 3), float)     # grey ink on light paper
    return Image.fromarray(page.astype(np.uint8))


def exif_rotated(digit: np.ndarray) -> Image.Image:
    """A JPEG whose pixels are stored sideways, with the EXIF orientation (6) that puts them upright."""
    stored = Image.fromarray(255 - digit).resize((84, 84), Image.BICUBIC).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6                                  # viewer rotates 90 degrees clockwise
    return Image.open(io.BytesIO(encode(stored.convert("RGB"), "JPEG", quality=90, exif=exif.tobytes())))


TRANSFORMS = {
    "identity": lambda d: Image.fromarray(d),
    "shifted": lambda d: Image.fromarray(np.pad(d, ((1, 7), (8, 0)))),   # 36x36, 3-4 px off centre
    "scaled x2": lambda d: big(d, 2),
    "scaled x4": lambda d: big(d, 4),
    "off-centre": off_centre,
    "inverted": lambda d: Image.fromarray(255 - d),
    "inverted RGB x3": lambda d: Image.fromarray(255 - d).convert("RGB").resize((84, 84), Image.BICUBIC),
    "alpha": with_alpha,
    "jpeg": lambda d: Image.open(io.BytesIO(encode(Image.fromarray(255 - d).resize((84, 84)).convert("RGB"),
                                                   "JPEG", quality=70))),
    "bytes": lambda d: encode(big(d, 2)),
    "small on a large page": small_on_a_page,
    "EXIF-rotated JPEG": exif_rotated,
}


@pytest.fixture(scope="module")
def digits(mnist):
    """50 test digits the shipped model classifies correctly as they are."""
    model = digitnet.load("seed")
    x, y = mnist.test.images[:80], mnist.test.labels[:80]
    ok = model.predict(x) == y
    return x[ok][:50], y[ok][:50], model


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transformed_mnist_digits_come_back_close_and_correct(name, digits):
    x, y, model = digits
    out = np.stack([to_mnist(TRANSFORMS[name](d)) for d in x])
    assert out.shape == (len(x), 28, 28) and out.dtype == np.uint8
    dist = np.abs(out.astype(int) - x.astype(int)).mean(axis=(1, 2))   # mean |diff| in 0..255 units
    assert np.median(dist) < 12 and dist.max() < 40, (np.median(dist), dist.max())
    assert (model.predict(out) == y).mean() >= 0.96


def test_output_follows_mnist_conventions(mnist):
    # A small off-centre blob-like digit on a big canvas comes back 20 px tall, centred, full intensity.
    img = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(img).line([(250, 20), (250, 120)], fill=0, width=9)           # a "1", far right
    out = to_mnist(img).astype(float)
    rows, cols = np.nonzero(out.any(axis=1))[0], np.nonzero(out.any(axis=0))[0]
    assert rows[-1] - rows[0] + 1 in (20, 21) and cols[-1] - cols[0] + 1 < 10
    cy, cx = (out.sum(1) @ np.arange(28)) / out.sum(), (out.sum(0) @ np.arange(28)) / out.sum()
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    assert out.max() == 255 and out[0].sum() == 0 and out[:, 0].sum() == 0


def test_thin_strokes_are_thickened_to_mnist_width():
    img = Image.new("L", (400, 400), 255)
    ImageDraw.Draw(img).line([(200, 40), (200, 360)], fill=0, width=2)         # a hairline "1"
    out = to_mnist(img)
    assert (out > 127).sum(axis=1).max() >= 2                                   # not a faint 1-px line


def test_a_small_glyphs_faint_hairlines_reach_full_strength():
    # a 20 px "0" as a light font draws it small: a solid left stroke, the rest a grey hairline
    a = np.full((40, 30), 255, np.uint8)
    a[10:30, 8:10] = 0                  # the thick stroke
    a[10:30, 19] = 150                  # hairlines, only partly covered by ink
    a[10, 8:20] = a[29, 8:20] = 150
    out = to_mnist(Image.fromarray(a)).astype(float)
    cols = np.nonzero(out.sum(0))[0]
    left, right = out[:, cols[0] : cols[0] + 4].max(), out[:, cols[-1] - 3 : cols[-1] + 1].max()
    assert right >= 0.9 * left, (left, right)             # the hairline side as bright as the thick one


def test_faint_strokes_of_a_large_digit_are_not_brightened():
    a = np.full((200, 200), 255, np.uint8)
    a[40:160, 60:70] = 0
    a[40:160, 130:134] = 150
    out = to_mnist(Image.fromarray(a)).astype(float)
    cols = np.nonzero(out.sum(0))[0]
    assert out[:, cols[-1] - 3 : cols[-1] + 1].max() < 0.8 * out.max()


def test_specks_of_noise_do_not_move_the_crop(mnist):
    d = mnist.test.images[0]
    img = np.asarray(big(d, 3)).copy()
    clean = to_mnist(Image.fromarray(img))
    img[2:4, 2:4] = 255                                                        # dust in a corner
    img[-3:-1, -6:-4] = 200
    assert np.array_equal(to_mnist(Image.fromarray(img)), clean)


def test_grey_paper_photo_with_noise(mnist, rng):
    d = big(mnist.test.images[1], 3)
    photo = 170 - 0.55 * np.asarray(d, float) + rng.normal(0, 6, (84, 84))   # dim grey paper, dark pencil
    out = to_mnist(Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).convert("RGB"))
    assert digitnet.load("seed").predict(out[None])[0] == mnist.test.labels[1]


def test_photo_with_uneven_lighting(mnist):
    """Paper shaded from bright to dim across the picture, as in a phone photo next to a window."""
    model = digitnet.load("seed")
    x, y = mnist.test.images[:30], mnist.test.labels[:30]
    light = np.linspace(235, 110, 200)[None, :] * np.linspace(1, 0.85, 160)[:, None]
    outs = []
    for d in x:
        ink = np.zeros((160, 200))
        ink[20:132, 50:162] = np.asarray(big(d, 4), float) / 255
        outs.append(to_mnist(Image.fromarray((light * (1 - 0.8 * ink)).astype(np.uint8))))
    assert (model.predict(np.stack(outs)) == y).mean() >= 0.9


def test_dim_photo_is_still_dark_ink_on_light_paper(mnist):
    model = digitnet.load("seed")
    x, y = mnist.test.images[:20], mnist.test.labels[:20]
    outs = [to_mnist(Image.fromarray((105 - 0.3 * np.asarray(big(d, 3), float)).astype(np.uint8))) for d in x]
    assert (model.predict(np.stack(outs)) == y).mean() >= 0.9      # paper at 105/255, ink at 30/255


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "I;16", "1"])
def test_every_image_mode_is_accepted(mode, mnist):
    img = big(255 - mnist.test.images[0], 2)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img).astype(np.uint16) * 257)
    else:
        img = img.convert(mode)
    out = to_mnist(encode(img))
    assert out.shape == (28, 28) and out.max() > 200


def test_split_digits_reads_a_row_left_to_right(mnist):
    x, y = mnist.test.images[:6], mnist.test.labels[:6]
    row = Image.new("L", (6 * 40 + 20, 50), 255)
    for i, d in enumerate(x):
        row.paste(Image.fromarray(255 - d), (10 + i * 40, 10))
    parts = split_digits(encode(row))
    assert len(parts) == 6 and all(p.shape == (28, 28) and p.dtype == np.uint8 for p in parts)
    assert digitnet.load("seed").predict(np.stack(parts)).tolist() == y.tolist()


def test_split_cuts_digits_that_touch(mnist):
    """Touching digits form one component; it is cut where the least ink crosses near digit boundaries."""
    model = digitnet.load("seed")
    rng = np.random.default_rng(3)
    right = 0
    for _ in range(40):
        idx = rng.choice(len(mnist.test), 2, replace=False)
        canvas, x = np.zeros((40, 70)), 4
        for i in idx:
            d = mnist.test.images[i].astype(float)
            cols = np.nonzero(d.any(axis=0))[0]
            d = d[:, cols[0]:cols[-1] + 1]
            canvas[6:34, x:x + d.shape[1]] = np.maximum(canvas[6:34, x:x + d.shape[1]], d)
            x += d.shape[1] - 1                                           # one shared column
        parts = split_digits(Image.fromarray(canvas.astype(np.uint8)))
        right += len(parts) == 2 and model.predict(np.stack(parts)).tolist() == mnist.test.labels[idx].tolist()
    assert right >= 20          # about 70 % in benchmarks/real_digits.py


def test_split_keeps_single_digits_whole(mnist):
    kept = sum(len(split_digits(Image.fromarray(np.pad(d, 10)))) == 1 for d in mnist.test.images[:200])
    assert kept >= 196


def test_split_joins_pieces_of_one_digit():
    img = Image.new("L", (200, 100), 0)
    draw = ImageDraw.Draw(img)
    draw.line([(30, 20), (30, 80)], fill=255, width=6)                   # digit 1
    draw.line([(100, 20), (140, 20)], fill=255, width=6)                 # a "5" drawn in two strokes:
    draw.line([(100, 30), (100, 50)], fill=255, width=6)                 # top bar apart from the body
    draw.arc([(95, 45), (145, 85)], 200, 160, fill=255, width=6)
    assert len(split_digits(img)) == 2


def test_components_counts_8_connected_regions():
    m = np.zeros((6, 8), bool)
    m[0, 0] = m[1, 1] = True                 # diagonal neighbours: one component
    m[4:6, 5:8] = True
    m[0, 6] = True
    labels, n = components(m)
    assert n == 3 and labels[0, 0] == labels[1, 1] != labels[4, 5]


def flood_fill_count(m: np.ndarray) -> np.ndarray:
    """Reference labelling: breadth-first flood fill, 8-connected, one pixel at a time."""
    lab, n = np.zeros(m.shape, int), 0
    for y0, x0 in zip(*np.nonzero(m)):
        if lab[y0, x0]:
            continue
        n += 1
        lab[y0, x0], todo = n, [(y0, x0)]
        while todo:
            y, x = todo.pop()
            for yy in range(max(0, y - 1), min(m.shape[0], y + 2)):
                for xx in range(max(0, x - 1), min(m.shape[1], x + 2)):
                    if m[yy, xx] and not lab[yy, xx]:
                        lab[yy, xx] = n
                        todo.append((yy, xx))
    return lab


def test_components_match_a_flood_fill(rng):
    for _ in range(100):
        m = rng.random(tuple(rng.integers(1, 16, 2))) < rng.uniform(0.1, 0.7)
        labels, n = components(m)
        ref = flood_fill_count(m)
        assert n == ref.max() and (labels > 0).sum() == m.sum()
        assert len(set(zip(labels[m].tolist(), ref[m].tolist()))) == n      # the same partition


def test_components_join_long_winding_shapes():
    """A spiral and a comb: one component each, however many runs they take to walk along."""
    spiral = np.zeros((41, 41), bool)
    y, x, dy, dx, length = 20, 20, 0, 1, 1
    while 0 <= y < 41 and 0 <= x < 41:
        for _ in range(2):
            for _ in range(2 * length):
                if 0 <= y < 41 and 0 <= x < 41:
                    spiral[y, x] = True
                y, x = y + dy, x + dx
            dy, dx = dx, -dy
        length += 1
    comb = np.zeros((30, 61), bool)
    comb[0] = True
    comb[:, ::2] = True
    for m in (spiral, comb, ~comb):
        labels, n = components(m)
        assert n == flood_fill_count(m).max()
    assert components(spiral)[1] == 1 and components(comb)[1] == 1


def test_dilate_is_a_square_max_filter(rng):
    for h, w in ((9, 12), (3, 2), (1, 7), (20, 17)):
        a = rng.random((h, w))
        for k in (1, 3, 5, 7, 9, 15):
            r = k // 2
            want = np.array([[a[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1].max() for x in range(w)]
                             for y in range(h)])
            assert np.array_equal(dilate(a, k), want), (h, w, k)


@pytest.mark.parametrize("n", [16_400, 50_000])  # partitioned (a digit at its working size), and by histogram
@pytest.mark.parametrize("kind", ["uint8 levels", "mostly background", "continuous", "constant", "small"])
def test_fast_percentile_equals_numpy(kind, n, rng):
    n = 300 if kind == "small" else n
    a = {"uint8 levels": rng.integers(0, 256, n) / 255,
         "mostly background": np.where(rng.random(n) < 0.85, 0.0, rng.random(n)),
         "continuous": rng.random(n) ** 3, "constant": np.full(n, 0.25), "small": rng.random(n)}[kind]
    a = a.astype(np.float32).reshape(-1, 100)
    for q in (0, 0.5, 50, 60, 99.5, 99.9, 100, [0.5, 99.5], [50, 99.9]):
        np.testing.assert_allclose(percentile(a, q), np.percentile(a, q), rtol=0, atol=1e-7)


def test_pure_noise_does_not_crash():
    noise = np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8)
    assert to_mnist(Image.fromarray(noise)).shape == (28, 28)     # garbage in, but no crash


def test_blank_and_non_images_are_refused():
    for blank in (Image.new("L", (50, 50), 255), Image.new("RGB", (50, 50), (30, 30, 30)),
                  Image.new("RGBA", (40, 40), (0, 0, 0, 0))):
        with pytest.raises(DigitnetError, match="blank"):
            to_mnist(encode(blank))
        with pytest.raises(DigitnetError, match="blank"):
            split_digits(blank)
    with pytest.raises(DigitnetError, match="not a readable image"):
        to_mnist(b"definitely not an image")
    with pytest.raises(DigitnetError, match="not a readable image"):
        to_mnist(encode(Image.new("L", (50, 50)))[:40])  # truncated PNG


def test_missing_file_and_directory_are_refused(tmp_path):
    with pytest.raises(DigitnetError, match="no such file"):
        to_mnist(tmp_path / "nope.png")
    with pytest.raises(DigitnetError, match="directory"):
        to_mnist(tmp_path)


def test_decompression_bomb_is_refused_before_decoding():
    # a tiny PNG whose header claims 20000 x 20000 pixels
    bomb = encode(Image.new("1", (20000, 20000)))
    assert len(bomb) < 100_000
    with pytest.raises(DigitnetError, match="pixels are accepted|too large"):
        open_image(bomb)


def test_font_digits_are_recognised():
    """Digits typed in a font (whatever the machine has; Pillow's built-in one otherwise)."""
    fonts = []
    for name in ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf", "FreeSans.ttf"):
        try:
            fonts.append(ImageFont.truetype(name, 64))
        except OSError:
            pass
    need = 0.8
    if not fonts:                       # a machine without TrueType fonts: Pillow's own (its 1, 6, 9 are unusual)
        fonts.append(ImageFont.load_default(size=64))
        need = 0.65
    model = digitnet.load("seed")
    x, y = [], []
    for font in fonts:
        for label in range(10):
            for dark_on_light in (True, False):
                img = Image.new("L", (120, 100), 255 if dark_on_light else 0)
                ImageDraw.Draw(img).text((30, 5), str(label), fill=0 if dark_on_light else 255, font=font)
                x.append(to_mnist(img))
                y.append(label)
    acc = (model.predict(np.stack(x)) == np.array(y)).mean()
    assert acc >= need, acc


def test_an_exactly_even_background_skips_the_fit_and_reads_the_same(mnist, monkeypatch):
    """A canvas's background is one exact level: no surface is fitted, and the digit comes out as with the fit."""
    from digitnet import preprocess
    drawings = [Image.fromarray(255 - d).resize((140, 140), Image.BILINEAR) for d in mnist.test.images[:20]]
    grey = preprocess.to_grey(drawings[0])
    assert preprocess._one_level(grey)
    shaded = grey + np.linspace(0, 0.3, grey.shape[1])[None, :]          # not one level: the fit runs
    assert not preprocess._one_level(shaded) and preprocess.uneven_background(shaded) is not None
    fast = np.stack([to_mnist(d) for d in drawings])
    monkeypatch.setattr(preprocess, "_one_level", lambda grey: False)
    assert np.array_equal(fast, np.stack([to_mnist(d) for d in drawings]))


def _ink(draw_fn, size=(100, 120), outline=False):
    from PIL import ImageChops, ImageFilter
    from digitnet import preprocess
    img = Image.new("L", size, 255)
    draw_fn(ImageDraw.Draw(img))
    if outline:                                  # only the shape's edge, 3 px wide
        inside = img.filter(ImageFilter.MaxFilter(7))
        img = ImageChops.invert(ImageChops.subtract(inside, img))
    return preprocess.as_ink(img, 128)


def test_outlined_strokes_are_filled_and_a_digits_own_loops_are_not():
    from digitnet.preprocess import fill_hollow_strokes

    def outlined_seven(d):                       # a "7" in an outline font: each stroke two thin lines
        d.line([(20, 20), (80, 20), (40, 105)], fill=0, width=18, joint="curve")
    ink = _ink(outlined_seven, outline=True)
    filled = fill_hollow_strokes(ink)
    assert (filled > 0).sum() > 1.5 * (ink > 0).sum()                  # the inside is ink now

    narrow_zero = _ink(lambda d: d.ellipse((38, 10, 62, 110), outline=0, width=7))   # an ordinary pen
    round_zero = _ink(lambda d: d.ellipse((15, 10, 85, 110), outline=0, width=3))    # a fine pen, a wide loop
    eight = _ink(lambda d: (d.ellipse((30, 10, 70, 55), outline=0, width=4), d.ellipse((25, 55, 75, 110), outline=0, width=4)))
    for ink in (narrow_zero, round_zero, eight):
        assert np.array_equal(fill_hollow_strokes(ink), ink)


def test_a_digit_captured_small_and_scaled_up_keeps_its_grey_cells():
    # 8x8 cells as a low-resolution capture gives them: a "1" whose right column of cells is half covered,
    # scaled up 4 times without smoothing; brightening the grey cells by their neighbourhood would make the
    # stroke one solid bar twice as thick, and speckle it where the cells are larger than the neighbourhood
    cells = np.zeros((8, 8), np.uint8)
    cells[:, 3] = 255
    cells[:, 4] = 128
    img = Image.fromarray(255 - cells).resize((32, 32), Image.NEAREST)
    out = to_mnist(img).astype(float)
    cols = np.nonzero(out.sum(0))[0]
    assert out[:, cols[-1]].max() < 0.8 * out.max()


def test_border_median_equals_numpy(rng):
    from digitnet.preprocess import _median

    for n in (1, 2, 3, 10, 501, 1000):
        a = rng.random(n).astype(np.float32)
        assert _median(a) == float(np.median(a))
        a[: n // 2] = 0.5                                   # ties, as a one-level border has
        assert _median(a) == float(np.median(a))


def test_stroke_width_is_twice_the_area_over_the_boundary(rng):
    from digitnet.preprocess import _stroke_width

    bar = np.zeros((20, 20), bool)
    bar[2:18, 8:12] = True                                   # 64 pixels, 28 inner, 36 on the boundary
    assert _stroke_width(bar) == pytest.approx(2 * 64 / 36)
    for _ in range(50):                                      # against a pixel-by-pixel count
        m = rng.random(tuple(rng.integers(1, 12, 2))) < 0.6
        h, w = m.shape
        boundary = sum(m[y, x] and not (0 < y < h - 1 and 0 < x < w - 1 and m[y - 1, x] and m[y + 1, x]
                                        and m[y, x - 1] and m[y, x + 1]) for y in range(h) for x in range(w))
        assert _stroke_width(m) == (2.0 * m.sum() / boundary if boundary else 1.0)


@pytest.mark.parametrize("canvas, at, side", [((200, 160), (30, 20), 100),      # one look at the whole image
                                              ((2000, 1500), (1400, 900), 90)])  # a small digit: a second, closer look
def test_to_mnist_and_box_finds_the_digit_in_the_image(mnist, canvas, at, side):
    from digitnet.preprocess import to_mnist, to_mnist_and_box
    digit = mnist.test.images[0]                                   # a 7
    page = Image.new("L", canvas, 255)
    page.paste(Image.fromarray(255 - digit).resize((side, side), Image.BICUBIC), at)
    x, box = to_mnist_and_box(page)
    assert np.array_equal(x, to_mnist(page))
    rows, cols = np.nonzero(digit.any(axis=1))[0], np.nonzero(digit.any(axis=0))[0]
    f = side / 28
    want = (at[0] + cols[0] * f, at[1] + rows[0] * f, at[0] + (cols[-1] + 1) * f, at[1] + (rows[-1] + 1) * f)
    assert np.allclose(box, want, atol=0.06 * side), (box, want)
