"""GEMM floors: the time an epoch (or iteration) would take with zero overhead outside its matrix products.

Each class runs exactly the matrix products of the corresponding training
step, with the same shapes and layouts as digitnet's Dense layers, into
preallocated arrays, and nothing else. ``measured - floor`` is the overhead
(data gathering and conversion, activations, loss, optimizer, Python).
"""

from __future__ import annotations

import time

import numpy as np



def _mlp_step_gemms(x, W1, W2, h, z, g, gW1, gW2, dh):
    np.matmul(x, W1, out=h)          # (B, 784) @ (784, 64)
    np.matmul(h, W2, out=z)          # (B, 64) @ (64, 10)
    np.matmul(h.T, g, out=gW2)       # dW2
    np.matmul(g, W2.T, out=dh)       # dX of layer 2
    np.matmul(x.T, dh, out=gW1)      # dW1 (no dX for the first layer)


class MLPEpochGemms:
    """The matrix products of one 784-64-10 epoch of ``n`` samples at batch ``bs``; call to time one epoch."""

    def __init__(self, n: int, bs: int, dtype=np.float32, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        B = min(bs, n)
        self.x = rng.random((B, 784), dtype=np.float64).astype(dtype)
        self.W1, self.W2 = (rng.standard_normal(s).astype(dtype) * 0.05 for s in ((784, 64), (64, 10)))
        self.h, self.z, self.dh = np.empty((B, 64), dtype), np.empty((B, 10), dtype), np.empty((B, 64), dtype)
        self.g = (rng.standard_normal((B, 10)) * 0.01).astype(dtype)
        self.gW1, self.gW2 = np.empty_like(self.W1), np.empty_like(self.W2)
        self.full, self.rest = divmod(n, B)

    def __call__(self) -> float:
        x, W1, W2, h, z, g, gW1, gW2, dh = (self.x, self.W1, self.W2, self.h, self.z, self.g, self.gW1, self.gW2,
                                            self.dh)
        t0 = time.perf_counter()
        for _ in range(self.full):
            _mlp_step_gemms(x, W1, W2, h, z, g, gW1, gW2, dh)
        r = self.rest
        if r:
            _mlp_step_gemms(x[:r], W1, W2, h[:r], z[:r], g[:r], gW1, gW2, dh[:r])
        return time.perf_counter() - t0


class SeedStyleGemms:
    """The seed-style float64 iteration's matrix products (column layout, as the notebook has them)."""

    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        self.X = rng.random((784, n))
        self.W1, self.W2 = rng.standard_normal((64, 784)) * 0.05, rng.standard_normal((10, 64)) * 0.05
        self.dZ2 = rng.standard_normal((10, n)) * 0.01

    def __call__(self) -> float:
        X, W1, W2, dZ2 = self.X, self.W1, self.W2, self.dZ2
        t0 = time.perf_counter()
        A1 = W1.dot(X)
        W2.dot(A1)
        dZ2.dot(A1.T)
        dZ1 = W2.T.dot(dZ2)
        dZ1.dot(X.T)
        return time.perf_counter() - t0


class StepGemms:
    """The matrix products of one training step of a Sequential of Conv2D / Dense layers, as the kernels run them.

    Conv2D: ``[X 1] @ [F b].T`` forward, ``dY.T @ [X 1]`` for the filters and,
    below the first layer, one ``dY @ W[:, :, i, j]`` per kernel offset for the
    input gradient, each over blocks of images on digitnet's threads (call it
    inside ``training_threads``, as ``fit`` does); Dense: ``x @ W``,
    ``x.T @ dY`` and ``dY @ W.T`` on the calling thread. Nothing else: no
    patch gathering, col2im, pooling, normalisation, activations or optimizer.
    """

    def __init__(self, model, batch_size: int, seed: int = 0) -> None:
        from digitnet.nn.conv import Conv2D
        from digitnet.nn.layers import Dense

        rng = np.random.default_rng(seed)
        B, shape, first = batch_size, tuple(model.input_shape), True
        self.products: list[tuple] = []                      # (kind, a, b, out, rows per image or 0)
        self.flop = 0
        for layer in model.layers:
            out_shape = layer.output_shape(shape)
            if isinstance(layer, Conv2D):
                C, O, k = layer.in_channels, layer.out_channels, layer.kernel_size
                P = out_shape[1] * out_shape[2]               # patch rows per image
                K = k * k * C + 1
                cols, FbT = self._rand(rng, (B * P, K)), self._rand(rng, (K, O))
                g, Wij = self._rand(rng, (B * P, O)), self._rand(rng, (O, C))
                self.products += [("rows", cols, FbT, np.empty((B * P, O), np.float32), P),
                                  ("sum", g, cols, None, P)]
                self.flop += 2 * 2 * B * P * K * O
                if not first:
                    self.products += [("rows", g, Wij, np.empty((B * P, C), np.float32), P)] * (k * k)
                    self.flop += 2 * B * P * O * C * k * k
                first = False
            elif isinstance(layer, Dense):
                n_in, n_out = int(np.prod(shape)), layer.out_features
                x, W, g = self._rand(rng, (B, n_in)), self._rand(rng, (n_in, n_out)), self._rand(rng, (B, n_out))
                self.products += [("one", x, W, np.empty((B, n_out), np.float32), 0),
                                  ("one", x.T, g, np.empty((n_in, n_out), np.float32), 0)]
                self.flop += 2 * 2 * B * n_in * n_out
                if not first:
                    self.products.append(("one", g, np.ascontiguousarray(W.T), np.empty((B, n_in), np.float32), 0))
                    self.flop += 2 * B * n_in * n_out
                first = False
            shape = out_shape
        self.batch_size = B

    @staticmethod
    def _rand(rng, shape):
        return rng.standard_normal(shape, dtype=np.float32)

    def __call__(self) -> float:
        """Seconds for one step's products."""
        from digitnet.nn import threads

        t0 = time.perf_counter()
        for kind, a, b, out, P in self.products:
            if kind == "one":
                np.matmul(a, b, out=out)
            elif kind == "rows":                             # per block of images, into its rows of out
                threads.map_blocks(lambda sl, a=a, b=b, out=out, P=P:
                                   np.matmul(a[sl.start * P:sl.stop * P], b, out=out[sl.start * P:sl.stop * P]),
                                   self.batch_size)
            else:                                            # each block's dY.T @ [X 1], then the parts added
                sum(threads.map_blocks(lambda sl, a=a, b=b, P=P:
                                       a[sl.start * P:sl.stop * P].T @ b[sl.start * P:sl.stop * P],
                                       self.batch_size))
        return time.perf_counter() - t0


def peak_gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The BLAS at its best: GFLOP/s of a large float32 n x n x n product (the best of ``repeats``).

    This is the ceiling any float32 epoch on this machine and thread count
    can approach; an epoch of small per-batch products plus elementwise work
    stays below it.
    """
    rng = np.random.default_rng(0)
    a, b = (rng.random((n, n), dtype=np.float32) for _ in range(2))
    c = np.empty_like(a)
    np.matmul(a, b, out=c)                                   # warm-up: thread start, page faults
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def layer_times(model, train, batches: int = 20, batch_size: int = 128, seed: int = 0) -> dict:
    """Where a training step's time goes: seconds per batch in each layer's forward + backward.

    ``batches`` steps of plain SGD (the optimizer is timed separately) on
    shuffled batches of ``train``, after one untimed step.
    """
    from digitnet.nn.optim import SGD
    trained = model
    model = type(trained).from_architecture(trained.architecture(), trained.input_shape, trained.dtype)
    model.load_state_dict(trained.state_dict())             # a copy: the caller's model is left as it was
    opt = SGD(model.flat_params, model.flat_grads, lr=1e-3, momentum=0.9)
    n_layers = len(model.layers)
    spent = np.zeros(n_layers + 2)                           # layers..., loss, optimizer
    timed = 0
    for step, (xb, yb) in enumerate(train.batches(batch_size, np.random.default_rng(seed), reuse=True)):
        if step > batches:
            break
        x, y = model.prepare(xb, reuse=True), yb.astype(np.intp)
        marks = []
        for layer in model.layers:
            t0 = time.perf_counter()
            x = layer.forward(x, training=True)
            marks.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.loss.forward(x, y)
        g = model.loss.backward()
        loss_t = time.perf_counter() - t0
        for i in range(n_layers - 1, -1, -1):
            t0 = time.perf_counter()
            g = model.layers[i].backward(g, input_grad=i > 0)
            marks[i] += time.perf_counter() - t0
        t0 = time.perf_counter()
        opt.step()
        if step:                                             # step 0 warms up
            spent += [*marks, loss_t, time.perf_counter() - t0]
            timed += 1
    names = [f"{i}.{type(layer).__name__}" for i, layer in enumerate(model.layers)] + ["loss", "optimizer"]
    per_batch = spent / max(timed, 1)
    total = float(per_batch.sum())
    return {"seconds_per_batch": total, "batch_size": batch_size, "batches": timed,
            "share": {k: round(float(v) / total, 3) for k, v in zip(names, per_batch)}}
