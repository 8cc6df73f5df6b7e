"""Commands over the on-device workload: `memory` and `ops`."""

from __future__ import annotations

from typing import Any

import typer
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
from edgefptt.config import NetworkSpec, RunSpec, require_memory
from edgefptt.errors import ConfigError
from edgefptt.plan.budget import BYTES_HELP

_PARTITIONS = typer.Option(None, "--partitions", help="FPTT partitions, K (default 1).")
_DTYPE = typer.Option(
    None,
    "--dtype",
    help="Element type: fp32 or bf16 (default fp32); with --budget or --device also auto "
    "(try both; the default with --device).",
)
_SCHEDULE = typer.Option(
    None, "--schedule", help="Workload schedule: paper, exact or checkpoint (checkpointed BPTT)."
)


# --budget, --device and --compare try every K in 1..T, a workload of T steps each: the search
# grows as T^2 (about 40 s at T = 3000) and would run for hours at T = 20,000.
MAX_SEARCH_SEQ_LEN = 4096


def bound_search(seq_len: int, partitions: int | None, option: str) -> None:
    """Refuse, before it starts, a search over every K that would run for hours."""
    if partitions is None and seq_len > MAX_SEARCH_SEQ_LEN:
        fix = (
            f"compare at T <= {MAX_SEARCH_SEQ_LEN:,}"
            if option == "--compare"
            else "fix K with --partitions (then only that K is sized)"
        )
        raise ConfigError(
            f"{option} tries every K from 1 to T = {seq_len:,}, which takes hours above "
            f"T = {MAX_SEARCH_SEQ_LEN:,}; {fix}"
        )


def _spec_json(net: NetworkSpec, run: RunSpec) -> dict[str, Any]:
    return {"network": net.model_dump(), "run": run.model_dump()}


