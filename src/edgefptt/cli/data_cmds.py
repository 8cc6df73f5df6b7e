"""Commands between host and edge learner: `export-data`, `evaluate` and `import-c`.

`export-data` writes a split of a dataset as a sample file (docs/learner.md), `evaluate` scores
a checkpoint on a dataset or a sample file (with W_bar under FPTT, as training does), and
`import-c` turns the state a learner wrote on the device back into a host checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import torch
import typer
from rich.table import Table

from edgefptt.cli.common import emit_json, human_bytes, stderr, stdout
from edgefptt.cli.outputs import check_output_dir
from edgefptt.cli.speech_cmds import class_tables, data_notes, data_summary, loading_progress
from edgefptt.data import load_dataset
from edgefptt.data.base import SequenceData
from edgefptt.data.speech_commands import Progress
from edgefptt.errors import CheckpointError, ConfigError
from edgefptt.learn.samples import read_samples, write_samples
from edgefptt.learn.state import (
    check_importable,
    checkpoint_from_state,
    read_state,
    shape_only_data,
)
from edgefptt.models import SequenceClassifier
from edgefptt.train.checkpoint import (
    EVALUATE_ENTRIES,
    MODEL_ENTRIES,
    load_checkpoint,
    save_checkpoint,
)
from edgefptt.train.config import TrainConfig, make_config
from edgefptt.train.fptt import FPTT
from edgefptt.train.loop import build_model, evaluate, load_data
from edgefptt.train.metrics import class_report

# Settings that say which data a run reads; the rest of a TrainConfig is about the model/run.
DATA_SETTINGS = (
    "data_dir",
    "order",
    "permute",
    "seq_len",
    "limit",
    "task",
    "words",
    "features",
    "num_features",
    "unknown_fraction",
    "silence_fraction",
    "augment",
    "time_shift_ms",
    "noise_level",
    "cache_dir",
)
SPLITS = {"train", "test", "val"}


# ---------------------------------------------------------------------------- helpers
def _given(options: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave (not None), paths as strings, for make_config."""
    out = {k: v for k, v in options.items() if v is not None}
    for key in ("data_dir", "cache_dir"):
        if key in out:
            out[key] = str(out[key])
    return out


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1 (got {limit})")


def _check_output(path: Path, option: str) -> None:
    """Refuse an output that cannot be written, before any work; create missing folders."""
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a directory; give a file name")
    parent = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(f"{option} {path}: {parent} is a file, not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{option} {path}: cannot create {path.parent} ({exc.strerror})"
        ) from None


