"""The `sweep` command: many training runs, a summary table, JSON and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgefptt.cli.common import emit_json, human_bytes, stderr, stdout
from edgefptt.errors import ConfigError
from edgefptt.sweep.grid import check_option_names, expand_grid, load_grid_file
from edgefptt.sweep.runner import run_sweep
from edgefptt.sweep.summary import write_summary
from edgefptt.train.config import make_config


def _numbers(text: str | None, option: str, kind: type) -> list[Any] | None:
    """'1,2,8' -> [1, 2, 8]; ConfigError on anything else."""
    if text is None:
        return None
    try:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        noun = "integers" if kind is int else "numbers"
        raise ConfigError(f"{option}: {text!r} is not a comma-separated list of {noun}") from None
    if not values:
        raise ConfigError(f"{option}: give at least one value (e.g. {option} 1,2)")
    return values


def _words(text: str | None) -> list[str] | None:
    if text is None:
        return None
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise ConfigError("--algorithms: give at least one of bptt, tbptt, fptt")
    return values


def _setting(text: str) -> tuple[str, Any]:
    """'clip=0.5' -> ('clip', 0.5): ints, floats, true/false and none, else a string."""
    key, sep, raw = text.partition("=")
    key = key.strip().lstrip("-").replace("-", "_")
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: write KEY=VALUE, e.g. --set clip=0.5")
    check_option_names([key], f"--set {text}")
    raw = raw.strip()
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    if lowered in ("none", "null"):
        return key, None
    for kind in (int, float):
        try:
            return key, kind(raw)
        except ValueError:
            pass
    return key, raw


def sweep(
    out: Path = typer.Option(..., "--out", "-o", help="directory of the runs and the summary"),
    grid: Path = typer.Option(
        None, "--grid", help="TOML file: [base] options and [grid] lists (docs/scale.md)"
    ),
    algorithms: str = typer.Option(None, help="comma-separated: bptt,tbptt,fptt"),
    partitions: str = typer.Option(None, "--partitions", "-K", help="comma-separated K values"),
    alpha: str = typer.Option(None, help="comma-separated FPTT alphas"),
    seeds: str = typer.Option(None, help="comma-separated seeds"),
    workers: int = typer.Option(1, help="runs at a time"),
    engine: str = typer.Option("local", help="local (process pool) or ray"),
    ray_address: str = typer.Option(None, help="Ray cluster address (--engine ray)"),
    dataset: str = typer.Option(None, help="digits, smnist, adding or speech_commands"),
    data_dir: Path = typer.Option(None, help="directory with the dataset's files"),
    epochs: int = typer.Option(None, help="epochs per run"),
    batch_size: int = typer.Option(None, help="batch size"),
    hidden: int = typer.Option(None, help="hidden units"),
    optimizer: str = typer.Option(None, help="sgd or adam"),
    lr: float = typer.Option(None, help="learning rate"),
    schedule: str = typer.Option(None, help="constant, cosine or step"),
    limit: int = typer.Option(None, help="use only the first N samples of each split"),
    order: str = typer.Option(None, help="pixel or row order"),
    permute: bool = typer.Option(None, "--permute/--no-permute", help="fixed pixel permutation"),
    device: str = typer.Option(None, help="auto, cpu or cuda"),
    precision: str = typer.Option(None, help="fp32 or bf16"),
    settings: list[str] = typer.Option(
        None, "--set", help="any other train option as KEY=VALUE (repeatable)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON on stdout"),
) -> None:
    """Train every combination of algorithms, K, alpha and seeds (or a --grid file), each
    in OUT/<run>; finished runs are reused, failed ones recorded; writes OUT/sweep.json and
    OUT/sweep.png (accuracy against activation memory)."""
    base, lists = load_grid_file(grid) if grid is not None else ({}, {})
    given = {
        "dataset": dataset,
        "data_dir": None if data_dir is None else str(data_dir),
        "epochs": epochs,
        "batch_size": batch_size,
        "hidden": hidden,
        "optimizer": optimizer,
        "lr": lr,
        "schedule": schedule,
        "limit": limit,
        "order": order,
        "permute": permute,
        "device": device,
        "precision": precision,
    }
    base.update({k: v for k, v in given.items() if v is not None})
    base.update(dict(_setting(s) for s in settings or []))
    axes = {
        "algorithm": _words(algorithms),
        "partitions": _numbers(partitions, "--partitions", int),
        "alpha": _numbers(alpha, "--alpha", float),
        "seed": _numbers(seeds, "--seeds", int),
    }
    lists.update({k: v for k, v in axes.items() if v is not None})
    if not lists:
        raise ConfigError(
            "nothing to sweep: give --grid FILE or at least one of --algorithms, --partitions, "
            "--alpha, --seeds"
        )
    make_config(**base)  # the shared options must be valid on their own
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    specs = expand_grid(base, lists)
    progress = Progress(
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    )
    with progress:
        task = progress.add_task("sweep", total=len(specs), last="")

        def on_done(record: dict[str, Any]) -> None:
            progress.update(task, advance=1, last=f"{record['name']}: {record['status']}")

        result = run_sweep(specs, out, workers, engine, ray_address, on_done)
    document = write_summary(out, result.records)
    if as_json:
        emit_json(document)
        return
    table = Table(title=f"sweep in {out}: {document['finished']} finished, "
                  f"{document['failed']} failed, {document['reused']} reused")  # fmt: skip
    table.add_column("run", no_wrap=True)
    for column in ("status", "test acc", "peak act", "param state", "s/epoch"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in result.records:
        ok = r["status"] == "finished"
        table.add_row(
            r["name"],
            ("reused" if r.get("reused") else "finished") if ok else "failed",
            f"{100 * r['final_test_accuracy']:.2f}%" if ok else "-",
            human_bytes(r["peak_activation_bytes"]) if ok else "-",
            human_bytes(r["param_state_bytes"]) if ok else "-",
            f"{r['mean_epoch_wall_s']:.2f}" if ok else "-",
        )
    stdout.print(table)
    for r in result.failed:
        stdout.print(f"{r['name']} failed: {r['error']}", highlight=False, soft_wrap=True)
    stdout.print(
        f"summary {document['summary_json']}"
        + (f", plot {document['plot']}" if document["plot"] else ""),
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the application."""
    app.command()(sweep)