def memory(
    preset: str | None = _PRESET,
    input_size: int | None = _INPUT,
    hidden: int | None = _HIDDEN,
    classes: int | None = _CLASSES,
    batch: int | None = _BATCH,
    seq_len: int | None = _SEQ_LEN,
    cell: str | None = _CELL,
    layers: int | None = _LAYERS,
    trainable: str | None = _TRAINABLE,
    partitions: int | None = _PARTITIONS,
    dtype: str | None = _DTYPE,
    schedule: str | None = _SCHEDULE,
    segments: int | None = _SEGMENTS,
    plan: str | None = typer.Option(
        None,
        "--plan",
        help="paper (the seed paper's layout), lifetime (default) or recompute.",
    ),
    budget: str | None = typer.Option(
        None,
        "--budget",
        help="RAM budget of the generated C learner (arena + one batch + state image): pick the "
        "fastest K, plan and dtype that fit; --partitions, --plan or --dtype fp32|bf16 fix "
        "that choice. " + BYTES_HELP,
    ),
    compare: bool = typer.Option(
        False,
        "--compare",
        help="With --budget: the fastest FPTT K (exact schedule, lifetime or recompute plan) "
        "and the fastest checkpointed-BPTT segment count S whose training arena fits the "
        "budget, with their modelled latency on --soc.",
    ),
    soc: str | None = typer.Option(
        None,
        "--soc",
        help="--compare: the SoC preset the latency is modelled on, gemmini-fp32 or "
        "gemmini-bf16 (the seed paper's configs; default: the one of --dtype).",
    ),
    device: str | None = typer.Option(
        None,
        "--device",
        help="A device preset (e.g. portenta-h7, gap8, qemu-virt; 'list' lists them): does "
        "the generated C learner fit its RAM, less a reserve for stacks and bookkeeping, and "
        "with which K, plan and dtype (--dtype defaults to auto here); also its state file "
        "against the device's flash.",
    ),
    as_json: bool = _JSON,
) -> None:
    """Training memory of one pass: arena size, floor and breakdown; or, with --budget, the
    fastest K, plan and dtype whose learner fits a RAM budget; or, with --device, whether and
    how it fits a device."""
    from edgefptt.plan import plan_memory

    layer_options = {"cell": cell, "layers": layers, "trainable": trainable}
    if compare or soc is not None:
        if budget is None or not compare or device is not None:
            raise ConfigError(
                "--compare (and --soc) need --budget BYTES and no --device, e.g. "
                "edgefptt memory --budget 1.5MB --compare"
            )
        _compare_report(
            (preset, input_size, hidden, classes, batch, seq_len),
            budget,
            dtype,
            soc,
            as_json,
            layer_options,
        )
        return
    if device is not None:
        if budget is not None:
            raise ConfigError(
                "give --device or --budget, not both (--device budgets the device's RAM less "
                "its reserve for stacks and bookkeeping)"
            )
        _device_report(
            device,
            (preset, input_size, hidden, classes, batch, seq_len),
            partitions,
            dtype,
            schedule,
            plan,
            as_json,
            layer_options,
        )
        return
    if budget is not None:
        net, run = specs_from_options(
            preset,
            input_size,
            hidden,
            classes,
            batch,
            seq_len,
            partitions=partitions,
            dtype=None if dtype == "auto" else dtype,
            schedule=_budget_schedule(schedule, "--budget"),
            **layer_options,
        )
        _budget_report(net, run, budget, partitions, dtype, plan, as_json)
        return
    if dtype == "auto":
        raise ConfigError(
            "--dtype auto lets --budget or --device pick the element type; give one of them"
        )
    plan = plan or "lifetime"
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
        **layer_options,
    )
    with stderr.status(f"planning the memory of {run.seq_len} steps ..."):
        result = plan_memory(net, run, plan)
    if as_json:
        emit_json({**result.to_dict(), **_spec_json(net, run)})
        return
    count = f"S={run.num_segments}" if run.schedule == "checkpoint" else f"K={run.partitions}"
    table = Table(
        title=f"memory: plan {plan}, schedule {run.schedule}, {run.dtype}, "
        f"{count}, T={run.seq_len}, B={run.batch_size}"
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


def _compare_report(
    sizes: tuple[str | None, int | None, int | None, int | None, int | None, int | None],
    budget: str,
    dtype: str | None,
    soc_name: str | None,
    as_json: bool,
    layer_options: dict[str, Any],
) -> None:
    """`memory --budget B --compare`: the fastest FPTT K and checkpoint S that fit."""
    from edgefptt.hw import SOC_PRESETS, make_soc
    from edgefptt.hw.spec import default_soc_preset
    from edgefptt.plan.budget import compare_at_budget, parse_bytes

    if dtype == "auto":
        raise ConfigError("--compare uses one element type: give --dtype fp32 or bf16")
    if soc_name is not None and soc_name not in SOC_PRESETS:
        raise ConfigError(f"unknown --soc {soc_name!r}; choose from {', '.join(SOC_PRESETS)}")
    if dtype is None and soc_name is not None:
        dtype = SOC_PRESETS[soc_name].dtype
    net, run = specs_from_options(*sizes, dtype=dtype, schedule="exact", **layer_options)
    bound_search(run.seq_len, None, "--compare")
    name = soc_name or default_soc_preset(run.dtype)
    result = compare_at_budget(net, run, parse_bytes(budget), make_soc(name), name)
    if as_json:
        emit_json({**result.to_dict(), **_spec_json(net, run)})
        return
    table = Table(
        title=f"budget {result.budget_bytes:,} B for the training arena: FPTT against "
        f"checkpointed BPTT ({result.dtype}, T={run.seq_len}, B={run.batch_size}, latency "
        f"on {result.soc})"
    )
    for column in ("training", "choice", "L", "arena bytes", "cycles/pass", "ms/pass"):
        table.add_column(column, justify="left" if column in ("training", "choice") else "right")
    for label, best, kind in (
        ("FPTT", result.fptt, "fptt"),
        ("ckpt BPTT", result.checkpoint, "checkpoint"),
    ):
        if best is None:
            least = result.least[kind]
            what = "K" if kind == "fptt" else "S"
            table.add_row(
                label, f"does not fit (least {least.arena_bytes:,} B at {what}={least.count})",
                "", "", "", "",
            )  # fmt: skip
            continue
        choice = f"K={best.count} {best.plan}" if kind == "fptt" else f"S={best.count}"
        assert best.latency is not None
        table.add_row(
            label, choice, str(best.max_len), f"{best.arena_bytes:,}", f"{best.latency:,.0f}",
            f"{best.latency / result.clock_hz * 1e3:,.1f}",
        )  # fmt: skip
    stdout.print(table)
    stdout.print(
        "arena: the lifetime-planned training arena of one pass (parameters, gradients, FPTT "
        "state, activations, scratch; not the input batch). FPTT updates K times per sequence "
        "with its regularizer; checkpointed BPTT takes the exact gradient and one update, "
        "recomputing S-1 segments. Latency: hardware model.",
        highlight=False,
        soft_wrap=True,
    )


def _budget_schedule(schedule: str | None, option: str) -> str:
    """The schedule a budget sizes: the generated learner's, exact."""
    if schedule not in (None, "exact"):
        raise ConfigError(
            f"{option} sizes the generated C learner, which runs the exact schedule; "
            f"drop --schedule {schedule}"
        )
    return "exact"


def _budget_report(
    net: NetworkSpec,
    run: RunSpec,
    budget: str,
    partitions: int | None,
    dtype: str | None,
    plan: str | None,
    as_json: bool,
) -> None:
    """`memory --budget`: choose, then print the choice, its breakdown and the runners-up."""
    from edgefptt.codegen.export import export_workload
    from edgefptt.plan.budget import BUDGET_PLANS, choose, dtype_choices, parse_bytes

    bound_search(run.seq_len, partitions, "--budget")
    choice = choose(
        net,
        run,
        parse_bytes(budget),
        dtypes=dtype_choices(dtype, run.dtype),
        plans=BUDGET_PLANS if plan is None else (plan,),
        partitions=None if partitions is None else [partitions],
    )
    arena = export_workload(net, choice.run, choice.plan)[1]
    if as_json:
        emit_json(
            {**choice.to_dict(), "arena_breakdown": arena.breakdown, **_spec_json(net, choice.run)}
        )
        return
    chosen = choice.run
    table = Table(
        title=f"budget {choice.budget_bytes:,} B: K={chosen.partitions} "
        f"(L={chosen.max_partition_len}), {choice.plan}, {chosen.dtype}; exact schedule, "
        f"T={chosen.seq_len}, B={chosen.batch_size}"
    )
    table.add_column("part")
    table.add_column("bytes", justify="right")
    table.add_column("", justify="right")

    def row(name: str, value: int) -> None:
        table.add_row(name, f"{value:,}", human_bytes(value))

    row(f"arena ({choice.plan} plan)", choice.arena_bytes)
    for name, value in arena.breakdown.items():
        row(f"  {name}", value)
    row("batch (B*T*I*e + 4*B labels)", choice.batch_bytes)
    row("state image (140 + 3*P*e)", choice.state_bytes)
    table.add_section()
    row("total", choice.total_bytes)
    row("budget", choice.budget_bytes)
    row("left", choice.bytes_left)
    stdout.print(table)
    stdout.print(
        f"latency: {choice.latency:,.0f} {choice.latency_unit} per training pass "
        f"({choice.latency_seconds * 1e3:,.1f} ms on {choice.soc}, hardware model)",
        highlight=False,
        soft_wrap=True,
    )
    others = choice.best_per_plan_dtype()
    if len(others) > 1:
        runners = Table(title="fastest fit of each plan and dtype")
        for column in ("plan", "dtype", "K", "total bytes", "latency", "vs chosen"):
            runners.add_column(column, justify="left" if column in ("plan", "dtype") else "right")
        for cand in others:
            runners.add_row(
                cand.plan,
                cand.dtype,
                str(cand.partitions),
                f"{cand.total_bytes:,}",
                f"{cand.latency:,.0f}",
                f"x{cand.latency / choice.latency:.2f}",
            )
        stdout.print(runners)


def _device_report(
    name: str,
    sizes: tuple[str | None, int | None, int | None, int | None, int | None, int | None],
    partitions: int | None,
    dtype: str | None,
    schedule: str | None,
    plan: str | None,
    as_json: bool,
    layer_options: dict[str, Any],
) -> None:
    """`memory --device`: the presets (``list``), or whether the learner fits one and how."""
    from edgefptt.plan.budget import BUDGET_PLANS, dtype_choices
    from edgefptt.plan.devices import LIST_NAME, fit_device, get_device

    if name == LIST_NAME:
        _device_list(as_json)
        return
    device = get_device(name)
    net, run = specs_from_options(
        *sizes,
        partitions=partitions,
        dtype=None if dtype in (None, "auto") else dtype,
        schedule=_budget_schedule(schedule, "--device"),
        **layer_options,
    )
    bound_search(run.seq_len, partitions, "--device")
    fit = fit_device(
        net,
        run,
        device,
        dtypes=dtype_choices("auto" if dtype is None else dtype),
        plans=BUDGET_PLANS if plan is None else (plan,),
        partitions=None if partitions is None else [partitions],
    )
    chosen = run if fit.choice is None else fit.choice.run
    if as_json:
        emit_json({**fit.to_dict(), **_spec_json(net, chosen)})
        return
    verdict = "fits" if fit.fits else "does NOT fit"
    table = Table(
        title=f"device {device.name}: the learner {verdict} (I={net.input_size} "
        f"H={net.hidden_size} C={net.num_classes}, B={run.batch_size} T={run.seq_len}, exact "
        "schedule)"
    )
    table.add_column("item")
    table.add_column("bytes / value", justify="right")
    table.add_column("", justify="right")

    def row(label: str, value: int | None, note: str = "") -> None:
        if value is None:
            table.add_row(label, note or "-", "")
        else:
            table.add_row(label, f"{value:,}", note or human_bytes(value))

    table.add_row("device", device.description, "")
    table.add_row("cores", device.cores, "")
    table.add_row("FPU", "single precision" if device.fpu_single else "none (soft float)", "")
    row("RAM", device.ram_bytes)
    row(
        "reserve (stacks, bookkeeping)",
        fit.reserve_bytes,
        f"{device.core_count} x 8 KiB + 4 KiB" if fit.reserve_bytes == device.reserve_bytes else "",
    )
    row("budget for the learner", fit.budget_bytes)
    table.add_section()
    choice = fit.choice
    if choice is not None:
        table.add_row(
            "choice",
            f"K={choice.partitions} (L={choice.run.max_partition_len}), {choice.plan}, "
            f"{choice.dtype}",
            "",
        )
        row(f"arena ({choice.plan} plan)", choice.arena_bytes)
        row("batch (B*T*I*e + 4*B labels)", choice.batch_bytes)
        row("state image (140 + 3*P*e)", choice.state_bytes)
        row("total", choice.total_bytes)
        row("left", choice.bytes_left)
    else:
        least = fit.least
        table.add_row("fits", "no", "")
        row(
            "smallest need",
            fit.least_bytes,
            f"K={least.partitions}, {least.plan}, {least.dtype}",
        )
        row("short by", fit.shortfall_bytes)
    table.add_section()
    flash_dtype = choice.dtype if choice is not None else fit.least.dtype
    row(f"state file, flash ({flash_dtype}, 2 slots)", fit.flash_needed_bytes)
    row("device flash", device.flash_bytes, "" if device.flash_bytes else "not known")
    if fit.flash_left is not None:
        row("flash left", fit.flash_left)
    stdout.print(table)
    if choice is not None:
        stdout.print(
            f"fits: K={choice.partitions}, {choice.plan}, {choice.dtype}; "
            f"{choice.bytes_left:,} bytes of the budget left; modelled latency "
            f"{choice.latency_seconds * 1e3:,.1f} ms per training pass on {choice.soc} (the "
            "hardware model that ranks the choices, not a model of this device)",
            highlight=False,
            soft_wrap=True,
        )
    else:
        stdout.print(f"does not fit {device.name}: {fit.reason()}", highlight=False, soft_wrap=True)
    if fit.flash_excluded:
        stdout.print(
            f"flash: {', '.join(fit.flash_excluded)} not considered, its state file (two slots) "
            f"exceeds the device's {device.flash_bytes:,} bytes of flash",
            highlight=False,
            soft_wrap=True,
        )


def _device_list(as_json: bool) -> None:
    """`memory --device list`: the device presets."""
    from edgefptt.plan.devices import DEVICES

    if as_json:
        emit_json([d.to_dict() for d in DEVICES.values()])
        return
    table = Table(title="device presets (edgefptt memory --device NAME)")
    table.add_column("name")
    for column in ("RAM", "for the learner", "flash", "cores"):
        table.add_column(column, justify="right")
    table.add_column("FPU")
    table.add_column("description")
    for d in DEVICES.values():
        table.add_row(
            d.name,
            human_bytes(d.ram_bytes),
            human_bytes(d.budget_bytes),
            "-" if d.flash_bytes is None else human_bytes(d.flash_bytes),
            str(d.core_count),
            "yes" if d.fpu_single else "no",
            d.description,
        )
    stdout.print(table)


def ops(
    preset: str | None = _PRESET,
    input_size: int | None = _INPUT,
    hidden: int | None = _HIDDEN,
    classes: int | None = _CLASSES,
    batch: int | None = _BATCH,
    seq_len: int | None = _SEQ_LEN,
    cell: str | None = _CELL,
    layers: int | None = _LAYERS,
    trainable: str | None = _TRAINABLE,
    partitions: int | None = _PARTITIONS,
    dtype: str | None = _DTYPE,
    schedule: str | None = _SCHEDULE,
    segments: int | None = _SEGMENTS,
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
        segments=segments,
        cell=cell,
        layers=layers,
        trainable=trainable,
    )
    # The counter runs each distinct kernel once on float64 arrays of its operands' shapes:
    # the update of W alone reads four (4H, I+H) arrays.
    h = net.hidden_size
    require_memory(
        4 * 8 * 4 * h * (net.input_size + h),
        f"counting the operations of an LSTM of {h} units",
        "lower --hidden or --input",
    )
    with stderr.status(f"counting the operations of {run.seq_len} steps ..."):
        workload = build_workload(net, run)
        counts = {phase: c.to_dict() for phase, c in count_ops(workload).items()}
    if as_json:
        emit_json({**counts, **_spec_json(net, run)})
        return
    count = f"S={run.num_segments}" if run.schedule == "checkpoint" else f"K={run.partitions}"
    table = Table(
        title=f"operations: schedule {run.schedule}, {count}, T={run.seq_len}, "
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
