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