def load_split(
    config: TrainConfig, split: str, progress: Progress | None = None
) -> tuple[SequenceData, torch.Tensor, torch.Tensor]:
    """The data ``config`` names (as `train` loads it) and the inputs and targets of ``split``
    (train, test, or val where the dataset has a validation split: speech_commands)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose train, test or val")
    if split == "val":
        if config.dataset != "speech_commands":
            raise ConfigError(
                f"{config.dataset} has no val split (its splits are train and test); "
                "use --split train or --split test"
            )
        # As load_data, with the validation list as the evaluation split.
        options = dataclasses.replace(config.speech_options(), eval_split="validation")
        data = load_dataset(
            config.dataset,
            data_dir=config.data_dir,
            order=config.order,
            permute=config.permute,
            seq_len=config.seq_len,
            limit=config.limit,
            seed=config.seed,
            speech=options,
            progress=progress,
        )
        return data, data.test_x, data.test_y
    data = load_data(config, progress=progress)
    if split == "train":
        return data, data.train_x, data.train_y
    return data, data.test_x, data.test_y


def model_from_checkpoint(
    document: dict[str, Any], name: str
) -> tuple[TrainConfig, SequenceClassifier, FPTT | None]:
    """The model a checkpoint holds (built with its config) and its FPTT state, if any."""
    try:
        config = make_config(**document["config"])
        model = build_model(config, shape_only_data(document["data"]))
        model.load_state_dict(document["model"])
        fptt = None
        if document.get("fptt") is not None:
            # The parameters FPTT manages, in its order (all of them in older checkpoints).
            named = dict(model.named_parameters())
            managed = document.get("fptt_params") or list(named)
            fptt = FPTT(
                [named[name] for name in managed],
                alpha=config.alpha,
                beta=config.beta,
                linear_coef=config.linear_coef,
            )
            fptt.load_state_dict(document["fptt"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{name} does not hold a model this edgefptt can rebuild: {first}"
        ) from None
    return config, model, fptt


def evaluate_model(
    model: SequenceClassifier, fptt: FPTT | None, data: SequenceData, batch_size: int
) -> dict[str, Any]:
    """Loss and accuracy on ``data``'s test split (with W_bar under FPTT), and for a
    classifier the per-class report."""
    averaged = fptt.average() if fptt is not None else contextlib.nullcontext()
    with averaged:
        loss, accuracy = evaluate(model, data, batch_size)
    result: dict[str, Any] = {
        "loss": loss,
        "accuracy": accuracy,
        "samples": len(data.test_y),
        "weights": "w_bar" if fptt is not None else "params",
    }
    if data.task == "classification":
        result["classes"] = class_report(model, data, fptt, batch_size)
    return result


# ---------------------------------------------------------------------------- export-data
def export_data(
    dataset: str = typer.Option(..., help="digits, smnist or speech_commands"),
    data_dir: Path = typer.Option(
        None, help="directory with the dataset's files (smnist, speech_commands)"
    ),
    task: str = typer.Option(None, help="speech: 12, 35 or custom (as in train)"),
    words: str = typer.Option(None, help="speech --task custom: comma-separated words"),
    features: str = typer.Option(None, help="speech: mfcc or logmel"),
    num_features: int = typer.Option(None, help="speech: coefficients per 10 ms frame"),
    cache_dir: Path = typer.Option(None, help="speech feature cache (default: ~/.cache/edgefptt)"),
    order: str = typer.Option(None, help="pixel or row order (digits, smnist)"),
    permute: bool = typer.Option(None, "--permute/--no-permute", help="fixed pixel permutation"),
    split: str = typer.Option("train", help="train, test, or val (speech_commands only)"),
    limit: int = typer.Option(None, help="keep only the first N samples of the split"),
    dtype: str = typer.Option("fp32", help="value type in the file: fp32 or bf16"),
    seed: int = typer.Option(None, help="seed of the data loader (as in train)"),
    out: Path = typer.Option(..., "--out", "-o", help="sample file to write (.efs)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document on stdout"),
) -> None:
    """Write one split of a dataset as a sample file for the edge learner (docs/learner.md)."""
    given = _given(
        {
            "dataset": dataset,
            "data_dir": data_dir,
            "task": task,
            "words": words,
            "features": features,
            "num_features": num_features,
            "cache_dir": cache_dir,
            "order": order,
            "permute": permute,
            "seed": seed,
        }
    )
    config = make_config(**given)
    if config.dataset == "adding":
        raise ConfigError(
            "adding is a regression task; a sample file holds class labels, so export "
            "digits, smnist or speech_commands"
        )
    if split not in SPLITS:
        raise ConfigError(f"unknown --split {split!r}; choose train, test or val")
    _check_limit(limit)
    if dtype not in ("fp32", "bf16"):
        raise ConfigError(f"unknown --dtype {dtype!r}; choose fp32 or bf16")
    _check_output(out, "-o")
    if cache_dir is not None and config.dataset == "speech_commands":
        check_output_dir(cache_dir, "--cache-dir")
    with loading_progress(f"loading {config.dataset}") as progress_callback:
        data, x, y = load_split(config, split, progress_callback)
    data_notes(data)
    if data.task != "classification":
        raise ConfigError(f"{data.name} is not a classification task; a sample file needs labels")
    if limit is not None:
        x, y = x[:limit], y[:limit]
    size = write_samples(out, x.numpy(), y.numpy(), data.num_classes, dtype)
    n, t, i = (int(v) for v in x.shape)
    document = {
        "file": str(out),
        "dataset": data.name,
        "split": split,
        "count": n,
        "seq_len": t,
        "input_size": i,
        "num_classes": data.num_classes,
        "dtype": dtype,
        "bytes": size,
    }
    if as_json:
        emit_json(document)
        return
    table = Table(title=f"{data.name}, {split} split")
    for column in ("file", "N", "T", "I", "C", "dtype", "bytes"):
        table.add_column(column, justify="left" if column == "file" else "right")
    table.add_row(str(out), str(n), str(t), str(i), str(data.num_classes), dtype, str(size))
    stdout.print(table)


# ---------------------------------------------------------------------------- evaluate
def evaluate_cmd(
    checkpoint: Path = typer.Option(..., help="checkpoint to evaluate (checkpoint.pt, import-c)"),
    dataset: str = typer.Option(None, help="evaluate on this dataset (default: the checkpoint's)"),
    data_dir: Path = typer.Option(None, help="directory with the dataset's files"),
    task: str = typer.Option(None, help="speech: 12, 35 or custom"),
    words: str = typer.Option(None, help="speech --task custom: comma-separated words"),
    features: str = typer.Option(None, help="speech: mfcc or logmel"),
    num_features: int = typer.Option(None, help="speech: coefficients per 10 ms frame"),
    cache_dir: Path = typer.Option(None, help="speech feature cache (default: ~/.cache/edgefptt)"),
    order: str = typer.Option(None, help="pixel or row order (digits, smnist)"),
    permute: bool = typer.Option(None, "--permute/--no-permute", help="fixed pixel permutation"),
    limit: int = typer.Option(None, help="evaluate on the first N samples of the split only"),
    split: str = typer.Option(None, help="test (default) or train"),
    samples: Path = typer.Option(
        None, help="evaluate on this sample file (.efs) instead of a dataset"
    ),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document on stdout"),
) -> None:
    """Evaluate a checkpoint (with W_bar when it holds FPTT state) on a dataset or sample file."""
    from edgefptt.train import distributed

    torch_device = distributed.resolve_device(device)  # --device cuda without CUDA: say so now
    given = _given(
        {
            "dataset": dataset,
            "data_dir": data_dir,
            "task": task,
            "words": words,
            "features": features,
            "num_features": num_features,
            "cache_dir": cache_dir,
            "order": order,
            "permute": permute,
        }
    )
    if split is not None and split not in ("test", "train"):
        raise ConfigError(f"unknown --split {split!r}; choose test or train")
    _check_limit(limit)
    if samples is not None and (given or split is not None or limit is not None):
        raise ConfigError(
            "--samples evaluates on a sample file; drop the dataset and split options"
        )
    if cache_dir is not None:
        check_output_dir(cache_dir, "--cache-dir")
    document = load_checkpoint(checkpoint, EVALUATE_ENTRIES)
    config, model, fptt = model_from_checkpoint(document, str(checkpoint))
    entry = document["data"]
    if samples is not None:
        if entry.get("task") != "classification":
            raise ConfigError(
                f"{checkpoint} holds a regression model; a sample file holds class labels"
            )
        read = read_samples(
            samples, input_size=int(entry["input_size"]), num_classes=int(entry["num_outputs"])
        )
        x, y = torch.from_numpy(read.x), torch.from_numpy(read.y)
        data = SequenceData(samples.name, x, y, x, y, read.num_classes)
        where, shown_split = str(samples), "samples"
    else:
        settings = dict(document["config"])
        if "dataset" in given and given["dataset"] != settings.get("dataset"):
            for key in DATA_SETTINGS:
                settings.pop(key, None)
        data_config = make_config(**{**settings, **given})
        shown_split = split or "test"
        with loading_progress(f"loading {data_config.dataset}") as progress_callback:
            loaded, x, y = load_split(data_config, shown_split, progress_callback)
        data_notes(loaded)
        fits = (loaded.input_size, loaded.num_outputs, loaded.task) == (
            int(entry["input_size"]),
            int(entry["num_outputs"]),
            entry.get("task", "classification"),
        )
        if not fits:
            raise ConfigError(
                f"{checkpoint} was trained on {entry.get('name')} (I={entry['input_size']}, "
                f"{entry['num_outputs']} outputs, {entry.get('task')}); {loaded.name} has "
                f"I={loaded.input_size}, {loaded.num_outputs} outputs, {loaded.task}"
            )
        if limit is not None:
            x, y = x[:limit], y[:limit]
        data = dataclasses.replace(loaded, test_x=x, test_y=y)
        where = loaded.name
    model.to(torch_device)
    if fptt is not None:
        fptt.to(torch_device)
    result = evaluate_model(model, fptt, data, config.eval_batch_size)
    if as_json:
        out: dict[str, Any] = {
            "checkpoint": str(checkpoint),
            "dataset": where if samples is None else None,
            "samples_file": str(samples) if samples is not None else None,
            "split": shown_split,
            **result,
        }
        if samples is None:
            out["data"] = data_summary(loaded)
        emit_json(out)
        return
    if "classes" in result:
        for table in class_tables(result["classes"], f"{where}, {shown_split}"):
            stdout.print(table)
    weights = "W_bar (FPTT)" if fptt is not None else "the weights"
    stdout.print(
        f"{where} ({shown_split}, {result['samples']} samples): loss {result['loss']:.4f}, "
        f"accuracy {100 * result['accuracy']:.2f}%, with {weights} of {checkpoint}",
        highlight=False,
        soft_wrap=True,
    )


# ---------------------------------------------------------------------------- import-c
def import_c(
    state: Path = typer.Argument(
        ..., metavar="STATE", help="state file the learner wrote (learn_host --state)"
    ),
    like: Path = typer.Option(..., "--like", help="checkpoint the learner was exported from"),
    out: Path = typer.Option(..., "--out", "-o", help="checkpoint to write (.pt)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document on stdout"),
) -> None:
    """Turn a device learner's state into a host checkpoint (for evaluate, export-c --weights)."""
    _check_output(out, "-o")
    original = load_checkpoint(like, MODEL_ENTRIES)
    check_importable(original, str(like))
    device, slot = read_state(state)
    payload = checkpoint_from_state(device, original, source=str(state), like_name=str(like))
    save_checkpoint(out, payload)
    summary = {
        "checkpoint": str(out),
        "state": str(state),
        "slot": slot,
        "sequence": device.sequence,
        "dtype": device.dtype,
        "input_size": device.input_size,
        "hidden": device.hidden,
        "num_classes": device.num_classes,
        "batch_size": device.batch_size,
        "seq_len": device.seq_len,
        "partitions": device.partitions,
        "epochs_completed": device.epochs_completed,
        "batches_done": device.batches_done,
        "stopped_early": device.stopped_early,
        "alpha": payload["config"]["alpha"],
        "beta": payload["config"]["beta"],
        "linear_coef": payload["config"]["linear_coef"],
        "lr0": device.lr0,
        "like": str(like),
    }
    if as_json:
        emit_json(summary)
        return
    table = Table(title=f"device state {state} -> {out}")
    table.add_column("")
    table.add_column("value")
    table.add_row("image", f"slot {slot}, sequence {device.sequence}, {device.dtype}")
    table.add_row(
        "model",
        f"I={device.input_size}, H={device.hidden}, C={device.num_classes} "
        f"({device.param_count} parameters, {human_bytes(device.image_bytes)} image)",
    )
    table.add_row("run", f"B={device.batch_size}, T={device.seq_len}, K={device.partitions}")
    progress = f"{device.epochs_completed} epoch(s) completed"
    if device.batches_done:
        progress += f", {device.batches_done} batch(es) into the next"
    if device.stopped_early:
        progress += ", stopped early"
    table.add_row("progress", progress)
    table.add_row(
        "FPTT",
        f"alpha {summary['alpha']}, beta {summary['beta']}, c {summary['linear_coef']} "
        "(W, W_bar and lam imported)",
    )
    table.add_row("settings from", str(like))
    stdout.print(table)
    stderr.print(
        f"evaluate it with: edgefptt evaluate --checkpoint {out}", style="dim", highlight=False
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the application."""
    app.command("export-data")(export_data)
    app.command("evaluate")(evaluate_cmd)
    app.command("import-c")(import_c)
