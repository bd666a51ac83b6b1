"""The image path shared by `digitnet predict` and the web app."""

import io

import numpy as np
import pytest
from PIL import Image

from digitnet import DigitnetError
from digitnet.preprocess import open_image, to_mnist


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_mnist_digit_survives_inversion_and_scaling(mnist):
    digit = mnist.test.images[0]
    big = Image.fromarray(255 - digit).resize((112, 112), Image.BILINEAR)  # black on white, x4
    out = to_mnist(png_bytes(big))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - digit.astype(int)).mean() < 25


def test_blank_and_non_images_are_refused():
    with pytest.raises(DigitnetError, match="blank"):
        to_mnist(png_bytes(Image.new("L", (50, 50), 255)))
    with pytest.raises(DigitnetError, match="not a readable image"):
        to_mnist(b"definitely not an image")
    with pytest.raises(DigitnetError, match="not a readable image"):
        to_mnist(png_bytes(Image.new("L", (50, 50)))[:40])  # truncated PNG


def test_decompression_bomb_is_refused_before_decoding():
    # a tiny PNG whose header claims 20000 x 20000 pixels
    bomb = png_bytes(Image.new("1", (20000, 20000)))
    assert len(bomb) < 100_000
    with pytest.raises(DigitnetError, match="pixels are accepted|too large"):
        open_image(bomb)
