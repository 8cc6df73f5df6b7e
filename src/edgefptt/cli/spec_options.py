"""The network and run options that `memory`, `ops`, `estimate`, `explore` and `export-c` share."""

from __future__ import annotations

from typing import Any

import typer

from edgefptt.config import PRESETS, NetworkSpec, RunSpec, make_specs

PRESET = typer.Option(
    "paper-smnist",
    "--preset",
    help=f"Start from a preset ({', '.join(PRESETS)}); the size options below override it.",
)
INPUT = typer.Option(None, "--input", help="Input features per step, I.")
HIDDEN = typer.Option(None, "--hidden", help="LSTM units, H.")
CLASSES = typer.Option(None, "--classes", help="Readout classes, C.")
BATCH = typer.Option(None, "--batch", help="Batch size, B.")
SEQ_LEN = typer.Option(None, "--seq-len", help="Sequence length, T.")
JSON = typer.Option(False, "--json", help="Print one JSON document instead of a table.")


def specs_from_options(
    preset: str | None,
    input_size: int | None,
    hidden: int | None,
    classes: int | None,
    batch: int | None,
    seq_len: int | None,
    **run_values: Any,
) -> tuple[NetworkSpec, RunSpec]:
    """NetworkSpec and RunSpec from the preset and the options given (None = the preset's)."""
    return make_specs(
        preset,
        input_size=input_size,
        hidden_size=hidden,
        num_classes=classes,
        batch_size=batch,
        seq_len=seq_len,
        **run_values,
    )
