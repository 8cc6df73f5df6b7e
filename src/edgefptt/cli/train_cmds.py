"""Commands for host training: `train` and `demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgefptt.cli.common import emit_json, human_bytes, stderr, stdout
from edgefptt.cli.progress import RichTrainProgress
from edgefptt.cli.speech_cmds import class_tables, data_notes, data_summary, loading_progress
from edgefptt.errors import ConfigError
from edgefptt.train.compare import compare, side_by_side
from edgefptt.train.config import TrainConfig, make_config
from edgefptt.train.loop import TrainResult, fit, initial_params, load_data
from edgefptt.train.metrics import class_report, save_confusion_plot


def _default(name: str) -> str:
    return f"(default: {TrainConfig.model_fields[name].default})"


def _epoch_table(result: TrainResult) -> Table:
    table = Table(title=f"{result.config['algorithm']} on {result.dataset}")
    for column in ("epoch", "train loss", "train acc", "test loss", "test acc", "s/epoch", "act"):
        table.add_column(column, justify="right")
    for r in result.history:
        table.add_row(
            str(r["epoch"]),
            f"{r['train_loss']:.4f}",
            f"{100 * r['train_accuracy']:.1f}%",
            f"{r['test_loss']:.4f}",
            f"{100 * r['test_accuracy']:.1f}%",
            f"{r['wall_s']:.2f}",
            human_bytes(r["peak_activation_bytes"]),
        )
    return table


def train(
    dataset: str = typer.Option(
        None, help=f"digits, smnist, adding or speech_commands {_default('dataset')}"
    ),
    algorithm: str = typer.Option(None, help=f"bptt, tbptt or fptt {_default('algorithm')}"),
    partitions: int = typer.Option(
        None, "--partitions", "-K", help=f"K, partitions per sequence {_default('partitions')}"
    ),
    epochs: int = typer.Option(None, help=_default("epochs")),
    batch_size: int = typer.Option(None, help=_default("batch_size")),
    hidden: int = typer.Option(None, help=f"hidden units per layer {_default('hidden')}"),
    layers: int = typer.Option(None, help=_default("layers")),
    cell: str = typer.Option(None, help=f"lstm or gru {_default('cell')}"),
    readout: str = typer.Option(None, help=f"last or mean {_default('readout')}"),
    optimizer: str = typer.Option(None, help=f"sgd or adam {_default('optimizer')}"),
    lr: float = typer.Option(None, help=f"learning rate {_default('lr')}"),
    momentum: float = typer.Option(None, help=f"SGD momentum {_default('momentum')}"),
    weight_decay: float = typer.Option(None, help=_default("weight_decay")),
    schedule: str = typer.Option(None, help=f"constant, cosine or step {_default('schedule')}"),
    clip: float = typer.Option(None, help=f"gradient-norm clip, 0 for none {_default('clip')}"),
    alpha: float = typer.Option(None, help=f"FPTT alpha {_default('alpha')}"),
    beta: float = typer.Option(None, help=f"FPTT beta {_default('beta')}"),
    linear_coef: float = typer.Option(None, help=f"FPTT c {_default('linear_coef')}"),
    loss_weighting: str = typer.Option(None, help=f"ramp or last {_default('loss_weighting')}"),
    reset_lambda: bool = typer.Option(
        None, "--reset-lambda/--keep-lambda", help="zero FPTT's lambda after each epoch"
    ),
    data_dir: Path = typer.Option(
        None, help="directory with the dataset's files (smnist, speech_commands)"
    ),
    order: str = typer.Option(None, help=f"pixel or row order {_default('order')}"),
    permute: bool = typer.Option(None, "--permute/--no-permute", help="fixed pixel permutation"),
    seq_len: int = typer.Option(None, help=f"adding problem length {_default('seq_len')}"),
    limit: int = typer.Option(None, help="use only the first N samples of each split"),
    task: str = typer.Option(
        None, help=f"speech: 12 (10 words + unknown + silence), 35 or custom {_default('task')}"
    ),
    words: str = typer.Option(None, help="speech --task custom: comma-separated words"),
    features: str = typer.Option(None, help=f"speech: mfcc or logmel {_default('features')}"),
    num_features: int = typer.Option(
        None, help=f"speech: coefficients per 10 ms frame {_default('num_features')}"
    ),
    unknown_fraction: float = typer.Option(
        None, help=f"speech: unknown clips per word clip, 0 drops it {_default('unknown_fraction')}"
    ),
    silence_fraction: float = typer.Option(
        None, help=f"speech: silence clips per word clip, 0 drops it {_default('silence_fraction')}"
    ),
    augment: int = typer.Option(
        None, help=f"speech: augmented copies per training clip {_default('augment')}"
    ),
    time_shift_ms: float = typer.Option(
        None, help=f"speech augmentation: largest time shift {_default('time_shift_ms')}"
    ),
    noise_level: float = typer.Option(
        None, help=f"speech augmentation: background noise gain {_default('noise_level')}"
    ),
    cache_dir: Path = typer.Option(None, help="speech feature cache (default: ~/.cache/edgefptt)"),
    plot: Path = typer.Option(
        None, help="write a PNG of the confusion matrix and per-class accuracy here"
    ),
    seed: int = typer.Option(None, help=_default("seed")),
    recipe: str = typer.Option(
        None,
        help="host (the options above) or device: the generated C learner's procedure "
        "(docs/learner.md), which sets --algorithm fptt --cell lstm --layers 1 --readout last "
        "--optimizer sgd --momentum 0 --weight-decay 0 --clip 0 --loss-weighting last "
        "--schedule constant and takes the device's sample order and floor(N/B) batches "
        f"{_default('recipe')}",
    ),
    lr_step: str = typer.Option(
        None, "--lr-step", help="device recipe: E:F multiplies the lr by F every E epochs"
    ),
    init: Path = typer.Option(
        None,
        help="start from this edgefptt checkpoint's weights (W_bar if it holds FPTT state); "
        "--hidden defaults to the checkpoint's",
    ),
    patience: int = typer.Option(
        None, help="stop after P epochs in a row without a lower test loss (0: off)"
    ),
    out: Path = typer.Option(
        None,
        help="output directory (default: runs/<dataset>-<algorithm>-K<partitions>, "
        "with -device under --recipe device)",
    ),
    resume: bool = typer.Option(False, "--resume", help="continue from OUT/checkpoint.pt"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document on stdout"),
) -> None:
    """Train a recurrent classifier with BPTT, truncated BPTT or FPTT."""
    given: dict[str, Any] = {k: v for k, v in locals().items() if v is not None}
    for key in ("out", "resume", "as_json", "plot"):
        given.pop(key, None)
    for key in ("data_dir", "cache_dir", "init"):
        if key in given:
            given[key] = str(given[key])
    if given.get("clip") == 0:
        given["clip"] = None
    if init is not None and hidden is None:
        given["hidden"] = initial_params(init)[1]["hidden_size"]
    config = make_config(**given)
    if plot is not None and plot.suffix.lower() != ".png":
        raise ConfigError(f"--plot writes a PNG; give a file name ending in .png (got {plot})")
    if out is None:
        name = f"{config.dataset}-{config.algorithm}-K{config.effective_partitions}"
        out = Path("runs") / (f"{name}-device" if config.recipe == "device" else name)
    with loading_progress(f"loading {config.dataset}") as progress_callback:
        data = load_data(config, progress=progress_callback)
    data_notes(data)
    with RichTrainProgress(config.algorithm, config.epochs) as progress:
        result = fit(config, data, out_dir=out, resume=resume, callbacks=progress)
    report = None
    if data.task == "classification":
        report = class_report(result.model, data, result.fptt, config.eval_batch_size)
        if plot is not None:
            save_confusion_plot(
                report,
                plot,
                title=f"{data.name}, {config.algorithm} K={config.effective_partitions}: "
                f"accuracy {100 * report['accuracy']:.1f}%",
            )
    if as_json:
        document = result.summary()
        if report is not None:
            document["classes"] = report
        document["data"] = data_summary(data)
        if plot is not None:
            document["plot"] = str(plot)
        emit_json(document)
        return
    stdout.print(_epoch_table(result))
    if report is not None:
        for table in class_tables(report, data.name):
            stdout.print(table)
    state = result.param_state
    stdout.print(
        f"final test accuracy {100 * result.final_test_accuracy:.2f}%  "
        f"peak activation memory {human_bytes(result.peak_activation_bytes)}  "
        f"parameter state {human_bytes(state['total_bytes'])} "
        f"(weights {human_bytes(state['weights_bytes'])}, grads "
        f"{human_bytes(state['gradients_bytes'])}, optimizer "
        f"{human_bytes(state['optimizer_bytes'])}, FPTT {human_bytes(state['fptt_bytes'])})",
        highlight=False,
    )
    if result.stopped_early:
        stdout.print(
            f"stopped early after epoch {result.history[-1]['epoch']}: no lower test loss for "
            f"{config.patience} epoch{'' if config.patience == 1 else 's'} in a row",
            highlight=False,
        )
    stdout.print(f"checkpoint {result.checkpoint}, log {out / 'metrics.jsonl'}", highlight=False)
    if plot is not None:
        stdout.print(f"confusion matrix plot {plot}", highlight=False)


def demo(
    partitions: int = typer.Option(8, "--partitions", "-K", help="K for FPTT"),
    epochs: int = typer.Option(30, help="epochs for each algorithm"),
    seed: int = typer.Option(0, help="random seed"),
    edge: bool = typer.Option(
        True,
        "--edge/--no-edge",
        help="end with the edge step: the FPTT model exported to C and fine-tuned there on "
        "held-out digits (needs a C compiler and make; skipped with a note without them)",
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document on stdout"),
) -> None:
    """Train one LSTM on the bundled digits with BPTT and with FPTT, and compare the costs;
    then fine-tune the FPTT model in generated C, as a device would."""
    base = make_config(dataset="digits", epochs=epochs, seed=seed, partitions=partitions)
    variants = {"bptt": {"algorithm": "bptt"}, "fptt": {"algorithm": "fptt"}}
    progress: list[RichTrainProgress] = []

    def callbacks(name: str) -> RichTrainProgress:
        bar = RichTrainProgress(name, epochs).__enter__()
        progress.append(bar)
        return bar

    try:
        results = compare(base, variants, callbacks=callbacks)
    finally:
        for bar in progress:
            bar.__exit__(None, None, None)
    comparison = side_by_side(results["bptt"], results["fptt"])
    step, skipped = _edge_step(results["fptt"], base, partitions, seed) if edge else (None, None)
    if as_json:
        emit_json(
            {
                "dataset": results["fptt"].dataset,
                "partitions": partitions,
                "epochs": epochs,
                "bptt": results["bptt"].summary(),
                "fptt": results["fptt"].summary(),
                "comparison": comparison,
                "edge": step.to_dict() if step is not None else {"skipped": skipped},
            }
        )
        return
    base_m, cand_m, ratio = comparison["baseline"], comparison["candidate"], comparison["ratio"]
    table = Table(title=f"BPTT vs FPTT (K = {partitions}), LSTM {base.hidden} on pixel digits")
    for column in ("", "BPTT", f"FPTT K={partitions}", "FPTT / BPTT"):
        table.add_column(column, justify="right")
    table.add_row(
        "test accuracy",
        f"{100 * base_m['test_accuracy']:.2f}%",
        f"{100 * cand_m['test_accuracy']:.2f}%",
        f"{ratio['test_accuracy_points']:+.2f} points",
    )
    for key, label in (
        ("peak_activation_bytes", "peak activation memory"),
        ("param_state_bytes", "parameter-state memory"),
    ):
        table.add_row(
            label, human_bytes(base_m[key]), human_bytes(cand_m[key]), f"{ratio[key]:.3f}x"
        )
    table.add_row(
        "wall time per epoch",
        f"{base_m['epoch_wall_s']:.2f} s",
        f"{cand_m['epoch_wall_s']:.2f} s",
        f"{ratio['epoch_wall_s']:.2f}x",
    )
    stdout.print(table)
    stderr.print(
        "activation memory: bytes autograd saves for backward, peak over partitions; "
        "parameter state: weights, gradients, optimizer and FPTT state.",
        style="dim",
    )
    if step is not None:
        stdout.print(_edge_table(step, cand_m))
    elif skipped:
        stderr.print(f"edge step skipped: {skipped}", style="dim")


# The demo's edge step: fine-tune in C on one half of the test split, measure on the other.
EDGE_LR, EDGE_BATCH, EDGE_EPOCHS = 0.01, 8, 1


def _edge_step(result: TrainResult, config: TrainConfig, partitions: int, seed: int):
    """(EdgeStep, None), or (None, why it was skipped)."""
    import tempfile

    from edgefptt.learn.edge_step import edge_finetune, edge_step_available

    missing = edge_step_available()
    if missing is not None:
        return None, missing
    data = load_data(config)
    with (
        stderr.status("edge step: exporting the FPTT model to C, building and fine-tuning ..."),
        tempfile.TemporaryDirectory(prefix="edgefptt-demo-") as work,
    ):
        step = edge_finetune(
            result.model, result.fptt, data, Path(work), partitions=partitions,
            batch_size=EDGE_BATCH, lr=EDGE_LR, epochs=EDGE_EPOCHS, seed=seed,
        )  # fmt: skip
    return step, None


def _edge_table(step: Any, host: dict[str, float]) -> Table:
    table = Table(
        title=f"edge step: the FPTT model fine-tuned in generated C (K = {step.partitions}, "
        f"B = {step.batch_size}, SGD {step.lr}, {step.epochs} epoch on {step.finetune_samples} "
        f"held-out digits; accuracy on the other {step.eval_samples})"
    )
    for column in ("", "host (PyTorch)", "device (generated C)"):
        table.add_column(column, justify="right")
    table.add_row(
        "accuracy before fine-tuning",
        f"{100 * step.host_accuracy:.2f}%",
        f"{100 * step.device_before:.2f}%",
    )
    table.add_row("accuracy after fine-tuning", "-", f"{100 * step.device_after:.2f}%")
    table.add_row(
        "training memory",
        f"{human_bytes(host['peak_activation_bytes'] + host['param_state_bytes'])} "
        "(activations + parameter state)",
        f"{human_bytes(step.ram_bytes)} RAM (arena + one batch)",
    )
    table.add_row("persistent state", "checkpoint.pt", f"{human_bytes(step.state_file_bytes)} "
                  "(two slots, CRC)")  # fmt: skip
    table.add_row("time of the fine-tuning epoch", "-", f"{step.device_seconds:.3f} s")
    return table


def register(app: typer.Typer) -> None:
    """Add this module's commands to the application."""
    app.command()(demo)
    app.command()(train)
