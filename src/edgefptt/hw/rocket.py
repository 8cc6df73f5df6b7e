"""Kernels on the Rocket cores: element-wise, reduction, optimizer, softmax, copies, CPU matmul.

Every element-wise kernel belongs to a cost class (what the paper's C loop does per element);
kernels of other schedules are costed as sums of those classes per element (their recipe).
Parallel kernels split their elements cyclically over N harts and end in a barrier; softmax,
copies and matmuls run on hart 0 alone. Constants are in hw/calibration.py. Matmuls on the
core (no accelerator) are costed by the memory-hierarchy model (hw/core_model.py).
"""

from __future__ import annotations

import math

from edgefptt.hw import calibration as cal
from edgefptt.hw.summary import KernelShape

# Groups whose kernels run on hart 0 only (the others wait at a barrier that hart 0 does not
# time). Matmuls too, on the accelerator or, without one, on hart 0.
SERIAL_GROUPS = frozenset({"softmax", "dataMovement"})

# Per work element of each op, how many elements of each cost class it amounts to. Paper ops
# are their own class; the exact schedule's fused kernels are sums of the paper's pieces.
RECIPES: dict[tuple[str, str], dict[str, float]] = {
    ("sigmoid", "forward"): {"sigmoid": 1.0},
    ("tanh", "forward"): {"tanh": 1.0},
    ("cell_state", "forward"): {"ewo_forward": 1.0},
    ("mul", "forward"): {"ewo_forward": 1.0},
    ("mul", "backward"): {"ewo_backward": 1.0},
    ("xent_grad", "backward"): {"ewo_backward": 1.0},
    ("lstm_grad_output", "backward"): {"lstm_grad_output": 1.0},
    ("lstm_grad_gates", "backward"): {"lstm_grad_gates": 1.0},
    ("bias_grad", "backward"): {"bias_grad": 1.0},
    ("fptt_sgd", "update"): {"fptt_sgd": 1.0},
    # exact schedule: work is B x 4H (one element per gate), so per hidden unit divide by 4.
    ("lstm_cell_forward", "forward"): {"sigmoid": 0.75, "tanh": 0.5, "ewo_forward": 0.5},
    ("lstm_cell_backward", "backward"): {
        "lstm_grad_output": 0.25,
        "lstm_grad_gates": 0.25,
        "ewo_backward": 0.25,
    },
    ("lstm_gates", "backward"): {"sigmoid": 0.75, "tanh": 0.25},
    # GRU (no FireSim data; from its operation mix, docs/hardware.md): per hidden unit r, z
    # (2 sigmoid), n (1 tanh), n's multiply-add and h = n + z (h - n) (2 ewo_forward).
    ("gru_cell_forward", "forward"): {"sigmoid": 0.5, "tanh": 0.25, "ewo_forward": 0.5},
    ("gru_gates", "backward"): {"sigmoid": 0.5, "tanh": 0.25, "ewo_forward": 0.25},
    # the n path (dn, dhn, dh z: like lstm_grad_output) and two of three gates' gradients.
    ("gru_cell_backward", "backward"): {"lstm_grad_output": 0.25, "lstm_grad_gates": 1 / 6},
    ("add", "backward"): {"ewo_backward": 1.0},
}


def recipe(shape: KernelShape) -> dict[str, float]:
    """Cost classes of a parallel element-wise kernel (unknown ops cost like a backward mul)."""
    key = (shape.op, shape.phase)
    if key in RECIPES:
        return RECIPES[key]
    for (op, _), value in RECIPES.items():
        if op == shape.op:
            return value
    return {"ewo_backward": 1.0}


def element_cycles(shape: KernelShape, cores: int, dtype: str) -> float:
    """Cycles (as hart 0 sees them) of one parallel kernel call on ``cores`` harts.

    One hart: call + work x w. N harts: call + barrier (b0 + b1 N) + ceil(work / N) x w x
    (1 + delta + kappa (N - 1)), where delta is the cost of sharing cache lines between harts
    (cyclic split) and kappa that of each further hart on the shared memory bandwidth.
    In fp32 the per-element work is cheaper by the bf16 emulation factor (widen, compute,
    round back around every operation).
    """
    c = cal.CORE
    scale = 1.0 if dtype == "bf16" else 1.0 / cal.BF16_EMULATION_FACTOR
    per_element = 0.0
    for cls, weight in recipe(shape).items():
        w, delta, kappa = c["classes"][cls]
        factor = 1.0 if cores == 1 else 1.0 + delta + kappa * (cores - 1)
        per_element += weight * w * factor
    if cores == 1:
        return c["call_cycles"] + shape.work * per_element * scale
    barrier = c["barrier_cycles"] + c["barrier_per_core_cycles"] * cores
    return c["call_cycles"] + barrier + math.ceil(shape.work / cores) * per_element * scale


def serial_cycles(shape: KernelShape, dtype: str) -> float:
    """Softmax and copies on hart 0."""
    c = cal.CORE
    if shape.group == "softmax" or shape.op in ("softmax", "softmax_xent"):
        scale = 1.0 if dtype == "bf16" else 1.0 / cal.BF16_EMULATION_FACTOR
        return c["call_cycles"] + shape.work * c["softmax_cycles"] * scale
    per = c["copy_block_cycles"] if shape.contiguous else c["copy_row_cycles"]
    return c["copy_call_cycles"] + shape.work * per


def kernel_cycles_on_core(shape: KernelShape, cores: int, dtype: str) -> float:
    if shape.group in SERIAL_GROUPS:
        return serial_cycles(shape, dtype)
    return element_cycles(shape, cores, dtype)
