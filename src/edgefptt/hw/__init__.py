"""Hardware model of a Gemmini + multicore Rocket SoC, calibrated on FireSim, and exploration.

The Rocket cores' memory hierarchy (:mod:`cache`, :mod:`access`, :mod:`cpu`) costs what runs
on the cores from first principles where nothing was fitted (:mod:`core_model`: the CPU-only
SoC, our generated code); :mod:`spikecheck` checks it against Spike; :mod:`explain` says why
latency grows with K.

Workload, hardware and mapping are kept apart: :mod:`summary` condenses a workload into
distinct kernel shapes, :mod:`spec` describes the SoC, :mod:`gemmini` and :mod:`rocket` cost
one kernel call, :mod:`fpga` gives area and power, :mod:`model` puts them together and
:mod:`explore` sweeps design points. Every fitted constant is in :mod:`calibration`.
"""

from edgefptt.hw.core_model import GroupCost, core_costs
from edgefptt.hw.explain import GroupChange, partition_change
from edgefptt.hw.explore import explore, pareto_flags, plot, write_csv
from edgefptt.hw.fpga import Resources, power_w, soc_resources
from edgefptt.hw.gemmini import Accelerator, Tiling, choose_tiles, naive_cycles
from edgefptt.hw.model import (
    MATMUL_MODELS,
    Estimate,
    estimate,
    group_cycles,
    kernel_cycles,
    matmul_cycles,
)
from edgefptt.hw.spec import SOC_PRESETS, SoCSpec, make_soc
from edgefptt.hw.summary import KernelShape, WorkloadSummary, summarize, workload_summary

__all__ = [
    "MATMUL_MODELS",
    "SOC_PRESETS",
    "Accelerator",
    "Estimate",
    "GroupChange",
    "GroupCost",
    "KernelShape",
    "Resources",
    "SoCSpec",
    "Tiling",
    "WorkloadSummary",
    "choose_tiles",
    "core_costs",
    "estimate",
    "explore",
    "group_cycles",
    "kernel_cycles",
    "make_soc",
    "matmul_cycles",
    "naive_cycles",
    "pareto_flags",
    "partition_change",
    "plot",
    "power_w",
    "soc_resources",
    "summarize",
    "workload_summary",
    "write_csv",
]
