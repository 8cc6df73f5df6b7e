"""Published figures the project is checked against (see README.md in this folder)."""

from __future__ import annotations

import csv
from importlib.resources import files


def _rows(name: str) -> list[dict[str, str]]:
    text = files(__package__).joinpath(name).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return list(csv.DictReader(lines))


def paper_memory() -> list[dict[str, int]]:
    """Rows of K, steps_per_partition, fp32_bytes, bf16_bytes (seed paper, I=1 H=128 B=4)."""
    return [{k: int(v) for k, v in row.items()} for row in _rows("paper_memory.csv")]


def paper_op_counts() -> dict[str, dict[str, int]]:
    """{add_sub | mul_div: {forward, backward, parameter_update}} as published."""
    return {
        row["type"]: {k: int(v) for k, v in row.items() if k != "type"}
        for row in _rows("paper_op_counts.csv")
    }


def firesim_calibration() -> list[dict[str, int | str]]:
    """The 21 FireSim calibration points: K, mesh ('4x4'), cores, cycles per group, total."""
    out: list[dict[str, int | str]] = []
    for row in _rows("firesim_calibration.csv"):
        out.append({k: (v if k == "mesh" else int(v)) for k, v in row.items()})
    return out


def fpga_resources() -> list[dict[str, int | str]]:
    """FPGA utilisation rows: module, config, LUT, FF, BRAM, DSP, source."""
    keep = ("module", "config", "source")
    return [
        {k: (v if k in keep else int(v)) for k, v in row.items()}
        for row in _rows("fpga_resources.csv")
    ]


def fpga_power_w() -> dict[str, dict[str, float]]:
    """Vivado power (W) by component: {design point ('4x4-1'): {component: watts}}."""
    rows = _rows("fpga_power_w.csv")
    points = [k for k in rows[0] if k != "component"]
    return {p: {row["component"]: float(row[p]) for row in rows} for p in points}
