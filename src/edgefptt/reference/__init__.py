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
