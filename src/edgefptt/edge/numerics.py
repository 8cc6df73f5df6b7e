"""Arithmetic in the executor's precision, rounding after every operation.

Element-wise kernels are written against a :class:`Numerics` object, so that one implementation
serves float64 (verification), float32 and bfloat16 (values kept in float32 arrays and rounded
to bf16 after each operation, as on the seed paper's core), and the op counter
(:class:`CountingNumerics` counts instead of caring about values).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from edgefptt.edge.bf16 import Rounding, round_bf16

Precision = Literal["fp64", "fp32", "bf16"]


class Numerics:
    """add/sub/mul/div and the nonlinear functions, each result rounded to ``precision``."""

    def __init__(self, precision: Precision = "fp32", rounding: Rounding = "rne") -> None:
        if precision not in ("fp64", "fp32", "bf16"):
            raise ValueError(f"unknown precision {precision!r}")
        self.precision = precision
        self.rounding = rounding
        self.dtype = np.float64 if precision == "fp64" else np.float32

    def r(self, x: np.ndarray | float) -> np.ndarray:
        """Round to the working precision."""
        a = np.asarray(x, dtype=self.dtype)
        return round_bf16(a, self.rounding) if self.precision == "bf16" else a

    def add(self, a, b):
        return self.r(np.add(a, b, dtype=self.dtype))

    def sub(self, a, b):
        return self.r(np.subtract(a, b, dtype=self.dtype))

    def mul(self, a, b):
        return self.r(np.multiply(a, b, dtype=self.dtype))

    def div(self, a, b):
        return self.r(np.divide(a, b, dtype=self.dtype))

    def exp(self, a):
        return self.r(np.exp(np.asarray(a, dtype=self.dtype)))

    def log(self, a):
        return self.r(np.log(np.asarray(a, dtype=self.dtype)))

    def tanh(self, a):
        return self.r(np.tanh(np.asarray(a, dtype=self.dtype)))

    def sigmoid(self, a):
        # 1 / (1 + exp(-x)) as the C code computes it (expf, then two rounded operations).
        return self.div(1.0, self.add(1.0, self.exp(np.negative(a))))


class CountingNumerics(Numerics):
    """Counts operations per result element: add/sub, mul/div and nonlinear evaluations.

    A sigmoid is one nonlinear evaluation (its add and divide are not counted separately).
    """

    def __init__(self) -> None:
        super().__init__("fp64")
        self.add_sub = 0
        self.mul_div = 0
        self.nonlinear = 0

    @staticmethod
    def _size(a, b=None) -> int:
        return int(np.broadcast(np.asarray(a), np.asarray(0 if b is None else b)).size)

    def add(self, a, b):
        self.add_sub += self._size(a, b)
        return super().add(a, b)

    def sub(self, a, b):
        self.add_sub += self._size(a, b)
        return super().sub(a, b)

    def mul(self, a, b):
        self.mul_div += self._size(a, b)
        return super().mul(a, b)

    def div(self, a, b):
        self.mul_div += self._size(a, b)
        return super().div(a, b)

    def exp(self, a):
        self.nonlinear += self._size(a)
        return super().exp(a)

    def log(self, a):
        self.nonlinear += self._size(a)
        return super().log(a)

    def tanh(self, a):
        self.nonlinear += self._size(a)
        return super().tanh(a)

    def sigmoid(self, a):
        self.nonlinear += self._size(a)
        return Numerics.div(self, 1.0, Numerics.add(self, 1.0, Numerics.exp(self, np.negative(a))))
