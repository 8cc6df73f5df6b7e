"""A small helper that both schedules use to declare buffers and append kernels."""

from __future__ import annotations

from typing import Literal

from edgefptt.config import NetworkSpec, RunSpec, layer_suffix
from edgefptt.train.partition import partition_bounds
from edgefptt.workload.kernels import (
    Buffer,
    BufferRole,
    Kernel,
    MatmulSpec,
    Phase,
    Scope,
    View,
    Workload,
)

PARAMS = ("W", "b", "W_y", "b_y")


def _matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """How a matmul reads a view: stacked slots become rows, a vector is one row."""
    if len(shape) == 1:
        return 1, shape[0]
    rows = 1
    for d in shape[:-1]:
        rows *= d
    return rows, shape[-1]


class Builder:
    """Accumulates buffers and kernels; ``partition`` and ``phase`` tag what is appended."""

    def __init__(self, net: NetworkSpec, run: RunSpec, schedule: str, recompute: bool = False):
        self.net = net
        self.run = run
        self.dtype = run.dtype
        self.workload = Workload(
            network=net,
            run=run,
            schedule=schedule,
            buffers={},
            bounds=partition_bounds(run.seq_len, run.partitions),
            recompute=recompute,
        )
        self.partition = 0
        self.phase: Phase = "forward"

    # ------------------------------------------------------------------ buffers and views
    def buffer(
        self,
        name: str,
        shape: tuple[int, ...],
        role: BufferRole,
        scope: Scope = "partition",
        dtype: str | None = None,
    ) -> None:
        self.workload.buffers[name] = Buffer(name, shape, dtype or self.dtype, role, scope)

    def view(
        self,
        name: str,
        index: int | tuple[int, int] | None = None,
        rows: tuple[int, int] | None = None,
        cols: tuple[int, int] | None = None,
    ) -> View:
        shape = list(self.workload.buffers[name].shape)
        if isinstance(index, int):
            shape = shape[1:]
        elif index is not None:
            shape = [index[1] - index[0], *shape[1:]]
        if rows is not None:
            shape[-2] = rows[1] - rows[0]
        if cols is not None:
            shape[-1] = cols[1] - cols[0]
        return View(name, tuple(shape), index, rows, cols)

    def common_buffers(self) -> None:
        """Parameters, gradients, FPTT state, the carried (h, c), inputs, labels, loss."""
        net, run = self.net, self.run
        trainable = set(net.trainable_params())
        for name, shape in net.param_shapes().items():
            self.buffer(name, shape, "parameter", "persistent")
            if name in trainable:  # a frozen parameter has no gradient and no FPTT state
                self.buffer(f"{name}_grad", shape, "gradient", "persistent")
                self.buffer(f"{name}_bar", shape, "fptt_state", "persistent")
                self.buffer(f"{name}_lam", shape, "fptt_state", "persistent")
        b = run.batch_size
        # No gradient crosses a partition boundary, but h and c do: they outlive the partition.
        for layer, spec in enumerate(net.stack):
            sfx = layer_suffix(layer)
            self.buffer(f"h_carry{sfx}", (b, spec.hidden_size), "carried_state", "persistent")
            if spec.cell == "lstm":
                self.buffer(f"c_carry{sfx}", (b, spec.hidden_size), "carried_state", "persistent")
        # Inputs stream from outside the arena; the time-major layout makes a partition one slice.
        self.buffer("x", (run.seq_len, b, net.input_size), "external", "persistent")
        self.buffer("labels", (b,), "external", "persistent", dtype="int32")
        self.buffer("loss", (1,), "scratch")

    # ------------------------------------------------------------------ kernels
    def add(
        self,
        op: str,
        kind: Literal["matmul", "elementwise", "reduction", "copy", "update"],
        group: str,
        reads: list[View],
        writes: list[View],
        step: int | None = None,
        matmul: MatmulSpec | None = None,
        **attrs: float | int | str,
    ) -> None:
        elements = matmul.m * matmul.n if matmul else (writes[0].elements if writes else 0)
        self.workload.kernels.append(
            Kernel(
                op=op,
                kind=kind,
                group=group,
                phase=self.phase,
                partition=self.partition,
                reads=tuple(reads),
                writes=tuple(writes),
                elements=elements,
                dtype=self.dtype,
                step=step,
                matmul=matmul,
                attrs=tuple(sorted(attrs.items())),
            )
        )

    def matmul(
        self,
        group: str,
        a: View,
        b: View,
        out: View,
        *,
        bias: View | None = None,
        repeating: bool = False,
        transpose_a: bool = False,
        transpose_b: bool = False,
        a_scale: float = 1.0,
        accumulate: bool = False,
        step: int | None = None,
    ) -> None:
        """out = a_scale * A' @ B' (+ bias | + out). Reads are (A, B[, D])."""
        a_rows, a_cols = _matrix_shape(a.shape)
        b_rows, b_cols = _matrix_shape(b.shape)
        m, k = (a_cols, a_rows) if transpose_a else (a_rows, a_cols)
        k_b, n = (b_cols, b_rows) if transpose_b else (b_rows, b_cols)
        if k != k_b or _matrix_shape(out.shape) != (m, n):
            raise ValueError(f"matmul shapes do not agree: {a} {b} -> {out}")  # builder bug
        reads = [a, b]
        mode: Literal["none", "repeating", "matrix"] = "none"
        if accumulate:
            reads.append(out)
            mode = "matrix"
        elif bias is not None:
            reads.append(bias)
            mode = "repeating" if repeating else "matrix"
        spec = MatmulSpec(m, n, k, transpose_a, transpose_b, mode, a_scale, accumulate)
        self.add("matmul", "matmul", group, reads, [out], step=step, matmul=spec)

    def copy(self, src: View, dst: View, step: int | None = None) -> None:
        self.add("copy", "copy", "dataMovement", [src], [dst], step=step)

    def update(self) -> None:
        """The fused FPTT-SGD loop over every parameter tensor (one kernel per tensor)."""
        self.phase = "update"
        run = self.run
        for name in self.net.trainable_params():
            views = [self.view(n) for n in (name, f"{name}_grad", f"{name}_bar", f"{name}_lam")]
            self.add(
                "fptt_sgd",
                "update",
                "EWO-SGD(FPTT)",
                views,
                [views[0], views[2], views[3], views[1]],
                lr=run.learning_rate,
                alpha=run.alpha,
                beta=run.beta,
                linear_coef=run.linear_coef,
            )
