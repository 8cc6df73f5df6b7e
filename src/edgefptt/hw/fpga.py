"""FPGA resources and power of a design point, from its parts.

Area: Gemmini = a fixed part (controller, DMA, scratchpad and accumulator logic) + a part per
processing element (DIM^2 of them); BRAM follows the scratchpad + accumulator KiB; then one
Rocket tile per core and an uncore. Power: each Vivado component is fitted as a line in the
resource that drives it (logic and signals in LUTs, clocks in flip-flops, BRAM in BRAMs, DSP
in DSPs); PLL, MMCM, I/O and static power are constants of the board. Every constant lives in
hw/calibration.py; tools/calibrate_hw.py refits them from the published tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgefptt.hw import calibration as cal
from edgefptt.hw.spec import SoCSpec

RESOURCES = ("lut", "ff", "bram", "dsp")


@dataclass(frozen=True)
class Resources:
    lut: float
    ff: float
    bram: float
    dsp: float

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.lut + other.lut, self.ff + other.ff, self.bram + other.bram, self.dsp + other.dsp
        )

    def scaled(self, factor: float) -> Resources:
        return Resources(self.lut * factor, self.ff * factor, self.bram * factor, self.dsp * factor)

    def to_dict(self) -> dict[str, int]:
        return {name: round(getattr(self, name)) for name in RESOURCES}


def gemmini_resources(soc: SoCSpec) -> Resources:
    """Gemmini of the spec's mesh and dtype; nothing without an accelerator."""
    if not soc.accelerator:
        return Resources(0, 0, 0, 0)
    fixed = cal.GEMMINI_FIXED
    per_pe = cal.GEMMINI_PER_PE[soc.dtype]
    pes = soc.mesh * soc.mesh
    bram = cal.BRAM_PER_KIB * (soc.scratchpad_kib + soc.accumulator_kib)
    dsp = cal.GEMMINI_DSP_FIXED[soc.dtype] + cal.GEMMINI_DSP_PER_PE[soc.dtype] * pes
    return Resources(
        fixed["lut"] + per_pe["lut"] * pes, fixed["ff"] + per_pe["ff"] * pes, bram, dsp
    )


def soc_resources(soc: SoCSpec) -> dict[str, Resources]:
    """Resources by part: gemmini, rocket (all tiles), uncore, total."""
    parts = {
        "gemmini": gemmini_resources(soc),
        "rocket": Resources(**cal.ROCKET_TILE).scaled(soc.cores),
        "uncore": Resources(**cal.UNCORE),
    }
    parts["total"] = parts["gemmini"] + parts["rocket"] + parts["uncore"]
    return parts


def power_w(soc: SoCSpec) -> dict[str, float]:
    """Power by Vivado component (W) and its ``total``."""
    total = soc_resources(soc)["total"]
    drivers = {"lut": total.lut, "ff": total.ff, "bram": total.bram, "dsp": total.dsp, "": 0.0}
    out: dict[str, float] = {}
    for component, (driver, intercept, slope) in cal.POWER_COMPONENTS.items():
        out[component] = max(0.0, intercept + slope * drivers[driver])
    out["total"] = sum(out.values())
    return out
