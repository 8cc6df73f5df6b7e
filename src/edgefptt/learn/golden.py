"""The golden learner: the device's whole training procedure on the golden executor.

:func:`golden_learn` runs docs/learner.md's procedure (device recipe) epoch by epoch by chaining
:func:`edgefptt.edge.execute` over batches: the sample order of :mod:`edgefptt.learn.order`,
floor(N/B) batches per epoch, the FPTT state passed from batch to batch, the learning rate of
``epoch_lr`` (the workload is rebuilt only when it changes), evaluation with W_bar by a forward
pass over all T steps (:func:`edgefptt.edge.executor.infer`), and the patience rule. Every
number that training computes comes from the executor's kernels in the run's dtype (fp32, or
bf16 with the build's rounding), so this is the reference the generated C learner is checked
against; only the evaluation loss is taken in float64 from the logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgefptt.codegen.emit import storage
from edgefptt.codegen.export import export_workload
from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.edge.bf16 import Rounding
from edgefptt.edge.executor import execute, infer
from edgefptt.errors import ConfigError
from edgefptt.learn.order import (
    EarlyStop,
    SplitMix64,
    batches_per_epoch,
    epoch_lr,
    epoch_permutation,
    parse_lr_step,
)


@dataclass
class GoldenRun:
    """What :func:`golden_learn` returns.

    records: one dict per epoch {epoch (1-based), train_loss, train_accuracy, test_loss,
    test_accuracy, confusion (C x C list, rows true class; None without a test set), lr}.
    params / fptt_state: the final parameters (edge layout, every layer's and the readout's)
    and the trainable ones' {"w_bar", "lam"} (storage values).
    prng_state: the PRNG state after the last epoch's key. stopped_early: the patience rule
    ended the run.
    """

    records: list[dict[str, Any]]
    params: dict[str, np.ndarray] = field(repr=False)
    fptt_state: dict[str, dict[str, np.ndarray]] = field(repr=False)
    prng_state: int = 0
    stopped_early: bool = False

    @property
    def train_losses(self) -> list[float]:
        return [r["train_loss"] for r in self.records]

    @property
    def test_losses(self) -> list[float | None]:
        return [r["test_loss"] for r in self.records]


@dataclass
class Evaluation:
    """Loss, accuracy and confusion matrix of one evaluation."""

    loss: float
    accuracy: float
    confusion: np.ndarray


def _checked_set(
    x: np.ndarray, y: np.ndarray, net: NetworkSpec, run: RunSpec, what: str
) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 2 and net.input_size == 1:
        x = x[..., None]
    shape = (run.seq_len, net.input_size)
    if x.ndim != 3 or x.shape[1:] != shape:
        raise ConfigError(
            f"{what} x has shape {x.shape}, the run needs (N, {shape[0]}, {shape[1]})"
        )
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(
            f"{what} y must hold {x.shape[0]} integer labels (got {y.dtype} {y.shape})"
        )
    if x.shape[0] and (y.min() < 0 or y.max() >= net.num_classes):
        raise ConfigError(f"{what} labels must lie in [0, {net.num_classes})")
    if not np.all(np.isfinite(x)):
        raise ConfigError(f"{what} x holds non-finite values")
    return x, y.astype(np.int64)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def evaluate_golden(
    workload: Any,
    params: dict[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    *,
    rounding: Rounding = "rne",
    arena: Any = None,
) -> Evaluation:
    """Evaluate ``params`` on stored samples ``x`` (N, T, I) in file order, in batches of B.

    The last batch is padded with zero samples, which are not counted. The loss is the mean
    over samples of -log softmax(logits)[label], taken in float64 from the executor's logits.
    """
    b = workload.run.batch_size
    classes = workload.network.num_classes
    confusion = np.zeros((classes, classes), dtype=np.int64)
    total = 0.0
    for start in range(0, len(x), b):
        chunk = x[start : start + b]
        count = len(chunk)
        if count < b:
            chunk = np.concatenate([chunk, np.zeros((b - count, *chunk.shape[1:]), chunk.dtype)])
        logits = infer(workload, params, chunk, rounding=rounding, arena=arena)[:count]
        labels = y[start : start + count]
        total += float(-_log_softmax(logits)[np.arange(count), labels].sum())
        predicted = np.argmax(logits, axis=1)  # the first largest on ties
        np.add.at(confusion, (labels, predicted), 1)
    n = max(len(x), 1)
    return Evaluation(total / n, float(np.trace(confusion)) / n, confusion)


def golden_learn(
    net: NetworkSpec,
    run: RunSpec,
    params: dict[str, np.ndarray],
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray | None = None,
    test_y: np.ndarray | None = None,
    *,
    epochs: int,
    lr0: float,
    lr_step: str | None = None,
    seed: int = 0,
    patience: int = 0,
    rounding: Rounding = "rne",
    plan: str = "lifetime",
    fptt_state: dict[str, dict[str, np.ndarray]] | None = None,
) -> GoldenRun:
    """Train ``params`` (the edge layout of ``net``: one LSTM's {W, b, W_y, b_y}, or every
    layer's and the readout's) on (train_x, train_y) as the device does; frozen tensors stay.

    run: B, T, K, dtype, alpha, beta, c (its learning_rate is replaced by each epoch's lr;
    the schedule must be exact). Inputs and parameters are rounded to the storage type first,
    as export_c does. fptt_state: starting W_bar and lam (default: W_bar = W, lam = 0).
    Early stop (``patience`` > 0) watches the test loss, or the train loss without a test set.
    """
    if epochs < 1:
        raise ConfigError(f"epochs must be at least 1 (got {epochs})")
    if rounding not in ("rne", "away"):
        raise ConfigError(f"unknown bf16 rounding {rounding!r}; use rne or away")
    if (test_x is None) != (test_y is None):
        raise ConfigError("give both test_x and test_y, or neither")
    step_epochs, factor = (0, 1.0) if lr_step is None else parse_lr_step(lr_step)
    x_train, y_train = _checked_set(train_x, train_y, net, run, "train")
    num_batches = batches_per_epoch(len(x_train), run.batch_size)
    x_train = storage(x_train, run.dtype, rounding)
    test: tuple[np.ndarray, np.ndarray] | None = None
    if test_x is not None and test_y is not None:
        x_test, y_test = _checked_set(test_x, test_y, net, run, "test")
        test = (storage(x_test, run.dtype, rounding), y_test)
    shapes = net.param_shapes()
    for name in shapes:
        if name not in params or np.shape(params[name]) != shapes[name]:
            raise ConfigError(f"parameter {name} must have shape {shapes[name]}")
    current = {name: storage(params[name], run.dtype, rounding) for name in shapes}
    state = fptt_state

    prng = SplitMix64(seed)
    early = EarlyStop(patience)
    records: list[dict[str, Any]] = []
    workload, memory, built_lr = None, None, math.nan
    b = run.batch_size
    stopped = False
    for epoch in range(epochs):
        lr = epoch_lr(lr0, epoch, step_epochs, factor)
        if workload is None or lr != built_lr:
            workload, memory = export_workload(
                net, run.model_copy(update={"learning_rate": lr}), plan
            )
            built_lr = lr
        order = epoch_permutation(len(x_train), prng.next())
        loss_sum, correct = 0.0, 0
        for batch in range(num_batches):
            index = order[batch * b : (batch + 1) * b]
            labels = y_train[index]
            result = execute(
                workload,
                current,
                x_train[index],
                labels,
                rounding=rounding,
                fptt_state=state,
                arena=memory,
                record_logits=True,
            )
            current, state = result.params, result.fptt_state
            loss_sum += result.losses[-1]
            correct += int(np.sum(np.argmax(result.logits[-1], axis=1) == labels))
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / num_batches,
            "train_accuracy": correct / (num_batches * b),
            "test_loss": None,
            "test_accuracy": None,
            "confusion": None,
            "lr": lr,
        }
        if test is not None:
            assert state is not None
            # FPTT evaluates with W_bar; a frozen tensor is its own.
            averaged = {
                name: state[name]["w_bar"] if name in state else current[name] for name in shapes
            }
            ev = evaluate_golden(workload, averaged, *test, rounding=rounding, arena=memory)
            record.update(
                test_loss=ev.loss, test_accuracy=ev.accuracy, confusion=ev.confusion.tolist()
            )
        records.append(record)
        watched = record["test_loss"] if test is not None else record["train_loss"]
        if early.update(watched):
            stopped = True
            break
    assert state is not None
    return GoldenRun(
        records=records,
        params=current,
        fptt_state=state,
        prng_state=prng.state,
        stopped_early=stopped,
    )
