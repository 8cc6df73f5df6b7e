"""Why a pass's latency grows with K: the estimate at K = 1 beside K = T, group by group.

For each kernel group: cycles at both ends, their ratio, the group's share of the change in
total cycles, and which part of the cost changed: issued instructions (more calls, each with
its fixed cost), FireSim-fitted cycles (the paper's element-wise kernels), or miss stalls (the
same work finding its data evicted). The parts come from the hierarchy model's breakdown
(:mod:`edgefptt.hw.core_model`); with Gemmini and the paper's code the whole group counts as
fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.hw.core_model import GroupCost
from edgefptt.hw.model import Estimate, estimate
from edgefptt.hw.spec import SoCSpec

PARTS = ("instructions", "fitted", "stall")


@dataclass(frozen=True)
class GroupChange:
    group: str
    low: float  # cycles at the smallest K
    high: float  # cycles at the largest K
    share: float  # of the change in total cycles
    parts: dict[str, float]  # change of each part (instructions, fitted, stall), cycles
    l2_misses: tuple[float, float]

    @property
    def ratio(self) -> float:
        return self.high / self.low if self.low else float("inf")

    @property
    def cause(self) -> str:
        """The part that changed most, in words."""
        if abs(self.high - self.low) < 0.01 * max(self.low, 1.0):
            return "unchanged"
        part = max(self.parts, key=lambda p: abs(self.parts[p]))
        words = {"instructions": "instructions", "fitted": "element work", "stall": "stalls"}
        fewer = "less " if part == "fitted" else "fewer "
        return ("more " if self.parts[part] > 0 else fewer) + words[part]

    def to_dict(self) -> dict[str, object]:
        return {
            "group": self.group,
            "cycles_low": round(self.low),
            "cycles_high": round(self.high),
            "ratio": self.ratio,
            "share_of_change": self.share,
            "change_by_part": {p: round(v) for p, v in self.parts.items()},
            "l2_misses_low": round(self.l2_misses[0]),
            "l2_misses_high": round(self.l2_misses[1]),
            "cause": self.cause,
        }


def _parts(est: Estimate) -> dict[str, GroupCost]:
    if est.breakdown is not None:
        return est.breakdown
    return {g: GroupCost(fitted=c) for g, c in est.groups.items()}


def partition_change(
    net: NetworkSpec,
    run: RunSpec,
    soc: SoCSpec,
    code: str = "paper",
    low: int = 1,
    high: int | None = None,
    matmul_model: str = "calibrated",
) -> tuple[Estimate, Estimate, list[GroupChange]]:
    """Estimates at K = ``low`` and K = ``high`` (default T) and the change group by group."""
    high = run.seq_len if high is None else high
    a = estimate(net, run.model_copy(update={"partitions": low}), soc, matmul_model, None, code)
    b = estimate(net, run.model_copy(update={"partitions": high}), soc, matmul_model, None, code)
    pa, pb = _parts(a), _parts(b)
    change = b.total_cycles - a.total_cycles
    out = []
    for g in a.groups:
        delta = {
            "instructions": pb[g].instructions - pa[g].instructions,
            "fitted": pb[g].fitted - pa[g].fitted,
            "stall": pb[g].stall - pa[g].stall,
        }
        out.append(
            GroupChange(
                g,
                a.groups[g],
                b.groups[g],
                (b.groups[g] - a.groups[g]) / change if change else 0.0,
                delta,
                (pa[g].l2_misses, pb[g].l2_misses),
            )
        )
    return a, b, out
