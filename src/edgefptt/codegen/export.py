"""export_c: from specs, parameters and a batch to a buildable C directory with golden.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefptt.codegen.emit import render, storage, write
from edgefptt.codegen.inputs import (
    checkpoint_network_params,
    load_batch,
    seeded_params,
    synthetic_batch,
)
from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.edge.bf16 import Rounding
from edgefptt.errors import ConfigError
from edgefptt.plan.memory import MemoryPlan, lifetime_plan, static_plan
from edgefptt.workload import build_exact, build_paper, build_workload
from edgefptt.workload.kernels import Workload

EXPORT_PLANS = ("lifetime", "recompute")
PAPER_PLANS = ("lifetime", "paper")


@dataclass
class Export:
    """What export_c wrote and the golden numbers it holds."""

    out_dir: Path
    network: NetworkSpec
    run: RunSpec
    plan: str
    rounding: str
    cores: int
    arena_bytes: int
    kernel_count: int
    train_statements: int
    infer_statements: int
    golden_losses: list[float]
    files: list[str]
    params_source: str
    samples_source: str
    params: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    inputs: np.ndarray | None = field(repr=False, default=None)
    labels: np.ndarray | None = field(repr=False, default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "network": self.network.model_dump(),
            "run": self.run.model_dump(),
            "plan": self.plan,
            "rounding": self.rounding,
            "cores": self.cores,
            "arena_bytes": self.arena_bytes,
            "kernel_count": self.kernel_count,
            "train_statements": self.train_statements,
            "infer_statements": self.infer_statements,
            "golden_losses": self.golden_losses,
            "files": self.files,
            "params_source": self.params_source,
            "samples_source": self.samples_source,
        }


def export_workload(net: NetworkSpec, run: RunSpec, plan: str) -> tuple[Workload, MemoryPlan]:
    """The workload and arena plan an export uses.

    The exact schedule takes the lifetime or recompute plan; the seed paper's schedule the
    lifetime plan or its own static layout (``paper``: every buffer in a place of its own).
    """
    if run.schedule == "paper":
        if plan not in PAPER_PLANS:
            raise ConfigError(
                f"the paper schedule is laid out with the lifetime or paper plan (got {plan!r}); "
                "recompute is defined for the exact schedule"
            )
        workload = build_paper(net, run)
        if plan == "paper":
            return workload, static_plan(workload)
        return workload, lifetime_plan(workload)
    if run.schedule == "checkpoint":  # checkpointed BPTT: K = 1, plain SGD, no FPTT state
        if plan != "lifetime":
            raise ConfigError(
                f"the checkpoint schedule is laid out with the lifetime plan (got {plan!r}); "
                "drop --plan"
            )
        workload = build_workload(net, run)
        return workload, lifetime_plan(workload)
    if run.schedule != "exact":
        raise ConfigError(
            f"export-c generates the exact, paper and checkpoint schedules (got {run.schedule!r}); "
            "use --schedule exact"
        )
    if plan not in EXPORT_PLANS:
        raise ConfigError(
            f"the exact schedule is laid out with the lifetime or recompute plan (got {plan!r}); "
            "the paper plan is the paper schedule's static layout (--schedule paper)"
        )
    workload = build_exact(net, run, recompute=plan == "recompute")
    return workload, lifetime_plan(workload, plan)


def network_label(net: NetworkSpec) -> str:
    """``LSTM`` for the seed paper's network; otherwise each layer's cell and units, input
    first, with the frozen parts named (``GRU 16 frozen + GRU 16, readout``)."""
    if net.is_single_lstm:
        return "LSTM"
    layers = [
        f"{la.cell.upper()} {la.hidden_size}" + ("" if la.trainable else " frozen")
        for la in net.stack
    ]
    return " + ".join(layers) + (", readout" if net.readout_trainable else ", frozen readout")


def checkpoint_sizes(
    weights: Path | None, explicit: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Network sizes (and cell, num_layers) and edge parameters of a checkpoint (the given
    values when there is none).

    ``explicit`` holds the values the user typed (None where not given); one that disagrees
    with the checkpoint is a ConfigError.
    """
    if weights is None:
        return dict(explicit), None
    params, sizes = checkpoint_network_params(weights)
    for key, value in sizes.items():
        if explicit.get(key) is not None and explicit[key] != value:
            raise ConfigError(
                f"{weights} has {key.replace('_', ' ')} {value}, but {explicit[key]} was asked for"
            )
    return dict(sizes), params


