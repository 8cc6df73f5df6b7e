"""Commands over the on-device workload: `memory` and `ops`."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from edgefptt.cli.common import emit_json, human_bytes, stdout
from edgefptt.cli.spec_options import BATCH as _BATCH
from edgefptt.cli.spec_options import CLASSES as _CLASSES
from edgefptt.cli.spec_options import HIDDEN as _HIDDEN
from edgefptt.cli.spec_options import INPUT as _INPUT
from edgefptt.cli.spec_options import JSON as _JSON
from edgefptt.cli.spec_options import PRESET as _PRESET
from edgefptt.cli.spec_options import SEQ_LEN as _SEQ_LEN
from edgefptt.cli.spec_options import specs_from_options
from edgefptt.config import NetworkSpec, RunSpec

_PARTITIONS = typer.Option(None, "--partitions", help="FPTT partitions, K (default 1).")
_DTYPE = typer.Option(None, "--dtype", help="Element type: fp32 or bf16 (default fp32).")
_SCHEDULE = typer.Option(None, "--schedule", help="Workload schedule: paper or exact.")


def _spec_json(net: NetworkSpec, run: RunSpec) -> dict[str, Any]:
    return {"network": net.model_dump(), "run": run.model_dump()}


def memory(
    preset: str | None = _PRESET,
    input_size: int | None = _INPUT,
    hidden: int | None = _HIDDEN,
    classes: int | None = _CLASSES,
    batch: int | None = _BATCH,
    seq_len: int | None = _SEQ_LEN,
    partitions: int | None = _PARTITIONS,
    dtype: str | None = _DTYPE,
    schedule: str | None = _SCHEDULE,
    plan: str = typer.Option(
        "lifetime", "--plan", help="paper (the seed paper's layout), lifetime or recompute."
    ),
    as_json: bool = _JSON,
) -> None:
    """Training memory of one pass: arena size, floor and breakdown."""
    from edgefptt.plan import plan_memory

    net, run = specs_from_options(
        preset,
        input_size,
        hidden,
        classes,
        batch,
        seq_len,
        partitions=partitions,
        dtype=dtype,
        schedule=schedule,
    )
    result = plan_memory(net, run, plan)
    if as_json:
        emit_json({**result.to_dict(), **_spec_json(net, run)})
        return
    table = Table(
        title=f"memory: plan {plan}, schedule {run.schedule}, {run.dtype}, "
        f"K={run.partitions}, T={run.seq_len}, B={run.batch_size}"
    )
    table.add_column("part")
    table.add_column("bytes", justify="right")
    table.add_column("", justify="right")
    for name, value in result.breakdown.items():
        table.add_row(name, f"{value:,}", human_bytes(value))
    table.add_section()
    table.add_row("total", f"{result.total_bytes:,}", human_bytes(result.total_bytes))
    table.add_row(
        "floor (parameter state)", f"{result.floor_bytes:,}", human_bytes(result.floor_bytes)
    )
    table.add_row("above floor", f"{result.above_floor_bytes:,}", f"x{result.ratio_to_floor:.3f}")
    stdout.print(table)


def ops(
    preset: str | None = _PRESET,
    input_size: int | None = _INPUT,
    hidden: int | None = _HIDDEN,
    classes: int | None = _CLASSES,
    batch: int | None = _BATCH,
    seq_len: int | None = _SEQ_LEN,
    partitions: int | None = _PARTITIONS,
    dtype: str | None = _DTYPE,
    schedule: str | None = _SCHEDULE,
    as_json: bool = _JSON,
) -> None:
    """Arithmetic operations of one pass per phase (forward, backward, update)."""
    from edgefptt.plan import count_ops
    from edgefptt.workload import build_workload

    net, run = specs_from_options(
        preset,
        input_size,
        hidden,
        classes,
        batch,
        seq_len,
        partitions=partitions,
        dtype=dtype,
        schedule=schedule,
    )
    counts = {phase: c.to_dict() for phase, c in count_ops(build_workload(net, run)).items()}
    if as_json:
        emit_json({**counts, **_spec_json(net, run)})
        return
    table = Table(
        title=f"operations: schedule {run.schedule}, K={run.partitions}, T={run.seq_len}, "
        f"B={run.batch_size} (whole pass)"
    )
    table.add_column("phase")
    for column in ("add_sub", "mul_div", "nonlinear"):
        table.add_column(column, justify="right")
    for phase, row in counts.items():
        table.add_row(phase, *(f"{row[c]:,}" for c in ("add_sub", "mul_div", "nonlinear")))
    stdout.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the application."""
    app.command("memory")(memory)
    app.command("ops")(ops)
