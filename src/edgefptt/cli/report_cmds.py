"""The `report` command: one HTML page with plots, ours beside the seed paper's."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgefptt.cli.common import emit_json, stderr, stdout
from edgefptt.errors import ConfigError


def report(
    out: Path = typer.Option(..., "--out", "-o", help="directory for index.html and results.json"),
    quick: bool = typer.Option(False, "--quick", help="smaller runs: the whole report in minutes"),
    fresh: bool = typer.Option(False, "--fresh", help="recompute instead of reusing the cache"),
    dataset: str = typer.Option(
        None, help="also train on this dataset (smnist or speech_commands) from --data-dir"
    ),
    data_dir: Path = typer.Option(None, help="directory of the extra dataset"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary on stdout"),
) -> None:
    """Run (or reuse) the experiments and write OUT/index.html with plots and tables."""
    from edgefptt.report import build_report, report_settings

    if (dataset is None) != (data_dir is None):
        raise ConfigError("--dataset and --data-dir go together (e.g. --dataset smnist)")
    if data_dir is not None and not data_dir.is_dir():
        raise ConfigError(f"data directory {data_dir} does not exist")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    settings = report_settings(
        quick, dataset=dataset, data_dir=None if data_dir is None else str(data_dir)
    )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[step]}"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    )
    tasks: dict[str, int] = {}

    def on_progress(section: str, message: str, fraction: float) -> None:
        if section not in tasks:
            tasks[section] = progress.add_task(section, total=1.0, step="")
        progress.update(tasks[section], completed=fraction, step=message)

    with progress:
        outcomes = build_report(
            out,
            settings,
            fresh=fresh,
            progress=on_progress,
            command="edgefptt " + " ".join(sys.argv[1:]) if sys.argv[1:] else "edgefptt report",
        )
    summary = {
        "index_html": str(out / "index.html"),
        "results_json": str(out / "results.json"),
        "sections": {
            o.key: {"ok": o.error is None, "cached": o.cached, "error": o.error} for o in outcomes
        },
    }
    if as_json:
        emit_json(summary)
        return
    table = Table(title=f"report written to {out / 'index.html'}")
    for column in ("section", "status", ""):
        table.add_column(column)
    for o in outcomes:
        status = "failed" if o.error else ("cached" if o.cached else "computed")
        table.add_row(o.title, status, o.error or "")
    stdout.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the application."""
    app.command()(report)
