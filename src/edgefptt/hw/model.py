"""Cost a workload on a SoC: cycles per kernel group, seconds, memory, area, power, energy."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.errors import ConfigError
from edgefptt.hw import calibration as cal
from edgefptt.hw.core_model import MATMUL_GROUPS, GroupCost, core_costs
from edgefptt.hw.cpu import CODES, MATMUL_CALL_INSN, MATMUL_INSN, LoopCost
from edgefptt.hw.fpga import power_w, soc_resources
from edgefptt.hw.gemmini import (
    Accelerator,
    MatmulConstants,
    calibrated_cycles,
    naive_cycles,
)
from edgefptt.hw.rocket import kernel_cycles_on_core
from edgefptt.hw.spec import SoCSpec
from edgefptt.hw.summary import KernelShape, WorkloadSummary, workload_summary
from edgefptt.workload.kernels import GROUPS, MatmulSpec

MatmulModel = Literal["calibrated", "naive"]
MATMUL_MODELS = ("calibrated", "naive")


def accelerator_of(soc: SoCSpec) -> Accelerator:
    return Accelerator(
        dim=soc.mesh,
        input_bytes=soc.element_bytes,
        acc_bytes=soc.element_bytes,
        scratchpad_bytes=soc.scratchpad_kib * 1024,
        accumulator_bytes=soc.accumulator_kib * 1024,
        hop_cycles=soc.hop_cycles,
        dma_bytes_per_cycle=soc.dma_bytes_per_cycle,
        dataflow=soc.dataflow,
    )


@lru_cache(maxsize=4096)
def matmul_cycles(mm: MatmulSpec, soc: SoCSpec, model: str = "calibrated") -> float:
    """One matmul call: on Gemmini (calibrated or naive model) or, without one, on hart 0.

    On hart 0 this is the issued instructions of the seed paper's loop alone (measured, see
    hw/cpu.py); a pass's estimate adds the stalls of its misses (hw/core_model.py).
    """
    if not soc.accelerator:
        plain = mm.transpose_a or mm.transpose_b or mm.m % 4 or mm.n % 4
        cost: LoopCost = MATMUL_INSN[("paper", "plain" if plain else "block", soc.dtype)]
        return MATMUL_CALL_INSN + cost.instructions(mm.m, mm.n, mm.k)
    if soc.dataflow == "OS" and (mm.transpose_a or mm.transpose_b):
        raise ConfigError(
            "the OS dataflow cannot run transposed matmuls (this workload's MatMul-2 and "
            "MatMul-3 transpose an operand); use --dataflow WS"
        )
    if model == "naive":
        return float(naive_cycles(mm, soc.mesh, soc.mesh, soc.dataflow))
    if model != "calibrated":
        raise ConfigError(f"unknown matmul model {model!r}; choose from calibrated, naive")
    return calibrated_cycles(mm, accelerator_of(soc), MatmulConstants(**cal.MATMUL))


@lru_cache(maxsize=65536)
def _core_cycles(shape: KernelShape, cores: int, dtype: str) -> float:
    return kernel_cycles_on_core(shape, cores, dtype)


def kernel_cycles(shape: KernelShape, soc: SoCSpec, model: str = "calibrated") -> float:
    """Cycles of one call of a kernel of this shape, as hart 0 times it."""
    if shape.matmul is not None:
        return matmul_cycles(shape.matmul, soc, model)
    return _core_cycles(shape, soc.cores, soc.dtype)


def _hardware_key(soc: SoCSpec, model: str) -> tuple:
    """Everything cycles depend on (not the clock): a cheap key for the cost caches."""
    return (
        soc.mesh,
        soc.cores,
        soc.dtype,
        soc.scratchpad_kib,
        soc.accumulator_kib,
        soc.dataflow,
        soc.dma_bytes_per_cycle,
        soc.accelerator,
        model,
    )


_SHAPE_COSTS: dict[tuple, float] = {}
_GROUP_COSTS: dict[tuple, dict[str, float]] = {}


def group_cycles(
    summary: WorkloadSummary, soc: SoCSpec, model: str = "calibrated"
) -> dict[str, float]:
    """Cycles per kernel group of one pass (the 11 groups of the FireSim tables).

    Cached per (summary, hardware): a sweep costs each distinct kernel shape once per
    hardware configuration and each pass once per configuration. On a CPU-only SoC this counts
    the matmuls' issued instructions alone, no stalls: :func:`estimate` and ``explore`` cost
    that SoC with the memory-hierarchy model (hw/core_model.py) instead.
    """
    hw = _hardware_key(soc, model)
    key = (summary.token, hw)
    cached = _GROUP_COSTS.get(key)
    if cached is None:
        cached = dict.fromkeys(GROUPS, 0.0)
        for (shape, calls), shape_id in zip(summary.shapes, summary.shape_ids, strict=True):
            cost = _SHAPE_COSTS.get((shape_id, hw))
            if cost is None:
                cost = _SHAPE_COSTS[(shape_id, hw)] = kernel_cycles(shape, soc, model)
            cached[shape.group] += calls * cost
        if len(_GROUP_COSTS) > 200_000:
            _GROUP_COSTS.clear()
        _GROUP_COSTS[key] = cached
    return dict(cached)


@lru_cache(maxsize=512)
def memory_bytes(net: NetworkSpec, run: RunSpec, plan: str) -> int:
    from edgefptt.plan import plan_memory

    return plan_memory(net, run, plan).total_bytes


@lru_cache(maxsize=512)
def _hardware(soc: SoCSpec) -> tuple[dict[str, int], dict[str, float]]:
    return soc_resources(soc)["total"].to_dict(), power_w(soc)


def default_plan(schedule: str) -> str:
    """The seed paper's static layout for its schedule; a lifetime-planned arena otherwise."""
    return "paper" if schedule == "paper" else "lifetime"


