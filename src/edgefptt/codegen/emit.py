"""Write an export directory: C sources from the templates, the Makefile and golden.json."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from edgefptt.codegen.boards import BOARDS, linker_context
from edgefptt.codegen.program import Call, Stmt, count_calls, float_literal, lower, rebase
from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.edge.bf16 import Rounding, to_bf16_bits
from edgefptt.learn.layout import network_words, state_version
from edgefptt.plan.memory import MemoryPlan
from edgefptt.workload.kernels import GROUPS, Workload

# C enumerators of the kernel groups, in the order of edgefptt.workload.GROUPS.
GROUP_ENUM = dict(
    zip(
        GROUPS,
        (
            "EF_G_MATMUL_1",
            "EF_G_MATMUL_2",
            "EF_G_MATMUL_3",
            "EF_G_MAT2VEC",
            "EF_G_EWO_BASIC",
            "EF_G_EWO_COMBO",
            "EF_G_EWO_SGD",
            "EF_G_SIGMOID",
            "EF_G_TANH",
            "EF_G_SOFTMAX",
            "EF_G_DATA_MOVEMENT",
        ),
        strict=True,
    )
)
STATIC_FILES = (
    "runtime.h",
    "runtime.c",
    "matmul.h",
    "matmul_portable.c",
    "matmul_gemmini.c",
    "edgefptt.h",
    "main.c",
    "learner.h",
    "learner.c",
    "learn_main.c",
    "startup.c",
)
RENDERED_FILES = {"config.h": "config.h.j2", "model.c": "model.c.j2", "data.c": "data.c.j2",
                  "Makefile": "Makefile.j2"}  # fmt: skip


@dataclass
class Rendered:
    """The files of an export, by name, and what they were made from."""

    files: dict[str, str]
    train_statements: int
    infer_statements: int
    extra: dict[str, Any] = field(default_factory=dict)


def _template_dir() -> Path:
    return Path(str(resources.files("edgefptt.codegen") / "templates"))


def _wrap_call(text: str, indent: str) -> list[str]:
    if len(indent) + len(text) <= 100:
        return [indent + text]
    lines = textwrap.wrap(
        text, width=100 - len(indent), subsequent_indent="    ", break_long_words=False,
        break_on_hyphens=False,
    )  # fmt: skip
    return [indent + line for line in lines]


def render_program(program: list[Stmt], depth: int = 1) -> list[str]:
    """C statements of a program: a comment, the call and its sync per kernel."""
    indent = "    " * depth
    lines: list[str] = []
    for stmt in program:
        if isinstance(stmt, Call):
            if stmt.group:
                lines.append(f"{indent}/* {stmt.comment} */")
            lines.extend(_wrap_call(stmt.c(), indent))
            if stmt.group:
                lines.append(f"{indent}ef_sync(ctx, {GROUP_ENUM[stmt.group]});")
        else:
            what = "partition" if stmt.var == "p" else "step"
            lines.append(f"{indent}{stmt.header()} {{ /* {stmt.count} x {what} */")
            lines.extend(render_program(list(stmt.body), depth + 1))
            lines.append(f"{indent}}}")
    return lines


def storage(values: np.ndarray, dtype: str, rounding: Rounding) -> np.ndarray:
    """Values as the device stores them: float32, or bf16 widened back to float32."""
    f = np.asarray(values, dtype=np.float32)
    if dtype == "bf16":
        return (to_bf16_bits(f, rounding).astype(np.uint32) << np.uint32(16)).view(np.float32)
    return f


def c_array(values: np.ndarray, dtype: str, rounding: Rounding, per_line: int = 8) -> str:
    """Initializer text of a flat array in the storage type."""
    flat = np.asarray(values, dtype=np.float32).reshape(-1)
    if dtype == "bf16":
        items = [f"0x{v:04x}" for v in to_bf16_bits(flat, rounding).tolist()]
    else:
        items = [float_literal(v) for v in flat.tolist()]
    rows = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n".join("    " + row for row in rows)


def param_enum(names: list[str]) -> str:
    """The C enumerators of the parameters, in layout order, then EDGEFPTT_NUM_PARAMS."""
    items = [f"EDGEFPTT_{name.upper()}" for name in names] + ["EDGEFPTT_NUM_PARAMS"]
    return "enum { " + ", ".join(items) + " };"


def _header(net: NetworkSpec, names: list[str]) -> str:
    """edgefptt.h: as shipped for one LSTM layer; other networks get their parameter list."""
    text = (_template_dir() / "edgefptt.h").read_text()
    if net.is_single_lstm:
        return text
    start = text.index("/* Parameters in the edge layout")
    end = text.index("EDGEFPTT_NUM_PARAMS };") + len("EDGEFPTT_NUM_PARAMS };")
    frozen = [n for n in names if n not in net.trainable_params()]
    lines = [
        "/* Parameters in the edge layout (docs/workload.md), layer 0 first: LSTM W (4H, I+H)",
        " * over [x_t, h_{t-1}] with gates i, f, g, o and b (4H); GRU W (3H, I+H) with gates",
        " * r, z, n, b (3H) and b_hn (H); suffix _l<k> for layer k; then W_y (C, H), b_y (C).",
        " * Frozen (no gradient, W_bar or lambda): " + (", ".join(frozen) or "none") + ". */",
    ]
    wrapped = _wrap_call(param_enum(names), "")
    return text[:start] + "\n".join(lines + wrapped) + text[end:]


NO_LEARNER_C = """/* Generated by edgefptt export-c; do not edit. */
#error "the learner (learn_*, docs/learner.md) trains with the FPTT schedules (exact, paper); \
this checkpoint-schedule export has the one-pass program only: make train_host (or train_riscv, \
train_sanitize)"
"""


def _last_logits_offset(workload: Workload) -> int:
    """Element offset, in the logits buffer, of the (B, C) logits inference returns."""
    shape = workload.buffers["logits"].shape
    return (shape[0] - 1) * shape[1] * shape[2] if len(shape) == 3 else 0


def render(
    workload: Workload,
    plan: MemoryPlan,
    params: dict[str, np.ndarray],
    x: np.ndarray,
    labels: np.ndarray,
    *,
    rounding: Rounding,
    cores: int,
    description: str,
    params_source: str,
    samples_source: str,
) -> Rendered:
    """Every file of the export as text."""
    net: NetworkSpec = workload.network
    run: RunSpec = workload.run
    size = run.element_bytes
    train = lower(workload)
    infer = lower(workload, lambda k: k.phase == "forward")
    names = list(net.param_shapes())
    # Parameters with FPTT state (W_bar, lambda): the trainable ones, in the FPTT schedules.
    trainable = {n for n in net.trainable_params() if f"{n}_bar" in workload.buffers}
    learner = workload.schedule != "checkpoint"
    # Evaluation (the learner's) runs the same forward kernels on W_bar, as the host does; a
    # frozen tensor is its own W_bar.
    infer_bar = rebase(infer, {f"buf_{name}": f"buf_{name}_bar" for name in trainable})
    buffers = []
    for alloc in plan.allocations:
        buf = workload.buffers[alloc.name]
        buffers.append(
            {"name": alloc.name, "offset": alloc.offset_bytes // size, "shape": buf.shape,
             "role": buf.role}
        )  # fmt: skip
    shapes = net.param_shapes()
    context = {
        "description": description,
        "net": net,
        "run": run,
        "rounding": rounding,
        "plan_name": plan.plan,
        "arena_bytes": plan.total_bytes,
        "arena_elements": plan.total_bytes // size,
        "cores": cores,
        "buffers": buffers,
        "recompute": workload.recompute,
        "kernel_count": len(workload.kernels),
        "train_statements": count_calls(train),
        "train_body": "\n".join(render_program(train)),
        "infer_body": "\n".join(render_program(infer)),
        "infer_bar_body": "\n".join(render_program(infer_bar)),
        "learning_rate": float_literal(run.learning_rate),
        "alpha": float_literal(run.alpha),
        "beta": float_literal(run.beta),
        "linear_coef": float_literal(run.linear_coef),
        "params": [
            {
                "name": name,
                "shape": shapes[name],
                "size": int(np.prod(shapes[name])),
                "text": c_array(params[name], run.dtype, rounding),
            }
            for name in names
        ],
        "bars": [f"buf_{name}_bar" if name in trainable else f"buf_{name}" for name in names],
        "lams": [f"buf_{name}_lam" if name in trainable else "NULL" for name in names],
        "param_sizes": [int(np.prod(shapes[name])) for name in names],
        # Every carried state (h and c of each layer) starts each pass at zero.
        "carried": [
            {"name": name, "elements": int(np.prod(buf.shape))}
            for name, buf in workload.buffers.items()
            if buf.role == "carried_state"
        ],
        "learner": learner,
        "state_version": state_version(net),
        "net_words": network_words(net),
        "logits_elements": run.batch_size * net.num_classes,
        # The logits inference returns: the exact schedule's (B, C) buffer, the paper
        # schedule's last step slot.
        "logits_offset": _last_logits_offset(workload),
        "samples_text": c_array(np.transpose(x, (1, 0, 2)), run.dtype, rounding),
        "labels": [str(int(v)) for v in labels],
        "params_source": params_source,
        "samples_source": samples_source,
    }
    # model.c wants the parameter buffers themselves under "params"; data.c the arrays.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_template_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    files = {}
    for name, template in RENDERED_FILES.items():
        local = dict(context)
        if name == "model.c":
            local["params"] = [f"buf_{p}" for p in names]
        files[name] = env.get_template(template).render(**local)
    # One linker script per bare-metal board, with this export's sizes in its checks.
    for board in BOARDS.values():
        ld = linker_context(board, net, run, plan.total_bytes, description)
        files[board.linker_script] = env.get_template("board.ld.j2").render(**ld)
    for name in STATIC_FILES:
        files[name] = (_template_dir() / name).read_text()
    files["edgefptt.h"] = _header(net, names)
    if not learner:
        files["learner.c"] = NO_LEARNER_C
    return Rendered(files, count_calls(train), count_calls(infer))


def write(out_dir: Path, rendered: Rendered, golden: dict[str, Any]) -> list[str]:
    """Write the files and golden.json into ``out_dir`` (created); returns the file names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.files.items():
        (out_dir / name).write_text(text)
    (out_dir / "golden.json").write_text(json.dumps(golden, indent=2) + "\n")
    # Binaries built for another export.
    stale = ["train_host", "train_riscv", "train_sanitize", "learn_host", "learn_riscv"]
    stale += [board.elf(program) for board in BOARDS.values() for program in ("train", "learn")]
    for name in stale:
        target = out_dir / name
        if target.is_file():
            target.unlink()
    return sorted([*rendered.files, "golden.json"])


__all__ = ["GROUP_ENUM", "Rendered", "c_array", "render", "render_program", "storage", "write"]
