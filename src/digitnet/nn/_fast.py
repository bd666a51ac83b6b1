"""Fast kernels: the same math as the layers' reference code, arranged for speed.

Each layer's ``forward``/``backward`` in ``layers.py``, ``conv.py``,
``norm.py`` and ``losses.py`` is the reference: the math, a few lines. Where
a different arrangement of the same arithmetic is much faster, the layer
hands its work to a kernel here, chosen by one line at the top of its method
(``if self.fast: ...``); set ``layer.fast = False`` to run the reference
instead. ``tests/test_kernels.py`` checks every kernel against the reference.

The tricks, and why each pays:

* reused work arrays (:func:`scratch`): training-mode outputs and input
  gradients of Dense and ReLU go into arrays kept from batch to batch, so a
  training step allocates (and page-faults) almost nothing;
* layouts kept (:func:`scratch_like`): ReLU's output and mask keep its
  input's memory order, so a channels-last activation stays channels-last
  and the next convolution gathers its patches in memory order;
* convolution patches channels-last with a trailing column of ones
  (:func:`conv2d_forward`): col2im's strided adds then touch contiguous
  channel vectors, and the bias rides through the same matrix product;
* the one-channel gather (:func:`_fill_patches`): for a one-channel image a
  window copy moves only k pixels per inner loop; one ``take`` with
  precomputed indices moves every patch pixel in a single loop;
* 2 x 2 max pooling in two pairwise steps over the channels-last view
  (:func:`maxpool2x2_forward`) instead of a per-offset loop;
* batch-norm sums as ``ones @ a`` (:func:`batchnorm_train_forward`): a
  matrix-vector product reduces the rows of a tall matrix much faster than
  ``sum(axis=0)``;
* class-major softmax (:func:`softmax_ce_forward`): with only 10 classes NumPy
  reduces over the rows of a (K, B) array several times faster than along
  the short rows of a (B, K) one.

Convolution and pooling kernels split a batch's images over digitnet's
threads (:mod:`digitnet.nn.threads`), and Dense kernels a large product's
output rows (:func:`_splits`); nothing else here does.

A kernel's work arrays stay valid until the layer's next training step:
callers that keep one longer copy it. Inference outputs are fresh arrays.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import threads


def scratch(store: dict, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A reusable work array of ``shape`` and ``dtype`` kept in ``store[name]``.

    Allocated on first use and again only when a larger batch (or another
    shape or dtype) arrives; a smaller batch, such as the last one of an
    epoch, gets a view of the leading rows. Its contents are whatever the
    previous step left: callers overwrite it.
    """
    buf = store.get(name)
    if buf is None or buf.dtype != dtype or buf.shape[1:] != shape[1:] or len(buf) < shape[0]:
        buf = store[name] = np.empty(shape, dtype)
    return buf if len(buf) == shape[0] else buf[: shape[0]]


def scratch_like(store: dict, name: str, x: np.ndarray, dtype=None) -> np.ndarray:
    """A reusable work array of ``x``'s shape, laid out in memory the way ``x`` is (see :func:`scratch`).

    A convolution's output is channels-last in memory behind its (N, C, H, W)
    view; an array that keeps that order keeps elementwise work on it
    streaming through memory, and the next layer's own transposes free views.
    """
    if x.flags.c_contiguous:  # the common case, without the Python below (an MLP step is short)
        return scratch(store, name, x.shape, dtype or x.dtype)
    order = _memory_order(x)
    buf = scratch(store, name, tuple(x.shape[axis] for axis in order), dtype or x.dtype)
    return buf.transpose([order.index(axis) for axis in range(x.ndim)])


def _memory_order(x: np.ndarray) -> list[int]:
    """``x``'s axes from the outermost in memory to the innermost."""
    return sorted(range(x.ndim), key=lambda axis: -x.strides[axis])


# -- Dense and ReLU: the reference arithmetic into reused arrays -----------------------------------------------
def dense_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, work: dict) -> np.ndarray:
    """``x @ W + b`` written into a reused (B, out) array; a large product's rows split over digitnet's threads."""
    out = scratch(work, "out", (len(x), W.shape[1]), W.dtype)
    if _splits(x.size * W.shape[1]):

        def rows(sl: slice) -> None:
            np.matmul(x[sl], W, out=out[sl])
            out[sl] += b

        threads.map_blocks(rows, len(x))
        return out
    np.matmul(x, W, out=out)
    out += b
    return out