@dataclass
class Estimate:
    """One design point: the pass's cycles, time, memory, FPGA resources, power and energy."""

    soc: SoCSpec
    network: NetworkSpec
    run: RunSpec
    matmul_model: str
    plan: str
    groups: dict[str, float]
    memory_bytes: int
    resources: dict[str, int]
    power_breakdown_w: dict[str, float] = field(default_factory=dict)
    code: str = "paper"
    # Per group, where the cores' cycles come from (hierarchy model; None: calibrated model only)
    breakdown: dict[str, GroupCost] | None = None

    @property
    def total_cycles(self) -> float:
        return sum(self.groups.values())

    @property
    def seconds(self) -> float:
        return self.total_cycles / self.soc.clock_hz

    @property
    def power_w(self) -> float:
        return self.power_breakdown_w["total"]

    @property
    def energy_j(self) -> float:
        return self.power_w * self.seconds

    def to_dict(self, specs: bool = True) -> dict[str, Any]:
        """The JSON record of the CLI contract (``specs``: plus the specs behind it)."""
        record = {
            "total_cycles": round(self.total_cycles),
            "seconds": self.seconds,
            "clock_hz": self.soc.clock_hz,
            "groups": {g: round(c) for g, c in self.groups.items()},
            "memory_bytes": self.memory_bytes,
            **self.resources,
            "power_w": self.power_w,
            "energy_j": self.energy_j,
            "mesh": self.soc.mesh,
            "cores": self.soc.cores,
            "partitions": self.run.partitions,
            "dtype": self.soc.dtype,
            "schedule": self.run.schedule,
            "accelerator": self.soc.accelerator,
            "matmul_model": self.matmul_model,
            "memory_plan": self.plan,
            "code": self.code,
        }
        if self.breakdown is not None:
            record["breakdown"] = {g: c.to_dict() for g, c in self.breakdown.items()}
        if specs:
            record["power_breakdown_w"] = self.power_breakdown_w
            record["soc"] = self.soc.model_dump()
            record["network"] = self.network.model_dump()
            record["run"] = self.run.model_dump()
        return record


def estimate(
    net: NetworkSpec,
    run: RunSpec,
    soc: SoCSpec,
    matmul_model: str = "calibrated",
    plan: str | None = None,
    code: str = "paper",
) -> Estimate:
    """Cost one training pass of ``(net, run)`` on ``soc``; the run takes the SoC's dtype.

    ``code``: ``paper`` costs the seed paper's C (its loops and kernels), ``generated`` the C
    that export-c writes. With Gemmini and the paper's code this is the calibrated model alone;
    otherwise the work on the cores comes from the memory-hierarchy model (hw/core_model.py),
    whose per-group breakdown the estimate keeps.
    """
    if matmul_model not in MATMUL_MODELS:
        raise ConfigError(
            f"unknown matmul model {matmul_model!r}; choose from {', '.join(MATMUL_MODELS)}"
        )
    if code not in CODES:
        raise ConfigError(f"unknown code {code!r}; choose from {', '.join(CODES)}")
    if run.dtype != soc.dtype:
        run = run.model_copy(update={"dtype": soc.dtype})
    plan = plan or default_plan(run.schedule)
    summary = workload_summary(net, run)
    breakdown = None
    if code == "paper" and soc.accelerator:
        groups = group_cycles(summary, soc, matmul_model)
    else:
        breakdown = core_costs(net, run, soc, code)
        groups = {g: c.cycles for g, c in breakdown.items()}
        if soc.accelerator:  # the matmuls on Gemmini: the accelerator model
            for shape, calls in summary.shapes:
                if shape.matmul is not None:
                    groups[shape.group] += calls * matmul_cycles(shape.matmul, soc, matmul_model)
            for g in MATMUL_GROUPS:
                breakdown[g] = GroupCost(fitted=groups[g])
    resources, power = _hardware(soc)
    return Estimate(
        soc=soc,
        network=net,
        run=run,
        matmul_model=matmul_model,
        plan=plan,
        groups=groups,
        memory_bytes=memory_bytes(net, run, plan),
        resources=resources,
        power_breakdown_w=power,
        code=code,
        breakdown=breakdown,
    )
