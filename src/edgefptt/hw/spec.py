"""The hardware: a validated SoC spec (Gemmini mesh, Rocket cores, dtype, memories, clock).

Kept apart from NetworkSpec and RunSpec so that the workload never depends on the hardware
it runs on. Presets are the seed paper's two Gemmini configurations.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgefptt.config import DTYPE_BYTES, _message
from edgefptt.errors import ConfigError

Dataflow = Literal["WS", "OS"]


class SoCSpec(BaseModel):
    """One Gemmini (or none) attached to hart 0 of a multicore Rocket SoC."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    mesh: int = Field(default=4, ge=2, le=64, description="DIM of the DIM x DIM mesh")
    cores: int = Field(default=1, ge=1, le=16, description="Rocket cores (harts)")
    dtype: Literal["fp32", "bf16"] = "bf16"
    scratchpad_kib: int = Field(default=128, ge=1, description="Gemmini scratchpad")
    accumulator_kib: int = Field(default=32, ge=1, description="Gemmini accumulator memory")
    dataflow: Dataflow = "WS"
    dma_bytes_per_cycle: int = Field(default=16, ge=1, description="DMA bus width")
    clock_hz: float = Field(default=500e6, gt=0, description="clock for seconds (ASIC)")
    accelerator: bool = Field(default=True, description="False: matmuls on the Rocket core")

    @model_validator(mode="after")
    def _check(self) -> SoCSpec:
        if self.mesh & (self.mesh - 1):
            raise ValueError(f"the mesh size must be a power of two (got {self.mesh})")
        if self.accelerator:
            bank_rows = self.scratchpad_kib * 1024 // (4 * self.mesh * self.element_bytes)
            acc_rows = self.accumulator_kib * 1024 // (self.mesh * self.element_bytes)
            if bank_rows < 2 * self.mesh or acc_rows < 2 * self.mesh:
                raise ValueError(
                    f"scratchpad {self.scratchpad_kib} KiB / accumulator {self.accumulator_kib} "
                    f"KiB are too small for a {self.mesh}x{self.mesh} mesh (need at least two "
                    "DIM x DIM blocks of each per buffer half)"
                )
        return self

    @property
    def element_bytes(self) -> int:
        """Input and accumulator element size (the seed paper's BF16 config accumulates in BF16)."""
        return DTYPE_BYTES[self.dtype]

    @property
    def hop_cycles(self) -> int:
        """tile_latency + 1 per processing-element hop: 5 on the BF16 config, 3 on FP32."""
        return 5 if self.dtype == "bf16" else 3

    @property
    def label(self) -> str:
        if not self.accelerator:
            return f"cpu-{self.cores}"
        return f"{self.mesh}x{self.mesh}-{self.cores}"


SOC_PRESETS: dict[str, SoCSpec] = {
    # Gemmini's default floating-point config: FP32 everywhere, 256 KiB / 64 KiB, WS and OS.
    "gemmini-fp32": SoCSpec(mesh=4, dtype="fp32", scratchpad_kib=256, accumulator_kib=64),
    # The seed paper's custom config: BF16 inputs, output and accumulator, 128 / 32 KiB, WS.
    "gemmini-bf16": SoCSpec(mesh=4, dtype="bf16", scratchpad_kib=128, accumulator_kib=32),
}


def default_soc_preset(dtype: str | None) -> str:
    """The preset an estimate starts from when none is named: the one of the element type."""
    return "gemmini-fp32" if dtype == "fp32" else "gemmini-bf16"


def make_soc(preset: str | None = None, **values: Any) -> SoCSpec:
    """A SoCSpec from a preset (default: the one matching ``dtype``) and field values.

    None values are ignored so CLI options pass straight through; any invalid value raises
    :class:`ConfigError` with a one-line message.
    """
    given = {k: v for k, v in values.items() if v is not None}
    unknown = set(given) - set(SoCSpec.model_fields)
    if unknown:
        raise ConfigError(f"unknown SoC field(s): {', '.join(sorted(unknown))}")
    name = preset or default_soc_preset(given.get("dtype"))
    if name not in SOC_PRESETS:
        raise ConfigError(f"unknown SoC preset {name!r}; choose from {', '.join(SOC_PRESETS)}")
    try:
        return SoCSpec(**{**SOC_PRESETS[name].model_dump(), **given})
    except ValidationError as exc:
        raise ConfigError(_message(exc)) from None
