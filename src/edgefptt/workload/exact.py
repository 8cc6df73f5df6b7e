"""The `exact` schedule: exact BPTT inside each partition, fused kernels, stacked weight gradient.

Buffers of a partition (L = the longest partition's length):
    xh (L+1, B, I+H)  slot t holds [x_t, h_{t-1}]; slot L holds h of the last step
    c  (L+1, B, H)    slot 0 the carried cell state, slot t+1 the state after step t
    act (L, B, 4H)    gate pre-activations, then (in place) i, f, g, o
    tanh_c (L, B, H)  tanh(c) of each step
    dpre (L, B, 4H)   gate pre-activation gradients, stacked so that dW is one matmul

With ``recompute=True`` only xh and c are kept per step: the backward pass recomputes each step's
gates from [x_t, h_{t-1}] (one more matmul per step) and takes the weight gradient one step at a
time, so act, tanh_c and dpre shrink to one step of scratch.
"""

from __future__ import annotations

from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.workload.builder import Builder
from edgefptt.workload.kernels import Workload


def build_exact(net: NetworkSpec, run: RunSpec, recompute: bool = False) -> Workload:
    """The exact-gradient pass; gradients equal autograd's on the same partition."""
    bld = Builder(net, run, "exact", recompute)
    i_sz, h_sz, c_sz, b_sz = net.input_size, net.hidden_size, net.num_classes, run.batch_size
    lmax = run.max_partition_len
    hcols = (i_sz, i_sz + h_sz)
    bld.common_buffers()
    bld.buffer("xh", (lmax + 1, b_sz, i_sz + h_sz), "activation")
    bld.buffer("c", (lmax + 1, b_sz, h_sz), "activation")
    if recompute:
        bld.buffer("gates", (b_sz, 4 * h_sz), "scratch")
        bld.buffer("dpre", (b_sz, 4 * h_sz), "scratch")
    else:
        bld.buffer("act", (lmax, b_sz, 4 * h_sz), "activation")
        bld.buffer("tanh_c", (lmax, b_sz, h_sz), "activation")
        bld.buffer("dpre", (lmax, b_sz, 4 * h_sz), "scratch")
    for name, shape in (("logits", (b_sz, c_sz)), ("dy", (b_sz, c_sz))):
        bld.buffer(name, shape, "scratch")
    for name in ("dh", "dc"):
        bld.buffer(name, (b_sz, h_sz), "scratch")

    v = bld.view

    def gates(t: int):
        return v("gates") if recompute else v("act", t)

    def dpre(t: int):
        return v("dpre") if recompute else v("dpre", t)

    for p, (start, stop) in enumerate(bld.workload.bounds):
        length = stop - start
        bld.partition, bld.phase = p, "forward"
        bld.copy(v("x", (start, stop)), v("xh", (0, length), cols=(0, i_sz)))
        bld.copy(v("h_carry"), v("xh", 0, cols=hcols))
        bld.copy(v("c_carry"), v("c", 0))
        for t in range(length):
            bld.matmul(
                "MatMul-2",
                v("xh", t),
                v("W"),
                gates(t),
                bias=v("b"),
                repeating=True,
                transpose_b=True,
                step=t,
            )
            writes = [gates(t), v("c", t + 1), v("xh", t + 1, cols=hcols)]
            if not recompute:
                writes.append(v("tanh_c", t))
            bld.add(
                "lstm_cell_forward",
                "elementwise",
                "EWO-combo",
                [gates(t), v("c", t)],
                writes,
                step=t,
            )
        bld.copy(v("xh", length, cols=hcols), v("h_carry"))
        bld.copy(v("c", length), v("c_carry"))
        h_last = v("xh", length, cols=hcols)
        bld.matmul(
            "MatMul-2",
            h_last,
            v("W_y"),
            v("logits"),
            bias=v("b_y"),
            repeating=True,
            transpose_b=True,
        )

        bld.phase = "backward"
        bld.add(
            "softmax_xent",
            "elementwise",
            "softmax",
            [v("logits"), v("labels")],
            [v("dy"), v("loss")],
        )
        bld.matmul(
            "MatMul-3",
            v("dy"),
            h_last,
            v("W_y_grad"),
            transpose_a=True,
            a_scale=1.0 / b_sz,
            accumulate=True,
        )
        bld.add(
            "bias_grad",
            "reduction",
            "Mat2Vec",
            [v("dy"), v("b_y_grad")],
            [v("b_y_grad")],
            scale=1.0 / b_sz,
        )
        bld.matmul("MatMul-1", v("dy"), v("W_y"), v("dh"))
        bld.add("zero", "copy", "dataMovement", [], [v("dc")])
        for t in reversed(range(length)):
            if recompute:
                if t < length - 1:  # the last step's gates are still in the scratch
                    bld.matmul(
                        "MatMul-2",
                        v("xh", t),
                        v("W"),
                        v("gates"),
                        bias=v("b"),
                        repeating=True,
                        transpose_b=True,
                        step=t,
                    )
                    bld.add(
                        "lstm_gates", "elementwise", "Sigmoid", [v("gates")], [v("gates")], step=t
                    )
                tanh_src = v("c", t + 1)
            else:
                tanh_src = v("tanh_c", t)
            bld.add(
                "lstm_cell_backward",
                "elementwise",
                "EWO-combo",
                [v("dh"), v("dc"), gates(t), v("c", t), tanh_src],
                [dpre(t), v("dc")],
                step=t,
                tanh_stored=int(not recompute),
            )
            if recompute:
                bld.matmul(
                    "MatMul-3",
                    v("dpre"),
                    v("xh", t),
                    v("W_grad"),
                    transpose_a=True,
                    a_scale=1.0 / b_sz,
                    accumulate=True,
                    step=t,
                )
                bld.add(
                    "bias_grad",
                    "reduction",
                    "Mat2Vec",
                    [v("dpre"), v("b_grad")],
                    [v("b_grad")],
                    step=t,
                    scale=1.0 / b_sz,
                )
            if t > 0:  # no gradient crosses the partition boundary
                bld.matmul("MatMul-1", dpre(t), v("W", cols=hcols), v("dh"), step=t)
        if not recompute:
            # One matmul over the stacked B*L rows instead of L small ones.
            rows = (0, length)
            bld.matmul(
                "MatMul-3",
                v("dpre", rows),
                v("xh", rows),
                v("W_grad"),
                transpose_a=True,
                a_scale=1.0 / b_sz,
                accumulate=True,
            )
            bld.add(
                "bias_grad",
                "reduction",
                "Mat2Vec",
                [v("dpre", rows), v("b_grad")],
                [v("b_grad")],
                scale=1.0 / b_sz,
            )
        bld.update()
    return bld.workload
