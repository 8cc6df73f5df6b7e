"""The edge side's golden model: NumPy executor, Gemmini matmul model, bf16 rounding."""

from edgefptt.edge.bf16 import from_bf16_bits, round_bf16, to_bf16, to_bf16_bits
from edgefptt.edge.executor import ExecutionResult, execute
from edgefptt.edge.gemmini import tiled_matmul
from edgefptt.edge.numerics import CountingNumerics, Numerics

__all__ = [
    "CountingNumerics",
    "ExecutionResult",
    "Numerics",
    "execute",
    "from_bf16_bits",
    "round_bf16",
    "tiled_matmul",
    "to_bf16",
    "to_bf16_bits",
]
