"""The training loop: BPTT, truncated BPTT and FPTT over the same model and data.

- ``bptt``: the whole sequence, one loss at its last step, one optimizer step per batch.
- ``tbptt``: K chunks; at each chunk's end a loss at that step, a backward pass and an optimizer
  step; the state is carried across chunks detached. No regularizer.
- ``bptt-ckpt``: ``bptt``'s gradient and step, but only the states at the boundaries of S
  segments are kept and each segment is recomputed in the backward pass
  (:mod:`edgefptt.train.checkpointed`).
- ``fptt``: like ``tbptt`` plus the FPTT regularizer and state update, a loss weight of
  (p+1)/K for partition p (``ramp``) or 1 (``last``), and evaluation with W_bar.

Checkpoints (``checkpoint.pt``) and the metrics log (``metrics.jsonl``) are written atomically
after every epoch. Ctrl-C is taken at the next batch boundary: the state there is written as a
checkpoint that ``resume=True`` continues from exactly.

``recipe="device"`` trains the way the generated C learner does (docs/learner.md): FPTT with
plain SGD and the last partition's loss, one bias per gate (b_hh stays zero and frozen, b_ih is
the edge b), the sample order of :mod:`edgefptt.learn.order` from a splitmix64 seeded by the
run's seed (one key per epoch, its state kept in the checkpoint), floor(N/B) full batches per
epoch and the learning rate of ``epoch_lr``. ``init`` starts from a checkpoint's weights (its
W_bar when it has FPTT state), ``patience`` stops early on the test loss.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgefptt.data import SequenceData, load_dataset
from edgefptt.data.speech_commands import Progress
from edgefptt.errors import CheckpointError, ConfigError, NonFiniteLossError, TrainingInterrupted
from edgefptt.learn.order import EarlyStop, SplitMix64, batches_per_epoch, epoch_lr
from edgefptt.learn.order import epoch_permutation as device_permutation
from edgefptt.models import SequenceClassifier, edge_to_model
from edgefptt.train.checkpoint import (
    RESUME_ENTRIES,
    load_checkpoint,
    save_checkpoint,
    write_jsonl,
)
from edgefptt.train.checkpointed import checkpointed_backward, segment_bounds
from edgefptt.train.config import TrainConfig
from edgefptt.train.distributed import (
    Parallel,
    autocast,
    evaluate_sharded,
    local_rank,
    resolve_device,
    to_cpu,
)
from edgefptt.train.fptt import FPTT, OracleTargets
from edgefptt.train.memory import CudaPeakMeter, SavedTensorMeter, parameter_state_bytes
from edgefptt.train.partition import detach_state, partition_bounds

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"
# A regression prediction counts as correct within this distance of the target (adding task).
REGRESSION_TOLERANCE = 0.04
# Settings that may differ between a run and its resumption. The number of epochs may change
# only under a constant learning rate: the other schedules are laid out over the whole run.
RESUMABLE_CHANGES = {"data_dir", "eval_batch_size", "cache_dir", "device"}
# Settings added after checkpoint version 1 was fixed, with the value older checkpoints had.
LATER_SETTINGS = {
    "recipe": "host",
    "lr_step": None,
    "init": None,
    "patience": 0,
    "segments": None,
    "device": "auto",
    "precision": "fp32",
    "oracle_loss": False,
    "oracle_uniform_epochs": 19,
    "epoch_end_average": False,
}


class TrainCallbacks:
    """Hooks for progress reporting; the library itself never prints."""

    def on_epoch_start(self, epoch: int, num_batches: int, first_batch: int) -> None:
        """Called before the first batch of an epoch (1-based ``epoch``)."""

    def on_batch_end(self, epoch: int, batch: int, loss: float) -> None:
        """Called after each batch (0-based ``batch``)."""

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        """Called with the epoch's metrics once it is evaluated."""


