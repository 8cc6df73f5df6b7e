"""Memory plans of the training pass: the seed paper's static layout, and lifetime-aware arenas.

Every plan reports the same breakdown (bytes): parameters, gradients, fptt_state (W_bar, lam),
carried_state (h and c between partitions), activations (per-step values kept for backward)
and scratch (the rest of the arena). The floor is the parameter state alone: parameters,
gradients and FPTT state, 4 * P elements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.errors import ConfigError
from edgefptt.workload import build_exact, build_workload
from edgefptt.workload.kernels import Workload

PlanKind = Literal["paper", "lifetime", "recompute"]
PLANS = ("paper", "lifetime", "recompute")
CATEGORIES = (
    "parameters",
    "gradients",
    "fptt_state",
    "carried_state",
    "activations",
    "scratch",
)
_ROLE_CATEGORY = {
    "parameter": "parameters",
    "gradient": "gradients",
    "fptt_state": "fptt_state",
    "carried_state": "carried_state",
    "activation": "activations",
    "scratch": "scratch",
}


@dataclass(frozen=True)
class Allocation:
    """One buffer's place in the arena and when it is live (kernel index ranges)."""

    name: str
    offset_bytes: int
    size_bytes: int
    role: str
    live: tuple[tuple[int, int], ...]


@dataclass
class MemoryPlan:
    """An arena: its size, floor, breakdown and (for planned layouts) every buffer's place."""

    plan: str
    schedule: str
    dtype: str
    total_bytes: int
    floor_bytes: int
    breakdown: dict[str, int]
    allocations: list[Allocation] = field(default_factory=list)

    @property
    def above_floor_bytes(self) -> int:
        return self.total_bytes - self.floor_bytes

    @property
    def ratio_to_floor(self) -> float:
        return self.total_bytes / self.floor_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "schedule": self.schedule,
            "dtype": self.dtype,
            "total_bytes": self.total_bytes,
            "floor_bytes": self.floor_bytes,
            "above_floor_bytes": self.above_floor_bytes,
            "ratio_to_floor": self.ratio_to_floor,
            "breakdown": dict(self.breakdown),
            "buffers": [
                {
                    "name": a.name,
                    "offset_bytes": a.offset_bytes,
                    "size_bytes": a.size_bytes,
                    "role": a.role,
                }
                for a in self.allocations
            ],
        }


def paper_layout(net: NetworkSpec, run: RunSpec) -> MemoryPlan:
    """The seed paper's static layout (docs/workload.md), exact to the byte.

    params = 4 P s (W, gradient, W_bar, lam); states = (L+1) B ((I+H) + 4H + 7H + 2C) s;
    gradient scratch = B (C + 10H) s. L is the longest partition (T/K when K divides T).
    """
    s = run.element_bytes
    i, h, c, b = net.input_size, net.hidden_size, net.num_classes, run.batch_size
    p = net.num_params
    length = run.max_partition_len
    breakdown = {
        "parameters": p * s,
        "gradients": p * s,
        "fptt_state": 2 * p * s,
        "carried_state": 0,  # slot 0 of the state arrays
        "activations": (length + 1) * b * ((i + h) + 4 * h + 7 * h + 2 * c) * s,
        "scratch": b * (c + 10 * h) * s,
    }
    return MemoryPlan(
        "paper", run.schedule, run.dtype, sum(breakdown.values()), 4 * p * s, breakdown
    )


def live_ranges(workload: Workload) -> dict[str, list[tuple[int, int]]]:
    """Per arena buffer, its live kernel-index ranges.

    Persistent buffers live for the whole pass. A partition buffer lives, in each partition,
    from its first to its last use there: its contents never cross a partition boundary (the
    carried state has its own persistent buffers).
    """
    last = len(workload.kernels) - 1
    ranges: dict[str, dict[int, list[int]]] = {}
    for j, kernel in enumerate(workload.kernels):
        for view in (*kernel.reads, *kernel.writes):
            per_partition = ranges.setdefault(view.buffer, {})
            span = per_partition.setdefault(kernel.partition, [j, j])
            span[1] = j
    out: dict[str, list[tuple[int, int]]] = {}
    for name, buf in workload.buffers.items():
        if buf.role == "external":
            continue
        if buf.scope == "persistent":
            out[name] = [(0, last)]
        else:
            out[name] = [tuple(span) for _, span in sorted(ranges.get(name, {}).items())]  # type: ignore[misc]
    return out


