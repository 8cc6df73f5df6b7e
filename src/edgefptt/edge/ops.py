"""Element-wise, reduction and update kernels of the workload, written against Numerics.

Each function takes the numerics, the kernel's read operands (in order) and the kernel, and
returns its write operands (in order). Every arithmetic step goes through ``n`` so that bf16
rounds after each operation and the op counter sees every operation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgefptt.edge.numerics import Numerics
from edgefptt.workload.kernels import Kernel

Array = np.ndarray
OpFn = Callable[[Numerics, list[Array], Kernel], list[Array]]


def _split4(x: Array) -> list[Array]:
    h = x.shape[-1] // 4
    return [x[..., j * h : (j + 1) * h] for j in range(4)]


def _dsigmoid(n: Numerics, y: Array) -> Array:
    """sigma'(z) from y = sigma(z): y * (1 - y)."""
    return n.mul(y, n.sub(1.0, y))


def _dtanh(n: Numerics, y: Array) -> Array:
    """tanh'(z) from y = tanh(z): 1 - y^2."""
    return n.sub(1.0, n.mul(y, y))


def _row_sum(n: Numerics, x: Array) -> Array:
    """Sum over the last axis, one rounded add at a time (as the C loops do)."""
    acc = x[..., 0]
    for j in range(1, x.shape[-1]):
        acc = n.add(acc, x[..., j])
    return acc


def _softmax(n: Numerics, z: Array) -> Array:
    shifted = n.sub(z, np.max(z, axis=-1, keepdims=True))  # max: comparisons, not counted
    e = n.exp(shifted)
    return n.div(e, _row_sum(n, e)[..., None])


def _xent(n: Numerics, probs: Array, labels: Array) -> list[Array]:
    """dy = probs - onehot(labels); loss = batch mean of -log probs[label]."""
    onehot = np.zeros_like(probs)
    onehot[np.arange(probs.shape[0]), labels.astype(np.int64)] = 1.0
    dy = n.sub(probs, onehot)
    picked = probs[np.arange(probs.shape[0]), labels.astype(np.int64)]
    loss = n.div(_row_sum(n, n.log(picked)[None, :]), -float(probs.shape[0]))
    return [dy, np.reshape(loss, (1,))]