def dense_backward(x: np.ndarray, grad: np.ndarray, dW: np.ndarray, db: np.ndarray) -> None:
    """Fill ``dW = x.T @ grad`` (its rows split over digitnet's threads when large) and ``db``."""
    if _splits(x.size * grad.shape[1]):
        threads.map_blocks(lambda sl: np.matmul(x[:, sl].T, grad, out=dW[sl]), len(dW))
    else:
        np.matmul(x.T, grad, out=dW)
    np.sum(grad, axis=0, out=db)


def dense_input_grad(grad: np.ndarray, W: np.ndarray, work: dict) -> np.ndarray:
    """``grad @ W.T`` written into a reused (B, in) array; a large product's rows split over digitnet's threads."""
    dx = scratch(work, "dx", (len(grad), W.shape[0]), grad.dtype)
    if _splits(grad.size * W.shape[0]):
        threads.map_blocks(lambda sl: np.matmul(grad[sl], W.T, out=dx[sl]), len(grad))
    else:
        np.matmul(grad, W.T, out=dx)
    return dx


# multiply-adds: a smaller product is not worth a thread hand-over (a 784 x 64 layer at batch 128, 6.4 M, runs
# slower split in two; a convnet's 800 x 256 layer at batch 128, 26 M, faster)
SPLIT_PRODUCT = 2**24


def _splits(work: int) -> bool:
    """Whether a product of ``work`` multiply-adds splits its output rows over digitnet's threads.

    A convolutional network trains with the BLAS on one thread and the
    convolutions split over digitnet's threads (:mod:`digitnet.nn.threads`);
    its fully connected layers' large products split the same way. On one
    thread (an MLP's default) the product runs whole, without the views a
    split takes. Each output element is the same dot product however the rows
    are split, but the BLAS may add up a product of fewer rows in another
    order: the thread count can change float32's last bits.
    """
    return work >= SPLIT_PRODUCT and threads.threads() > 1


def relu_forward(x: np.ndarray, work: dict) -> tuple[np.ndarray, np.ndarray]:
    """``max(x, 0)`` and the mask ``x > 0``, both in reused arrays."""
    out = np.maximum(x, 0, out=scratch_like(work, "out", x))
    mask = np.greater(x, 0, out=scratch_like(work, "mask", x, np.bool_))
    return out, mask


def relu_backward(grad: np.ndarray, mask: np.ndarray, work: dict) -> np.ndarray:
    """``grad * mask``: in place, or into a reused array laid out like the mask when ``grad`` is laid out
    otherwise (a flattening layer's gradient, say): NumPy reads a bool array across layouts through a
    buffered cast, several times slower than copying the gradient first and multiplying in one layout."""
    if not (grad.flags.c_contiguous and mask.flags.c_contiguous) and _memory_order(grad) != _memory_order(mask):
        dx = scratch_like(work, "dx", mask, grad.dtype)
        dx[...] = grad
        grad = dx
    return np.multiply(grad, mask, out=grad)


# -- Conv2D: channels-last patches, the bias in the product, threads over images ------------------------------
def conv2d_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int, padding: int):
    """Conv2D's output (N, O, Ho, Wo) and what :func:`conv2d_backward` needs.

    The patch matrix ``[X 1]`` is (N Ho Wo, k k C + 1), its columns ordered
    (kernel row, kernel column, channel) and then a column of ones; the filters
    ``[F b]`` are laid out to match, so ``[X 1] @ [F b].T`` is the convolution
    plus its bias in one product.
    """
    N, C, H, Wd = x.shape
    O, _, k, _ = W.shape
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (Wd + 2 * padding - k) // stride + 1
    P = Ho * Wo  # patch rows per image
    FbT = np.empty((k * k * C + 1, O), W.dtype)  # [F b].T, laid out for the product (faster than a transposed view)
    FbT[:-1] = W.transpose(2, 3, 1, 0).reshape(-1, O)
    FbT[-1] = b
    cols = np.empty((N * P, k * k * C + 1), np.result_type(x, W))
    out = np.empty((N * P, O), cols.dtype)

    def images(sl: slice) -> None:  # patches and product of some images
        rows = slice(sl.start * P, sl.stop * P)
        _fill_patches(x[sl], cols[rows], k, stride, padding)
        np.matmul(cols[rows], FbT, out=out[rows])  # (n Ho Wo, O), bias included

    threads.map_blocks(images, N)
    return out.reshape(N, Ho, Wo, O).transpose(0, 3, 1, 2), (cols, x.shape, stride, padding)


