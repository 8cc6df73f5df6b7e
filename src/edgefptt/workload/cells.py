"""One description per cell type: the kernels of a layer's forward, input-gradient and
weight-gradient parts, in the edge parameter layout (docs/workload.md).

A :class:`LayerPlan` says what one layer of the network does in the pass: whether it runs a
backward (it is trainable, or a trainable layer lies below it), whether it takes weight
gradients (trainable) and whether it passes a gradient to the layer below. A cell type
(:data:`CELLS`) appends, for one layer, the gate matmul(s) and fused cell kernel of a step,
their recomputation, the fused cell backward, the gradient with respect to h_{t-1}
(MatMul-1), the one with respect to the layer's input (MatMul-1, for the layer below) and the
weight gradients (MatMul-3 and Mat2Vec) over one step or a stacked range of steps.

Both cells keep a gate block of width 4H per step (``act`` / ``gates``) and a pre-activation
gradient of width 4H (``dpre``): LSTM i, f, g, o; GRU r, z, n and hn = W_hn h + b_hn, the
hidden part of the n gate (torch's reset-inside form needs it apart). For the GRU, dpre
holds dr, dz (gradients of the r and z pre-activations over [x, h]), dn (of W_in x + b_in)
and dhn (of W_hn h + b_hn).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgefptt.config import NetworkSpec, layer_suffix
from edgefptt.workload.builder import Builder
from edgefptt.workload.kernels import View


@dataclass(frozen=True)
class LayerPlan:
    """One recurrent layer's part in the pass."""

    index: int
    cell: str
    inputs: int
    hidden: int
    trainable: bool
    backward: bool  # runs a backward pass (trainable, or a trainable layer lies below)
    grad_below: bool  # passes the gradient of its input to the layer below

    def n(self, base: str) -> str:
        """The layer's name of a buffer or parameter (``W`` -> ``W_l1`` for layer 1)."""
        return f"{base}{layer_suffix(self.index)}"

    def grad(self, base: str) -> str:
        """The gradient buffer of the layer's parameter ``base`` (``W_l1_grad``)."""
        return f"{self.n(base)}_grad"

    @property
    def hcols(self) -> tuple[int, int]:
        return (self.inputs, self.inputs + self.hidden)

    @property
    def has_c(self) -> bool:
        return self.cell == "lstm"


def layer_plans(net: NetworkSpec) -> list[LayerPlan]:
    """The plan of every layer, input first."""
    stack = net.stack
    plans = []
    for index, spec in enumerate(stack):
        below = any(layer.trainable for layer in stack[:index])
        plans.append(
            LayerPlan(
                index=index,
                cell=spec.cell,
                inputs=net.layer_input_size(index),
                hidden=spec.hidden_size,
                trainable=spec.trainable,
                backward=spec.trainable or below,
                grad_below=below,
            )
        )
    return plans


