"""Arithmetic operation counts of a workload, per phase (forward, backward, update).

Convention (whole pass, all B sequences and K partitions):
- a matmul of m x k by k x n counts m*n*k multiplies and m*n*k adds (one multiply-accumulate
  per term; a bias or accumulated D rides on those adds), plus m*k multiplies for an A scale;
- element-wise, reduction and update kernels count each arithmetic operation their golden
  implementation performs, per element: add/sub, mul/div; exp, log, tanh and sigmoid count
  as one nonlinear evaluation each (a sigmoid's own add and divide are not counted again);
- comparisons (the max of a stable softmax) and data movement count nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgefptt.edge.numerics import CountingNumerics
from edgefptt.edge.ops import OPS
from edgefptt.workload.kernels import Kernel, Workload

PHASES = ("forward", "backward", "update")


@dataclass
class OpCounts:
    add_sub: int = 0
    mul_div: int = 0
    nonlinear: int = 0

    def __iadd__(self, other: OpCounts) -> OpCounts:
        self.add_sub += other.add_sub
        self.mul_div += other.mul_div
        self.nonlinear += other.nonlinear
        return self

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def kernel_ops(kernel: Kernel, workload: Workload) -> OpCounts:
    """Operations of one kernel (see the module docstring)."""
    if kernel.matmul is not None:
        mm = kernel.matmul
        macs = mm.m * mm.n * mm.k
        return OpCounts(macs, macs + (mm.m * mm.k if mm.a_scale != 1.0 else 0), 0)
    counter = CountingNumerics()
    ins = []
    for view in kernel.reads:
        if workload.buffers[view.buffer].dtype == "int32":
            ins.append(np.zeros(view.shape, dtype=np.int64))
        else:
            ins.append(np.full(view.shape, 0.5))
    OPS[kernel.op](counter, ins, kernel)
    return OpCounts(counter.add_sub, counter.mul_div, counter.nonlinear)


def count_ops(workload: Workload) -> dict[str, OpCounts]:
    """Operation counts per phase, summed over every kernel of the pass."""
    totals = {phase: OpCounts() for phase in PHASES}
    cache: dict[tuple, OpCounts] = {}
    for kernel in workload.kernels:
        key = (
            kernel.op,
            kernel.matmul,
            tuple(v.shape for v in kernel.reads),
            tuple(v.shape for v in kernel.writes),
            kernel.attrs,
        )
        if key not in cache:
            cache[key] = kernel_ops(kernel, workload)
        totals[kernel.phase] += cache[key]
    return totals