def conv2d_backward(
    cache, grad: np.ndarray, W: np.ndarray, dW: np.ndarray, db: np.ndarray, input_grad: bool
) -> np.ndarray | None:
    """Fill ``dW``, ``db`` and return dL/dx for :func:`conv2d_forward`'s ``cache``."""
    cols, (N, C, H, Wd), s, p = cache
    O, _, k, _ = W.shape
    Ho, Wo = grad.shape[2:]
    P = Ho * Wo
    g = grad.transpose(0, 2, 3, 1).reshape(-1, O)  # (N Ho Wo, O)
    # [dF db] = dY.T @ [X 1], a sum over every patch row: each thread sums its images, then the parts add up
    dFb = sum(threads.map_blocks(lambda sl: g[sl.start * P : sl.stop * P].T @ cols[sl.start * P : sl.stop * P], N))
    dW[...] = dFb[:, :-1].reshape(O, k, k, C).transpose(0, 3, 1, 2)
    db[...] = dFb[:, -1]
    if not input_grad:
        return None
    # col2im, one kernel offset at a time: dX[window (i, j)] += dY @ W[:, :, i, j]. Each product lands in
    # one contiguous (n, Ho, Wo, C) array, so the strided add reads memory in order, where one big product
    # would be scattered from its (k, k, C)-interleaved columns.
    Wt = np.ascontiguousarray(W.transpose(2, 3, 0, 1))  # (k, k, O, C), BLAS-ready
    dxp = np.empty((N, H + 2 * p, Wd + 2 * p, C), g.dtype)  # channels-last, padded

    def images(sl: slice) -> None:
        d = dxp[sl]
        d[...] = 0
        gi = g[sl.start * P : sl.stop * P]
        part = np.empty((len(gi), C), g.dtype)
        for i in range(k):
            for j in range(k):
                np.matmul(gi, Wt[i, j], out=part)
                d[:, i : i + s * (Ho - 1) + 1 : s, j : j + s * (Wo - 1) + 1 : s] += part.reshape(-1, Ho, Wo, C)

    threads.map_blocks(images, N)
    return dxp[:, p : p + H, p : p + Wd].transpose(0, 3, 1, 2)  # (N, C, H, W) view


def _fill_patches(x: np.ndarray, cols: np.ndarray, k: int, s: int, p: int) -> None:
    """Write the patch matrix ``[X 1]`` of (n, C, H, W) images ``x`` into ``cols`` (n Ho Wo, k k C + 1)."""
    n, C, H, W = x.shape
    K = k * k * C
    if C == 1:
        # One gather with precomputed flat indices (into each padded image followed by a 1) moves every
        # patch pixel in one loop; copying a window view would move k pixels per inner loop.
        Hp, Wp = H + 2 * p, W + 2 * p
        flat = np.empty((n, Hp * Wp + 1), cols.dtype)
        flat[:, -1] = 1
        img = flat[:, :-1].reshape(n, Hp, Wp)
        if p:
            img[...] = 0
        img[:, p : p + H, p : p + W] = x[:, 0]
        np.take(flat, _gather_index(H, W, k, s, p), axis=1, out=cols.reshape(n, -1), mode="clip")
        return
    cols[:, K] = 1
    xh = x.transpose(0, 2, 3, 1)  # (n, H, W, C) view
    if p:
        xh = np.pad(xh, ((0, 0), (p, p), (p, p), (0, 0)))
    win = sliding_window_view(xh, (k, k), axis=(1, 2))[:, ::s, ::s]  # (n, Ho, Wo, C, k, k) view
    # one copy into the columns before the ones (reshaping that view only splits axes: still a view)
    cols[:, :K].reshape(n, *win.shape[1:3], k, k, C)[...] = win.transpose(0, 1, 2, 4, 5, 3)


@lru_cache(maxsize=32)
def _gather_index(H: int, W: int, k: int, s: int, p: int) -> np.ndarray:
    """Flat indices of every patch pixel in a padded one-channel image, each patch followed by its 1."""
    Hp, Wp = H + 2 * p, W + 2 * p
    Ho, Wo = (Hp - k) // s + 1, (Wp - k) // s + 1
    r = np.arange(Ho)[:, None, None, None] * s + np.arange(k)[None, None, :, None]  # (Ho, 1, k, 1)
    c = np.arange(Wo)[None, :, None, None] * s + np.arange(k)[None, None, None, :]  # (1, Wo, 1, k)
    idx = (r * Wp + c).reshape(Ho, Wo, k * k)
    ones = np.full((Ho, Wo, 1), Hp * Wp)
    index = np.concatenate([idx, ones], axis=2).ravel()
    index.flags.writeable = False  # shared by every call: read-only
    return index


