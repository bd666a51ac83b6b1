"""``digitnet info``: a model file's metadata, as a table or JSON."""

from __future__ import annotations

import json

from ._args import add_model_args, model_name


def add_parser(sub, fmt) -> None:
    i = sub.add_parser("info", help="show a model's metadata", formatter_class=fmt)
    add_model_args(i)
    i.add_argument("--json", action="store_true", help="print the raw metadata as JSON")
    i.set_defaults(func=run)


def run(args) -> int:
    from .. import io

    name = model_name(args)
    meta = io.info(name)
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    arch = " -> ".join(_layer_text(layer) for layer in meta["architecture"])
    rows = [
        ("model", str(io.resolve(name))),
        ("architecture", arch),
        *([("spec", meta["arch"])] if "arch" in meta else []),
        ("input", "x".join(str(d) for d in meta["input_shape"]) + f" {meta['dtype']}"),
        ("parameters", f"{meta.get('n_params', '?'):,}" if isinstance(meta.get("n_params"), int) else "?"),
        ("digitnet version", meta.get("digitnet_version", "?")),
    ]
    classes = meta.get("classes")
    if isinstance(classes, list) and classes != [str(d) for d in range(10)]:
        shown = ", ".join(map(str, classes[:20])) + (", ..." if len(classes) > 20 else "")
        rows.append(("classes", f"{len(classes)}: {shown}"))
    if "test_accuracy" in meta:
        rows.append(("test accuracy", f"{meta['test_accuracy'] * 100:.2f} %"))
    if "command" in meta:
        rows.append(("trained with", meta["command"]))
    if "seed" in meta:
        rows.append(("seed", str(meta["seed"])))
    if "train_config" in meta:
        rows.append(("config", ", ".join(f"{k}={v}" for k, v in meta["train_config"].items())))
    if meta.get("history"):
        h = meta["history"]
        seconds = sum(e["time"] for e in h if type(e.get("time")) in (int, float))
        rows.append(("epochs", f"{len(h)} ({seconds:.2f} s training)"))
    if isinstance(meta.get("blas"), dict):
        b = meta["blas"]
        rows.append(("BLAS", f"{b.get('library')} {b.get('version')}, {b.get('threads')} thread(s) while training"))
    if isinstance(meta.get("layer_threads"), int) and meta["layer_threads"] > 1:
        rows.append(("layer threads", f"{meta['layer_threads']} (convolution and pooling split each batch over them)"))
    if "dataset_sha256" in meta:
        rows.append(("dataset sha256", meta["dataset_sha256"]))
    width = max(len(r[0]) for r in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def _layer_text(layer: dict) -> str:
    if layer["type"] == "Dense":
        return f"Dense({layer['in_features']}->{layer['out_features']})"
    args = ",".join(f"{k}={v}" for k, v in layer.items() if k != "type")
    return f"{layer['type']}({args})" if args else layer["type"]
