"""784-64-10 MLP: training per epoch (digitnet / PyTorch / scikit-learn) and inference.

digitnet trains through ``digitnet.fit`` -- the code path of ``digitnet train``
-- one epoch per call, so the epochs of the three libraries can be interleaved
(contention on a shared machine then hits all of them alike). PyTorch gets the
same initial weights, the same float32 inputs (digitnet's own ``prepare``), the
same per-epoch permutations and the same optimizer; its inputs are preloaded
as one float32 tensor (the fastest way to feed it), and its loop does no
bookkeeping, while digitnet's also sums the loss and counts correct answers.
"""

from __future__ import annotations

import time

import numpy as np

import digitnet
from digitnet.nn.threads import resolve as resolve_threads
from digitnet.nn.threads import training_threads
from digitnet.train import fit

from . import profile, torch_port
from .common import (LR, MOMENTUM, Context, epoch_gflop, median, optional, per_call, ratio_spread,
                     reference_threads, skipped, spread,
                     torch_ready)

SGD_RECIPE = dict(lr=LR, momentum=MOMENTUM, weight_decay=0.0, schedule="constant", val_size=0, progress=False)


def _digitnet_epoch(model, ctx: Context, bs, seed: int) -> float:
    """One epoch of ``digitnet.fit`` on a fresh run whose generator is seeded ``seed``."""
    model.meta.pop("history", None)          # fit() continues a history; start a new one-epoch run
    history = fit(model, ctx.train, None, epochs=1, batch_size=bs, seed=seed, threads=ctx.fit_threads,
                  **SGD_RECIPE)
    return history[0]["time"]


def _torch_setup(torch, model, X: np.ndarray, y: np.ndarray):
    net = torch_port.to_torch(model)
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    return net, opt, torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))


