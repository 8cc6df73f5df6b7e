"""Speech commands: `make-speech-data`; and the speech parts of `train`'s output."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgefptt.cli.common import emit_json, stderr, stdout
from edgefptt.data.base import SequenceData
from edgefptt.data.synthetic_speech import DEFAULT_WORDS, make_synthetic_speech

# Above this many classes the confusion matrix is summarised (the full one is in --json/--plot).
MAX_MATRIX_CLASSES = 16
SHOWN_SKIPPED = 100


@contextlib.contextmanager
def loading_progress(label: str) -> Iterator[Any]:
    """A transient progress bar on stderr, drawn from ``callback(done, total)`` calls.

    The bar starts at the first call, so work that reports nothing prints nothing.
    """
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    )
    task = None

    def callback(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task(label, total=total)
        progress.update(task, completed=done, total=total)

    try:
        yield callback
    finally:
        if task is not None:
            progress.stop()


def data_summary(data: SequenceData) -> dict[str, Any]:
    """The ``data`` part of `train --json`: sizes, and for speech what was skipped and why."""
    summary: dict[str, Any] = {
        "name": data.name,
        "train_samples": len(data.train_y),
        "test_samples": len(data.test_y),
        "seq_len": data.seq_len,
        "input_size": data.input_size,
    }
    skipped = getattr(data, "skipped", None)
    if skipped is not None:
        summary["synthetic"] = bool(getattr(data, "synthetic", False))
        summary["stats"] = dict(data.stats)  # type: ignore[attr-defined]
        summary["skipped_clips"] = len(skipped)
        summary["skipped"] = [asdict(s) for s in skipped[:SHOWN_SKIPPED]]
    return summary


def data_notes(data: SequenceData) -> None:
    """Warnings about the data, on stderr: a synthetic corpus, skipped clips."""
    if getattr(data, "synthetic", False):
        stderr.print(
            "note: SYNTHETIC corpus (espeak-ng speech in the GSCv2 layout): a stand-in for the "
            "format; its accuracies say nothing about Google Speech Commands",
            style="yellow",
            highlight=False,
            soft_wrap=True,
        )
    skipped = getattr(data, "skipped", ())
    if skipped:
        first = skipped[0]
        stderr.print(
            f"warning: skipped {len(skipped)} broken clip(s), e.g. {first.path}: {first.reason} "
            "(all in --json under data.skipped)",
            style="yellow",
            highlight=False,
            soft_wrap=True,
        )
    stats = getattr(data, "stats", None)
    if stats:
        stderr.print(
            f"{data.name}: {stats['train_clips']} train clips ({stats['augmented_clips']} "
            f"augmented), {stats['eval_clips']} {stats['eval_split']} clips; features "
            f"{stats['cached_clips']} from cache, {stats['computed_clips']} computed",
            style="dim",
            highlight=False,
            soft_wrap=True,
        )


def class_tables(report: dict[str, Any], title: str) -> list[Table]:
    """Per-class accuracy, and the confusion matrix (or its largest confusions)."""
    names = report["class_names"]
    per_class = Table(title=f"per-class test accuracy, {title}")
    for column in ("class", "clips", "accuracy"):
        per_class.add_column(column, justify="right")
    for name in names:
        accuracy = report["per_class_accuracy"][name]
        shown = "-" if accuracy is None else f"{100 * accuracy:.1f}%"
        per_class.add_row(name, str(report["class_counts"][name]), shown)
    counts = report["confusion_matrix"]
    if len(names) <= MAX_MATRIX_CLASSES:
        matrix = Table(title="confusion matrix (rows: true class, columns: predicted)")
        matrix.add_column("true", justify="right")
        for name in names:
            matrix.add_column(name, justify="right")
        for i, name in enumerate(names):
            cells = [
                f"[bold]{c}[/bold]" if i == j else (str(c) if c else "[dim]·[/dim]")
                for j, c in enumerate(counts[i])
            ]
            matrix.add_row(name, *cells)
        return [per_class, matrix]
    pairs = sorted(
        (
            (counts[i][j], names[i], names[j])
            for i in range(len(names))
            for j in range(len(names))
            if i != j and counts[i][j]
        ),
        reverse=True,
    )[:10]
    confused = Table(title="most frequent confusions (full matrix: --json or --plot)")
    for column in ("true", "predicted", "clips"):
        confused.add_column(column, justify="right")
    for count, true, predicted in pairs:
        confused.add_row(true, predicted, str(count))
    return [per_class, confused]


def make_speech_data(
    out: Path = typer.Option(..., "--out", "-o", help="directory to write the corpus into"),
    words: str = typer.Option(
        ",".join(DEFAULT_WORDS), help="comma-separated words (the 10 keywords and some others)"
    ),
    speakers: int = typer.Option(24, help="voice/speed/pitch combinations (3 to 72)"),
    repeats: int = typer.Option(1, help="clips per word and speaker"),
    background_s: float = typer.Option(20.0, help="seconds of each background noise file"),
    seed: int = typer.Option(0, help="random seed"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="replace an earlier synthetic corpus"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document on stdout"),
) -> None:
    """Write a small SYNTHETIC corpus in the Speech Commands v2 layout with espeak-ng."""
    from edgefptt.cli.outputs import check_output_dir

    check_output_dir(out, "--out")
    with loading_progress("speaking words") as callback:
        summary = make_synthetic_speech(
            out,
            words=words.split(","),
            speakers=speakers,
            repeats=repeats,
            background_s=background_s,
            seed=seed,
            overwrite=overwrite,
            progress=callback,
        )
    if as_json:
        emit_json(asdict(summary))
        return
    table = Table(title=f"SYNTHETIC speech corpus in {summary.root}")
    table.add_column("")
    table.add_column("value")
    table.add_row("words", ", ".join(summary.words))
    table.add_row("speakers", f"{summary.speakers} ({', '.join(summary.voices)})")
    table.add_row("clips", ", ".join(f"{split} {count}" for split, count in summary.clips.items()))
    table.add_row("background", ", ".join(Path(p).name for p in summary.background_files))
    table.add_row("time", f"{summary.wall_s:.1f} s")
    stdout.print(table)
    stdout.print(
        f"note: {summary.note}. Train on it with: edgefptt train --dataset speech_commands "
        f"--data-dir {summary.root} --task 12",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the application."""
    app.command("make-speech-data")(make_speech_data)
