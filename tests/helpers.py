"""Small helpers shared by several test modules."""

import numpy as np

from digitnet.cli import main


def run(capsys, *argv):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_npz(directory, mnist, n_train: int, n_test: int):
    """A Keras-layout mnist.npz with the first n_train / n_test bundled images; returns its path."""
    tr, te = mnist.train.subset(slice(0, n_train)), mnist.test.subset(slice(0, n_test))
    path = directory / "mnist.npz"
    np.savez(path, x_train=tr.images, y_train=tr.labels, x_test=te.images, y_test=te.labels)
    return path


def scan_bomb(scans: int) -> bytes:
    """A progressive JPEG of a 512x512 digit followed by ``scans`` empty scans.

    Each scan costs the decoder a pass over every block: tens of thousands of them take seconds.
    """
    import io

    from PIL import Image, ImageDraw
    img = Image.new("L", (512, 512), 255)
    ImageDraw.Draw(img).line([(256, 64), (256, 448)], fill=0, width=50)
    buf = io.BytesIO()
    img.save(buf, "JPEG", progressive=True)
    return buf.getvalue()[:-2] + b"\xff\xda\x00\x08\x01\x01\x00\x00\x00\x00" * scans + b"\xff\xd9"
