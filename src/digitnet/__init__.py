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

from .callbacks import Callback  # noqa: E402
from .data import MNIST, Dataset, load_mnist  # noqa: E402
from .errors import DigitnetError  # noqa: E402
from .io import import_pickle, info, load, save  # noqa: E402
from .metrics import evaluate  # noqa: E402
from .nn import MLP, Sequential, build  # noqa: E402
from .train import TrainConfig, fit  # noqa: E402

__all__ = ["__version__", "Dataset", "MNIST", "load_mnist", "DigitnetError", "import_pickle", "info",
           "load", "save", "evaluate", "MLP", "Sequential", "build", "TrainConfig", "fit", "Callback"]
