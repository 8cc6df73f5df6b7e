"""Commands: estimate and explore (issue 4): the hardware model and design-space sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgefptt.cli.common import emit_json, human_bytes, stderr, stdout
from edgefptt.cli.spec_options import BATCH as _BATCH
from edgefptt.cli.spec_options import CELL as _CELL
from edgefptt.cli.spec_options import CLASSES as _CLASSES
from edgefptt.cli.spec_options import HIDDEN as _HIDDEN
from edgefptt.cli.spec_options import INPUT as _INPUT
from edgefptt.cli.spec_options import JSON as _JSON
from edgefptt.cli.spec_options import LAYERS as _LAYERS
from edgefptt.cli.spec_options import PRESET as _PRESET
from edgefptt.cli.spec_options import SEGMENTS as _SEGMENTS
from edgefptt.cli.spec_options import SEQ_LEN as _SEQ_LEN
from edgefptt.cli.spec_options import TRAINABLE as _TRAINABLE
from edgefptt.cli.spec_options import specs_from_options
from edgefptt.errors import ConfigError

_SOC = typer.Option(
    None, "--soc", help="SoC preset: gemmini-bf16 or gemmini-fp32 (default: the dtype's)."
)
_SPAD = typer.Option(None, "--scratchpad-kib", help="Gemmini scratchpad (KiB).")
_ACC = typer.Option(None, "--accumulator-kib", help="Gemmini accumulator (KiB).")
_DATAFLOW = typer.Option(None, "--dataflow", help="WS or OS.")
_DMA = typer.Option(None, "--dma-bytes", help="DMA bytes per cycle (bus width).")
_CLOCK = typer.Option(None, "--clock-mhz", help="Clock for seconds (default 500 MHz).")
_MODEL = typer.Option(
    "calibrated", "--matmul-model", help="Accelerator matmul model: calibrated or naive."
)
_NO_ACC = typer.Option(False, "--no-accelerator", help="CPU-only SoC: matmuls on hart 0.")
_CODE = typer.Option(
    "paper",
    "--code",
    help="Whose C to cost: paper (the seed paper's loops and kernels) or generated (the C "
    "that export-c writes).",
)
_EXPLAIN = typer.Option(
    False,
    "--explain",
    help="Also cost K = 1 and K = T and explain the latency ratio group by group.",
)
_PLAN = typer.Option(
    None,
    "--plan",
    help="Memory plan: paper, lifetime or recompute (default: paper for the "
    "paper schedule, lifetime for exact).",
)


def _soc_values(
    scratchpad_kib: int | None,
    accumulator_kib: int | None,
    dataflow: str | None,
    dma_bytes: int | None,
    clock_mhz: float | None,
    no_accelerator: bool,
) -> dict[str, Any]:
    return {
        "scratchpad_kib": scratchpad_kib,
        "accumulator_kib": accumulator_kib,
        "dataflow": dataflow,
        "dma_bytes_per_cycle": dma_bytes,
        "clock_hz": None if clock_mhz is None else clock_mhz * 1e6,
        "accelerator": False if no_accelerator else None,
    }


def estimate(
    preset: str | None = _PRESET,
    input_size: int | None = _INPUT,
    hidden: int | None = _HIDDEN,
    classes: int | None = _CLASSES,
    batch: int | None = _BATCH,
    seq_len: int | None = _SEQ_LEN,
    cell: str | None = _CELL,
    layers: int | None = _LAYERS,
    trainable: str | None = _TRAINABLE,
    partitions: int | None = typer.Option(None, "--partitions", help="FPTT partitions, K."),
    dtype: str = typer.Option("bf16", "--dtype", help="fp32 or bf16 (SoC and run)."),
    schedule: str | None = typer.Option(
        None, "--schedule", help="paper, exact or checkpoint (checkpointed BPTT)."
    ),
    segments: int | None = _SEGMENTS,
    soc: str | None = _SOC,
    mesh: int | None = typer.Option(None, "--mesh", help="Gemmini mesh size DIM."),
    cores: int | None = typer.Option(None, "--cores", help="Rocket cores (1-16)."),
    scratchpad_kib: int | None = _SPAD,
    accumulator_kib: int | None = _ACC,
    dataflow: str | None = _DATAFLOW,
    dma_bytes: int | None = _DMA,
    clock_mhz: float | None = _CLOCK,
    matmul_model: str = _MODEL,
    no_accelerator: bool = _NO_ACC,
    plan: str | None = _PLAN,
    code: str = _CODE,
    explain: bool = _EXPLAIN,
    as_json: bool = _JSON,
) -> None:
    """Cycles per kernel group, seconds, memory, FPGA resources, power and energy of one pass."""
    from edgefptt.hw import estimate as estimate_pass
    from edgefptt.hw import make_soc

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
        segments=segments,
        cell=cell,
        layers=layers,
        trainable=trainable,
    )
    values = _soc_values(
        scratchpad_kib, accumulator_kib, dataflow, dma_bytes, clock_mhz, no_accelerator
    )
    spec = make_soc(soc, mesh=mesh, cores=cores, dtype=dtype, **values)
    result = estimate_pass(net, run, spec, matmul_model, plan, code)
    changes = None
    if explain:
        from edgefptt.hw.explain import partition_change

        changes = partition_change(net, run, spec, code, matmul_model=matmul_model)
    if as_json:
        record = result.to_dict()
        if changes is not None:
            low, high, rows = changes
            record["explain"] = {
                "partitions": [low.run.partitions, high.run.partitions],
                "total_cycles": [round(low.total_cycles), round(high.total_cycles)],
                "ratio": high.total_cycles / low.total_cycles,
                "groups": [r.to_dict() for r in rows],
            }
        emit_json(record)
        return
    where = "CPU only" if not spec.accelerator else f"Gemmini {spec.mesh}x{spec.mesh}"
    table = Table(
        title=f"estimate: {where}, {spec.cores} core(s), {spec.dtype}, schedule "
        f"{run.schedule}, "
        + (f"S={run.num_segments}" if run.schedule == "checkpoint" else f"K={run.partitions}")
        + f", matmul model {matmul_model}, {code} code"
    )
    table.add_column("group")
    table.add_column("cycles", justify="right")
    table.add_column("share", justify="right")
    parts = result.breakdown
    if parts is not None:  # the hierarchy model's parts, in millions
        for column in ("insns M", "fitted M", "stalls M", "L1 miss M", "L2 miss M"):
            table.add_column(column, justify="right")
    total = result.total_cycles
    for group, cycles in result.groups.items():
        row = [group, f"{cycles:,.0f}", f"{100 * cycles / total:.1f} %"]
        if parts is not None:
            c = parts[group]
            row += [f"{v / 1e6:,.2f}" for v in (c.instructions, c.fitted, c.stall, c.l1_misses,
                                                c.l2_misses)]  # fmt: skip
        table.add_row(*row)
    table.add_section()
    table.add_row("total", f"{total:,.0f}", "100 %")
    stdout.print(table)
    if changes is not None:
        _print_changes(*changes)
    res = result.resources
    stdout.print(
        f"time {result.seconds:.4g} s at {spec.clock_hz / 1e6:g} MHz | memory "
        f"{human_bytes(result.memory_bytes)} (plan {result.plan}) | LUT {res['lut']:,} FF "
        f"{res['ff']:,} BRAM {res['bram']} DSP {res['dsp']} | power {result.power_w:.3f} W | "
        f"energy {result.energy_j:.4g} J",
        highlight=False,
    )


def _print_changes(low: Any, high: Any, rows: list[Any]) -> None:
    """The K = low / K = high table of --explain."""
    k0, k1 = low.run.partitions, high.run.partitions
    ratio = high.total_cycles / low.total_cycles
    table = Table(title=f"why K={k1} takes {ratio:.3f}x the cycles of K={k0} (Mcycles)")
    for column in ("group", f"K={k0}", f"K={k1}", "ratio", "of change", "cause"):
        table.add_column(column, justify="left" if column in ("group", "cause") else "right")
    for r in rows:
        table.add_row(
            r.group,
            f"{r.low / 1e6:,.1f}",
            f"{r.high / 1e6:,.1f}",
            f"{r.ratio:.3f}",
            f"{100 * r.share:+.1f} %",
            r.cause,
        )
    table.add_section()
    table.add_row("total", f"{low.total_cycles / 1e6:,.1f}", f"{high.total_cycles / 1e6:,.1f}",
                  f"{ratio:.3f}", "100 %", "")  # fmt: skip
    stdout.print(table)


def _ints(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--{name}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise ConfigError(f"--{name}: give at least one value")
    return values


def _words(text: str, name: str, allowed: tuple[str, ...]) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ConfigError(f"--{name}: {bad or text!r} not in {', '.join(allowed)}")
    return values


def explore(
    preset: str | None = _PRESET,
    input_size: int | None = _INPUT,
    hidden: int | None = _HIDDEN,
    classes: int | None = _CLASSES,
    batch: int | None = _BATCH,
    seq_len: int | None = _SEQ_LEN,
    cell: str | None = _CELL,
    layers: int | None = _LAYERS,
    trainable: str | None = _TRAINABLE,
    mesh: str = typer.Option("4,8", "--mesh", help="Mesh sizes, comma-separated."),
    cores: str = typer.Option("1,2,4,6,8,10", "--cores", help="Core counts, comma-separated."),
    partitions: str = typer.Option("1,2,7,14,28,56,112,392,784", "--partitions", help="K values."),
    dtype: str = typer.Option("bf16", "--dtype", help="fp32 and/or bf16, comma-separated."),
    schedule: str = typer.Option("paper", "--schedule", help="paper and/or exact."),
    soc: str | None = _SOC,
    scratchpad_kib: int | None = _SPAD,
    accumulator_kib: int | None = _ACC,
    dataflow: str | None = _DATAFLOW,
    dma_bytes: int | None = _DMA,
    clock_mhz: float | None = _CLOCK,
    matmul_model: str = _MODEL,
    no_accelerator: bool = _NO_ACC,
    plan: str | None = _PLAN,
    csv_path: str | None = typer.Option(None, "--csv", help="Also write the points to FILE."),
    plot_path: str | None = typer.Option(None, "--plot", help="Also plot to FILE.png."),
    as_json: bool = _JSON,
) -> None:
    """Sweep mesh, cores, K, dtype and schedule; mark the Pareto-optimal design points."""
    from edgefptt.cli.outputs import check_output_file
    from edgefptt.hw import explore as sweep
    from edgefptt.hw import plot, write_csv

    if csv_path:
        check_output_file(Path(csv_path), "--csv")
    if plot_path:
        check_output_file(Path(plot_path), "--plot")
    net, run = specs_from_options(
        preset,
        input_size,
        hidden,
        classes,
        batch,
        seq_len,
        cell=cell,
        layers=layers,
        trainable=trainable,
    )
    axes = (
        _ints(mesh, "mesh"),
        _ints(cores, "cores"),
        _ints(partitions, "partitions"),
        _words(dtype, "dtype", ("fp32", "bf16")),
        _words(schedule, "schedule", ("paper", "exact")),
    )
    values = _soc_values(
        scratchpad_kib, accumulator_kib, dataflow, dma_bytes, clock_mhz, no_accelerator
    )
    with Progress(
        TextColumn("exploring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as bar:
        task = bar.add_task("explore", total=None)

        def progress(done: int, total: int) -> None:
            if done == 1 or done == total or done % 64 == 0:
                bar.update(task, completed=done, total=total)

        records = sweep(
            net,
            run,
            *axes,
            soc_values=values,
            soc_preset=soc,
            matmul_model=matmul_model,
            plan=plan,
            progress=progress,
        )
    if csv_path:
        write_csv(records, csv_path)
    if plot_path:
        plot(records, plot_path)
    if as_json:
        emit_json(records)
        return
    table = Table(title=f"explore: {len(records)} design points (* = Pareto-optimal)")
    for column in (
        "design",
        "dtype",
        "schedule",
        "K",
        "cycles",
        "seconds",
        "memory",
        "LUT",
        "power W",
        "energy J",
        "",
    ):
        # fold, never cut: a narrow terminal wraps a number inside its cell, never ends it in "…"
        table.add_column(
            column, justify="left" if column in ("design", "") else "right", overflow="fold"
        )
    for r in records:
        design = (
            f"{r['mesh']}x{r['mesh']}-{r['cores']}" if r["accelerator"] else (f"cpu-{r['cores']}")
        )
        table.add_row(
            design,
            r["dtype"],
            r["schedule"],
            str(r["partitions"]),
            f"{r['total_cycles']:,}",
            f"{r['seconds']:.4g}",
            human_bytes(r["memory_bytes"]),
            f"{r['lut']:,}",
            f"{r['power_w']:.3f}",
            f"{r['energy_j']:.4g}",
            "*" if r["pareto"] else "",
        )
    _print_whole(table)
    for path, what in ((csv_path, "CSV"), (plot_path, "plot")):
        if path:
            stdout.print(f"{what} written to {path}", highlight=False)


def _print_whole(table: Table) -> None:
    """Print ``table`` with every number whole: at its natural width when stdout is not a
    terminal (a pipe or a file has no width to fit), folded inside the cells on a terminal
    narrower than the table."""
    if stdout.is_terminal:
        stdout.print(table)
        return
    natural = Measurement.get(stdout, stdout.options.update_width(100_000), table).maximum
    Console(file=stdout.file, width=max(natural, stdout.width)).print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the application."""
    app.command("estimate")(estimate)
    app.command("explore")(explore)