# -- MaxPool2D 2 x 2, stride 2: two pairwise maxima over the channels-last view -----------------------------
def maxpool2x2_forward(x: np.ndarray, training: bool):
    """The maximum of each 2 x 2 window, and (training) which element of each pair won.

    First the maximum of each horizontal pair, then of each vertical pair of
    those. The channel axis stays innermost, so for a conv layer's
    channels-last output each step runs over contiguous rows. Ties: a pair's
    second element wins only if strictly greater, so the gradient goes to the
    first maximum in row-major window order, as ``argmax`` (and PyTorch) pick.
    """
    N, C, H, W = x.shape
    Ho, Wo = H // 2, W // 2
    xh = x.transpose(0, 2, 3, 1)[:, : 2 * Ho, : 2 * Wo]  # (N, H', W', C) view; odd edges dropped
    out = np.empty((N, Ho, Wo, C), x.dtype)
    right_won = np.empty((N, 2 * Ho, Wo, C), bool) if training else None
    bottom_won = np.empty((N, Ho, Wo, C), bool) if training else None

    def images(sl: slice) -> None:
        left, right = xh[sl, :, 0::2], xh[sl, :, 1::2]  # (n, H', Wo, C) each
        rows = np.maximum(left, right)  # each horizontal pair's maximum
        top, bottom = rows[:, 0::2], rows[:, 1::2]  # (n, Ho, Wo, C) each
        np.maximum(top, bottom, out=out[sl])
        if right_won is not None and bottom_won is not None:
            np.greater(right, left, out=right_won[sl])
            np.greater(bottom, top, out=bottom_won[sl])

    threads.map_blocks(images, N)
    return out.transpose(0, 3, 1, 2), (right_won, bottom_won, x.shape)  # (N, C, Ho, Wo) view


def maxpool2x2_backward(cache, grad: np.ndarray) -> np.ndarray:
    """dL/dx for :func:`maxpool2x2_forward`: each window's gradient to the element that won it."""
    right_won, bottom_won, (N, C, H, W) = cache
    Ho, Wo = grad.shape[2:]
    g = grad.transpose(0, 2, 3, 1)  # (N, Ho, Wo, C)
    dx = np.empty((N, H, W, C), grad.dtype)  # channels-last, like the forward input

    def images(sl: slice) -> None:
        gs, d = g[sl], dx[sl]
        g_rows = np.empty((len(gs), 2 * Ho, Wo, C), grad.dtype)  # gradient of each pair maximum
        np.multiply(gs, bottom_won[sl], out=g_rows[:, 1::2])
        np.subtract(gs, g_rows[:, 1::2], out=g_rows[:, 0::2])  # g - g * won: exactly g or 0
        np.multiply(g_rows, right_won[sl], out=d[:, : 2 * Ho, 1 : 2 * Wo : 2])
        np.subtract(g_rows, d[:, : 2 * Ho, 1 : 2 * Wo : 2], out=d[:, : 2 * Ho, 0 : 2 * Wo : 2])
        if H % 2:
            d[:, -1] = 0  # the dropped odd row and column
        if W % 2:
            d[:, :, -1] = 0

    threads.map_blocks(images, N)
    return dx.transpose(0, 3, 1, 2)  # (N, C, H, W) view


# -- BatchNorm in training: column sums as matrix-vector products, in place ------------------------------------
def _colsum(a: np.ndarray) -> np.ndarray:
    return np.ones(a.shape[0], a.dtype) @ a  # (M,) @ (M, F) -> (F,)


WIDE_ROW = 2048  # values in one grouped row of _wide