def _overlaps(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> bool:
    if not a or not b:
        return False
    sa, ea = np.array(a).T
    sb, eb = np.array(b).T
    return bool(np.any((sa[:, None] <= eb[None, :]) & (sb[None, :] <= ea[:, None])))


def lifetime_plan(workload: Workload, plan_name: str = "lifetime") -> MemoryPlan:
    """Place every buffer in one arena by its live ranges.

    Persistent buffers go first, back to back. Partition buffers are placed largest first at
    the lowest offset where they meet no placed buffer that is live at the same time.
    """
    ranges = live_ranges(workload)
    buffers = {n: workload.buffers[n] for n in ranges}
    allocations: list[Allocation] = []
    offset = 0
    for name, buf in buffers.items():
        if buf.scope == "persistent":
            allocations.append(Allocation(name, offset, buf.nbytes, buf.role, tuple(ranges[name])))
            offset += buf.nbytes
    base = offset
    placed: list[Allocation] = []
    partition_buffers = [b for b in buffers.values() if b.scope == "partition"]
    for buf in sorted(partition_buffers, key=lambda b: (-b.nbytes, b.name)):
        busy = sorted(
            (a.offset_bytes, a.offset_bytes + a.size_bytes)
            for a in placed
            if _overlaps(list(a.live), ranges[buf.name])
        )
        candidate = base
        for start, stop in busy:
            if candidate + buf.nbytes <= start:
                break
            candidate = max(candidate, stop)
        alloc = Allocation(buf.name, candidate, buf.nbytes, buf.role, tuple(ranges[buf.name]))
        placed.append(alloc)
    allocations += sorted(placed, key=lambda a: a.offset_bytes)
    return _arena_plan(workload, plan_name, allocations)


def static_plan(workload: Workload, plan_name: str = "paper") -> MemoryPlan:
    """Every buffer in a place of its own, back to back, live for the whole pass.

    For the paper schedule this is the seed paper's static layout (paper_layout's bytes) plus
    what it keeps elsewhere: the carried (h, c) between partitions and the loss.
    """
    last = len(workload.kernels) - 1
    allocations: list[Allocation] = []
    offset = 0
    for name, buf in workload.buffers.items():
        if buf.role == "external":
            continue
        allocations.append(Allocation(name, offset, buf.nbytes, buf.role, ((0, last),)))
        offset += buf.nbytes
    return _arena_plan(workload, plan_name, allocations)


def _arena_plan(workload: Workload, plan_name: str, allocations: list[Allocation]) -> MemoryPlan:
    total = max((a.offset_bytes + a.size_bytes for a in allocations), default=0)
    breakdown = dict.fromkeys(CATEGORIES, 0)
    for a in allocations:
        if a.role != "scratch":
            breakdown[_ROLE_CATEGORY[a.role]] += a.size_bytes
    # Scratch is what the arena needs beyond the rest (it may share space with dead buffers).
    breakdown["scratch"] = total - sum(breakdown.values())
    floor = breakdown["parameters"] + breakdown["gradients"] + breakdown["fptt_state"]
    run = workload.run
    return MemoryPlan(plan_name, workload.schedule, run.dtype, total, floor, breakdown, allocations)


def plan_memory(net: NetworkSpec, run: RunSpec, plan: str) -> MemoryPlan:
    """The memory plan ``plan`` (paper | lifetime | recompute) of the run's schedule."""
    if plan == "paper":
        if run.schedule == "checkpoint":
            raise ConfigError(
                "the paper plan is the seed paper's FPTT layout; the checkpoint schedule has "
                "the lifetime plan only (drop --plan or give --plan lifetime)"
            )
        return paper_layout(net, run)
    if plan == "lifetime":
        return lifetime_plan(build_workload(net, run))
    if plan == "recompute":
        if run.schedule != "exact":
            raise ConfigError(
                "the recompute plan is defined for the exact schedule (the paper schedule keeps "
                "every gate); use --schedule exact"
            )
        return lifetime_plan(build_exact(net, run, recompute=True), "recompute")
    raise ConfigError(f"unknown memory plan {plan!r}; choose from {', '.join(PLANS)}")
