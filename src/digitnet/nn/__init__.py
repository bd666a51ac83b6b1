"""The network library: layers, losses, optimizers, initialisers and Sequential."""

from .activations import GELU, LeakyReLU, Sigmoid, Tanh
from .conv import AvgPool2D, Conv2D, Flatten, GlobalAvgPool2D, MaxPool2D
from .layers import LAYERS, Dense, Layer, ReLU, register
from .losses import SoftmaxCrossEntropy, log_softmax, softmax
from .model import MLP, Sequential
from .norm import BatchNorm1D, BatchNorm2D
from .optim import SGD, Adam, AdamW
from .regularization import Dropout
from .spec import PRESETS, build, parse_spec

__all__ = [
    "LAYERS",
    "Dense",
    "Layer",
    "ReLU",
    "register",
    "SoftmaxCrossEntropy",
    "log_softmax",
    "softmax",
    "MLP",
    "Sequential",
    "SGD",
    "Adam",
    "AdamW",
    "GELU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "AvgPool2D",
    "Conv2D",
    "Flatten",
    "GlobalAvgPool2D",
    "MaxPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "Dropout",
    "PRESETS",
    "build",
    "parse_spec",
]
