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

Networks of several layers (``NetworkSpec.layers``) run layer by layer: each layer l has these
buffers under its own suffix (``xh_l1``, ...), its x columns filled with the h of the layer below
(one copy per partition), and its kernels come from its cell's description
(:mod:`edgefptt.workload.cells`; a GRU layer keeps no c). Backward goes from the top layer down;
a layer below the top gets the gradient of its output from the layer above through ``dx``
(L, B, H), added to dh step by step. A frozen layer takes no weight gradient and has no
gradient or FPTT state; it runs its backward only when a trainable layer lies below it. The
frozen layers with no trainable layer below (a bottom run of them) run forward only,
step-interleaved on one step of scratch (``fxh`` [x_t, h], ``fgates``; an LSTM's c stays in
``c_carry``): they store nothing for backward beyond the inputs of the layer above.
"""

from __future__ import annotations

from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.workload.builder import Builder
from edgefptt.workload.cells import CELLS, LayerPlan, layer_plans
from edgefptt.workload.kernels import View, Workload


def build_exact(net: NetworkSpec, run: RunSpec, recompute: bool = False) -> Workload:
    """The exact-gradient pass; gradients equal autograd's on the same partition."""
    bld = Builder(net, run, "exact", recompute)
    c_sz, b_sz = net.num_classes, run.batch_size
    lmax = run.max_partition_len
    plans = layer_plans(net)
    live = [lay for lay in plans if lay.backward]
    dead = [lay for lay in plans if not lay.backward]  # a bottom run: forward only
    bld.common_buffers()
    for lay in dead:
        bld.buffer(lay.n("fxh"), (b_sz, lay.inputs + lay.hidden), "scratch")
        bld.buffer(lay.n("fgates"), (b_sz, 4 * lay.hidden), "scratch")
    for lay in live:
        h_sz = lay.hidden
        bld.buffer(lay.n("xh"), (lmax + 1, b_sz, lay.inputs + h_sz), "activation")
        if lay.has_c:
            bld.buffer(lay.n("c"), (lmax + 1, b_sz, h_sz), "activation")
        if recompute:
            bld.buffer(lay.n("gates"), (b_sz, 4 * h_sz), "scratch")
            bld.buffer(lay.n("dpre"), (b_sz, 4 * h_sz), "scratch")
        else:
            bld.buffer(lay.n("act"), (lmax, b_sz, 4 * h_sz), "activation")
            if lay.has_c:
                bld.buffer(lay.n("tanh_c"), (lmax, b_sz, h_sz), "activation")
            bld.buffer(lay.n("dpre"), (lmax, b_sz, 4 * h_sz), "scratch")
    for name, shape in (("logits", (b_sz, c_sz)), ("dy", (b_sz, c_sz))):
        bld.buffer(name, shape, "scratch")
    for lay in live:
        bld.buffer(lay.n("dh"), (b_sz, lay.hidden), "scratch")
        if lay.has_c:
            bld.buffer(lay.n("dc"), (b_sz, lay.hidden), "scratch")
        if lay.grad_below:  # the gradient of this layer's input, for the layer below
            below = plans[lay.index - 1]
            bld.buffer(below.n("dx"), (lmax, b_sz, below.hidden), "scratch")

    v = bld.view
    for p, (start, stop) in enumerate(bld.workload.bounds):
        length = stop - start
        bld.partition, bld.phase = p, "forward"
        _forward_frozen(bld, dead, live, start, length)
        for lay in live:
            _forward_layer(bld, lay, plans, start, length, recompute)
        top = plans[-1]
        h_last = (
            v(top.n("xh"), length, cols=top.hcols)
            if top.backward
            else v(top.n("fxh"), cols=top.hcols)
        )
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
        if net.readout_trainable:
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
        if live:
            bld.matmul("MatMul-1", v("dy"), v("W_y"), v(top.n("dh")))
        for lay in reversed(live):
            _backward_layer(bld, lay, plans, length, recompute, is_top=lay is top)
        bld.update()
    return bld.workload


def _forward_frozen(
    bld: Builder, dead: list[LayerPlan], live: list[LayerPlan], start: int, length: int
) -> None:
    """The bottom frozen layers, step by step on one step of scratch; each step's top output
    goes to the x columns of the first layer that runs a backward."""
    if not dead:
        return
    v = bld.view
    for lay in dead:
        bld.copy(v(lay.n("h_carry")), v(lay.n("fxh"), cols=lay.hcols))
    for t in range(length):
        for lay in dead:
            fxh = v(lay.n("fxh"))
            if lay.index == 0:
                src = v("x", start + t)
            else:
                below = dead[lay.index - 1]
                src = v(below.n("fxh"), cols=below.hcols)
            bld.copy(src, v(lay.n("fxh"), cols=(0, lay.inputs)), step=t)
            cell = CELLS[lay.cell]
            gates = v(lay.n("fgates"))
            cell.gate_matmuls(bld, lay, fxh, gates, t)
            c = v(lay.n("c_carry")) if lay.has_c else None
            h = v(lay.n("fxh"), cols=lay.hcols)
            cell.cell_forward(bld, lay, gates, h, h, c, c, None, t)
        if live:
            top = dead[-1]
            first = live[0]
            bld.copy(
                v(top.n("fxh"), cols=top.hcols),
                v(first.n("xh"), t, cols=(0, first.inputs)),
                step=t,
            )
    for lay in dead:
        bld.copy(v(lay.n("fxh"), cols=lay.hcols), v(lay.n("h_carry")))