def export_c(
    net: NetworkSpec,
    run: RunSpec,
    out_dir: Path,
    *,
    plan: str = "lifetime",
    rounding: Rounding = "rne",
    cores: int = 1,
    params: dict[str, np.ndarray] | None = None,
    params_source: str = "",
    data: Path | None = None,
    seed: int = 0,
) -> Export:
    """Generate the C training routine for (net, run) into ``out_dir``.

    params: the network's edge parameters, ``net.param_shapes()`` (default: seeded, torch's
    initialisation; for one LSTM layer {W, b, W_y, b_y}). data: an
    .npz batch (see edgefptt.codegen.inputs; default: a seeded synthetic batch). The golden
    executor runs the same pass inside the same arena plan; its per-partition losses and the
    arena size go to golden.json.
    """
    from edgefptt.edge import execute

    if rounding not in ("rne", "away"):
        raise ConfigError(f"unknown bf16 rounding {rounding!r}; use rne or away")
    if not 1 <= cores <= 64:
        raise ConfigError(f"--cores must be between 1 and 64 (got {cores})")
    workload, memory = export_workload(net, run, plan)
    if params is None:
        params, params_source = seeded_params(net, seed), f"seeded initial weights, seed {seed}"
    shapes = net.param_shapes()
    for name, shape in shapes.items():
        if name not in params or np.shape(params[name]) != shape:
            raise ConfigError(f"parameter {name} must have shape {shape}")
    if data is not None:
        x, labels = load_batch(data, net, run)
        samples_source = f"the first {run.batch_size} samples of {Path(data).name}"
    else:
        x, labels = synthetic_batch(net, run, seed)
        samples_source = f"a synthetic batch, seed {seed}"
    # What the device holds: values rounded to the storage type (the golden model rounds the same).
    params = {k: storage(v, run.dtype, rounding) for k, v in params.items()}
    x = storage(x, run.dtype, rounding)
    golden = execute(workload, params, x, labels, rounding=rounding, arena=memory)
    description = (
        f"{network_label(net)} I={net.input_size} H={net.hidden_size} C={net.num_classes}, "
        f"B={run.batch_size} "
        f"T={run.seq_len} K={run.partitions}, {run.dtype}, schedule {run.schedule}, "
        f"{plan} plan"
    )
    rendered = render(
        workload,
        memory,
        params,
        x,
        labels,
        rounding=rounding,
        cores=cores,
        description=description,
        params_source=params_source,
        samples_source=samples_source,
    )
    document = {
        "losses": [float(v) for v in golden.losses],
        "arena_bytes": memory.total_bytes,
        "plan": plan,
        "dtype": run.dtype,
        "rounding": rounding,
        "network": net.model_dump(),
        "run": run.model_dump(),
    }
    files = write(Path(out_dir), rendered, document)
    return Export(
        out_dir=Path(out_dir),
        network=net,
        run=run,
        plan=plan,
        rounding=rounding,
        cores=cores,
        arena_bytes=memory.total_bytes,
        kernel_count=len(workload.kernels),
        train_statements=rendered.train_statements,
        infer_statements=rendered.infer_statements,
        golden_losses=document["losses"],
        files=files,
        params_source=params_source,
        samples_source=samples_source,
        params=params,
        inputs=x,
        labels=labels,
    )
