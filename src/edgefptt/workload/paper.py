"""The `paper` schedule: the seed paper's C training pass, kernel for kernel.

Buffers follow the paper's static layout (one slot per step plus slot 0 for the carried state):
xc = [x, h_prev], pre (the four gate pre-activations), i, f, g, o, c, tanh_c, h, logits and
probs, each (L+1) x B x width; and the gradient scratch dy (C) plus ten H-wide rows: dh, dc, do,
di, df, dg and the four gate-input gradients dgates = [di_in, df_in, dg_in, do_in].

Backward keeps the paper's truncation: the cell-state gradient of step hs is rebuilt from dh at
every step and propagated to step hs-1 only, so gradients are exact for partitions of at most two
steps and approximate beyond. Unlike the paper's Gemmini path, weight gradients accumulate.
"""

from __future__ import annotations

from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.errors import ConfigError
from edgefptt.workload.builder import Builder
from edgefptt.workload.kernels import Workload

GATES = ("i", "f", "g", "o")


def build_paper(net: NetworkSpec, run: RunSpec) -> Workload:
    """The seed paper's pass; K must divide T (as in its C code)."""
    if run.seq_len % run.partitions:
        raise ConfigError(
            f"the paper schedule needs K to divide T (K={run.partitions}, T={run.seq_len})"
        )
    bld = Builder(net, run, "paper")
    i_sz, h_sz, c_sz, b_sz = net.input_size, net.hidden_size, net.num_classes, run.batch_size
    length = run.seq_len // run.partitions
    slots = length + 1
    hcols = (i_sz, i_sz + h_sz)
    bld.common_buffers()
    bld.buffer("xc", (slots, b_sz, i_sz + h_sz), "activation")
    bld.buffer("pre", (slots, b_sz, 4 * h_sz), "activation")
    for name in ("i", "f", "g", "o", "c", "tanh_c", "h"):
        bld.buffer(name, (slots, b_sz, h_sz), "activation")
    for name in ("logits", "probs"):
        bld.buffer(name, (slots, b_sz, c_sz), "activation")
    bld.buffer("dy", (b_sz, c_sz), "scratch")
    for name in ("dh", "dc", "do", "di", "df", "dg"):
        bld.buffer(name, (b_sz, h_sz), "scratch")
    bld.buffer("dgates", (b_sz, 4 * h_sz), "scratch")

    v = bld.view
    scale = 1.0 / b_sz

    def block(j: int) -> tuple[int, int]:
        return (j * h_sz, (j + 1) * h_sz)

    def weight_grad(j: int, t: int) -> None:
        """MatMul-3 and Mat2Vec for gate j at step t: dW_j += d_in^T xc(t) / B; db_j += mean."""
        bld.matmul(
            "MatMul-3",
            v("dgates", cols=block(j)),
            v("xc", t),
            v("W_grad", rows=block(j)),
            transpose_a=True,
            a_scale=scale,
            accumulate=True,
            step=t,
        )
        db = v("b_grad", cols=block(j))
        bld.add(
            "bias_grad",
            "reduction",
            "Mat2Vec",
            [v("dgates", cols=block(j)), db],
            [db],
            step=t,
            scale=scale,
        )

    for p, (start, stop) in enumerate(bld.workload.bounds):
        bld.partition, bld.phase = p, "forward"
        bld.copy(v("x", (start, stop)), v("xc", (1, slots), cols=(0, i_sz)))
        bld.copy(v("h_carry"), v("h", 0))
        bld.copy(v("c_carry"), v("c", 0))
        for t in range(1, slots):
            bld.copy(v("h", t - 1), v("xc", t, cols=hcols), step=t)
            for j in range(4):
                bld.matmul(
                    "MatMul-2",
                    v("xc", t),
                    v("W", rows=block(j)),
                    v("pre", t, cols=block(j)),
                    bias=v("b", cols=block(j)),
                    repeating=True,
                    transpose_b=True,
                    step=t,
                )
            for j, gate in enumerate(GATES):
                op, group = ("tanh", "tanh") if gate == "g" else ("sigmoid", "Sigmoid")
                bld.add(
                    op, "elementwise", group, [v("pre", t, cols=block(j))], [v(gate, t)], step=t
                )
            bld.add(
                "cell_state",
                "elementwise",
                "EWO-basic",
                [v("f", t), v("c", t - 1), v("i", t), v("g", t)],
                [v("c", t)],
                step=t,
            )
            bld.add("tanh", "elementwise", "tanh", [v("c", t)], [v("tanh_c", t)], step=t)
            bld.add(
                "mul", "elementwise", "EWO-basic", [v("o", t), v("tanh_c", t)], [v("h", t)], step=t
            )
            bld.matmul(
                "MatMul-2",
                v("h", t),
                v("W_y"),
                v("logits", t),
                bias=v("b_y"),
                repeating=True,
                transpose_b=True,
                step=t,
            )
            bld.add("softmax", "elementwise", "softmax", [v("logits", t)], [v("probs", t)], step=t)
        bld.copy(v("h", length), v("h_carry"))
        bld.copy(v("c", length), v("c_carry"))

        bld.phase = "backward"
        bld.add(
            "xent_grad",
            "elementwise",
            "EWO-basic",
            [v("probs", length), v("labels")],
            [v("dy"), v("loss")],
        )
        bld.matmul(
            "MatMul-3",
            v("dy"),
            v("h", length),
            v("W_y_grad"),
            transpose_a=True,
            a_scale=scale,
            accumulate=True,
        )
        bld.add(
            "bias_grad",
            "reduction",
            "Mat2Vec",
            [v("dy"), v("b_y_grad")],
            [v("b_y_grad")],
            scale=scale,
        )
        bld.matmul("MatMul-1", v("dy"), v("W_y"), v("dh"))
        for hs in range(length, 0, -1):
            bld.add(
                "lstm_grad_output",
                "elementwise",
                "EWO-combo",
                [v("dh"), v("o", hs), v("tanh_c", hs)],
                [v("dc"), v("do"), v("dgates", cols=block(3))],
                step=hs,
            )
            weight_grad(3, hs)
            for ss in range(hs, max(1, hs - 1) - 1, -1):
                bld.add(
                    "lstm_grad_gates",
                    "elementwise",
                    "EWO-combo",
                    [v("dc"), v("i", ss), v("f", ss), v("g", ss), v("c", ss - 1)],
                    [v("di"), v("df"), v("dg"), v("dgates", cols=(0, 3 * h_sz))],
                    step=ss,
                )
                for j in range(3):
                    weight_grad(j, ss)
                bld.add(
                    "mul", "elementwise", "EWO-basic", [v("dc"), v("f", ss)], [v("dc")], step=ss
                )
                if ss == hs:
                    bld.matmul("MatMul-1", v("dgates"), v("W", cols=hcols), v("dh"), step=hs)
        bld.update()
    return bld.workload
