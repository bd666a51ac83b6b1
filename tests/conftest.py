import numpy as np
import pytest

import digitnet


@pytest.fixture(scope="session")
def mnist():
    """The bundled MNIST, loaded once for the whole test session."""
    return digitnet.load_mnist()


@pytest.fixture(scope="session")
def small(mnist):
    """2,000 training and 1,000 test images: enough to exercise code paths quickly."""
    return digitnet.MNIST(mnist.train.subset(slice(0, 2000), "small-train"),
                          mnist.test.subset(slice(0, 1000), "small-test"), "small")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
