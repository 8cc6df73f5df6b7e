"""The demo's edge step: a host-trained FPTT model exported, built and fine-tuned in C.

The model (its W_bar, what the host evaluates) becomes an export with the learner; the test
split is cut in two halves, one to fine-tune on (held-out digits the model never trained on),
one to measure on. The C learner evaluates the exported model, fine-tunes it for some epochs
and evaluates again; the host's own accuracy on the same half stands beside it (the C's
"before" must equal it: the same weights, the same forward pass).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from edgefptt.codegen import export_c, make, run_learner, tool_missing
from edgefptt.config import make_specs
from edgefptt.data import SequenceData
from edgefptt.learn.samples import write_samples
from edgefptt.learn.state import param_count, state_file_bytes
from edgefptt.models import SequenceClassifier, model_to_edge
from edgefptt.train.fptt import FPTT
from edgefptt.train.loop import count_correct


@dataclass
class EdgeStep:
    """What the edge step measured."""

    arena_bytes: int
    batch_bytes: int
    state_image_bytes: int
    ram_bytes: int  # arena + one batch of inputs and labels
    state_file_bytes: int  # the two-slot state (a file here; flash on a device)
    finetune_samples: int
    eval_samples: int
    epochs: int
    host_accuracy: float  # the host model (W_bar) on the evaluation half, torch
    device_before: float  # the exported model on the evaluation half, C
    device_after: float  # after fine-tuning in C
    device_seconds: float
    partitions: int
    batch_size: int
    lr: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def edge_step_available() -> str | None:
    """Why the edge step cannot run here (no C compiler or make), or None."""
    return tool_missing("host")


@torch.no_grad()
def _host_accuracy(model: SequenceClassifier, data: SequenceData, x, y) -> float:
    model.eval()
    outputs, _ = model(torch.as_tensor(x))
    return count_correct(data, outputs, torch.as_tensor(y)) / len(y)


def edge_finetune(
    model: SequenceClassifier,
    fptt: FPTT | None,
    data: SequenceData,
    work_dir: Path,
    *,
    partitions: int = 8,
    batch_size: int = 16,
    lr: float = 0.05,
    epochs: int = 1,
    seed: int = 0,
) -> EdgeStep:
    """Export ``model`` (with W_bar when ``fptt`` is given), build the learner, fine-tune it in
    C on the first half of the test split and measure on the second half."""
    averaged = fptt.average() if fptt is not None else contextlib.nullcontext()
    with averaged:
        params = model_to_edge(model)
        test_x, test_y = data.test_x.numpy(), data.test_y.numpy()
        half = len(test_y) // 2
        host_accuracy = _host_accuracy(model, data, test_x[half:], test_y[half:])
    net, run = make_specs(
        None,
        input_size=data.input_size,
        hidden_size=int(params["W"].shape[0]) // 4,
        num_classes=data.num_classes,
        batch_size=batch_size,
        seq_len=data.seq_len,
        partitions=partitions,
        dtype="fp32",
        schedule="exact",
        learning_rate=lr,
    )
    out = Path(work_dir) / "c"
    export = export_c(net, run, out, params=params, params_source="the demo's FPTT model")
    make(out, "host")
    finetune, held = Path(work_dir) / "finetune.efs", Path(work_dir) / "eval.efs"
    write_samples(finetune, test_x[:half], test_y[:half], data.num_classes)
    write_samples(held, test_x[half:], test_y[half:], data.num_classes)
    learner = out / "learn_host"
    before = run_learner(learner, "--evaluate", "--test", str(held))
    after = run_learner(
        learner, "--train", str(finetune), "--test", str(held), "--epochs", str(epochs),
        "--seed", str(seed),
    )  # fmt: skip
    e = run.element_bytes
    batch_bytes = batch_size * data.seq_len * data.input_size * e + 4 * batch_size
    image = 140 + 3 * param_count(data.input_size, net.hidden_size, data.num_classes) * e
    return EdgeStep(
        arena_bytes=export.arena_bytes,
        batch_bytes=batch_bytes,
        state_image_bytes=image,
        ram_bytes=export.arena_bytes + batch_bytes,
        state_file_bytes=state_file_bytes(
            data.input_size, net.hidden_size, data.num_classes, run.dtype
        ),
        finetune_samples=half,
        eval_samples=len(test_y) - half,
        epochs=epochs,
        host_accuracy=host_accuracy,
        device_before=float(before.epochs[0]["test_acc"]),
        device_after=float(after.epochs[-1]["test_acc"]),
        device_seconds=float(sum(r["seconds"] for r in after.epochs)),
        partitions=partitions,
        batch_size=batch_size,
        lr=lr,
    )


__all__ = ["EdgeStep", "edge_finetune", "edge_step_available"]
