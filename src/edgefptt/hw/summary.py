"""A workload summarised for costing: each distinct kernel shape once, with how often it runs.

The paper's pass has tens of thousands of kernels but only about thirty distinct shapes, so a
hardware model costs the shapes once per design point instead of walking the kernel list.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.workload import build_workload
from edgefptt.workload.kernels import GROUPS, Kernel, MatmulSpec, Workload


@dataclass(frozen=True, slots=True)
class KernelShape:
    """What the cost of a kernel depends on.

    ``work`` is the number of elements the kernel walks: its output elements, or for a bias
    gradient the elements it sums. ``contiguous`` (copies only) is true when source and
    destination are whole buffers, so the copy is a block move rather than a per-row loop.
    """

    group: str
    kind: str
    op: str
    phase: str
    elements: int
    work: int
    contiguous: bool = True
    matmul: MatmulSpec | None = None


@dataclass(frozen=True)
class WorkloadSummary:
    """Distinct kernel shapes of one pass and their call counts."""

    schedule: str
    partitions: int
    shapes: tuple[tuple[KernelShape, int], ...]
    # A small integer per distinct shape and per summary, so that cost caches hash ints.
    shape_ids: tuple[int, ...] = ()
    token: int = 0

    @property
    def num_kernels(self) -> int:
        return sum(n for _, n in self.shapes)

    def calls(self) -> dict[str, int]:
        """Kernel calls per group."""
        out = dict.fromkeys(GROUPS, 0)
        for shape, n in self.shapes:
            out[shape.group] += n
        return out


def _whole(view, workload: Workload) -> bool:
    return view.cols is None and view.rows is None


def kernel_shape(kernel: Kernel, workload: Workload) -> KernelShape:
    """The cost-relevant description of one kernel."""
    work = kernel.elements
    if kernel.kind == "reduction" and kernel.reads:
        work = kernel.reads[0].elements
    contiguous = True
    if kernel.kind == "copy":
        contiguous = all(_whole(v, workload) for v in (*kernel.reads, *kernel.writes))
    return KernelShape(
        group=kernel.group,
        kind=kernel.kind,
        op=kernel.op,
        phase=kernel.phase,
        elements=kernel.elements,
        work=work,
        contiguous=contiguous,
        matmul=kernel.matmul,
    )


def summarize(workload: Workload) -> WorkloadSummary:
    """Count the workload's kernels by shape (order of first appearance)."""
    counts: Counter[KernelShape] = Counter()
    for kernel in workload.kernels:
        counts[kernel_shape(kernel, workload)] += 1
    ids = tuple(_SHAPE_IDS.setdefault(shape, len(_SHAPE_IDS)) for shape in counts)
    global _TOKENS
    _TOKENS += 1
    return WorkloadSummary(
        workload.schedule, workload.run.partitions, tuple(counts.items()), ids, _TOKENS
    )


_SHAPE_IDS: dict[KernelShape, int] = {}
_TOKENS = 0


@lru_cache(maxsize=256)
def _cached(net: NetworkSpec, run: RunSpec) -> WorkloadSummary:
    return summarize(build_workload(net, run))


def workload_summary(net: NetworkSpec, run: RunSpec) -> WorkloadSummary:
    """The summary of the pass ``(net, run)``, built once per distinct pass and then cached.

    The element type does not change which kernels run, so runs that differ only in dtype
    share one summary.
    """
    return _cached(net, run.model_copy(update={"dtype": "fp32"}))
