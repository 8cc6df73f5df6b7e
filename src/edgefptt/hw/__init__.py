"""Hardware model of a Gemmini + multicore Rocket SoC, calibrated on FireSim, and exploration.

Workload, hardware and mapping are kept apart: :mod:`summary` condenses a workload into
distinct kernel shapes, :mod:`spec` describes the SoC, :mod:`gemmini` and :mod:`rocket` cost
one kernel call, :mod:`fpga` gives area and power, :mod:`model` puts them together and
:mod:`explore` sweeps design points. Every fitted constant is in :mod:`calibration`.
"""

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
    "KernelShape",
    "Resources",
    "SoCSpec",
    "Tiling",
    "WorkloadSummary",
    "choose_tiles",
    "estimate",
    "explore",
    "group_cycles",
    "kernel_cycles",
    "make_soc",
    "matmul_cycles",
    "naive_cycles",
    "pareto_flags",
    "plot",
    "power_w",
    "soc_resources",
    "summarize",
    "workload_summary",
    "write_csv",
]