class LSTMCell:
    """LSTM: one MatMul-2 over [x_t, h_{t-1}] per step, gates i, f, g, o."""

    name = "lstm"

    @staticmethod
    def gate_matmuls(bld: Builder, lay: LayerPlan, xh: View, gates: View, step: int) -> None:
        v = bld.view
        bld.matmul(
            "MatMul-2",
            xh,
            v(lay.n("W")),
            gates,
            bias=v(lay.n("b")),
            repeating=True,
            transpose_b=True,
            step=step,
        )

    @staticmethod
    def cell_forward(
        bld: Builder,
        lay: LayerPlan,
        gates: View,
        h_prev: View,
        h_out: View,
        c_prev: View | None,
        c_out: View | None,
        tanh_c: View | None,
        step: int,
    ) -> None:
        assert c_prev is not None and c_out is not None
        writes = [gates, c_out, h_out] + ([tanh_c] if tanh_c is not None else [])
        bld.add("lstm_cell_forward", "elementwise", "EWO-combo", [gates, c_prev], writes, step=step)

    @staticmethod
    def gate_activations(bld: Builder, lay: LayerPlan, gates: View, step: int) -> None:
        bld.add("lstm_gates", "elementwise", "Sigmoid", [gates], [gates], step=step)

    @staticmethod
    def cell_backward(
        bld: Builder,
        lay: LayerPlan,
        gates: View,
        h_prev: View,
        c_prev: View | None,
        tanh_src: View | None,
        tanh_stored: bool,
        dpre: View,
        step: int,
    ) -> None:
        v = bld.view
        assert c_prev is not None and tanh_src is not None
        bld.add(
            "lstm_cell_backward",
            "elementwise",
            "EWO-combo",
            [v(lay.n("dh")), v(lay.n("dc")), gates, c_prev, tanh_src],
            [dpre, v(lay.n("dc"))],
            step=step,
            tanh_stored=int(tanh_stored),
        )

    @staticmethod
    def hidden_grad(bld: Builder, lay: LayerPlan, dpre: View, step: int) -> None:
        """dh_{t-1} = dpre @ W_h (overwrites dh)."""
        v = bld.view
        bld.matmul("MatMul-1", dpre, v(lay.n("W"), cols=lay.hcols), v(lay.n("dh")), step=step)

    @staticmethod
    def input_grad(
        bld: Builder, lay: LayerPlan, dpre: View, dx: View, step: int | None = None
    ) -> None:
        """dx = dpre @ W_x: the gradient of the layer's input, for the layer below."""
        v = bld.view
        bld.matmul("MatMul-1", dpre, v(lay.n("W"), cols=(0, lay.inputs)), dx, step=step)

    @staticmethod
    def weight_grad(
        bld: Builder,
        lay: LayerPlan,
        dpre: View,
        xh: View,
        scale: float,
        step: int | None = None,
    ) -> None:
        v = bld.view
        bld.matmul(
            "MatMul-3",
            dpre,
            xh,
            v(lay.grad("W")),
            transpose_a=True,
            a_scale=scale,
            accumulate=True,
            step=step,
        )
        bld.add(
            "bias_grad",
            "reduction",
            "Mat2Vec",
            [dpre, v(lay.grad("b"))],
            [v(lay.grad("b"))],
            step=step,
            scale=scale,
        )


def _with_cols(view: View, cols: tuple[int, int]) -> View:
    """``view`` restricted to columns ``cols`` (relative to the view's own columns)."""
    start = view.cols[0] if view.cols is not None else 0
    shape = (*view.shape[:-1], cols[1] - cols[0])
    return View(view.buffer, shape, view.index, view.rows, (start + cols[0], start + cols[1]))


