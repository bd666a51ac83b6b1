"""The network library: layers, losses, optimizers, initialisers and Sequential."""

from .layers import LAYERS, Dense, Layer, ReLU, register
from .losses import SoftmaxCrossEntropy, log_softmax, softmax
from .model import MLP, Sequential
from .optim import SGD

__all__ = ["LAYERS", "Dense", "Layer", "ReLU", "register", "SoftmaxCrossEntropy", "log_softmax",
           "softmax", "MLP", "Sequential", "SGD"]
