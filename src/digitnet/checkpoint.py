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


def write(path, model, opt, rng: np.random.Generator, cfg, history: list[dict], best: dict) -> Path:
    """Atomically (re)write the checkpoint at ``path`` after an epoch."""
    from . import io
    extra = {f"opt.{k}": np.asarray(v) for k, v in opt.state_dict().items()}
    if best.get("weights") is not None:
        extra.update({f"best.{k}": v for k, v in best["weights"].items()})
    meta = {KEY: {"config": cfg.saved(), "rng": rng.bit_generator.state, "epochs_done": len(history),
                  "best_epoch": best["epoch"], "best_val_acc": best["val_acc"],
                  "stopped": bool(best.get("stopped"))},
            "history": history}
    path = Path(path)
    atomic_write(path, io.dumps(model, extra_tensors=extra, extra_meta=meta), "checkpoint")
    return path


def read(path) -> dict:
    """Tensors and metadata of a checkpoint file, checked to be one."""
    from . import io
    tensors, meta = io.read_file(io.resolve(path))
    if KEY not in meta:
        raise DigitnetError(f"{path}: a model file, not a training checkpoint (no '{KEY}' metadata); "
                            "checkpoints are written by 'digitnet train --checkpoint'")
    return {"tensors": tensors, "meta": meta, "config": meta[KEY]["config"], "path": str(path)}


def load_model(path):
    """The model stored in a checkpoint, as of its last finished epoch."""
    from . import io
    state = read(path)
    return io.from_parts(state["tensors"], state["meta"], state["path"])


def restore(state: dict, model, opt, rng: np.random.Generator, best: dict) -> list[dict]:
    """Put a checkpoint's weights, optimizer and generator state back; returns the history."""
    tensors, info = state["tensors"], state["meta"][KEY]
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(("opt.", "best."))})
    try:
        opt.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("opt.")})
    except KeyError as exc:
        raise DigitnetError(f"{state['path']}: optimizer state {exc} missing: checkpoint does not match "
                            "this optimizer") from None
    rng.bit_generator.state = info["rng"]
    weights = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    best.update(val_acc=info["best_val_acc"], epoch=info["best_epoch"], weights=weights or None,
                stopped=info.get("stopped", False))
    return list(state["meta"].get("history", []))[:info["epochs_done"]]