class GRUCell:
    """GRU with torch's equations and gate order r, z, n:

    r = sigma(W_r [x, h] + b_r), z = sigma(W_z [x, h] + b_z),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = n + z * (h - n)   (= (1-z) n + z h).

    Three MatMul-2 per step: [x, h] against the r and z rows of W (with b_r, b_z), x against the
    n rows' input columns (with b_in), h against their hidden columns (with b_hn).
    """

    name = "gru"

    @staticmethod
    def gate_matmuls(bld: Builder, lay: LayerPlan, xh: View, gates: View, step: int) -> None:
        v = bld.view
        h, i = lay.hidden, lay.inputs
        w, b = lay.n("W"), lay.n("b")
        bld.matmul(
            "MatMul-2",
            xh,
            v(w, rows=(0, 2 * h)),
            _with_cols(gates, (0, 2 * h)),
            bias=v(b, cols=(0, 2 * h)),
            repeating=True,
            transpose_b=True,
            step=step,
        )
        bld.matmul(
            "MatMul-2",
            _with_cols(xh, (0, i)),
            v(w, rows=(2 * h, 3 * h), cols=(0, i)),
            _with_cols(gates, (2 * h, 3 * h)),
            bias=v(b, cols=(2 * h, 3 * h)),
            repeating=True,
            transpose_b=True,
            step=step,
        )
        bld.matmul(
            "MatMul-2",
            _with_cols(xh, lay.hcols),
            v(w, rows=(2 * h, 3 * h), cols=lay.hcols),
            _with_cols(gates, (3 * h, 4 * h)),
            bias=v(lay.n("b_hn")),
            repeating=True,
            transpose_b=True,
            step=step,
        )

    @staticmethod
    def cell_forward(
        bld: Builder,
        lay: LayerPlan,
        gates: View,
        h_prev: View,
        h_out: View,
        c_prev: View | None,
        c_out: View | None,
        tanh_c: View | None,
        step: int,
    ) -> None:
        bld.add(
            "gru_cell_forward",
            "elementwise",
            "EWO-combo",
            [gates, h_prev],
            [gates, h_out],
            step=step,
        )

    @staticmethod
    def gate_activations(bld: Builder, lay: LayerPlan, gates: View, step: int) -> None:
        bld.add("gru_gates", "elementwise", "Sigmoid", [gates], [gates], step=step)

    @staticmethod
    def cell_backward(
        bld: Builder,
        lay: LayerPlan,
        gates: View,
        h_prev: View,
        c_prev: View | None,
        tanh_src: View | None,
        tanh_stored: bool,
        dpre: View,
        step: int,
    ) -> None:
        v = bld.view
        dh = v(lay.n("dh"))
        bld.add(
            "gru_cell_backward",
            "elementwise",
            "EWO-combo",
            [dh, gates, h_prev],
            [dpre, dh],
            step=step,
        )

    @staticmethod
    def hidden_grad(bld: Builder, lay: LayerPlan, dpre: View, step: int) -> None:
        """dh_{t-1} = dh z (the cell's write) + [dr, dz] @ W_{r,z;h} + dhn @ W_hn."""
        v = bld.view
        h = lay.hidden
        dh = v(lay.n("dh"))
        w = lay.n("W")
        for cols, rows in (((0, 2 * h), (0, 2 * h)), ((3 * h, 4 * h), (2 * h, 3 * h))):
            bld.matmul(
                "MatMul-1",
                _with_cols(dpre, cols),
                v(w, rows=rows, cols=lay.hcols),
                dh,
                accumulate=True,
                step=step,
            )

    @staticmethod
    def input_grad(
        bld: Builder, lay: LayerPlan, dpre: View, dx: View, step: int | None = None
    ) -> None:
        """dx = [dr, dz, dn] @ W_x."""
        v = bld.view
        h = lay.hidden
        bld.matmul(
            "MatMul-1",
            _with_cols(dpre, (0, 3 * h)),
            v(lay.n("W"), cols=(0, lay.inputs)),
            dx,
            step=step,
        )

    @staticmethod
    def weight_grad(
        bld: Builder,
        lay: LayerPlan,
        dpre: View,
        xh: View,
        scale: float,
        step: int | None = None,
    ) -> None:
        v = bld.view
        h, i = lay.hidden, lay.inputs
        w_grad = lay.grad("W")
        parts = (
            ((0, 2 * h), xh, v(w_grad, rows=(0, 2 * h))),
            ((2 * h, 3 * h), _with_cols(xh, (0, i)), v(w_grad, rows=(2 * h, 3 * h), cols=(0, i))),
            (
                (3 * h, 4 * h),
                _with_cols(xh, lay.hcols),
                v(w_grad, rows=(2 * h, 3 * h), cols=lay.hcols),
            ),
        )
        for cols, b_view, out in parts:
            bld.matmul(
                "MatMul-3",
                _with_cols(dpre, cols),
                b_view,
                out,
                transpose_a=True,
                a_scale=scale,
                accumulate=True,
                step=step,
            )
        for cols, name in (((0, 3 * h), lay.grad("b")), ((3 * h, 4 * h), lay.grad("b_hn"))):
            bld.add(
                "bias_grad",
                "reduction",
                "Mat2Vec",
                [_with_cols(dpre, cols), v(name)],
                [v(name)],
                step=step,
                scale=scale,
            )


CELLS: dict[str, type[LSTMCell] | type[GRUCell]] = {"lstm": LSTMCell, "gru": GRUCell}
