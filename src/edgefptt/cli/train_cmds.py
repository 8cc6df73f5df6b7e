"""Commands for host training: `train` and `demo`."""

from __future__ import annotations

import atexit
import contextlib
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgefptt.cli.common import emit_json, human_bytes, stderr, stdout
from edgefptt.cli.outputs import check_output_dir, check_output_file
from edgefptt.cli.progress import RichTrainProgress
from edgefptt.cli.speech_cmds import class_tables, data_notes, data_summary, loading_progress
from edgefptt.train import distributed
from edgefptt.train.compare import compare, side_by_side
from edgefptt.train.config import TrainConfig, make_config
from edgefptt.train.loop import TrainCallbacks, TrainResult, fit, initial_params, load_data
from edgefptt.train.metrics import class_report, save_confusion_plot
from edgefptt.train.rundir import claim_run_dir


def _default(name: str) -> str:
    return f"(default: {TrainConfig.model_fields[name].default})"


def _epoch_table(result: TrainResult) -> Table:
    algorithm = result.config["algorithm"]
    if result.segments is not None:
        algorithm += f" (S = {result.segments})"
    table = Table(title=f"{algorithm} on {result.dataset}")
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
    algorithm: str = typer.Option(
        None, help=f"bptt, bptt-ckpt, tbptt or fptt {_default('algorithm')}"
    ),
    partitions: int = typer.Option(
        None, "--partitions", "-K", help=f"K, partitions per sequence {_default('partitions')}"
    ),
    segments: int = typer.Option(
        None,
        "--segments",
        help="S, checkpointed segments of --algorithm bptt-ckpt: exact BPTT keeping only the "
        "states at segment boundaries (1..T; default round(sqrt T))",
    ),
    epochs: int = typer.Option(None, help=f"passes over the training split {_default('epochs')}"),
    batch_size: int = typer.Option(
        None, help=f"sequences per optimizer batch {_default('batch_size')}"
    ),
    hidden: int = typer.Option(None, help=f"hidden units per layer {_default('hidden')}"),
    layers: int = typer.Option(None, help=f"stacked recurrent layers {_default('layers')}"),
    cell: str = typer.Option(None, help=f"lstm or gru {_default('cell')}"),
    readout: str = typer.Option(None, help=f"last or mean {_default('readout')}"),
    optimizer: str = typer.Option(None, help=f"sgd or adam {_default('optimizer')}"),
    lr: float = typer.Option(None, help=f"learning rate {_default('lr')}"),
    momentum: float = typer.Option(None, help=f"SGD momentum {_default('momentum')}"),
    weight_decay: float = typer.Option(
        None, help=f"L2 weight decay of the optimizer {_default('weight_decay')}"
    ),
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
    seed: int = typer.Option(
        None, help=f"seed of the weights, data order and splits {_default('seed')}"
    ),
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
    device: str = typer.Option(
        None, help=f"auto (CUDA when present), cpu or cuda {_default('device')}"
    ),
    precision: str = typer.Option(
        None, help=f"fp32, or bf16 autocast (FPTT state stays fp32) {_default('precision')}"
    ),
    oracle_loss: bool = typer.Option(
        None,
        "--oracle-loss/--no-oracle-loss",
        help="reference FPTT code: add its auxiliary soft-target ('oracle') loss (docs/scale.md)",
    ),
    oracle_uniform_epochs: int = typer.Option(
        None, help=f"--oracle-loss: epochs with uniform targets {_default('oracle_uniform_epochs')}"
    ),
    epoch_end_average: bool = typer.Option(
        None,
        "--epoch-end-average/--no-epoch-end-average",
        help="reference FPTT code: at each epoch's end set the weights to W_bar and lambda to 0",
    ),
    out: Path = typer.Option(
        None,
        help="output directory (default: runs/<dataset>-<algorithm>-K<partitions>, "
        "with -device under --recipe device)",
    ),
    resume: bool = typer.Option(False, "--resume", help="continue from OUT/checkpoint.pt"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="replace the run already in --out (without it, it is kept)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document on stdout"),
) -> None:
    """Train a recurrent classifier with BPTT, checkpointed BPTT, truncated BPTT or FPTT.

    Under torchrun (torchrun --nproc_per_node N -m edgefptt train ...) the processes train one
    model data-parallel; rank 0 writes the checkpoints and prints.
    """
    given: dict[str, Any] = {k: v for k, v in locals().items() if v is not None}
    for key in ("out", "resume", "overwrite", "as_json", "plot"):
        given.pop(key, None)
    for key in ("data_dir", "cache_dir", "init"):
        if key in given:
            given[key] = str(given[key])
    if given.get("clip") == 0:
        given["clip"] = None
    if init is not None and hidden is None:
        given["hidden"] = initial_params(init)[1]["hidden_size"]
    config = make_config(**given)
    if plot is not None:
        check_output_file(plot, "--plot", suffix=".png")
    if cache_dir is not None and config.dataset == "speech_commands":
        check_output_dir(cache_dir, "--cache-dir")
    if out is None:
        name = f"{config.dataset}-{config.algorithm}-K{config.effective_partitions}"
        if config.algorithm == "bptt-ckpt":
            name = f"{config.dataset}-bptt-ckpt-S{config.segments or 'auto'}"
        out = Path("runs") / (f"{name}-device" if config.recipe == "device" else name)
    distributed.resolve_device(config.device)  # --device cuda without CUDA: say so now
    _check_memory(config)  # the weights and their states, before the data loads
    if distributed.init_from_env(config.device):
        atexit.register(distributed.shutdown)
    main = distributed.Parallel.current().is_main  # only rank 0 prints
    check_output_dir(out, "--out")
    # Rank 0 locks --out for the run (a second run into it is refused) before the data loads.
    claim = claim_run_dir(out, resume=resume, overwrite=overwrite) if main else None
    with claim or contextlib.nullcontext() as claimed:
        for note in claimed.notes if claimed is not None else ():
            stderr.print(f"note: {note}", style="yellow", highlight=False, soft_wrap=True)
        loading = (
            loading_progress(f"loading {config.dataset}") if main else contextlib.nullcontext()
        )
        with loading as progress_callback:
            data = load_data(config, progress=progress_callback)
        _check_memory(config, data)  # and a partition's activations, before training
        if main:
            data_notes(data)
        bar = (
            RichTrainProgress(config.algorithm, config.epochs)
            if main
            else contextlib.nullcontext(TrainCallbacks())
        )
        with bar as progress:
            result = fit(config, data, out_dir=out, resume=resume, callbacks=progress)
    if not main:
        return
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