@dataclass
class TrainResult:
    """What a finished run returns."""

    config: dict[str, Any]
    dataset: str
    history: list[dict[str, Any]]
    param_state: dict[str, int]
    checkpoint: str | None
    model: nn.Module = field(repr=False)
    # FPTT evaluates with W_bar: per-class metrics after the run need this state too.
    fptt: FPTT | None = field(default=None, repr=False)
    stopped_early: bool = False
    # bptt-ckpt: the number of checkpointed segments used (None for the other algorithms)
    segments: int | None = None
    device: str = "cpu"
    world_size: int = 1

    @property
    def final_test_accuracy(self) -> float:
        return self.history[-1]["test_accuracy"]

    @property
    def peak_activation_bytes(self) -> int:
        return max(r["peak_activation_bytes"] for r in self.history)

    @property
    def param_state_bytes(self) -> int:
        return self.param_state["total_bytes"]

    def summary(self) -> dict[str, Any]:
        """The JSON document of ``edgefptt train --json``."""
        return {
            "dataset": self.dataset,
            "algorithm": self.config["algorithm"],
            "partitions": 1
            if self.config["algorithm"] in ("bptt", "bptt-ckpt")
            else self.config["partitions"],
            "segments": self.segments,
            "final_test_accuracy": self.final_test_accuracy,
            "final_test_loss": self.history[-1]["test_loss"],
            "peak_activation_bytes": self.peak_activation_bytes,
            "param_state_bytes": self.param_state_bytes,
            "param_state": self.param_state,
            "mean_epoch_wall_s": sum(r["wall_s"] for r in self.history) / len(self.history),
            "stopped_early": self.stopped_early,
            "device": self.device,
            "world_size": self.world_size,
            "epochs": self.history,
            "checkpoint": self.checkpoint,
            "config": self.config,
        }


# ---------------------------------------------------------------------------- building blocks
def build_model(config: TrainConfig, data: SequenceData) -> SequenceClassifier:
    torch.manual_seed(config.seed)
    return SequenceClassifier(
        data.input_size,
        config.hidden,
        data.num_outputs,
        num_layers=config.layers,
        cell=config.cell,
        readout=config.readout,
    )


