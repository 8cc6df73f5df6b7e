"""Commands: export-c (issue 5), the generated C training routine."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edgefptt.cli import spec_options
from edgefptt.cli.common import emit_json, human_bytes, stderr, stdout
from edgefptt.config import MAX_SEED, golden_min_bytes, make_specs, require_memory
from edgefptt.errors import ConfigError
from edgefptt.plan.budget import BYTES_HELP


def export_c(
    out: Path = typer.Option(..., "-o", "--out", help="Directory to write (created)."),
    preset: str | None = spec_options.PRESET,
    input_size: int | None = spec_options.INPUT,
    hidden: int | None = spec_options.HIDDEN,
    classes: int | None = spec_options.CLASSES,
    batch: int | None = spec_options.BATCH,
    seq_len: int | None = spec_options.SEQ_LEN,
    cell: str | None = spec_options.CELL,
    layers: int | None = spec_options.LAYERS,
    trainable: str | None = spec_options.TRAINABLE,
    partitions: int | None = typer.Option(None, "--partitions", help="FPTT partitions, K."),
    dtype: str | None = typer.Option(
        None,
        "--dtype",
        help="fp32 or bf16 (default fp32); with --memory-budget also auto (try both).",
    ),
    schedule: str = typer.Option(
        "exact",
        "--schedule",
        help="exact (full backward in each partition), paper (the seed paper's C: its "
        "truncated backward; K must divide T) or checkpoint (checkpointed BPTT: K = 1, "
        "--segments S; the one-pass program only).",
    ),
    segments: int | None = spec_options.SEGMENTS,
    plan: str | None = typer.Option(
        None,
        "--plan",
        help="Arena layout: lifetime (default), recompute (exact schedule) or paper (the paper "
        "schedule's static layout, every buffer in a place of its own).",
    ),
    memory_budget: str | None = typer.Option(
        None,
        "--memory-budget",
        help="RAM budget of the learner (arena + one batch + state image): export the fastest "
        "K, plan and dtype that fit; --partitions, --plan or --dtype fp32|bf16 fix that "
        "choice. " + BYTES_HELP,
    ),
    device: str | None = typer.Option(
        None,
        "--device",
        help="A device preset (edgefptt memory --device list): export the fastest K, plan and "
        "dtype whose learner fits its RAM less a reserve for stacks and bookkeeping, as "
        "--memory-budget would with that budget (--dtype defaults to auto here).",
    ),
    rounding: str = typer.Option(
        "rne", "--rounding", help="bf16 rounding on the core: rne (nearest even) or away."
    ),
    cores: int = typer.Option(1, "--cores", help="Default number of threads (harts)."),
    weights: Path | None = typer.Option(
        None,
        "--weights",
        help="A trained edgefptt checkpoint (LSTM or GRU layers, last-step readout); its cell "
        "and layers are the export's.",
    ),
    data: Path | None = typer.Option(
        None, "--data", help="An .npz with x (N, T, I) float and y (N,) int; first B used."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights and synthetic batch."),
    lr: float | None = typer.Option(
        None,
        "--lr",
        help="SGD learning rate of the one-pass program and the learner's default "
        "(default: the preset's, 0.01).",
    ),
    as_json: bool = spec_options.JSON,
) -> None:
    """Generate a C99 training routine and learner (one static arena, no malloc) with
    golden.json."""
    from edgefptt.cli.outputs import check_output_dir
    from edgefptt.codegen import export_c as generate
    from edgefptt.codegen.export import checkpoint_sizes, network_label
    from edgefptt.codegen.inputs import checkpoint_seq_len

    check_output_dir(out, "-o")
    if device is not None and memory_budget is not None:
        raise ConfigError(
            "give --device or --memory-budget, not both (--device budgets the device's RAM less "
            "its reserve for stacks and bookkeeping)"
        )
    if dtype == "auto" and memory_budget is None and device is None:
        raise ConfigError(
            "--dtype auto lets --memory-budget or --device pick the element type; give one of them"
        )
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed must be between 0 and {MAX_SEED} (got {seed})")
    explicit = {
        "input_size": input_size,
        "hidden_size": hidden,
        "num_classes": classes,
        "cell": cell,
        "num_layers": layers,
    }
    sizes, params = checkpoint_sizes(weights, explicit)
    net, run = make_specs(
        preset,
        **sizes,
        batch_size=batch,
        seq_len=seq_len,
        partitions=partitions,
        dtype=None if dtype == "auto" else dtype,
        schedule=schedule,
        learning_rate=lr,
        trainable=trainable,
        segments=segments,
    )
    trained_t = None if weights is None else checkpoint_seq_len(weights)
    if trained_t is not None and trained_t != run.seq_len:
        source = "--seq-len" if seq_len is not None else f"the preset {preset}'s T"
        raise ConfigError(
            f"--weights {weights} was trained on sequences of T = {trained_t}, but this export "
            f"runs T = {run.seq_len} ({source}); give --seq-len {trained_t}"
        )
    choice = None
    fit = None
    if memory_budget is not None or device is not None:
        from edgefptt.plan.budget import BUDGET_PLANS, choose, dtype_choices, parse_bytes
        from edgefptt.plan.devices import fit_device

        option = "--device" if device is not None else "--memory-budget"
        from edgefptt.cli.plan_cmds import bound_search

        bound_search(run.seq_len, partitions, option)
        if run.schedule != "exact":
            raise ConfigError(
                f"{option} sizes the exact schedule's learner (the only one export-c "
                f"generates); drop --schedule {run.schedule}"
            )
        plans = BUDGET_PLANS if plan is None else (plan,)
        ks = None if partitions is None else [partitions]
        if device is not None:
            fit = fit_device(
                net,
                run,
                device,
                dtypes=dtype_choices("auto" if dtype is None else dtype),
                plans=plans,
                partitions=ks,
            )
            choice = fit.require()
        else:
            choice = choose(
                net,
                run,
                parse_bytes(str(memory_budget)),
                dtypes=dtype_choices(dtype, run.dtype),
                plans=plans,
                partitions=ks,
            )
        run, plan = choice.run, choice.plan
    require_memory(
        golden_min_bytes(net, run),
        f"the golden model of this pass (H={net.hidden_size}, B={run.batch_size}, "
        f"T={run.seq_len}, K={run.partitions})",
        "lower --hidden, --batch or --seq-len, or raise --partitions",
    )
    # A spinner on stderr (nothing when it is not a terminal): the golden run takes seconds.
    with stderr.status(f"generating C and golden numbers for K={run.partitions} ..."):
        result = generate(
            net,
            run,
            out,
            plan=plan or "lifetime",
            rounding=rounding,  # type: ignore[arg-type]
            cores=cores,
            params=params,
            params_source=f"checkpoint {weights}" if weights else "",
            data=data,
            seed=seed,
        )
    if as_json:
        document = result.to_dict()
        if choice is not None:
            document["budget"] = choice.to_dict(candidates=False)
        if fit is not None:
            document["device"] = fit.to_dict()
        emit_json(document)
        return
    table = Table(title=f"export-c: {out}")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row(
        "network",
        f"{network_label(net)} I={net.input_size} H={net.hidden_size} C={net.num_classes}",
    )
    table.add_row(
        "run", f"B={run.batch_size} T={run.seq_len} K={run.partitions} {run.dtype} {run.schedule}"
    )
    table.add_row("arena", f"{result.arena_bytes:,} B ({human_bytes(result.arena_bytes)})")
    table.add_row("plan", result.plan)
    if fit is not None:
        dev = fit.device
        table.add_row(
            "device",
            f"{dev.name}: {dev.ram_bytes:,} B RAM - {fit.reserve_bytes:,} B reserve"
            + ("" if dev.fpu_single else ", no FPU (soft float)"),
        )
    if choice is not None:
        table.add_row(
            "memory budget",
            f"{choice.total_bytes:,} of {choice.budget_bytes:,} B ({choice.bytes_left:,} left)",
        )
        table.add_row(
            "budget choice",
            f"K={choice.partitions} {choice.plan} {choice.dtype}, "
            f"{choice.latency_seconds * 1e3:,.1f} ms/pass ({choice.soc})",
        )
    table.add_row("kernels in the pass", f"{result.kernel_count:,}")
    table.add_row("C statements (train)", f"{result.train_statements:,}")
    table.add_row("parameters", result.params_source)
    table.add_row("samples", result.samples_source)
    losses = result.golden_losses
    shown = ", ".join(f"{v:.5f}" for v in losses[:4]) + (" ..." if len(losses) > 4 else "")
    table.add_row("golden losses", shown)
    stdout.print(table)
    learner = (
        f" or {out}/learn_host --train FILE.efs [--test FILE.efs] (the learner, docs/learner.md)"
        if run.schedule != "checkpoint"
        else " (the learner trains with the FPTT schedules: none for this export)"
    )
    stdout.print(
        f"build: make -C {out} host, then {out}/train_host (one pass on the embedded batch)"
        + learner,
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the application."""
    app.command("export-c")(export_c)
