"""Lower a workload's kernel list to a small loop program for the C emitter.

Every kernel becomes one call of a C runtime function whose integer arguments (sizes, strides,
element offsets into the arena) are read off the kernel's views and the memory plan. The calls
are then rerolled: consecutive step bodies whose arguments are affine in the step become a loop
over ``t``, and consecutive partitions that are affine in the partition index become a loop over
``p``. Rerolling is checked instance by instance, so the loops reproduce the kernel list exactly;
they only keep the C short (T = 784, K = 1 is thousands of kernels, but a handful of loops).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from edgefptt.errors import ConfigError
from edgefptt.plan.memory import MemoryPlan
from edgefptt.workload.kernels import Kernel, View, Workload


@dataclass(frozen=True)
class Affine:
    """An integer ``const + sum(coef * var)`` over the loop variables."""

    const: int
    coefs: tuple[tuple[str, int], ...] = ()

    def c(self) -> str:
        parts = [f"{k} * {v}" if k != 1 else v for v, k in self.coefs if k > 0]
        negatives = [f"{-k} * {v}" if k != -1 else v for v, k in self.coefs if k < 0]
        text = " + ".join(parts)
        if self.const or not parts:
            text = f"{text} + {self.const}" if parts else str(self.const)
        for neg in negatives:
            text = f"{text} - {neg}"
        return text.replace("+ -", "- ")


@dataclass(frozen=True)
class Int:
    value: Affine

    def c(self) -> str:
        return self.value.c()


@dataclass(frozen=True)
class Ptr:
    """``base + offset`` elements (``base`` names an arena buffer or an external array)."""

    base: str
    value: Affine

    def c(self) -> str:
        if not self.value.coefs and self.value.const == 0:
            return self.base
        if not self.value.coefs:
            return f"{self.base} + {self.value.const}"
        return f"{self.base} + ({self.value.c()})"


@dataclass(frozen=True)
class Lit:
    """Literal C text: NULL, a float constant, a flag."""

    text: str

    def c(self) -> str:
        return self.text


Arg = Int | Ptr | Lit


@dataclass(frozen=True)
class Call:
    """One kernel: ``func(ctx, args...)``, then a sync that charges the time to ``group``."""

    func: str
    args: tuple[Arg, ...]
    group: str
    comment: str

    def c(self) -> str:
        return f"{self.func}(ctx, {', '.join(a.c() for a in self.args)});"


@dataclass(frozen=True)
class Loop:
    """``for (var = start; var != stop; var += step)``."""

    var: str
    start: int
    stop: int
    step: int
    body: tuple[Stmt, ...]

    @property
    def count(self) -> int:
        return (self.stop - self.start) // self.step

    def header(self) -> str:
        cmp = "<" if self.step > 0 else ">"
        inc = f"++{self.var}" if self.step > 0 else f"--{self.var}"
        return f"for (int {self.var} = {self.start}; {self.var} {cmp} {self.stop}; {inc})"


Stmt = Call | Loop


# ---------------------------------------------------------------------------- views to matrices
@dataclass(frozen=True)
class Matrix:
    """A view as ``rows`` x ``cols`` elements, ``ld`` elements between rows, at ``offset``."""

    buffer: str
    offset: int
    rows: int
    cols: int
    ld: int


def view_matrix(workload: Workload, view: View) -> Matrix:
    """The rectangular block a view covers (leading axes collapse into rows)."""
    dims = list(workload.buffers[view.buffer].shape)
    strides = [1] * len(dims)
    for i in range(len(dims) - 2, -1, -1):
        strides[i] = strides[i + 1] * dims[i + 1]
    offset = 0
    if isinstance(view.index, int):
        offset += view.index * strides[0]
        dims, strides = dims[1:], strides[1:]
    elif view.index is not None:
        offset += view.index[0] * strides[0]
        dims[0] = view.index[1] - view.index[0]
    if view.rows is not None:
        offset += view.rows[0] * strides[-2]
        dims[-2] = view.rows[1] - view.rows[0]
    if view.cols is not None:
        offset += view.cols[0] * strides[-1]
        dims[-1] = view.cols[1] - view.cols[0]
    if len(dims) == 1:
        return Matrix(view.buffer, offset, 1, dims[0], dims[0])
    for i in range(len(dims) - 2):
        if strides[i] != dims[i + 1] * strides[i + 1]:  # builder bug: not one strided block
            raise ValueError(f"view {view} is not a single strided matrix")
    rows = 1
    for d in dims[:-1]:
        rows *= d
    return Matrix(view.buffer, offset, rows, dims[-1], strides[-2])


# ---------------------------------------------------------------------------- kernels to calls
EXTERNAL = {"x": "x", "labels": "labels"}


def buffer_symbol(name: str) -> str:
    return EXTERNAL.get(name, f"buf_{name}")


def _ptr(m: Matrix) -> Ptr:
    return Ptr(buffer_symbol(m.buffer), Affine(m.offset))


def _int(value: int) -> Int:
    return Int(Affine(value))


def float_literal(value: float) -> str:
    """A float constant as the golden model sees it: the run's float32 value of ``value``."""
    import numpy as np

    text = f"{float(np.float32(value)):.9g}"
    if "." not in text and "e" not in text and "inf" not in text:
        text += ".0"
    return f"{text}f"


