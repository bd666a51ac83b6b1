"""Training checkpoints: everything needed to continue a run exactly.

A checkpoint is an ordinary digitnet model file (safetensors + JSON metadata,
written atomically, never a pickle) with extra tensors and metadata:

* ``opt.<name>``: the optimizer state (momentum buffers, Adam moments and step);
* ``best.<name>``: the best weights so far, when early stopping tracks them;
* metadata ``checkpoint``: the training configuration, the random generator's
  exact state (``bit_generator.state``, plain JSON), the best epoch, and whether
  early stopping had ended the run (resuming it then only restores the best weights).

The history of finished epochs is in the usual ``history`` metadata, so
``digitnet.load(checkpoint)`` gives the model as of the last finished epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DigitnetError
from .fsutil import atomic_write

KEY = "checkpoint"


def write(path, model, opt, rng: np.random.Generator, cfg, history: list[dict], early=None) -> Path:
    """Atomically (re)write the checkpoint at ``path`` after an epoch.

    ``early`` is the run's :class:`~digitnet.callbacks.EarlyStopping`, if any:
    its best weights and epoch are saved too.
    """
    from . import io

    extra = {f"opt.{k}": v for k, v in _named_state(model, opt).items()}
    best_epoch, best_val_acc, stopped = 0, -1.0, False
    if early is not None:
        best_epoch, best_val_acc, stopped = early.best_epoch, early.best_val_acc, early.stopped
        if early.best_weights is not None:
            extra.update({f"best.{k}": v for k, v in early.best_weights.items()})
    meta = {
        KEY: {
            "config": cfg.saved(),
            "rng": rng.bit_generator.state,
            "epochs_done": len(history),
            "best_epoch": best_epoch,
            "best_val_acc": best_val_acc,
            "stopped": bool(stopped),
        },
        "history": history,
    }
    path = Path(path)
    atomic_write(path, io.dumps(model, extra_tensors=extra, extra_meta=meta), "checkpoint")
    return path


def _named_state(model, opt) -> dict[str, np.ndarray]:
    """The optimizer's state with each flat array split by parameter: ``m.0.W``, ``m.0.b``, ..., ``t``."""
    named = {}
    for k, v in opt.state_dict().items():
        if v.shape == model.flat_params.shape:
            named.update({f"{k}.{name}": view for name, view in model.unflatten(v).items()})
        else:
            named[k] = np.asarray(v)
    return named


def _flat_state(model, opt, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of :func:`_named_state` for ``opt``'s keys; KeyError names a missing tensor."""
    state = {}
    for k, v in opt.state_dict().items():
        if v.shape == model.flat_params.shape:
            flat = np.empty_like(v)
            for name, view in model.unflatten(flat).items():
                view[...] = tensors[f"{k}.{name}"]
            state[k] = flat
        else:
            state[k] = tensors[k]
    return state


def read(path) -> dict:
    """Tensors and metadata of a checkpoint file, checked to be one."""
    from . import io

    tensors, meta = io.read_file(io.resolve(path))
    if KEY not in meta:
        raise DigitnetError(
            f"{path}: a model file, not a training checkpoint (no '{KEY}' metadata); "
            "checkpoints are written by 'digitnet train --checkpoint'"
        )
    info = meta[KEY]
    # the file's own claims, checked before training trusts them
    if not (
        isinstance(info, dict)
        and isinstance(info.get("config"), dict)
        and isinstance(info.get("rng"), dict)
        and type(info.get("epochs_done")) is int
        and info["epochs_done"] >= 0
        and all(info.get(k) is None or type(info[k]) in (int, float) for k in ("best_epoch", "best_val_acc"))
    ):
        raise DigitnetError(f"{path}: damaged checkpoint metadata (config, rng, epochs_done or best epoch)")
    return {"tensors": tensors, "meta": meta, "config": info["config"], "path": str(path)}


def load_model(path):
    """The model stored in a checkpoint, as of its last finished epoch."""
    from . import io

    state = read(path)
    return io.from_parts(state["tensors"], state["meta"], state["path"])


def restore(state: dict, model, opt, rng: np.random.Generator, early=None) -> list[dict]:
    """Put a checkpoint's weights, optimizer, generator and early-stopping state back; returns the history."""
    tensors, info = state["tensors"], state["meta"][KEY]
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(("opt.", "best."))})
    try:
        opt.load_state_dict(_flat_state(model, opt, {k[4:]: v for k, v in tensors.items() if k.startswith("opt.")}))
    except (KeyError, ValueError) as exc:
        raise DigitnetError(
            f"{state['path']}: optimizer state {exc} missing: checkpoint does not match this optimizer"
        ) from None
    try:
        rng.bit_generator.state = info["rng"]
    except (KeyError, TypeError, ValueError):
        raise DigitnetError(f"{state['path']}: the random generator state in the checkpoint is damaged") from None
    if early is not None:
        weights = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        early.best_val_acc, early.best_epoch = info["best_val_acc"], info["best_epoch"]
        early.best_weights, early.stopped = weights or None, info.get("stopped", False)
    return list(state["meta"].get("history", []))[: info["epochs_done"]]
