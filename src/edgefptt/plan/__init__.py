"""Consumers of the workload that need no hardware: memory plans and operation counts."""

from edgefptt.plan.memory import (
    CATEGORIES,
    PLANS,
    Allocation,
    MemoryPlan,
    lifetime_plan,
    live_ranges,
    paper_layout,
    plan_memory,
)
from edgefptt.plan.ops import PHASES, OpCounts, count_ops, kernel_ops

__all__ = [
    "CATEGORIES",
    "PHASES",
    "PLANS",
    "Allocation",
    "MemoryPlan",
    "OpCounts",
    "count_ops",
    "kernel_ops",
    "lifetime_plan",
    "live_ranges",
    "paper_layout",
    "plan_memory",
]