def _torch_epoch(torch, net, opt, X, Y, perm: np.ndarray, bs: int) -> float:
    F = torch.nn.functional
    t0 = time.perf_counter()
    order = torch.from_numpy(perm)
    for i in range(0, len(order), bs):
        idx = order[i:i + bs]
        loss = F.cross_entropy(net(X.index_select(0, idx)), Y.index_select(0, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def _sklearn_setup(model, X, y, bs: int, seed: int):
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(64,), solver="sgd", learning_rate="constant", learning_rate_init=LR,
                        momentum=MOMENTUM, nesterovs_momentum=False, alpha=0.0, batch_size=bs, shuffle=True,
                        random_state=seed)
    clf.partial_fit(X[:bs], y[:bs], classes=np.arange(10))   # builds its arrays; then load our weights
    W1, b1, W2, b2 = (model.params[k] for k in ("0.W", "0.b", "2.W", "2.b"))
    for dst, src in zip(clf.coefs_ + clf.intercepts_, (W1, W2, b1, b2)):
        dst[...] = src
    for v in clf._optimizer.velocities:
        v[...] = 0
    return clf


def _sklearn_state(clf) -> dict:
    return {"0.W": clf.coefs_[0], "0.b": clf.intercepts_[0], "2.W": clf.coefs_[1], "2.b": clf.intercepts_[1]}


def train_case(ctx: Context, bs: int) -> dict:
    """Seconds per epoch at batch size ``bs``, median over ``ctx.repeats`` epochs after a warm-up epoch."""
    model = digitnet.MLP((64,), seed=ctx.seed)
    init = {k: v.copy() for k, v in model.params.items()}
    X = model.prepare(ctx.train.images)       # (N, 784) float32, exactly what digitnet computes per batch
    y = ctx.train.labels
    n = len(y)
    res = {"batch_size": bs, "n_train": n, "gflop_per_epoch": round(epoch_gflop(n), 3),
           "init_fingerprint": {"digitnet": torch_port.fingerprint(init)}}
    torch, sk = torch_ready(ctx), optional("sklearn")
    if torch is not None:
        net, opt, tX, tY = _torch_setup(torch, model, X, y)
        res["init_fingerprint"]["torch"] = torch_port.fingerprint(torch_port.torch_state_in_digitnet_layout(net, model))
    if sk is not None:
        clf = _sklearn_setup(model, X, y, bs, ctx.seed)
        res["init_fingerprint"]["sklearn"] = torch_port.fingerprint(_sklearn_state(clf))
    times = {"digitnet": [], "torch": [], "sklearn": [], "gemm_only": [], "gemm_only_blas": []}
    gemms = profile.MLPEpochGemms(n, bs)
    own_threads = resolve_threads(ctx.fit_threads, model, bs)     # the threads fit() runs the products on

    def gemms_as_fit_runs_them() -> float:
        with training_threads(own_threads):
            return gemms()
    for r in range(ctx.repeats + 1):                 # r = 0 is the warm-up
        seed = ctx.seed + r
        t = {"digitnet": _digitnet_epoch(model, ctx, bs, seed), "gemm_only": gemms_as_fit_runs_them(),
             "gemm_only_blas": gemms()}
        if torch is not None:
            t["torch"] = _torch_epoch(torch, net, opt, tX, tY, np.random.default_rng(seed).permutation(n), bs)
        if sk is not None:
            with reference_threads(ctx):
                t0 = time.perf_counter()
                clf.partial_fit(X, y)
                t["sklearn"] = time.perf_counter() - t0
        if r:
            for k, v in t.items():
                times[k].append(v)
        if r == 0 and torch is not None:         # same weights, data order and optimizer -> same result
            after = torch_port.torch_state_in_digitnet_layout(net, model)
            res["torch_max_param_diff_after_1_epoch"] = torch_port.max_abs_diff(model.params, after)
    gemm_only, gemm_only_blas = times.pop("gemm_only"), times.pop("gemm_only_blas")
    floor = median(gemm_only)
    res["seconds_per_epoch"] = {k: median(v) for k, v in times.items() if v}
    res["all_seconds"] = {k: [round(x, 5) for x in v] for k, v in times.items() if v}
    res["spread"] = {k: spread(v) for k, v in times.items() if v}
    res["ratio_spread"] = {"vs_gemm_only": ratio_spread(times["digitnet"], gemm_only)}
    for lib in ("torch", "sklearn"):
        if times[lib]:
            res["ratio_spread"][f"vs_{lib}"] = ratio_spread(times["digitnet"], times[lib])
    d = res["seconds_per_epoch"]["digitnet"]
    res["ratio_vs_gemm_only"] = d / floor
    blas_floor = median(gemm_only_blas)
    res["profile"] = {"gemm_only_seconds_per_epoch": floor, "gemm_only_gflops": round(epoch_gflop(n) / floor, 1),
                      "gemm_blas_threads": "the BLAS's own" if own_threads is None else "one",
                      "overhead_share_of_digitnet_epoch": round(max(d - floor, 0.0) / d, 3),
                      "gemm_only_blas_threads_seconds_per_epoch": blas_floor,
                      "ratio_vs_gemm_only_blas_threads": d / blas_floor}
    res["gflops_effective"] = {k: round(epoch_gflop(n) / v, 1) for k, v in res["seconds_per_epoch"].items()}
    res["ratio_vs_torch"] = d / res["seconds_per_epoch"]["torch"] if torch is not None else None
    res["ratio_vs_sklearn"] = d / res["seconds_per_epoch"]["sklearn"] if sk is not None else None
    if torch is None:
        res["torch"] = skipped("torch not installed (pip install '.[bench]')")
    if sk is None:
        res["sklearn"] = skipped("scikit-learn not installed (pip install '.[bench]')")
    res["notes"] = ("digitnet: digitnet.fit one epoch (shuffle, uint8 gather + convert per batch, loss/accuracy "
                    "bookkeeping); torch: preloaded float32 tensor, same permutations, no bookkeeping; "
                    "sklearn: MLPClassifier.partial_fit (its own shuffling), same initial weights and SGD")
    return res


def inference_case(ctx: Context, batch: int) -> dict:
    """digitnet ``model.predict(uint8 images)`` vs torch on the same uint8 images (convert, forward, argmax)."""
    model = digitnet.MLP((64,), seed=ctx.seed)
    fit(model, ctx.train, None, epochs=1, batch_size=128, seed=ctx.seed, threads=ctx.fit_threads,
        **SGD_RECIPE)                                                                    # realistic weights
    reps = max(len(ctx.test), batch)
    images = np.resize(ctx.test.images, (reps, 28, 28))[:batch]                           # (batch, 28, 28) uint8
    calls = max(1, min(20000, int(2e5 // batch))) if not ctx.tiny else max(1, min(200, int(2e4 // batch)))
    res = {"batch_size": batch, "calls_per_repeat": calls,
           "init_fingerprint": {"digitnet": torch_port.fingerprint(model.params)}}
    times = {"digitnet": []}
    torch = torch_ready(ctx)
    if torch is not None:
        net = torch_port.to_torch(model).eval()
        res["init_fingerprint"]["torch"] = torch_port.fingerprint(torch_port.torch_state_in_digitnet_layout(net, model))

        def torch_predict():
            with torch.inference_mode():
                x = torch.from_numpy(images).reshape(batch, 784).to(torch.float32).mul_(1 / 255)
                return net(x).argmax(1)
        times["torch"] = []
        res["same_predictions"] = bool(np.array_equal(torch_predict().numpy(), model.predict(images)))
    for r in range(ctx.repeats + 1):
        t = {"digitnet": per_call(lambda: model.predict(images), calls)}
        if torch is not None:
            t["torch"] = per_call(torch_predict, calls)
        if r:
            for k, v in t.items():
                times[k].append(v)
    res["seconds_per_call"] = {k: median(v) for k, v in times.items()}
    res["spread"] = {k: spread(v) for k, v in times.items()}
    if torch is not None:
        res["ratio_spread"] = {"vs_torch": ratio_spread(times["digitnet"], times["torch"])}
    bare = _minimal_forward_seconds(model, images, calls, ctx.repeats)
    convert = median([per_call(lambda: model.prepare(images), calls) for _ in range(max(ctx.repeats, 1))])
    res["profile"] = {"minimal_numpy_forward_float_input": bare, "uint8_conversion_alone": convert}
    res["ratio_vs_bare_forward"] = res["seconds_per_call"]["digitnet"] / bare
    res["samples_per_second"] = {k: batch / v for k, v in res["seconds_per_call"].items()}
    res["ratio_vs_torch"] = (res["seconds_per_call"]["digitnet"] / res["seconds_per_call"]["torch"]
                             if torch is not None else None)
    if torch is None:
        res["torch"] = skipped("torch not installed (pip install '.[bench]')")
    res["notes"] = "both start from uint8 images: digitnet model.predict(); torch from_numpy -> float /255 -> net -> argmax"
    return res


def _minimal_forward_seconds(model, images, calls: int, repeats: int) -> float:
    """The floor for predict(): 784-64-10 forward + argmax in bare NumPy on an already converted float batch."""
    W1, b1, W2, b2 = (model.params[k] for k in ("0.W", "0.b", "2.W", "2.b"))
    x = model.prepare(images)

    def bare():
        h = x @ W1
        h += b1
        np.maximum(h, 0, out=h)
        z = h @ W2
        z += b2
        return z.argmax(axis=1)
    return median([per_call(bare, calls) for _ in range(max(repeats, 1))])
