"""The `checkpoint` schedule: exact BPTT over the whole sequence with checkpointed segments.

The T steps are cut into S segments (``edgefptt.train.partition.partition_bounds``: longer
first, L = ceil(T/S) the longest). The forward pass runs every step but keeps, of each
segment, only the (h, c) it starts from; the backward pass walks the segments from the last
to the first, recomputes each one's forward from its stored (h, c) (the last segment's is
still in the workspace) and back-propagates through it. The gradient is the exact BPTT
gradient of the whole sequence (one loss at the last step); one plain SGD step per pass
(K = 1), so there is no FPTT state (W_bar, lam).

Buffers (one partition, the whole pass):
    ckpt_h, ckpt_c (S, B, H)  slot s: the (h, c) segment s starts from (slot 0 the carried state)
    xh (L+1, B, I+H)          the segment's [x_t, h_{t-1}]; slot L holds h of its last step
    c (L+1, B, H)             slot 0 the segment's starting c, slot t+1 the state after step t
    act (L, B, 4H)            gate pre-activations, then (in place) i, f, g, o
    tanh_c (L, B, H)          tanh(c) of each step
    dpre (L, B, 4H)           gate pre-activation gradients of the segment (one dW matmul)

Kernels are those of the exact schedule: per step a MatMul-2 gate matmul and a fused
``lstm_cell_forward``; the readout and ``softmax_xent`` at the last step; per step a fused
``lstm_cell_backward`` and a MatMul-1 for dh; per segment one stacked MatMul-3 for dW and one
Mat2Vec for db. The SGD step reuses ``bias_grad`` (db += scale * rows of V) with one row of V:
``W[r] += (-lr) * W_grad[r]`` row by row, then ``zero`` clears the gradients for the next pass.
The recomputation belongs to the backward phase.
"""

from __future__ import annotations

from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.train.partition import partition_bounds
from edgefptt.workload.builder import PARAMS, Builder
from edgefptt.workload.kernels import Workload


def segment_bounds(run: RunSpec) -> list[tuple[int, int]]:
    """The (start, stop) steps of the S segments (the host's partition rule)."""
    return partition_bounds(run.seq_len, run.num_segments)


def build_checkpoint(net: NetworkSpec, run: RunSpec) -> Workload:
    """The checkpointed-BPTT pass; its gradient equals autograd's over the whole sequence."""
    bld = Builder(net, run, "checkpoint")
    i_sz, h_sz, c_sz, b_sz = net.input_size, net.hidden_size, net.num_classes, run.batch_size
    segments = segment_bounds(run)
    n_seg, lmax = len(segments), run.max_segment_len
    hcols = (i_sz, i_sz + h_sz)
    for name, shape in net.param_shapes().items():
        bld.buffer(name, shape, "parameter", "persistent")
        bld.buffer(f"{name}_grad", shape, "gradient", "persistent")
    bld.buffer("h_carry", (b_sz, h_sz), "carried_state", "persistent")
    bld.buffer("c_carry", (b_sz, h_sz), "carried_state", "persistent")
    bld.buffer("x", (run.seq_len, b_sz, i_sz), "external", "persistent")
    bld.buffer("labels", (b_sz,), "external", "persistent", dtype="int32")
    bld.buffer("loss", (1,), "scratch")
    bld.buffer("ckpt_h", (n_seg, b_sz, h_sz), "activation")
    bld.buffer("ckpt_c", (n_seg, b_sz, h_sz), "activation")
    bld.buffer("xh", (lmax + 1, b_sz, i_sz + h_sz), "activation")
    bld.buffer("c", (lmax + 1, b_sz, h_sz), "activation")
    bld.buffer("act", (lmax, b_sz, 4 * h_sz), "activation")
    bld.buffer("tanh_c", (lmax, b_sz, h_sz), "activation")
    bld.buffer("dpre", (lmax, b_sz, 4 * h_sz), "scratch")
    for name, shape in (("logits", (b_sz, c_sz)), ("dy", (b_sz, c_sz))):
        bld.buffer(name, shape, "scratch")
    for name in ("dh", "dc"):
        bld.buffer(name, (b_sz, h_sz), "scratch")
    v = bld.view

    def segment_forward(s: int, keep_tanh: bool) -> None:
        """Load segment s's inputs and starting state and run its steps."""
        start, stop = segments[s]
        length = stop - start
        bld.copy(v("x", (start, stop)), v("xh", (0, length), cols=(0, i_sz)))
        bld.copy(v("ckpt_h", s), v("xh", 0, cols=hcols))
        bld.copy(v("ckpt_c", s), v("c", 0))
        for t in range(length):
            bld.matmul(
                "MatMul-2",
                v("xh", t),
                v("W"),
                v("act", t),
                bias=v("b"),
                repeating=True,
                transpose_b=True,
                step=start + t,
            )
            writes = [v("act", t), v("c", t + 1), v("xh", t + 1, cols=hcols)]
            if keep_tanh:
                writes.append(v("tanh_c", t))
            bld.add(
                "lstm_cell_forward",
                "elementwise",
                "EWO-combo",
                [v("act", t), v("c", t)],
                writes,
                step=start + t,
            )

    # ------------------------------------------------------------------ forward
    bld.partition, bld.phase = 0, "forward"
    bld.copy(v("h_carry"), v("ckpt_h", 0))
    bld.copy(v("c_carry"), v("ckpt_c", 0))
    for s in range(n_seg):
        last = s == n_seg - 1
        segment_forward(s, keep_tanh=last)  # earlier segments are recomputed in backward
        length = segments[s][1] - segments[s][0]
        if not last:
            bld.copy(v("xh", length, cols=hcols), v("ckpt_h", s + 1))
            bld.copy(v("c", length), v("ckpt_c", s + 1))
    last_len = segments[-1][1] - segments[-1][0]
    h_last = v("xh", last_len, cols=hcols)
    bld.copy(h_last, v("h_carry"))
    bld.copy(v("c", last_len), v("c_carry"))
    bld.matmul(
        "MatMul-2", h_last, v("W_y"), v("logits"), bias=v("b_y"), repeating=True, transpose_b=True
    )

    # ------------------------------------------------------------------ backward
    bld.phase = "backward"
    bld.add(
        "softmax_xent", "elementwise", "softmax", [v("logits"), v("labels")], [v("dy"), v("loss")]
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
    for s in reversed(range(n_seg)):
        start, stop = segments[s]
        length = stop - start
        if s < n_seg - 1:  # the last segment's forward is still in the workspace
            segment_forward(s, keep_tanh=True)
        for t in reversed(range(length)):
            bld.add(
                "lstm_cell_backward",
                "elementwise",
                "EWO-combo",
                [v("dh"), v("dc"), v("act", t), v("c", t), v("tanh_c", t)],
                [v("dpre", t), v("dc")],
                step=start + t,
                tanh_stored=1,
            )
            if start + t > 0:  # dh of the step before, across segment boundaries too
                bld.matmul("MatMul-1", v("dpre", t), v("W", cols=hcols), v("dh"), step=start + t)
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

    # ------------------------------------------------------------------ update: plain SGD
    bld.phase = "update"
    lr = -run.learning_rate
    for name in PARAMS:
        shape = net.param_shapes()[name]
        rows = [None] if len(shape) == 1 else list(range(shape[0]))
        for r in rows:
            grad, param = v(f"{name}_grad", r), v(name, r)
            bld.add("bias_grad", "update", "EWO-SGD(FPTT)", [grad, param], [param], scale=lr)
    for name in PARAMS:
        bld.add("zero", "copy", "dataMovement", [], [v(f"{name}_grad")])
    return bld.workload
