"""A functional model of Gemmini's tiled matmul (see docs/workload.md and gemmini.md).

    C = act(scale * (A' @ B' + D'))     A' = a_scale * op(A), B' = b_scale * op(B),
                                        D' = d_scale * D (one row repeated if repeating_bias)

Inputs are rounded to the input type on the way in, products accumulate in the accumulator type
(partial sums rounded to it after every DIM-wide slice of K, one multiply-accumulate at a time
for a bf16 accumulator), and the result is written in the input type, or raw in the accumulator
type with ``full_c`` (no scale, no activation).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from edgefptt.edge.bf16 import Rounding, round_bf16
from edgefptt.errors import ConfigError

ElementType = Literal["fp64", "fp32", "bf16"]
Dataflow = Literal["WS", "OS", "CPU"]


def round_to(x: np.ndarray, kind: ElementType, rounding: Rounding = "rne") -> np.ndarray:
    """``x`` in an element type (bf16 values are returned widened to float32)."""
    if kind == "fp64":
        return np.asarray(x, dtype=np.float64)
    if kind == "fp32":
        return np.asarray(x, dtype=np.float32)
    if kind == "bf16":
        return round_bf16(np.asarray(x, dtype=np.float32), rounding)
    raise ConfigError(f"unknown element type {kind!r}; use fp64, fp32 or bf16")


def check_flags(
    dataflow: Dataflow, transpose_a: bool, transpose_b: bool, low_d: bool, activation: str
) -> None:
    """Reject the calls the Gemmini library rejects."""
    if dataflow not in ("WS", "OS", "CPU"):
        raise ConfigError(f"unknown dataflow {dataflow!r}; use WS, OS or CPU")
    if dataflow == "WS" and transpose_a and transpose_b:
        raise ConfigError("Gemmini WS dataflow cannot transpose A and B together")
    if dataflow == "OS" and (transpose_a or transpose_b):
        raise ConfigError("Gemmini OS dataflow does not support transposed operands")
    if dataflow == "OS" and low_d:
        raise ConfigError("Gemmini OS dataflow does not support low_D")
    if activation not in ("none", "relu"):
        raise ConfigError(f"unsupported matmul activation {activation!r}; use none or relu")


def tiled_matmul(
    a: np.ndarray,
    b: np.ndarray,
    d: np.ndarray | None = None,
    *,
    transpose_a: bool = False,
    transpose_b: bool = False,
    repeating_bias: bool = False,
    low_d: bool = False,
    a_scale: float = 1.0,
    b_scale: float = 1.0,
    d_scale: float = 1.0,
    scale: float = 1.0,
    activation: Literal["none", "relu"] = "none",
    full_c: bool = False,
    dataflow: Dataflow = "WS",
    input_type: ElementType = "fp32",
    acc_type: ElementType = "fp32",
    dim: int = 4,
    rounding: Rounding = "rne",
) -> np.ndarray:
    """C = act(scale * (A' @ B' + D')) with Gemmini's semantics; see the module docstring."""
    check_flags(dataflow, transpose_a, transpose_b, low_d, activation)
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ConfigError(f"matmul operands must be 2-D (got {a.shape} and {b.shape})")
    a_in = round_to(
        round_to(a.T if transpose_a else a, input_type, rounding) * a_scale, input_type, rounding
    )
    b_in = round_to(
        round_to(b.T if transpose_b else b, input_type, rounding) * b_scale, input_type, rounding
    )
    m, k = a_in.shape
    if b_in.shape[0] != k:
        raise ConfigError(f"matmul inner sizes differ: A' is {a_in.shape}, B' is {b_in.shape}")
    n = b_in.shape[1]
    work = np.float64  # products and sums before rounding to the accumulator type
    acc = np.zeros((m, n), dtype=work)
    if d is not None:
        d = np.asarray(d)
        if repeating_bias or d.ndim == 1:
            d = d.reshape(1, -1)
        if d.shape[-1] != n or (not repeating_bias and d.shape[0] != m):
            raise ConfigError(f"bias D of shape {d.shape} does not fit a {m} x {n} result")
        d_in = round_to(d, input_type if low_d else acc_type, rounding)
        acc = acc + round_to(d_in * d_scale, acc_type, rounding)
    acc = round_to(acc, acc_type, rounding).astype(work)
    a64, b64 = a_in.astype(work), b_in.astype(work)
    if acc_type == "fp64":
        acc = acc + a64 @ b64
    elif acc_type == "bf16":
        # A bf16 accumulator rounds after every multiply-accumulate, in K order.
        for kk in range(k):
            acc = round_to(acc + np.outer(a64[:, kk], b64[kk]), acc_type, rounding).astype(work)
    else:
        for k0 in range(0, k, dim):
            part = a64[:, k0 : k0 + dim] @ b64[k0 : k0 + dim]
            acc = round_to(acc + part, acc_type, rounding).astype(work)
    if full_c:
        return round_to(acc, acc_type, rounding)
    out = acc * scale
    if activation == "relu":
        out = np.maximum(out, 0.0)
    return round_to(out, input_type, rounding)
