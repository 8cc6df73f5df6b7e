"""The golden model: run a workload's kernels in order on NumPy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from edgefptt.edge.bf16 import Rounding
from edgefptt.edge.gemmini import ElementType, tiled_matmul
from edgefptt.edge.numerics import Numerics, Precision
from edgefptt.edge.ops import OPS
from edgefptt.errors import ConfigError
from edgefptt.workload.kernels import Kernel, View, Workload

if TYPE_CHECKING:  # the planner imports the executor's ops; avoid a cycle at run time
    from edgefptt.plan.memory import MemoryPlan


@dataclass
class ExecutionResult:
    """What one pass produced.

    losses: the task loss of each partition. params: the parameters after the pass.
    fptt_state: {name: {"w_bar", "lam"}} of the trainable parameters. grads: per partition, the
    task-loss gradient of each trainable parameter just before the update (batch mean), if
    requested. state: the carried (h, c) of layer 0 (None for a GRU); carried: every layer's
    carried state by buffer name (h_carry, c_carry, h_carry_l1, ...).
    logits: per partition, the (B, C) logits its loss was taken from (before its update), if
    requested.
    """

    losses: list[float]
    params: dict[str, np.ndarray]
    fptt_state: dict[str, dict[str, np.ndarray]]
    grads: list[dict[str, np.ndarray]] = field(default_factory=list)
    state: tuple[np.ndarray, np.ndarray] | None = None
    logits: list[np.ndarray] = field(default_factory=list)
    carried: dict[str, np.ndarray] = field(default_factory=dict)


def resolve(arrays: dict[str, np.ndarray], view: View) -> np.ndarray:
    """The NumPy view of ``view`` (writable: basic slicing only)."""
    a = arrays[view.buffer]
    if isinstance(view.index, int):
        a = a[view.index]
    elif view.index is not None:
        a = a[view.index[0] : view.index[1]]
    if view.rows is not None:
        a = a[..., view.rows[0] : view.rows[1], :]
    if view.cols is not None:
        a = a[..., view.cols[0] : view.cols[1]]
    return a


def _as_matrix(a: np.ndarray) -> np.ndarray:
    return a.reshape(1, -1) if a.ndim == 1 else a.reshape(-1, a.shape[-1])


def _run_matmul(
    kernel: Kernel, ins: list[np.ndarray], precision: ElementType, acc: ElementType
) -> np.ndarray:
    spec = kernel.matmul
    assert spec is not None
    return tiled_matmul(
        _as_matrix(ins[0]),
        _as_matrix(ins[1]),
        ins[2] if spec.bias != "none" else None,
        transpose_a=spec.transpose_a,
        transpose_b=spec.transpose_b,
        repeating_bias=spec.bias == "repeating",
        a_scale=spec.a_scale,
        input_type=precision,
        acc_type=acc,
    )


def _arena_views(workload: Workload, plan: MemoryPlan, dtype: type) -> dict[str, np.ndarray]:
    size = workload.run.element_bytes
    memory = np.full(plan.total_bytes // size, np.nan, dtype=dtype)
    views = {}
    for alloc in plan.allocations:
        buf = workload.buffers[alloc.name]
        start = alloc.offset_bytes // size
        views[alloc.name] = memory[start : start + buf.elements].reshape(buf.shape)
        if buf.scope == "persistent":
            views[alloc.name][...] = 0.0  # gradients and carried state start at zero
    return views


def _checked(name: str, value: np.ndarray, shape: tuple[int, ...], numerics: Numerics):
    arr = np.asarray(value)
    if arr.shape != shape:
        raise ConfigError(f"'{name}' has shape {arr.shape}, the workload needs {shape}")
    return numerics.r(arr).copy()


def execute(
    workload: Workload,
    params: dict[str, np.ndarray],
    inputs: np.ndarray,
    labels: np.ndarray,
    *,
    precision: Precision | None = None,
    rounding: Rounding = "rne",
    accumulator: ElementType | None = None,
    fptt_state: dict[str, dict[str, np.ndarray]] | None = None,
    record_grads: bool = False,
    arena: MemoryPlan | None = None,
    record_logits: bool = False,
) -> ExecutionResult:
    """Run one training pass.

    params: every parameter of ``network.param_shapes()`` in the edge layout ({W, b, W_y, b_y}
    for one LSTM layer). inputs: (B, T, I). labels: (B,) class indices.
    precision: fp64 | fp32 | bf16 (default: the run's dtype); ``rounding`` applies to the
    core's bf16 work, the accelerator rounds to nearest even. accumulator: the matmul
    accumulator type (default: the precision, as on the seed paper's bf16 Gemmini).
    fptt_state: starting W_bar and lam (default: W_bar = W, lam = 0).
    arena: a lifetime plan of this workload; every buffer then lives at its planned offset in
    one array that starts as NaN, so a plan that lets live buffers overlap, or a kernel that
    reads what nothing wrote, changes the result.
    record_logits: keep a copy of the (B, C) logits each partition's loss is taken from (the
    exact schedule's ``softmax_xent`` input, the paper schedule's last slot), i.e. before that
    partition's update.
    """
    precision = precision or workload.run.dtype  # type: ignore[assignment]
    assert precision is not None
    n = Numerics(precision, rounding)
    acc: ElementType = accumulator or precision
    run = workload.run
    arrays = _load_arrays(workload, params, inputs, n, fptt_state, arena)
    y = np.asarray(labels)
    if y.shape != (run.batch_size,) or y.min() < 0 or y.max() >= workload.network.num_classes:
        raise ConfigError(f"labels must be {run.batch_size} class indices in [0, C)")
    arrays["labels"] = y.astype(np.int32)

    losses: list[float] = []
    grads: list[dict[str, np.ndarray]] = []
    logits: list[np.ndarray] = []
    for kernel in workload.kernels:
        ins = [resolve(arrays, v) for v in kernel.reads]
        if kernel.kind == "matmul":
            outs = [_run_matmul(kernel, ins, precision, acc)]
        else:
            if kernel.op == "fptt_sgd" and record_grads:
                if len(grads) <= kernel.partition:
                    grads.append({})
                grads[kernel.partition][kernel.reads[0].buffer] = ins[1].copy()
            if kernel.op == "softmax_xent" and record_logits:
                logits.append(ins[0].copy())
            if kernel.op == "xent_grad" and record_logits:  # paper: the probs' logits slot
                logits.append(resolve(arrays, replace(kernel.reads[0], buffer="logits")).copy())
            outs = OPS[kernel.op](n, ins, kernel)
        for view, value in zip(kernel.writes, outs, strict=True):
            target = resolve(arrays, view)
            target[...] = np.reshape(value, target.shape)
        if kernel.op in ("softmax_xent", "xent_grad"):
            losses.append(float(arrays["loss"][0]))
    net = workload.network
    carried = {
        name: arrays[name].copy()
        for name, buf in workload.buffers.items()
        if buf.role == "carried_state"
    }
    return ExecutionResult(
        losses=losses,
        params={name: arrays[name].copy() for name in net.param_shapes()},
        fptt_state={  # (none in a schedule without FPTT: the checkpoint schedule's SGD)
            name: {"w_bar": arrays[f"{name}_bar"].copy(), "lam": arrays[f"{name}_lam"].copy()}
            for name in net.trainable_params()
            if f"{name}_lam" in workload.buffers
        },
        grads=grads,
        state=(carried["h_carry"], carried["c_carry"]) if "c_carry" in carried else None,
        logits=logits,
        carried=carried,
    )


def infer(
    workload: Workload,
    params: dict[str, np.ndarray],
    inputs: np.ndarray,
    *,
    precision: Precision | None = None,
    rounding: Rounding = "rne",
    accumulator: ElementType | None = None,
    arena: MemoryPlan | None = None,
) -> np.ndarray:
    """A forward pass over all T steps: only the kernels whose phase is "forward", from
    h = c = 0, with the numerics of :func:`execute`. Returns the last step's logits (B, C).

    params: the edge parameters (to evaluate with FPTT's average, pass W_bar). inputs: (B, T, I).
    The logits are those of the exact schedule's (B, C) buffer, or of the paper schedule's
    last step slot.
    """
    precision = precision or workload.run.dtype  # type: ignore[assignment]
    assert precision is not None
    shape = (workload.run.batch_size, workload.network.num_classes)
    logits = workload.buffers.get("logits")
    if logits is None or tuple(logits.shape[-2:]) != shape or len(logits.shape) > 3:
        raise ConfigError(
            f"inference needs a (B, C) logits buffer (schedule {workload.schedule!r} has none); "
            "build the workload with --schedule exact"
        )
    n = Numerics(precision, rounding)
    acc: ElementType = accumulator or precision
    arrays = _load_arrays(workload, params, inputs, n, None, arena)
    for kernel in workload.kernels:
        if kernel.phase != "forward":
            continue
        ins = [resolve(arrays, v) for v in kernel.reads]
        if kernel.kind == "matmul":
            outs = [_run_matmul(kernel, ins, precision, acc)]
        else:
            outs = OPS[kernel.op](n, ins, kernel)
        for view, value in zip(kernel.writes, outs, strict=True):
            target = resolve(arrays, view)
            target[...] = np.reshape(value, target.shape)
    last = arrays["logits"] if len(logits.shape) == 2 else arrays["logits"][-1]
    return np.array(last, copy=True)


def _load_arrays(
    workload: Workload,
    params: dict[str, np.ndarray],
    inputs: np.ndarray,
    n: Numerics,
    fptt_state: dict[str, dict[str, np.ndarray]] | None,
    arena: MemoryPlan | None,
) -> dict[str, np.ndarray]:
    """Every buffer of the pass, with the parameters, FPTT state and time-major inputs set."""
    run = workload.run
    arrays: dict[str, np.ndarray] = {}
    for name, buf in workload.buffers.items():
        if buf.role != "external":
            arrays[name] = np.zeros(buf.shape, dtype=n.dtype)
    if arena is not None:
        arrays.update(_arena_views(workload, arena, n.dtype))
    shapes = workload.network.param_shapes()
    trainable = set(workload.network.trainable_params())
    for name in shapes:
        if name not in params:
            raise ConfigError(f"parameter '{name}' is missing (need {', '.join(shapes)})")
        arrays[name] = _checked(name, params[name], shapes[name], n)
        if name not in trainable:  # frozen: no W_bar, no lambda
            continue
        state = (fptt_state or {}).get(name, {})
        arrays[f"{name}_bar"] = _checked(
            f"{name} w_bar", state.get("w_bar", arrays[name]), shapes[name], n
        )
        if "lam" in state:
            arrays[f"{name}_lam"] = _checked(f"{name} lam", state["lam"], shapes[name], n)
    x = np.asarray(inputs)
    if x.shape != (run.batch_size, run.seq_len, workload.network.input_size):
        raise ConfigError(
            f"inputs have shape {x.shape}, the workload needs "
            f"{(run.batch_size, run.seq_len, workload.network.input_size)} (B, T, I)"
        )
    arrays["x"] = n.r(np.transpose(x, (1, 0, 2))).copy()
    return arrays
