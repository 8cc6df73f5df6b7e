"""The workload's vocabulary: buffers, views into them, kernels, and the workload itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edgefptt.config import DTYPE_BYTES, NetworkSpec, RunSpec

# The kernel groups of the seed paper's FireSim tables.
GROUPS = (
    "MatMul-1",
    "MatMul-2",
    "MatMul-3",
    "Mat2Vec",
    "EWO-basic",
    "EWO-combo",
    "EWO-SGD(FPTT)",
    "Sigmoid",
    "tanh",
    "softmax",
    "dataMovement",
)

Phase = Literal["forward", "backward", "update"]
# What a buffer holds; the memory planner's breakdown is by these categories.
BufferRole = Literal[
    "parameter", "gradient", "fptt_state", "carried_state", "activation", "scratch", "external"
]
# persistent: lives for the whole pass; partition: its contents die at the partition's end.
Scope = Literal["persistent", "partition"]


@dataclass(frozen=True, slots=True)
class Buffer:
    """A named array of the pass. ``external`` buffers (inputs, labels) are not in the arena."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    role: BufferRole
    scope: Scope

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        # Labels are int32 on the device; everything else has the run's element size.
        return self.elements * DTYPE_BYTES.get(self.dtype, 4)


@dataclass(frozen=True, slots=True)
class View:
    """A rectangular part of a buffer: ``buffer[index][..., rows, cols]``.

    ``index`` selects along the leading (step) axis: one slot (int) or a range (start, stop),
    which a matmul reads as the stacked (range * rows) x cols matrix. ``rows`` and ``cols``
    slice the last two axes (a gate block of W, the h columns of [x, h]).
    """

    buffer: str
    shape: tuple[int, ...]
    index: int | tuple[int, int] | None = None
    rows: tuple[int, int] | None = None
    cols: tuple[int, int] | None = None

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True, slots=True)
class MatmulSpec:
    """C (m x n) = scale * (a_scale * A' @ B' + D) with Gemmini's flags.

    bias: none (D = 0), repeating (one row of D added to every row) or matrix (full D).
    accumulate: D is the output itself (C += A' @ B'), the way weight gradients accumulate.
    """

    m: int
    n: int
    k: int
    transpose_a: bool = False
    transpose_b: bool = False
    bias: Literal["none", "repeating", "matrix"] = "none"
    a_scale: float = 1.0
    accumulate: bool = False


@dataclass(frozen=True, slots=True)
class Kernel:
    """One call of the pass. ``reads`` and ``writes`` are positional operands of ``op``.

    kind: matmul, elementwise, reduction (bias gradients), copy, or update (FPTT-SGD).
    elements: how many output elements the kernel produces (m*n for a matmul).
    """

    op: str
    kind: Literal["matmul", "elementwise", "reduction", "copy", "update"]
    group: str
    phase: Phase
    partition: int
    reads: tuple[View, ...]
    writes: tuple[View, ...]
    elements: int
    dtype: str
    step: int | None = None
    matmul: MatmulSpec | None = None
    attrs: tuple[tuple[str, float | int | str], ...] = ()

    def attr(self, key: str, default: float | int | str | None = None) -> float | int | str | None:
        for k, v in self.attrs:
            if k == key:
                return v
        return default


@dataclass
class Workload:
    """An ordered kernel list over named buffers for one training pass (all K partitions)."""

    network: NetworkSpec
    run: RunSpec
    schedule: str
    buffers: dict[str, Buffer]
    kernels: list[Kernel] = field(default_factory=list)
    # Start and stop of each partition's time steps (the host's partition rule).
    bounds: list[tuple[int, int]] = field(default_factory=list)
    recompute: bool = False

    def groups(self) -> dict[str, int]:
        """Number of kernels per group."""
        counts = dict.fromkeys(GROUPS, 0)
        for k in self.kernels:
            counts[k.group] += 1
        return counts
