"""bfloat16 rounding from float32, in the two modes the project needs.

- ``rne``: round to nearest, ties to even (IEEE default; what ml_dtypes and Gemmini do).
- ``away``: round to nearest, ties away from zero, the way the seed paper's C code rounds on the
  Rocket core: add 0x8000 to the float32 bits and keep the top 16. NaN stays NaN (the raw trick
  would turn some NaNs into inf or -0); finite values at or above the last half-step overflow to
  inf, as the trick does.
"""

from __future__ import annotations

from typing import Literal

import ml_dtypes
import numpy as np

Rounding = Literal["rne", "away"]
bfloat16 = ml_dtypes.bfloat16


def to_bf16_bits(x: np.ndarray | float, mode: Rounding = "rne") -> np.ndarray:
    """The 16-bit patterns (uint16) of float32 ``x`` rounded to bfloat16."""
    f = np.asarray(x, dtype=np.float32)
    if mode == "rne":
        with np.errstate(invalid="ignore"):  # NaN converts to NaN; numpy warns regardless
            return f.astype(bfloat16).view(np.uint16)
    if mode != "away":
        raise ValueError(f"unknown bf16 rounding mode {mode!r}; use 'rne' or 'away'")
    bits = f.view(np.uint32)
    rounded = ((bits + np.uint32(0x8000)) >> np.uint32(16)).astype(np.uint16)
    # A quiet NaN with the input's sign: the carry of the add could otherwise reach the sign.
    quiet_nan = ((bits >> np.uint32(16)) | np.uint32(0x0040)).astype(np.uint16)
    return np.where(np.isnan(f), quiet_nan, rounded)


def from_bf16_bits(bits: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (exact: bf16 is the top half of float32)."""
    b = np.asarray(bits, dtype=np.uint16)
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


def round_bf16(x: np.ndarray | float, mode: Rounding = "rne") -> np.ndarray:
    """``x`` rounded to bfloat16 and widened back to float32 (the core's working format)."""
    return from_bf16_bits(to_bf16_bits(x, mode))


def to_bf16(x: np.ndarray | float, mode: Rounding = "rne") -> np.ndarray:
    """``x`` as an ml_dtypes bfloat16 array."""
    return to_bf16_bits(x, mode).view(bfloat16)
