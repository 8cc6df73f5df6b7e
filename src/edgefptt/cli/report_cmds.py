"""The `report` command: one HTML page with plots, ours beside the seed paper's."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from edgefptt.cli.common import emit_json, stdout
from edgefptt.cli.outputs import check_output_dir
from edgefptt.errors import ConfigError

REPORT_DATASETS = ("smnist", "speech_commands")


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
    from edgefptt.cli.progress import SectionProgress
    from edgefptt.report import build_report, report_settings

    if (dataset is None) != (data_dir is None):
        raise ConfigError("--dataset and --data-dir go together (e.g. --dataset smnist)")
    if dataset is not None and dataset not in REPORT_DATASETS:
        raise ConfigError(
            f"--dataset {dataset!r}: the report adds {' or '.join(REPORT_DATASETS)} to digits"
        )
    if data_dir is not None and not data_dir.is_dir():
        raise ConfigError(f"data directory {data_dir} does not exist")
    if dataset is not None:
        from edgefptt.data import check_data_dir

        check_data_dir(dataset, data_dir)  # a bad folder fails now, not after the other runs
    check_output_dir(out, "--out")
    settings = report_settings(
        quick, dataset=dataset, data_dir=None if data_dir is None else str(data_dir)
    )
    with SectionProgress("report") as progress:
        outcomes = build_report(
            out,
            settings,
            fresh=fresh,
            progress=progress,
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
