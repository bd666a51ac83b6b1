"""Translate a digitnet Sequential into the equivalent torch.nn.Sequential, weights copied.

Layouts: digitnet Dense keeps W as (in, out) so torch's Linear weight is W.T;
Conv2D's W is (out, in, k, k) in both; BatchNorm gamma/beta/running statistics
map to weight/bias/running_mean/running_var.
"""

from __future__ import annotations

import hashlib

import numpy as np


class NotTranslatable(Exception):
    """A digitnet layer with no torch counterpart here."""


def to_torch(model):
    """An equivalent ``torch.nn.Sequential`` holding copies of ``model``'s weights (float32)."""
    import torch
    from torch import nn

    modules = []
    for layer, cfg in zip(model.layers, model.architecture()):
        kind = cfg["type"]
        if kind == "Dense":
            m = nn.Linear(cfg["in_features"], cfg["out_features"])
            _copy(m.weight, layer.params["W"].T)
            _copy(m.bias, layer.params["b"])
        elif kind == "Conv2D":
            m = nn.Conv2d(cfg["in_channels"], cfg["out_channels"], cfg["kernel_size"],
                          stride=cfg.get("stride", 1), padding=cfg.get("padding", 0))
            _copy(m.weight, layer.params["W"])
            _copy(m.bias, layer.params["b"])
        elif kind in ("BatchNorm1D", "BatchNorm2D"):
            cls = nn.BatchNorm1d if kind == "BatchNorm1D" else nn.BatchNorm2d
            m = cls(cfg["num_features"], eps=cfg.get("eps", 1e-5), momentum=cfg.get("momentum", 0.1))
            _copy(m.weight, layer.params["gamma"])
            _copy(m.bias, layer.params["beta"])
            _copy(m.running_mean, layer.buffers["running_mean"])
            _copy(m.running_var, layer.buffers["running_var"])
        elif kind in ("MaxPool2D", "AvgPool2D"):
            cls = nn.MaxPool2d if kind == "MaxPool2D" else nn.AvgPool2d
            m = cls(cfg.get("size", 2), stride=cfg.get("stride") or cfg.get("size", 2))
        elif kind == "GlobalAvgPool2D":
            m = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        elif kind == "Flatten":
            m = nn.Flatten()
        elif kind == "Dropout":
            m = nn.Dropout(cfg["p"])
        elif kind == "ReLU":
            m = nn.ReLU()
        elif kind == "LeakyReLU":
            m = nn.LeakyReLU(cfg.get("negative_slope", 0.01))
        elif kind == "Tanh":
            m = nn.Tanh()
        elif kind == "Sigmoid":
            m = nn.Sigmoid()
        elif kind == "GELU":
            m = nn.GELU(approximate="tanh")
        else:
            raise NotTranslatable(f"no torch equivalent for digitnet layer {kind}")
        modules.append(m)
    net = nn.Sequential(*modules).to(torch.float32)
    return net


def _copy(dst, src: np.ndarray) -> None:
    import torch
    with torch.no_grad():
        dst.copy_(torch.from_numpy(np.ascontiguousarray(src, dtype=np.float32)))


def torch_state_in_digitnet_layout(net, model) -> dict[str, np.ndarray]:
    """torch's parameters renamed and reshaped the way ``model.state_dict()`` has them."""
    out = {}
    for i, (layer, cfg) in enumerate(zip(model.layers, model.architecture())):
        m = net[i]
        kind = cfg["type"]
        if kind == "Dense":
            out[f"{i}.W"], out[f"{i}.b"] = m.weight.detach().numpy().T, m.bias.detach().numpy()
        elif kind == "Conv2D":
            out[f"{i}.W"], out[f"{i}.b"] = m.weight.detach().numpy(), m.bias.detach().numpy()
        elif kind in ("BatchNorm1D", "BatchNorm2D"):
            out[f"{i}.gamma"], out[f"{i}.beta"] = m.weight.detach().numpy(), m.bias.detach().numpy()
            out[f"{i}.running_mean"] = m.running_mean.numpy()
            out[f"{i}.running_var"] = m.running_var.numpy()
    return out


def fingerprint(state: dict[str, np.ndarray]) -> str:
    """SHA-256 over the float32 bytes of a state dict, in name order: equal weights, equal hashes."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(np.ascontiguousarray(state[k], dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return float(max(np.max(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64))) for k in a))