def _operands(workload: Workload, views: tuple[View, ...]) -> list[Matrix]:
    return [view_matrix(workload, v) for v in views]


def lower_kernel(workload: Workload, kernel: Kernel) -> list[Call]:
    """The runtime call(s) of one kernel."""
    r = _operands(workload, kernel.reads)
    w = _operands(workload, kernel.writes)
    names = ", ".join(v.buffer for v in kernel.reads)
    outs = ", ".join(v.buffer for v in kernel.writes)
    comment = f"{kernel.group}: {kernel.op}({names}) -> {outs}"

    def call(func: str, *args: Arg) -> Call:
        return Call(func, args, kernel.group, comment)

    op = kernel.op
    if op == "copy":
        src, dst = r[0], w[0]
        return [
            call("ef_copy", _int(src.rows), _int(src.cols), _ptr(src), _int(src.ld), _ptr(dst),
                 _int(dst.ld))
        ]  # fmt: skip
    if op == "zero":
        dst = w[0]
        return [call("ef_zero", _int(dst.rows), _int(dst.cols), _ptr(dst), _int(dst.ld))]
    if op == "matmul":
        mm = kernel.matmul
        assert mm is not None
        a, b, out = r[0], r[1], w[0]
        d = r[2] if len(r) > 2 else None
        return [
            call(
                "ef_matmul",
                _int(mm.m), _int(mm.n), _int(mm.k),
                _ptr(a), _ptr(b), _ptr(d) if d else Lit("NULL"), _ptr(out),
                _int(a.ld), _int(b.ld), _int(d.ld if d else 0), _int(out.ld),
                Lit(float_literal(mm.a_scale)),
                Lit("true" if mm.bias == "repeating" else "false"),
                Lit("true" if mm.transpose_a else "false"),
                Lit("true" if mm.transpose_b else "false"),
            )
        ]  # fmt: skip
    if op == "lstm_cell_forward":
        pre, c_prev = r
        act, c, h = w[:3]
        tanh_c = w[3] if len(w) == 4 else None
        return [
            call(
                "ef_lstm_cell_forward",
                _int(c.rows), _int(c.cols), _ptr(pre), _int(pre.ld), _ptr(c_prev), _int(c_prev.ld),
                _ptr(act), _int(act.ld), _ptr(c), _int(c.ld), _ptr(h), _int(h.ld),
                _ptr(tanh_c) if tanh_c else Lit("NULL"), _int(tanh_c.ld if tanh_c else 0),
            )
        ]  # fmt: skip
    if op == "lstm_cell_backward":
        dh, dc, act, c_prev, tanh_src = r
        dpre = w[0]
        return [
            call(
                "ef_lstm_cell_backward",
                _int(dh.rows), _int(dh.cols), _ptr(dh), _int(dh.ld), _ptr(dc), _int(dc.ld),
                _ptr(act), _int(act.ld), _ptr(c_prev), _int(c_prev.ld),
                _ptr(tanh_src), _int(tanh_src.ld), Int(Affine(int(kernel.attr("tanh_stored", 1)))),
                _ptr(dpre), _int(dpre.ld),
            )
        ]  # fmt: skip
    if op == "lstm_gates":
        g = r[0]
        return [call("ef_lstm_gates", _int(g.rows), _int(g.cols // 4), _ptr(g), _int(g.ld))]
    if op == "gru_cell_forward":
        pre, h_prev = r
        act, h = w
        return [
            call(
                "ef_gru_cell_forward",
                _int(h.rows), _int(h.cols), _ptr(pre), _int(pre.ld), _ptr(h_prev),
                _int(h_prev.ld), _ptr(act), _int(act.ld), _ptr(h), _int(h.ld),
            )
        ]  # fmt: skip
    if op == "gru_gates":
        g = r[0]
        return [call("ef_gru_gates", _int(g.rows), _int(g.cols // 4), _ptr(g), _int(g.ld))]
    if op == "gru_cell_backward":
        dh, act, h_prev = r
        dpre, dh_out = w
        return [
            call(
                "ef_gru_cell_backward",
                _int(dh.rows), _int(dh.cols), _ptr(dh), _int(dh.ld), _ptr(act), _int(act.ld),
                _ptr(h_prev), _int(h_prev.ld), _ptr(dpre), _int(dpre.ld), _ptr(dh_out),
                _int(dh_out.ld),
            )
        ]  # fmt: skip
    if op == "add":
        a, b, out = r[0], r[1], w[0]
        return [
            call("ef_add", _int(out.rows), _int(out.cols), _ptr(a), _int(a.ld), _ptr(b),
                 _int(b.ld), _ptr(out), _int(out.ld))
        ]  # fmt: skip
    if op == "softmax_xent":
        logits, labels = r
        dy, loss = w
        return [
            call(
                "ef_softmax_xent",
                _int(logits.rows), _int(logits.cols), _ptr(logits), _int(logits.ld),
                _ptr(labels), _ptr(dy), _int(dy.ld), _ptr(loss),
            ),
            Call(
                "ef_record_loss", (Lit("losses"), Int(Affine(kernel.partition)), _ptr(loss)),
                "", "the partition's loss, for the caller (no sync: part of the kernel above)",
            ),
            Call(
                "ef_record_argmax",
                (Lit("edgefptt_train_preds"), _int(logits.rows), _int(logits.cols), _ptr(logits),
                 _int(logits.ld)),
                "", "each sample's predicted class, for the learner's train accuracy",
            ),
        ]  # fmt: skip
    if op == "bias_grad":
        values, db = r
        return [
            call(
                "ef_bias_grad",
                _int(values.rows), _int(values.cols), _ptr(values), _int(values.ld), _ptr(db),
                Lit(float_literal(float(kernel.attr("scale", 1.0)))),
            )
        ]  # fmt: skip
    if op == "fptt_sgd":
        wt, grad, w_bar, lam = r
        alpha = float(kernel.attr("alpha"))
        beta, coef = float(kernel.attr("beta")), float(kernel.attr("linear_coef"))
        # The learning rate is a variable (edgefptt_lr, set to the run's value by
        # edgefptt_init), so that the learner can follow a schedule; the rest are constants.
        return [
            call(
                "ef_fptt_sgd",
                _int(wt.rows * wt.cols), _ptr(wt), _ptr(grad), _ptr(w_bar), _ptr(lam),
                Lit("edgefptt_lr"), Lit(float_literal(alpha)), Lit(float_literal(beta)),
                Lit(float_literal(beta / alpha)), Lit(float_literal(coef)),
            )
        ]  # fmt: skip
    if op in PAPER_KERNELS:
        return _lower_paper(workload, kernel, r, w, call)
    raise ConfigError(
        f"the C generator has no kernel '{op}' (schedule {workload.schedule}); "
        "export-c supports --schedule exact and paper"
    )


# The seed paper's schedule: element-wise kernels over blocks, arguments (rows, cols, then each
# operand's pointer and leading dimension, reads before writes).
PAPER_KERNELS = {
    "sigmoid": "ef_sigmoid",
    "tanh": "ef_tanh",
    "mul": "ef_mul",
    "cell_state": "ef_cell_state",
    "softmax": "ef_softmax",
    "xent_grad": "ef_xent_grad",
    "lstm_grad_output": "ef_lstm_grad_output",
    "lstm_grad_gates": "ef_lstm_grad_gates",
}


def _lower_paper(
    workload: Workload,
    kernel: Kernel,
    r: list[Matrix],
    w: list[Matrix],
    call: Callable[..., Call],
) -> list[Call]:
    op = kernel.op
    func = PAPER_KERNELS[op]
    if op == "xent_grad":
        probs, dy, loss = r[0], w[0], w[1]
        # The predicted class comes from the logits the probabilities were made of (same slot).
        logits = view_matrix(workload, replace(kernel.reads[0], buffer="logits"))
        return [
            call(func, _int(probs.rows), _int(probs.cols), _ptr(probs), _int(probs.ld),
                 _ptr(r[1]), _ptr(dy), _int(dy.ld), _ptr(loss)),
            Call(
                "ef_record_loss", (Lit("losses"), Int(Affine(kernel.partition)), _ptr(loss)),
                "", "the partition's loss, for the caller (no sync: part of the kernel above)",
            ),
            Call(
                "ef_record_argmax",
                (Lit("edgefptt_train_preds"), _int(logits.rows), _int(logits.cols),
                 _ptr(logits), _int(logits.ld)),
                "", "each sample's predicted class, for the learner's train accuracy",
            ),
        ]  # fmt: skip
    # lstm_grad_gates writes the three gate-input gradients as one block; its C takes the first.
    shape = w[0]
    if op == "lstm_grad_gates" and w[3].cols != 3 * shape.cols:
        raise ValueError(f"{kernel}: d_in must be three gate blocks wide")  # builder bug
    args: list[Arg] = [_int(shape.rows), _int(shape.cols)]
    for m in (*r, *w):
        args += [_ptr(m), _int(m.ld)]
    return [call(func, *args)]


# ---------------------------------------------------------------------------- rerolling
def _leaves(stmt: Stmt) -> Iterator[Affine]:
    if isinstance(stmt, Call):
        for a in stmt.args:
            if isinstance(a, Int | Ptr):
                yield a.value
    else:
        for s in stmt.body:
            yield from _leaves(s)


def _shape(stmt: Stmt) -> object:
    """Everything but the affine leaves' constants: two bodies with equal shapes may reroll."""
    if isinstance(stmt, Call):
        return (
            stmt.func,
            stmt.group,
            tuple(
                (type(a).__name__, getattr(a, "base", None), getattr(a, "text", None),
                 a.value.coefs if isinstance(a, Int | Ptr) else None)
                for a in stmt.args
            ),
        )  # fmt: skip
    return ("loop", stmt.var, stmt.start, stmt.stop, stmt.step, tuple(_shape(s) for s in stmt.body))


def _rebuild(stmt: Stmt, new: Iterator[Affine]) -> Stmt:
    if isinstance(stmt, Call):
        args = tuple(
            replace(a, value=next(new)) if isinstance(a, Int | Ptr) else a for a in stmt.args
        )
        return replace(stmt, args=args)
    return replace(stmt, body=tuple(_rebuild(s, new) for s in stmt.body))


def _add_var(leaf: Affine, var: str, coef: int, origin: int) -> Affine:
    if coef == 0:
        return leaf
    return Affine(leaf.const - coef * origin, (*leaf.coefs, (var, coef)))


def reroll(items: list[tuple[int, list[Stmt]]], var: str) -> list[Stmt]:
    """Fold consecutive bodies (tagged by their value of ``var``) into loops where exact."""
    out: list[Stmt] = []
    i = 0
    while i < len(items):
        v0, body0 = items[i]
        shape0 = [_shape(s) for s in body0]
        leaves0 = [leaf for s in body0 for leaf in _leaves(s)]
        j = i + 1
        dv = 0
        deltas: list[int] = []
        while j < len(items):
            vj, bodyj = items[j]
            if [_shape(s) for s in bodyj] != shape0:
                break
            step = vj - items[j - 1][0]
            if j == i + 1:
                if step not in (1, -1):
                    break
                dv = step
                leaves1 = [leaf for s in bodyj for leaf in _leaves(s)]
                deltas = [(b.const - a.const) * dv for a, b in zip(leaves0, leaves1, strict=True)]
            elif step != dv:
                break
            leavesj = [leaf for s in bodyj for leaf in _leaves(s)]
            if any(
                b.const != a.const + d * (vj - v0)
                for a, b, d in zip(leaves0, leavesj, deltas, strict=True)
            ):
                break
            j += 1
        if j - i < 2:
            out.extend(body0)
            i += 1
            continue
        new = iter([_add_var(leaf, var, d, v0) for leaf, d in zip(leaves0, deltas, strict=True)])
        body = tuple(_rebuild(s, new) for s in body0)
        out.append(Loop(var, v0, items[j - 1][0] + dv, dv, body))
        i = j
    return out


def _partition_body(workload: Workload, kernels: list[Kernel]) -> list[Stmt]:
    body: list[Stmt] = []
    steps: list[tuple[int, list[Stmt]]] = []
    for kernel in kernels:
        calls = lower_kernel(workload, kernel)
        if kernel.step is None:
            body.extend(reroll(steps, "t"))
            steps = []
            body.extend(calls)
        elif steps and steps[-1][0] == kernel.step:
            steps[-1][1].extend(calls)
        else:
            steps.append((kernel.step, list(calls)))
    body.extend(reroll(steps, "t"))
    return body


def lower(workload: Workload, keep: Callable[[Kernel], bool] = lambda k: True) -> list[Stmt]:
    """The whole pass (the kernels ``keep`` selects) as rerolled loops over p and t."""
    per_partition: dict[int, list[Kernel]] = {}
    for kernel in workload.kernels:
        if keep(kernel):
            per_partition.setdefault(kernel.partition, []).append(kernel)
    items = [(p, _partition_body(workload, ks)) for p, ks in sorted(per_partition.items())]
    return reroll(items, "p")


def rebase(program: list[Stmt], mapping: dict[str, str]) -> list[Stmt]:
    """The same program with the pointers into some buffers moved to others (same layout).

    The learner evaluates with W_bar: the forward kernels, their parameter pointers moved from
    ``buf_W`` to ``buf_W_bar`` and so on.
    """
    out: list[Stmt] = []
    for stmt in program:
        if isinstance(stmt, Call):
            args = tuple(
                replace(a, base=mapping[a.base]) if isinstance(a, Ptr) and a.base in mapping else a
                for a in stmt.args
            )
            out.append(replace(stmt, args=args))
        else:
            out.append(replace(stmt, body=tuple(rebase(list(stmt.body), mapping))))
    return out


def expand(program: list[Stmt], env: dict[str, int] | None = None) -> Iterator[Call]:
    """The calls a program makes, loops unrolled and leaves evaluated (for checks and tests)."""
    env = env or {}
    for stmt in program:
        if isinstance(stmt, Call):
            yield _rebuild(stmt, iter(_evaluate(leaf, env) for leaf in _leaves(stmt)))  # type: ignore[misc]
        else:
            for value in range(stmt.start, stmt.stop, stmt.step):
                yield from expand(list(stmt.body), {**env, stmt.var: value})


def _evaluate(leaf: Affine, env: dict[str, int]) -> Affine:
    return Affine(leaf.const + sum(k * env[v] for v, k in leaf.coefs))


def count_calls(program: list[Stmt]) -> int:
    """Statements in the program text (not executions)."""
    return sum(1 if isinstance(s, Call) else count_calls(list(s.body)) for s in program)


def arena_offsets(plan: MemoryPlan, element_bytes: int) -> dict[str, int]:
    """Element offset of every arena buffer."""
    offsets = {}
    for alloc in plan.allocations:
        if alloc.offset_bytes % element_bytes:
            raise ValueError(f"buffer {alloc.name} is not element aligned")  # planner bug
        offsets[alloc.name] = alloc.offset_bytes // element_bytes
    return offsets
