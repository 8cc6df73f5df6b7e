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
HIDDEN = typer.Option(None, "--hidden", help="Units of each recurrent layer, H.")
CLASSES = typer.Option(None, "--classes", help="Readout classes, C.")
BATCH = typer.Option(None, "--batch", help="Batch size, B.")
SEQ_LEN = typer.Option(None, "--seq-len", help="Sequence length, T.")
SEGMENTS = typer.Option(
    None,
    "--segments",
    help="Checkpointed segments S of --schedule checkpoint (default round(sqrt T); 1..T).",
)
JSON = typer.Option(False, "--json", help="Print one JSON document instead of a table.")
# The recurrent layers, as `edgefptt train` names them (--cell, --layers); any of them other
# than one trainable LSTM layer and readout selects the exact schedule (docs/workload.md).
CELL = typer.Option(None, "--cell", help="Recurrent cell of every layer: lstm or gru.")
LAYERS = typer.Option(None, "--layers", help="Stacked recurrent layers (all of --hidden units).")
TRAINABLE = typer.Option(
    None,
    "--trainable",
    help="What the device trains: all, top (top layer and readout), readout, or a list of "
    "layer indices and 'readout' (0,1,readout); the rest is frozen.",
)


def specs_from_options(
    preset: str | None,
    input_size: int | None,
    hidden: int | None,
    classes: int | None,
    batch: int | None,
    seq_len: int | None,
    *,
    cell: str | None = None,
    layers: int | None = None,
    trainable: str | None = None,
    **run_values: Any,
) -> tuple[NetworkSpec, RunSpec]:
    """NetworkSpec and RunSpec from the preset and the options given (None = the preset's).

    ``cell``, ``layers`` and ``trainable`` are the --cell, --layers and --trainable options.
    """
    return make_specs(
        preset,
        input_size=input_size,
        hidden_size=hidden,
        num_classes=classes,
        batch_size=batch,
        seq_len=seq_len,
        cell=cell,
        num_layers=layers,
        trainable=trainable,
        **run_values,
    )
