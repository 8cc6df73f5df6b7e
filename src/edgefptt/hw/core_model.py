"""Cycles of the work on the Rocket cores, from the memory-hierarchy model, per kernel group.

``cycles = issued instructions + stalls`` with stalls = L1 misses x L2 hit latency + L2 misses
x DRAM latency (the D-cache blocks on a miss; :mod:`edgefptt.hw.cache`). Misses come from the
walk of the pass in program order (:func:`edgefptt.hw.cpu.pass_traffic`). Instructions:

- matmuls on the core (CPU-only SoC): the measured loop costs of the code's loop order
  (:data:`edgefptt.hw.cpu.MATMUL_INSN`);
- the seed paper's own element-wise kernels: their per-element costs fitted on FireSim
  (:mod:`edgefptt.hw.rocket`). Those were measured in bf16 on this core and these caches with
  the matmuls on Gemmini, stalls included. The walk of that SoC's bf16 pass gives those
  stalls; the rest (``fitted``) is issued work, divided by the bf16 emulation factor in fp32.
  ``stall`` is then the walk's stalls on the SoC costed (matmuls on the core, fp32 or bf16
  data);
- our generated code's element-wise kernels: measured instructions per element
  (:data:`edgefptt.hw.cpu.GENERATED_INSN_PER_ELEMENT`) plus all their stalls.

Parallel groups split their elements over the harts; the walk follows hart 0, and its stalls
are divided by the number of harts (each hart misses on its share of the lines; the shared L2
holds them all, as it holds them for one hart).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.errors import ConfigError
from edgefptt.hw.cache import ROCKET_CHIPYARD
from edgefptt.hw.calibration import BF16_EMULATION_FACTOR
from edgefptt.hw.cpu import CODES, GENERATED_CALL_INSN, GENERATED_INSN_PER_ELEMENT, pass_traffic
from edgefptt.hw.rocket import SERIAL_GROUPS, kernel_cycles_on_core
from edgefptt.hw.spec import SoCSpec
from edgefptt.hw.summary import workload_summary
from edgefptt.workload.kernels import GROUPS

MATMUL_GROUPS = ("MatMul-1", "MatMul-2", "MatMul-3")


@dataclass(frozen=True, slots=True)
class GroupCost:
    """One kernel group of one pass on the cores: where its cycles come from."""

    instructions: float = 0.0  # issued instructions (measured loop and kernel counts)
    fitted: float = 0.0  # FireSim-fitted cycles of the paper's element-wise kernels
    stall: float = 0.0  # miss stalls (for fitted groups: the change against the Gemmini SoC)
    l1_misses: float = 0.0
    l2_misses: float = 0.0

    @property
    def cycles(self) -> float:
        return self.instructions + self.fitted + self.stall

    def to_dict(self) -> dict[str, float]:
        return {
            "cycles": round(self.cycles),
            "instructions": round(self.instructions),
            "fitted_cycles": round(self.fitted),
            "stall_cycles": round(self.stall),
            "l1_misses": round(self.l1_misses),
            "l2_misses": round(self.l2_misses),
        }


def _stall(l1: float, l2: float) -> float:
    return ROCKET_CHIPYARD.stall_cycles(l1, l2)


def core_costs(net: NetworkSpec, run: RunSpec, soc: SoCSpec, code: str) -> dict[str, GroupCost]:
    """Per group, the cycles hart 0 spends on the cores' work of one pass of ``(net, run)``.

    Matmul groups are costed here only on a CPU-only SoC (on Gemmini they are the accelerator
    model's, and left at zero here). ``code`` is ``paper`` (the seed paper's loops and kernels)
    or ``generated`` (the C that export-c writes).
    """
    if code not in CODES:
        raise ConfigError(f"unknown code {code!r}; choose from {', '.join(CODES)}")
    run = run.model_copy(update={"dtype": soc.dtype})
    on_core = not soc.accelerator
    n = soc.cores
    out = dict.fromkeys(GROUPS, GroupCost())
    if code == "paper" and soc.accelerator:  # exactly the calibrated model: nothing to walk
        fitted = dict.fromkeys(GROUPS, 0.0)
        for shape, calls in workload_summary(net, run).shapes:
            if shape.matmul is None:
                fitted[shape.group] += calls * kernel_cycles_on_core(shape, n, soc.dtype)
        return {g: GroupCost(fitted=fitted[g]) for g in GROUPS}
    traffic = pass_traffic(net, run, code, on_core)
    # The paper's fitted costs were measured in bf16 with the matmuls on Gemmini: their stalls
    # are those of that walk; the rest is instructions, which fp32 cuts by the emulation factor.
    base = None
    if code == "paper":
        base = pass_traffic(net, run.model_copy(update={"dtype": "bf16"}), code, False)
    scale = 1.0 if soc.dtype == "bf16" else 1.0 / BF16_EMULATION_FACTOR
    per_element: dict[str, float] = {}
    if code == "generated":
        if run.schedule not in GENERATED_INSN_PER_ELEMENT[soc.dtype]:
            raise ConfigError(
                f"export-c generates the exact and paper schedules (got {run.schedule!r}); "
                "use --schedule exact or paper with --code generated"
            )
        per_element = GENERATED_INSN_PER_ELEMENT[soc.dtype][run.schedule]
    fitted = dict.fromkeys(GROUPS, 0.0)
    insns = dict.fromkeys(GROUPS, 0.0)
    for shape, calls in workload_summary(net, run).shapes:
        if shape.matmul is not None:
            continue
        if code == "paper":  # the bf16 fit, stalls included
            fitted[shape.group] += calls * kernel_cycles_on_core(shape, n, "bf16")
            continue
        if shape.op not in per_element:
            raise ConfigError(
                f"no measured instruction count for our {shape.op!r} kernel in {soc.dtype}; "
                "measure it with benchmarks/hw_cache.py --profile and add it to hw/cpu.py"
            )
        work = shape.work if shape.group in SERIAL_GROUPS else math.ceil(shape.work / n)
        insns[shape.group] += calls * (GENERATED_CALL_INSN + per_element[shape.op] * work)
    for g in GROUPS:
        l1, l2 = traffic.l1_misses[g], traffic.l2_misses[g]
        if g in MATMUL_GROUPS:
            if on_core:
                out[g] = GroupCost(traffic.instructions[g], 0.0, _stall(l1, l2), l1, l2)
            continue
        share = 1 if g in SERIAL_GROUPS else n
        stall = _stall(l1, l2) / share
        work = fitted[g]
        if base is not None:  # fitted = instructions + the Gemmini SoC's bf16 stalls
            fitted_stall = min(work, _stall(base.l1_misses[g], base.l2_misses[g]) / share)
            work = (work - fitted_stall) * scale
        out[g] = GroupCost(insns[g], work, stall, l1 / share, l2 / share)
    return out