def _forward_layer(
    bld: Builder,
    lay: LayerPlan,
    plans: list[LayerPlan],
    start: int,
    length: int,
    recompute: bool,
) -> None:
    """A layer that keeps its steps for backward: [x_t, h_{t-1}] and c per step (and the
    gates and tanh(c) unless they are recomputed)."""
    v = bld.view
    cell = CELLS[lay.cell]
    xh = lay.n("xh")
    hcols = lay.hcols
    if lay.index == 0:
        bld.copy(v("x", (start, start + length)), v(xh, (0, length), cols=(0, lay.inputs)))
    elif plans[lay.index - 1].backward:
        below = plans[lay.index - 1]
        bld.copy(
            v(below.n("xh"), (1, length + 1), cols=below.hcols),
            v(xh, (0, length), cols=(0, lay.inputs)),
        )
    bld.copy(v(lay.n("h_carry")), v(xh, 0, cols=hcols))
    if lay.has_c:
        bld.copy(v(lay.n("c_carry")), v(lay.n("c"), 0))
    for t in range(length):
        gates = v(lay.n("gates")) if recompute else v(lay.n("act"), t)
        cell.gate_matmuls(bld, lay, v(xh, t), gates, t)
        c_prev = v(lay.n("c"), t) if lay.has_c else None
        c_out = v(lay.n("c"), t + 1) if lay.has_c else None
        tanh_c = v(lay.n("tanh_c"), t) if lay.has_c and not recompute else None
        cell.cell_forward(
            bld, lay, gates, v(xh, t, cols=hcols), v(xh, t + 1, cols=hcols), c_prev, c_out,
            tanh_c, t,
        )  # fmt: skip
    bld.copy(v(xh, length, cols=hcols), v(lay.n("h_carry")))
    if lay.has_c:
        bld.copy(v(lay.n("c"), length), v(lay.n("c_carry")))


def _backward_layer(
    bld: Builder,
    lay: LayerPlan,
    plans: list[LayerPlan],
    length: int,
    recompute: bool,
    is_top: bool,
) -> None:
    """Back through one layer's steps (dh arrives from the readout or the layer above)."""
    v = bld.view
    cell = CELLS[lay.cell]
    b_sz = bld.run.batch_size
    xh = lay.n("xh")
    dh = v(lay.n("dh"))
    below = plans[lay.index - 1] if lay.grad_below else None
    if lay.has_c:
        bld.add("zero", "copy", "dataMovement", [], [v(lay.n("dc"))])

    def dpre(t: int) -> View:
        return v(lay.n("dpre")) if recompute else v(lay.n("dpre"), t)

    for t in reversed(range(length)):
        if not is_top:  # the gradient of this step's output from the layer above
            dx = v(lay.n("dx"), t)
            if t == length - 1:
                bld.copy(dx, dh, step=t)
            else:
                bld.add("add", "elementwise", "EWO-basic", [dh, dx], [dh], step=t)
        if recompute:
            gates = v(lay.n("gates"))
            if t < length - 1:  # the last step's gates are still in the scratch
                cell.gate_matmuls(bld, lay, v(xh, t), gates, t)
                cell.gate_activations(bld, lay, gates, t)
            tanh_src = v(lay.n("c"), t + 1) if lay.has_c else None
        else:
            gates = v(lay.n("act"), t)
            tanh_src = v(lay.n("tanh_c"), t) if lay.has_c else None
        c_prev = v(lay.n("c"), t) if lay.has_c else None
        cell.cell_backward(
            bld, lay, gates, v(xh, t, cols=lay.hcols), c_prev, tanh_src, not recompute,
            dpre(t), t,
        )  # fmt: skip
        if recompute:
            if lay.trainable:
                cell.weight_grad(bld, lay, dpre(t), v(xh, t), 1.0 / b_sz, step=t)
            if below is not None:
                cell.input_grad(bld, lay, dpre(t), v(below.n("dx"), t), step=t)
        if t > 0:  # no gradient crosses the partition boundary
            cell.hidden_grad(bld, lay, dpre(t), t)
    if not recompute:
        # One matmul over the stacked B*L rows instead of L small ones.
        rows = (0, length)
        if lay.trainable:
            cell.weight_grad(bld, lay, v(lay.n("dpre"), rows), v(xh, rows), 1.0 / b_sz)
        if below is not None:
            cell.input_grad(bld, lay, v(lay.n("dpre"), rows), v(below.n("dx"), rows))