def sigmoid(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    return [n.sigmoid(r[0])]


def tanh(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    return [n.tanh(r[0])]


def mul(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    return [n.mul(r[0], r[1])]


def cell_state(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    """c = f * c_prev + i * g."""
    f, c_prev, i, g = r
    return [n.add(n.mul(f, c_prev), n.mul(i, g))]


def softmax(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    return [_softmax(n, r[0])]


def xent_grad(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    return _xent(n, r[0], r[1])


def softmax_xent(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    return _xent(n, _softmax(n, r[0]), r[1])


def _gates(n: Numerics, pre: Array) -> list[Array]:
    zi, zf, zg, zo = _split4(pre)
    return [n.sigmoid(zi), n.sigmoid(zf), n.tanh(zg), n.sigmoid(zo)]


def lstm_gates(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    """Gate activations of a (B, 4H) pre-activation block: sigmoid on i, f, o; tanh on g."""
    return [np.concatenate(_gates(n, r[0]), axis=-1)]


def lstm_cell_forward(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    """(pre, c_prev) -> (i|f|g|o, c, h[, tanh(c)])."""
    pre, c_prev = r
    i, f, g, o = _gates(n, pre)
    c = n.add(n.mul(f, c_prev), n.mul(i, g))
    tc = n.tanh(c)
    out = [np.concatenate([i, f, g, o], axis=-1), c, n.mul(o, tc)]
    return [*out, tc] if len(k.writes) == 4 else out


def lstm_cell_backward(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    """(dh, dc, i|f|g|o, c_prev, tanh(c) or c) -> (d pre-activations, dc of the step before)."""
    dh, dc, act, c_prev, tanh_src = r
    i, f, g, o = _split4(act)
    tc = tanh_src if k.attr("tanh_stored", 1) else n.tanh(tanh_src)
    dc_total = n.add(dc, n.mul(n.mul(dh, o), _dtanh(n, tc)))
    d_i = n.mul(n.mul(dc_total, g), _dsigmoid(n, i))
    d_f = n.mul(n.mul(dc_total, c_prev), _dsigmoid(n, f))
    d_g = n.mul(n.mul(dc_total, i), _dtanh(n, g))
    d_o = n.mul(n.mul(dh, tc), _dsigmoid(n, o))
    return [np.concatenate([d_i, d_f, d_g, d_o], axis=-1), n.mul(dc_total, f)]


def add(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    """a + b (a lower layer's dh plus the gradient from the layer above)."""
    return [n.add(r[0], r[1])]


def _gru_gates(n: Numerics, block: Array) -> list[Array]:
    """(r_pre | z_pre | W_in x + b_in | hn) -> r, z, n, hn with n = tanh(nx + r * hn)."""
    zr, zz, nx, hn = _split4(block)
    r = n.sigmoid(zr)
    return [r, n.sigmoid(zz), n.tanh(n.add(nx, n.mul(r, hn))), hn]


def gru_gates(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    """Gate activations of a (B, 4H) GRU block (recomputation): r, z, n, hn."""
    return [np.concatenate(_gru_gates(n, r[0]), axis=-1)]


def gru_cell_forward(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    """(pre block, h_prev) -> (r|z|n|hn, h) with h = n + z * (h_prev - n), torch's
    (1 - z) * n + z * h_prev in one multiply."""
    block, h_prev = r
    r_g, z, n_g, hn = _gru_gates(n, block)
    h = n.add(n_g, n.mul(z, n.sub(h_prev, n_g)))
    return [np.concatenate([r_g, z, n_g, hn], axis=-1), h]


def gru_cell_backward(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    """(dh, r|z|n|hn, h_prev) -> (dr | dz | dn | dhn pre-activation gradients, dh * z).

    dn = dh (1 - z) tanh'(n) is also the gradient of W_in x + b_in; dhn = dn r that of
    W_hn h + b_hn; dr = dn hn sigma'(r); dz = dh (h_prev - n) sigma'(z). The direct part of
    the gradient of h_prev, dh * z, is returned; the matmuls through W_h add the rest.
    """
    dh, act, h_prev = r
    r_g, z, n_g, hn = _split4(act)
    d_n = n.mul(n.mul(dh, n.sub(1.0, z)), _dtanh(n, n_g))
    d_r = n.mul(n.mul(d_n, hn), _dsigmoid(n, r_g))
    d_z = n.mul(n.mul(dh, n.sub(h_prev, n_g)), _dsigmoid(n, z))
    d_hn = n.mul(d_n, r_g)
    return [np.concatenate([d_r, d_z, d_n, d_hn], axis=-1), n.mul(dh, z)]


def lstm_grad_output(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    """Paper: (dh, o, tanh c) -> (dc rebuilt from dh, do, do_in)."""
    dh, o, tc = r
    dc = n.mul(n.mul(dh, o), _dtanh(n, tc))
    do = n.mul(dh, tc)
    return [dc, do, n.mul(do, _dsigmoid(n, o))]


def lstm_grad_gates(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    """Paper: (dc, i, f, g, c_prev) -> (di, df, dg, [di_in | df_in | dg_in])."""
    dc, i, f, g, c_prev = r
    di, df, dg = n.mul(dc, g), n.mul(dc, c_prev), n.mul(dc, i)
    d_in = [n.mul(di, _dsigmoid(n, i)), n.mul(df, _dsigmoid(n, f)), n.mul(dg, _dtanh(n, g))]
    return [di, df, dg, np.concatenate(d_in, axis=-1)]


def bias_grad(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    """db += scale * (sum of the rows of V), V possibly stacked over steps."""
    values, db = r
    rows = values.reshape(-1, values.shape[-1])
    acc = rows[0]
    for row in rows[1:]:
        acc = n.add(acc, row)
    return [n.add(db, n.mul(acc, float(k.attr("scale", 1.0))))]


def fptt_sgd(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    """The fused FPTT-SGD loop of the seed paper, for one tensor; returns (W, W_bar, lam, 0)."""
    w, grad, w_bar, lam = r
    lr, alpha = float(k.attr("lr")), float(k.attr("alpha"))
    beta, coef = float(k.attr("beta")), float(k.attr("linear_coef"))
    linear = lam if coef == 1.0 else n.mul(coef, lam)
    w = n.sub(w, n.mul(lr, n.add(n.sub(grad, linear), n.mul(alpha, n.sub(w, w_bar)))))
    lam = n.sub(lam, n.mul(alpha, n.sub(w, w_bar)))
    if beta == 0.5:  # the paper's form: one multiply fewer
        mixed = n.mul(0.5, n.add(w_bar, w))
    else:
        mixed = n.add(w_bar, n.mul(beta, n.sub(w, w_bar)))
    w_bar = n.sub(mixed, n.mul(beta / alpha, lam))
    return [w, w_bar, lam, np.zeros_like(grad)]


def zero(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    return [np.zeros(k.writes[0].shape, dtype=n.dtype)]


def copy(n: Numerics, r: list[Array], k: Kernel) -> list[Array]:
    return [r[0]]


OPS: dict[str, OpFn] = {
    fn.__name__: fn
    for fn in (
        sigmoid,
        tanh,
        mul,
        cell_state,
        softmax,
        xent_grad,
        softmax_xent,
        lstm_gates,
        lstm_cell_forward,
        lstm_cell_backward,
        lstm_grad_output,
        lstm_grad_gates,
        add,
        gru_gates,
        gru_cell_forward,
        gru_cell_backward,
        bias_grad,
        fptt_sgd,
        zero,
        copy,
    )
}
