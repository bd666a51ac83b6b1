"""digitnet: a handwritten-digit recognizer whose networks are plain NumPy.

Quick start::

    import digitnet
    mnist = digitnet.load_mnist()              # bundled, checksum-verified
    model = digitnet.MLP(hidden=(64,), seed=0)  # the seed notebook's 784-64-10
    model = digitnet.build("cnn", seed=0)       # or a preset / spec string
    history = digitnet.fit(model, mnist.train, epochs=10, seed=0)
    print(digitnet.evaluate(model, mnist.test)["accuracy"])
    digitnet.save(model, "my.safetensors")
    model = digitnet.load("my.safetensors")
"""

__version__ = "0.1.0"

from .callbacks import Callback
from .data import MNIST, Dataset, load_mnist
from .errors import DigitnetError
from .io import import_pickle, info, load, save
from .metrics import evaluate
from .nn import MLP, Sequential, build
from .segment import read_number
from .train import TrainConfig, fit

__all__ = [
    "__version__",
    "Dataset",
    "MNIST",
    "load_mnist",
    "DigitnetError",
    "import_pickle",
    "info",
    "load",
    "save",
    "evaluate",
    "MLP",
    "Sequential",
    "build",
    "TrainConfig",
    "fit",
    "Callback",
    "read_number",
]