def _check_memory(config: TrainConfig, data: Any = None) -> None:
    """Refuse a run that cannot fit the memory of its device, with the bytes it needs."""
    import torch

    from edgefptt.config import require_memory

    device = distributed.resolve_device(config.device)
    available = int(torch.cuda.mem_get_info(device)[0]) if device.type == "cuda" else None
    sizes: dict[str, int] = {}
    if data is not None:
        sizes = {
            "input_size": data.input_size,
            "num_outputs": data.num_outputs,
            "seq_len": data.seq_len,
            "batch": min(config.batch_size, len(data.train_y)),
        }
    require_memory(
        config.min_memory_bytes(**sizes),
        f"training {config.layers} {config.cell} layer(s) of {config.hidden} units "
        f"(batch {config.batch_size})",
        "lower --hidden, --layers or --batch-size (or raise --partitions)",
        available,
    )


# About a minute on two idle cores (both runs, the edge step included).
DEMO_EPOCHS = 30


def epoch_timing(baseline: TrainResult, candidate: TrainResult) -> dict[str, Any]:
    """Median wall and CPU seconds per epoch of two runs and their ratios (candidate/baseline).

    The median over epochs shrugs off a few epochs slowed by other work on the machine; a
    machine busy all along slows every epoch, and CPU time too grows then (threads that wait
    for each other spin).
    """
    import statistics

    def medians(result: TrainResult) -> dict[str, float]:
        return {
            "median_epoch_wall_s": statistics.median(r["wall_s"] for r in result.history),
            "median_epoch_cpu_s": statistics.median(r.get("cpu_s", 0.0) for r in result.history),
        }

    base, cand = medians(baseline), medians(candidate)
    ratio = {k: cand[k] / base[k] if base[k] else float("nan") for k in base}
    return {"baseline": base, "candidate": cand, "ratio": ratio}


def demo(
    partitions: int = typer.Option(8, "--partitions", "-K", help="K for FPTT"),
    epochs: int = typer.Option(DEMO_EPOCHS, help="epochs for each algorithm"),
    seed: int = typer.Option(0, help="random seed"),
    edge: bool = typer.Option(
        True,
        "--edge/--no-edge",
        help="end with the edge step: the FPTT model exported to C and fine-tuned there on "
        "held-out digits (needs a C compiler and make; skipped with a note without them)",
    ),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda"),
    precision: str = typer.Option("fp32", help="fp32, or bf16 autocast"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document on stdout"),
) -> None:
    """Train one LSTM on the bundled digits with BPTT and with FPTT, and compare the costs;
    then fine-tune the FPTT model in generated C, as a device would."""
    base = make_config(
        dataset="digits",
        epochs=epochs,
        seed=seed,
        partitions=partitions,
        device=device,
        precision=precision,
    )
    distributed.resolve_device(base.device)
    from edgefptt.train.partition import partition_bounds

    partition_bounds(load_data(base).seq_len, partitions)  # K > T fails now, not after BPTT
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
    timing = epoch_timing(results["bptt"], results["fptt"])
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
                "timing": timing,
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
    for key, label in (
        ("median_epoch_wall_s", "wall time per epoch (median)"),
        ("median_epoch_cpu_s", "CPU time per epoch (median)"),
    ):
        table.add_row(
            label,
            f"{timing['baseline'][key]:.2f} s",
            f"{timing['candidate'][key]:.2f} s",
            f"{timing['ratio'][key]:.2f}x",
        )
    stdout.print(table)
    stderr.print(
        "activation memory: bytes autograd saves for backward, peak over partitions; "
        "parameter state: weights, gradients, optimizer and FPTT state; time: median over "
        "epochs (this process's CPU time beside wall time). Other work on the machine slows "
        "both and shifts their ratio: compare times on an idle machine.",
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