def trainable(model: nn.Module) -> list[torch.Tensor]:
    """The parameters training updates (all of them, except b_hh under the device recipe)."""
    return [p for p in model.parameters() if p.requires_grad]


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            trainable(model),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    return torch.optim.Adam(trainable(model), lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler:
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        # The reference code divides by 10 at 50 %, 75 % and 90 % of training.
        milestones = sorted({max(1, round(config.epochs * f)) for f in (0.5, 0.75, 0.9)})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def task_loss(data: SequenceData, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if data.task == "regression":
        return nn.functional.mse_loss(outputs.squeeze(-1), targets)
    return nn.functional.cross_entropy(outputs, targets)


def count_correct(data: SequenceData, outputs: torch.Tensor, targets: torch.Tensor) -> int:
    if data.task == "regression":
        return int(((outputs.squeeze(-1) - targets).abs() < REGRESSION_TOLERANCE).sum())
    return int((outputs.argmax(dim=-1) == targets).sum())


@torch.no_grad()
def evaluate(
    model: nn.Module, data: SequenceData, batch_size: int = 512, split: str = "test"
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on a split, over whole sequences."""
    x_all, y_all = (data.test_x, data.test_y) if split == "test" else (data.train_x, data.train_y)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct = 0.0, 0
    for start in range(0, len(x_all), batch_size):
        x, y = x_all[start : start + batch_size], y_all[start : start + batch_size]
        x, y = x.to(device), y.to(device)
        outputs, _ = model(x)
        total_loss += float(task_loss(data, outputs, y)) * len(x)
        correct += count_correct(data, outputs, y)
    model.train(was_training)
    return total_loss / len(x_all), correct / len(x_all)


def initial_params(path: str | Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The edge parameters ``--init`` starts from and the checkpoint's sizes.

    The same numbers ``export-c --weights`` embeds: a checkpoint with FPTT state gives W_bar.
    """
    from edgefptt.codegen.inputs import checkpoint_params

    if not Path(path).is_file():
        raise CheckpointError(f"--init: no checkpoint at {path}")
    return checkpoint_params(Path(path))


def load_initial_weights(
    model: SequenceClassifier, config: TrainConfig, data: SequenceData
) -> None:
    """Load ``config.init`` into ``model`` (b goes to b_ih, b_hh becomes zero)."""
    if config.cell != "lstm" or config.layers != 1 or config.readout != "last":
        raise ConfigError(
            "--init loads edge-layout weights: train with --cell lstm --layers 1 --readout last"
        )
    assert config.init is not None
    params, sizes = initial_params(config.init)
    wanted = {
        "input_size": (data.input_size, f"the {data.name} inputs have"),
        "hidden_size": (config.hidden, "--hidden is"),
        "num_classes": (data.num_outputs, f"{data.name} has"),
    }
    for key, (value, what) in wanted.items():
        if sizes[key] != value:
            name = key.replace("_", " ")
            raise ConfigError(f"--init {config.init} has {name} {sizes[key]}, but {what} {value}")
    edge_to_model(params, model)


@torch.no_grad()
def one_bias_per_gate(model: SequenceClassifier) -> None:
    """Fold b_hh into b_ih and freeze b_hh at zero: the device's single bias b = b_ih."""
    for layer in range(model.rnn.num_layers):
        b_ih = getattr(model.rnn, f"bias_ih_l{layer}", None)
        b_hh = getattr(model.rnn, f"bias_hh_l{layer}", None)
        if b_ih is None or b_hh is None:
            continue
        b_ih.add_(b_hh)
        b_hh.zero_()
        b_hh.requires_grad_(False)


class _InterruptFlag:
    """Turns the first Ctrl-C into a flag read at batch boundaries; a second one aborts."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.raised = True
        signal.signal(signal.SIGINT, self._previous)

    @contextlib.contextmanager
    def installed(self) -> Iterator[_InterruptFlag]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        self._previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._handle)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, self._previous)


# ---------------------------------------------------------------------------- the trainer
class Trainer:
    """Holds the model, optimizer, FPTT state and progress of one run."""

    def __init__(
        self,
        config: TrainConfig,
        data: SequenceData,
        out_dir: Path | None = None,
        callbacks: TrainCallbacks | None = None,
    ) -> None:
        partition_bounds(data.seq_len, config.effective_partitions)  # validates K against T
        self.device = config.recipe == "device"
        if self.device:
            if data.task != "classification":
                raise ConfigError(
                    f"--recipe device trains classifiers; {data.name} is a {data.task} task"
                )
            batches_per_epoch(len(data.train_x), config.batch_size)  # N < B is an error
        self.config = config
        self.data = data
        self.out_dir = out_dir
        self.callbacks = callbacks or TrainCallbacks()
        self.model = build_model(config, data)
        if config.init is not None:
            load_initial_weights(self.model, config, data)
        if self.device:
            one_bias_per_gate(self.model)
        if (config.oracle_loss or config.epoch_end_average) and config.algorithm != "fptt":
            raise ConfigError("--oracle-loss and --epoch-end-average belong to --algorithm fptt")
        if config.oracle_loss and data.task != "classification":
            raise ConfigError(f"--oracle-loss needs a classifier; {data.name} is a {data.task}")
        self.parallel = Parallel.current()
        self.torch_device = resolve_device(
            config.device, local_rank() if self.parallel.active else 0
        )
        self.model.to(self.torch_device)
        self.optimizer = build_optimizer(config, self.model)
        self.scheduler = build_scheduler(config, self.optimizer)
        self.fptt = (
            FPTT(
                trainable(self.model),
                alpha=config.alpha,
                beta=config.beta,
                linear_coef=config.linear_coef,
            )
            if config.algorithm == "fptt"
            else None
        )
        self.bounds = partition_bounds(data.seq_len, config.effective_partitions)
        # bptt-ckpt: the checkpointed segments (validates S against T)
        self.segments = (
            segment_bounds(data.seq_len, config.segments)
            if config.algorithm == "bptt-ckpt"
            else None
        )
        self.meter = SavedTensorMeter(exclude=self.model.parameters())
        self.cuda_meter = CudaPeakMeter(self.torch_device)
        self.oracle = (
            OracleTargets(data.num_outputs, len(self.bounds), config.oracle_uniform_epochs)
            if config.oracle_loss
            else None
        )
        # progress: the epoch under way (0-based), the next batch in it, its running sums
        self.epoch = 0
        self.next_batch = 0
        self.partial: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []
        # device recipe: the PRNG (state after the last key drawn) and the current epoch's key
        self.prng = SplitMix64(config.seed)
        self.epoch_key: int | None = None
        self.key_epoch = -1
        self.early_stop = EarlyStop(config.patience)
        self.stopped_early = False

    # ------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / CHECKPOINT_NAME

    def save(self) -> None:
        if self.checkpoint_path is None:
            return
        if not self.parallel.is_main:  # rank 0 writes; the others wait until it has
            self.parallel.barrier()
            return
        payload = to_cpu(
            {
                "config": self.config.model_dump(),
                "data": {
                    "name": self.data.name,
                    "seq_len": self.data.seq_len,
                    "input_size": self.data.input_size,
                    "num_outputs": self.data.num_outputs,
                    "task": self.data.task,
                },
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "fptt": None if self.fptt is None else self.fptt.state_dict(),
                "oracle": None if self.oracle is None else self.oracle.state_dict(),
                # which parameters the FPTT state belongs to, in its order (W_bar for export)
                "fptt_params": [n for n, p in self.model.named_parameters() if p.requires_grad],
                "order": {
                    "prng_state": self.prng.state,
                    "key": self.epoch_key,
                    "key_epoch": self.key_epoch,
                },
                "early_stop": {**self.early_stop.state_dict(), "stopped": self.stopped_early},
                "epoch": self.epoch,
                "next_batch": self.next_batch,
                "partial": dict(self.partial),
                "history": list(self.history),
            }
        )
        save_checkpoint(self.checkpoint_path, payload)  # type: ignore[arg-type]
        self.parallel.barrier()

    def restore(self) -> None:
        """Continue from ``out_dir/checkpoint.pt``; settings must match except RESUMABLE_CHANGES."""
        if self.checkpoint_path is None:
            raise ConfigError("resuming needs an output directory (--out)")
        saved = load_checkpoint(
            self.checkpoint_path, RESUME_ENTRIES, missing="train without --resume first"
        )
        mine = self.config.model_dump()
        theirs = {**LATER_SETTINGS, **saved["config"]}
        # A constant or stepped (device) learning rate does not depend on the number of epochs.
        per_epoch_lr = mine["schedule"] == "constant"
        may_change = RESUMABLE_CHANGES | ({"epochs"} if per_epoch_lr else set())
        differing = sorted(
            key
            for key in set(mine) | set(theirs)
            if key not in may_change and mine.get(key) != theirs.get(key)
        )
        if differing:
            shown = ", ".join(f"--{k.replace('_', '-')}={theirs.get(k)!r}" for k in differing)
            raise CheckpointError(
                f"{self.checkpoint_path} was trained with other settings; resume with {shown}"
            )
        try:
            self.model.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            if self.fptt is not None:
                self.fptt.load_state_dict(saved["fptt"])
            if self.oracle is not None:
                self.oracle.load_state_dict(saved["oracle"])
        except (KeyError, TypeError, RuntimeError, ValueError) as exc:
            raise CheckpointError(
                f"{self.checkpoint_path} does not fit this model: {exc}"
            ) from None
        self.epoch = int(saved["epoch"])
        self.next_batch = int(saved["next_batch"])
        self.partial = {k: float(v) for k, v in saved["partial"].items()}
        self.history = list(saved["history"])
        order = saved.get("order")
        try:
            if order is not None:
                self.prng.state = int(order["prng_state"])
                self.epoch_key = None if order["key"] is None else int(order["key"])
                self.key_epoch = int(order["key_epoch"])
            early = saved.get("early_stop")
            if early is not None:
                self.early_stop.load_state_dict(early)
                self.stopped_early = bool(early.get("stopped", False))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{self.checkpoint_path}: its order or early_stop entry lacks or mistypes "
                f"{exc}; the file is damaged"
            ) from None
        if order is None and self.device:
            raise CheckpointError(f"{self.checkpoint_path} lacks the device recipe's PRNG state")

    # ------------------------------------------------------------------ one batch
    def train_batch(
        self, x: torch.Tensor, y: torch.Tensor, measure: bool, global_size: int | None = None
    ) -> tuple[float, int, int]:
        """Train on one batch; returns (final-step loss, correct predictions, peak saved bytes).

        Under data parallelism ``x`` and ``y`` are this rank's shard of a global batch of
        ``global_size`` samples; the loss and the correct count returned are the global batch's.
        """
        if self.segments is not None:
            return self._train_checkpointed(x, y, measure)
        config, fptt, parallel = self.config, self.fptt, self.parallel
        num_parts = len(self.bounds)
        x, y = x.to(self.torch_device), y.to(self.torch_device)
        # this rank's share of the global batch: its mean loss is scaled so that the summed
        # gradients are those of the global batch's mean loss
        share = len(y) / (global_size or len(y)) if parallel.active else 1.0
        state = None
        peak = self.cuda_meter.peak_bytes = 0
        loss_value, correct = math.nan, 0
        for p, (start, stop) in enumerate(self.bounds):
            self.optimizer.zero_grad(set_to_none=True)
            loss_value, outputs = 0.0, None
            if len(y) > 0:  # a rank's shard of a short last batch may be empty
                with (
                    self.meter.measure() if measure else contextlib.nullcontext(),
                    self.cuda_meter.measure(measure),
                    autocast(self.torch_device, config.precision),
                ):
                    outputs, state = self.model(x[:, start:stop], state)
                    loss = task_loss(self.data, outputs, y)
                if measure:
                    peak = max(peak, self.meter.saved_bytes)
                loss_value = float(loss.detach())
                weight = (p + 1) / num_parts if fptt and config.loss_weighting == "ramp" else 1.0
                total = loss * weight if weight != 1.0 else loss
                if self.oracle is not None:
                    q = self.oracle.targets(y, p, self.epoch)
                    total = total + self.oracle.weight(p) * self.oracle.loss(outputs, q)
                (total * share if share != 1.0 else total).backward()
            if self.oracle is not None:  # the table sees the global batch, in batch order
                probs = torch.zeros(0, self.data.num_outputs, device=self.torch_device)
                if outputs is not None:
                    probs = torch.softmax(outputs.detach().float(), dim=-1)
                self.oracle.update(parallel.gather_rows(probs), parallel.gather_rows(y), p)
            if parallel.active:
                summed = parallel.reduce_gradients(trainable(self.model), [loss_value * len(y)])
                loss_value = summed[0] / (global_size or 1)
            if not math.isfinite(loss_value):
                where = f"epoch {self.epoch + 1}, batch {self.next_batch + 1}, partition {p + 1}"
                kept = (
                    f"; last good checkpoint: {self.checkpoint_path}"
                    if self.checkpoint_path is not None and self.checkpoint_path.exists()
                    else ""
                )
                advice = "lower --lr" if self.device else "lower --lr or set --clip"
                raise NonFiniteLossError(
                    f"loss became {loss_value} at {where}; {advice}{kept}",
                    checkpoint=str(self.checkpoint_path) if kept else None,
                )
            if fptt is not None:
                fptt.add_penalty_grad_()
            if config.clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), config.clip)
            self.optimizer.step()
            if fptt is not None:
                fptt.step()
            state = detach_state(state)
            if p == num_parts - 1 and outputs is not None:
                correct = count_correct(self.data, outputs.detach(), y)
        if parallel.active:
            correct = round(parallel.sum([correct])[0])
        if measure and self.torch_device.type == "cuda":
            self.partial["peak_cuda_bytes"] = max(
                self.partial.get("peak_cuda_bytes", 0.0), parallel.max(self.cuda_meter.peak_bytes)
            )
        return loss_value, correct, peak

    def _train_checkpointed(
        self, x: torch.Tensor, y: torch.Tensor, measure: bool
    ) -> tuple[float, int, int]:
        """bptt-ckpt: one exact BPTT step, segment-boundary states kept, segments recomputed."""
        assert self.segments is not None
        if self.parallel.active:
            raise ConfigError(
                "--algorithm bptt-ckpt trains in one process; run it without torchrun"
            )
        x, y = x.to(self.torch_device), y.to(self.torch_device)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.torch_device, self.config.precision):
            step = checkpointed_backward(
                self.model, x, lambda out: task_loss(self.data, out, y), self.segments, measure
            )
        loss_value = float(step.loss)
        if not math.isfinite(loss_value):
            kept = self.checkpoint_path is not None and self.checkpoint_path.exists()
            raise NonFiniteLossError(
                f"loss became {loss_value} at epoch {self.epoch + 1}, batch "
                f"{self.next_batch + 1}; lower --lr or set --clip"
                + (f"; last good checkpoint: {self.checkpoint_path}" if kept else ""),
                checkpoint=str(self.checkpoint_path) if kept else None,
            )
        if self.config.clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
        self.optimizer.step()
        return loss_value, count_correct(self.data, step.outputs, y), step.peak_bytes

    # ------------------------------------------------------------------ epochs
    def _epoch_order(self, epoch: int) -> torch.Tensor:
        if self.device:
            # The device's order: one splitmix64 key per epoch, drawn once (kept on resume).
            if self.key_epoch != epoch or self.epoch_key is None:
                self.epoch_key = self.prng.next()
                self.key_epoch = epoch
            order = device_permutation(len(self.data.train_x), self.epoch_key)
            return torch.from_numpy(order)
        # One generator per epoch, seeded from the run's seed: resuming needs no RNG state.
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        return torch.randperm(len(self.data.train_x), generator=generator)

    def epoch_lr(self, epoch: int) -> float:
        """The device recipe's learning rate of the 0-based ``epoch`` (float32 arithmetic)."""
        step_epochs, factor = self.config.lr_step_schedule
        return epoch_lr(self.config.lr, epoch, step_epochs, factor)

    def run(self) -> TrainResult:
        config, data = self.config, self.data
        if self.device:  # only full batches; the rest of the epoch's order is not trained on
            num_batches = batches_per_epoch(len(data.train_x), config.batch_size)
        else:
            num_batches = math.ceil(len(data.train_x) / config.batch_size)
        with _InterruptFlag().installed() as interrupt:
            while self.epoch < config.epochs and not self.stopped_early:
                order = self._epoch_order(self.epoch)
                if self.device:
                    for group in self.optimizer.param_groups:
                        group["lr"] = self.epoch_lr(self.epoch)
                self.callbacks.on_epoch_start(self.epoch + 1, num_batches, self.next_batch)
                measured = False
                while self.next_batch < num_batches:
                    if self.parallel.any(interrupt.raised):
                        self.save()
                        where = f"epoch {self.epoch + 1}, batch {self.next_batch + 1}"
                        saved = self.checkpoint_path
                        raise TrainingInterrupted(
                            f"interrupted at {where}; "
                            + (
                                f"checkpoint written to {saved}, continue with --resume"
                                if saved is not None
                                else "no output directory, nothing saved"
                            ),
                            checkpoint=None if saved is None else str(saved),
                        )
                    started, cpu_started = time.perf_counter(), time.process_time()
                    index = order[self.next_batch * config.batch_size :][: config.batch_size]
                    mine = self.parallel.shard(index)
                    # the global batch's size matters only when it is sharded
                    sharded = {"global_size": len(index)} if self.parallel.active else {}
                    loss, correct, peak = self.train_batch(
                        data.train_x[mine], data.train_y[mine], measure=not measured, **sharded
                    )
                    if not measured:  # per process: the largest over ranks
                        self.partial["peak_activation_bytes"] = max(
                            self.partial.get("peak_activation_bytes", 0.0), self.parallel.max(peak)
                        )
                        measured = True
                    p = self.partial
                    # the device recipe's train loss is the mean over batches (all of size B)
                    weight = 1 if self.device else len(index)
                    p["loss_sum"] = p.get("loss_sum", 0.0) + loss * weight
                    p["batches"] = p.get("batches", 0.0) + 1
                    p["correct"] = p.get("correct", 0.0) + correct
                    p["seen"] = p.get("seen", 0.0) + len(index)
                    p["wall_s"] = p.get("wall_s", 0.0) + time.perf_counter() - started
                    # CPU seconds of this process (all its threads): steadier than wall time
                    # on a machine that other work shares
                    p["cpu_s"] = p.get("cpu_s", 0.0) + time.process_time() - cpu_started
                    self.next_batch += 1
                    self.callbacks.on_batch_end(self.epoch + 1, self.next_batch - 1, loss)
                self._finish_epoch()
        return self.result()

    def _finish_epoch(self) -> None:
        started = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        averaged = self.fptt.average() if self.fptt is not None else contextlib.nullcontext()
        with averaged:
            test_loss, test_accuracy = evaluate_sharded(
                evaluate, self.model, self.data, self.config.eval_batch_size, self.parallel
            )
        if self.fptt is not None and self.config.epoch_end_average:
            self.fptt.load_average_()  # the reference code's epoch end: W <- W_bar, lam <- 0
            self.fptt.reset_lambda_()
        if self.fptt is not None and self.config.reset_lambda:
            self.fptt.reset_lambda_()
        self.scheduler.step()
        p = self.partial
        record = {
            "epoch": self.epoch + 1,
            "train_loss": p["loss_sum"] / (p["batches"] if self.device else p["seen"]),
            "train_accuracy": p["correct"] / p["seen"],
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "lr": lr,
            "wall_s": p["wall_s"],
            "cpu_s": p.get("cpu_s", 0.0),
            "eval_s": time.perf_counter() - started,
            "peak_activation_bytes": int(p.get("peak_activation_bytes", 0)),
        }
        if "peak_cuda_bytes" in p:
            record["peak_cuda_bytes"] = int(p["peak_cuda_bytes"])
        self.history.append(record)
        if self.early_stop.update(test_loss):
            self.stopped_early = True
        self.epoch += 1
        self.next_batch = 0
        self.partial = {}
        if self.out_dir is not None:
            self.save()
            if self.parallel.is_main:
                write_jsonl(self.out_dir / METRICS_NAME, self.history)
        self.callbacks.on_epoch_end(record)

    def result(self) -> TrainResult:
        fptt_bytes = self.fptt.state_bytes() if self.fptt is not None else 0
        param_state = parameter_state_bytes(self.model, self.optimizer, fptt_bytes)
        if self.torch_device.type != "cpu":  # what callers do next (reports, export) is on CPU
            self.model.to("cpu")
            if self.fptt is not None:
                self.fptt.to("cpu")
        return TrainResult(
            config=self.config.model_dump(),
            dataset=self.data.name,
            history=list(self.history),
            param_state=param_state,
            checkpoint=None if self.checkpoint_path is None else str(self.checkpoint_path),
            model=self.model,
            fptt=self.fptt,
            stopped_early=self.stopped_early,
            segments=None if self.segments is None else len(self.segments),
            device=str(self.torch_device),
            world_size=self.parallel.world_size,
        )


def load_data(config: TrainConfig, progress: Progress | None = None) -> SequenceData:
    """The dataset ``config`` names, with its options."""
    return load_dataset(
        config.dataset,
        data_dir=config.data_dir,
        order=config.order,
        permute=config.permute,
        seq_len=config.seq_len,
        limit=config.limit,
        seed=config.seed,
        speech=config.speech_options() if config.dataset == "speech_commands" else None,
        progress=progress,
    )


def fit(
    config: TrainConfig,
    data: SequenceData | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: TrainCallbacks | None = None,
) -> TrainResult:
    """Train as ``config`` says; with ``out_dir``, checkpoint every epoch (and resume from it)."""
    if data is None:
        data = load_data(config)
    trainer = Trainer(config, data, None if out_dir is None else Path(out_dir), callbacks)
    if resume:
        trainer.restore()
    return trainer.run()