@lru_cache(maxsize=64)
def _row_group(m: int, f: int) -> int:
    """The most rows of ``f`` values, dividing ``m``, that make at most ``WIDE_ROW`` values together."""
    return next(k for k in range(max(1, min(m, WIDE_ROW // f)), 0, -1) if m % k == 0)


def _wide(a: np.ndarray, *rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """A C-contiguous (M, F) ``a`` seen as (M / k, k F) and each (F,) row tiled k times to match.

    Broadcasting an (F,) row over (M, F) runs NumPy's inner loop F values at a
    time, once per row: for BatchNorm2D's few channels (32 for a 128-image batch
    of 12 x 12 maps: 18,432 rows) that loop overhead costs more than the
    arithmetic. Grouping k rows into one makes the same operations, on the same
    values, run in long loops. An ``a`` that is not C-contiguous is returned as it is.
    """
    m, f = a.shape
    if not a.flags.c_contiguous or f > 128 or m * f < 65536:  # small arrays: not worth the tiling
        return (a, *rows)
    k = _row_group(m, f)
    return (a.reshape(m // k, k * f), *(np.tile(r, k) for r in rows))


def batchnorm_train_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float):
    """``(y, xh, inv_std, mean, var)`` for (M, F) input normalised with its batch statistics."""
    m = x.shape[0]
    mean = _colsum(x) / m
    xw, mean_w = _wide(x, mean)
    xc = (xw - mean_w).reshape(x.shape)  # a new C-contiguous array
    var = _colsum(xc * xc) / m
    inv_std = 1.0 / np.sqrt(var + eps)
    xc_w, inv_w, gamma_w, beta_w = _wide(xc, inv_std, gamma, beta)
    xc_w *= inv_w  # xc is now the normalised input xh
    out = np.multiply(xc_w, gamma_w)
    out += beta_w
    return out.reshape(x.shape), xc, inv_std, mean, var


def batchnorm_backward(
    grad: np.ndarray,
    xh: np.ndarray,
    inv_std: np.ndarray,
    gamma: np.ndarray,
    dgamma: np.ndarray,
    dbeta: np.ndarray,
    input_grad: bool,
) -> np.ndarray | None:
    """Fill ``dgamma``, ``dbeta`` and return dL/dx, the reference formula with in-place steps."""
    m = grad.shape[0]
    dbeta[...] = _colsum(grad)
    dgamma[...] = _colsum(grad * xh)
    if not input_grad:
        return None
    dx = np.multiply(grad, m)  # a new C-contiguous array, like xh
    dx_w, dbeta_w, dgamma_w, scale_w = _wide(dx, dbeta, dgamma, gamma * inv_std / m)
    dx_w -= dbeta_w
    dx_w -= xh.reshape(dx_w.shape) * dgamma_w
    dx_w *= scale_w
    return dx


# -- softmax cross-entropy, class-major --------------------------------------------------------------------
_TINY = {np.dtype(t).char: np.finfo(t).tiny for t in (np.float32, np.float64)}


def softmax_ce_forward(logits: np.ndarray, labels: np.ndarray, label_smoothing: float, work: dict):
    """Mean cross-entropy and the state :func:`softmax_ce_backward` needs.

    The probabilities are computed class-major, (K, B), in a reused array;
    ``logits`` is left unchanged.
    """
    B, K = logits.shape
    pt = scratch(work, "probs", (K, B), logits.dtype)
    np.copyto(pt, logits.T)  # (B, K) -> (K, B)
    pt -= pt.max(axis=0)  # each sample's largest logit is now 0
    np.exp(pt, out=pt)
    pt /= pt.sum(axis=0)  # pt now holds the softmax probabilities
    index = _samples(B, work)
    # log p_y, clipped so a probability that underflowed to 0 gives a large finite loss
    logp_y = pt[labels, index]
    np.maximum(logp_y, _TINY.get(pt.dtype.char) or np.finfo(pt.dtype).tiny, out=logp_y)
    np.log(logp_y, out=logp_y)
    if label_smoothing == 0.0:
        loss = -float(logp_y.sum()) / B
    else:
        z = logits - logits.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = float(-((1 - label_smoothing) * logp_y + label_smoothing * logp.mean(axis=1)).mean())
    return loss, (pt, labels, index)


def softmax_ce_backward(state, label_smoothing: float) -> np.ndarray:
    """``(p - t) / B`` written over the probabilities; a (B, K) transposed view (Fortran order)."""
    gt, labels, index = state  # (K, B)
    K, B = gt.shape
    if label_smoothing:
        gt -= label_smoothing / K
    gt[labels, index] -= 1.0 - label_smoothing
    gt /= B
    return gt.T  # (K, B) -> (B, K) view


def _samples(B: int, work: dict) -> np.ndarray:
    """``arange(B)``, kept between batches."""
    index = work.get("samples")
    if index is None or len(index) < B:
        index = work["samples"] = np.arange(B)
    return index[:B]
