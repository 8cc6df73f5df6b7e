"""Stacked, mixed and partly frozen networks: the golden executor against torch autograd.

The reference is built here from torch's own modules (one nn.LSTM / nn.GRU per layer, so that
cells can mix), with frozen layers and readout marked ``requires_grad=False``: autograd then
gives the gradients of the trainable parameters, and nothing else, through the frozen ones.
"""

import numpy as np
import pytest
import torch

from edgefptt.config import make_specs
from edgefptt.edge import execute
from edgefptt.plan import count_ops, lifetime_plan, live_ranges, plan_memory
from edgefptt.train.partition import partition_bounds
from edgefptt.workload import build_workload

I, C, B, T = 3, 3, 2, 8  # noqa: E741
H = 5


def _specs(k, trainable="all", cells=("lstm", "lstm"), **run):
    net, run_spec = make_specs(
        input_size=I,
        hidden_size=H,
        num_classes=C,
        batch_size=B,
        seq_len=T,
        partitions=k,
        schedule="exact",
        num_layers=len(cells),
        trainable=trainable,
        **run,
    )
    if len(set(cells)) > 1:  # mixed cells: set each layer's cell
        layers = tuple(
            la.model_copy(update={"cell": c}) for la, c in zip(net.stack, cells, strict=True)
        )
        net = net.model_copy(update={"layers": layers})
    elif cells[0] == "gru":
        net, run_spec = make_specs(
            input_size=I,
            hidden_size=H,
            num_classes=C,
            batch_size=B,
            seq_len=T,
            partitions=k,
            schedule="exact",
            num_layers=len(cells),
            cell="gru",
            trainable=trainable,
            **run,
        )
    return net, run_spec


def _params(net, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0, 0.5, shape) for name, shape in net.param_shapes().items()}


def _torch_stack(net, params):
    """Per layer a float64 torch module holding the edge parameters, and the readout."""
    modules = []
    for layer, spec in enumerate(net.stack):
        sfx = f"_l{layer}" if layer else ""
        inputs = net.layer_input_size(layer)
        kind = torch.nn.LSTM if spec.cell == "lstm" else torch.nn.GRU
        m = kind(inputs, spec.hidden_size, batch_first=True).double()
        w = params[f"W{sfx}"]
        with torch.no_grad():
            m.weight_ih_l0.copy_(torch.from_numpy(w[:, :inputs]))
            m.weight_hh_l0.copy_(torch.from_numpy(w[:, inputs:]))
            m.bias_ih_l0.copy_(torch.from_numpy(params[f"b{sfx}"]))
            m.bias_hh_l0.zero_()
            if spec.cell == "gru":  # b_hr = b_hz = 0, b_hn the edge's b_hn
                m.bias_hh_l0[2 * spec.hidden_size :] = torch.from_numpy(params[f"b_hn{sfx}"])
        for p in m.parameters():
            p.requires_grad_(spec.trainable)
        modules.append(m)
    readout = torch.nn.Linear(net.hidden_size, C).double()
    with torch.no_grad():
        readout.weight.copy_(torch.from_numpy(params["W_y"]))
        readout.bias.copy_(torch.from_numpy(params["b_y"]))
    for p in readout.parameters():
        p.requires_grad_(net.readout_trainable)
    return modules, readout


def _edge_grads(net, modules, readout):
    grads = {}
    for layer, (spec, m) in enumerate(zip(net.stack, modules, strict=True)):
        if not spec.trainable:
            continue
        sfx = f"_l{layer}" if layer else ""
        grads[f"W{sfx}"] = torch.cat([m.weight_ih_l0.grad, m.weight_hh_l0.grad], 1).numpy()
        if spec.cell == "lstm":
            grads[f"b{sfx}"] = m.bias_ih_l0.grad.numpy()
        else:
            grads[f"b{sfx}"] = m.bias_ih_l0.grad.numpy()
            grads[f"b_hn{sfx}"] = m.bias_hh_l0.grad[2 * spec.hidden_size :].numpy()
    if net.readout_trainable:
        grads["W_y"] = readout.weight.grad.numpy()
        grads["b_y"] = readout.bias.grad.numpy()
    return {k: v.copy() for k, v in grads.items()}


def autograd_per_partition(net, params, x, y, k):
    """Each partition's loss and gradients at fixed parameters, states carried detached."""
    modules, readout = _torch_stack(net, params)
    states = [None] * len(modules)
    losses, grads = [], []
    for start, stop in partition_bounds(T, k):
        for m in [*modules, readout]:
            for p in m.parameters():
                p.grad = None
        out = torch.from_numpy(x[:, start:stop])
        for j, m in enumerate(modules):
            out, state = m(out, states[j])
            states[j] = (
                tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
            )
        loss = torch.nn.functional.cross_entropy(readout(out[:, -1]), torch.from_numpy(y))
        loss.backward()
        losses.append(loss.item())
        grads.append(_edge_grads(net, modules, readout))
    return losses, grads


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


VARIANTS = {
    "gru": (("gru",), "all"),
    "lstm2": (("lstm", "lstm"), "all"),
    "gru2": (("gru", "gru"), "all"),
    "mixed": (("gru", "lstm"), "all"),
    "mixed_rev": (("lstm", "gru"), "all"),
    "lstm2_top": (("lstm", "lstm"), "top"),
    "gru2_readout": (("gru", "gru"), "readout"),
    "lstm3_bottom": (("lstm", "lstm", "lstm"), "0"),  # frozen layers pass the gradient down
    "gru3_middle": (("gru", "gru", "gru"), "1"),  # a frozen readout, one frozen layer above
    "mixed3_top": (("gru", "lstm", "gru"), "top"),
}


@pytest.mark.parametrize("recompute", [False, True])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gradients_equal_autograd_float64(variant, k, recompute):
    cells, trainable = VARIANTS[variant]
    net, run = _specs(k, trainable, cells, learning_rate=1e-300)
    params = _params(net)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(B, T, I)), rng.integers(0, C, B)
    result = execute(
        build_workload(net, run, recompute), params, x, y, precision="fp64", record_grads=True
    )
    losses, grads = autograd_per_partition(net, params, x, y, k)
    np.testing.assert_allclose(result.losses, losses, rtol=1e-12)
    assert len(result.grads) == k
    for mine, ref in zip(result.grads, grads, strict=True):
        assert set(mine) == set(ref) == set(net.trainable_params())
        for name in ref:
            assert _rel(mine[name], ref[name]) < 1e-10, name


@pytest.mark.parametrize("variant", ["gru2", "mixed3_top", "lstm3_bottom"])
def test_gradients_equal_autograd_float32(variant):
    cells, trainable = VARIANTS[variant]
    net, run = _specs(4, trainable, cells, learning_rate=1e-30)
    params = _params(net, 2)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(B, T, I)), rng.integers(0, C, B)
    result = execute(build_workload(net, run), params, x, y, precision="fp32", record_grads=True)
    _, grads = autograd_per_partition(net, params, x, y, 4)
    for mine, ref in zip(result.grads, grads, strict=True):
        for name in ref:
            assert _rel(mine[name], ref[name]) < 1e-5, name


def test_frozen_parameters_keep_their_values_and_have_no_state():
    net, run = _specs(2, "top", ("gru", "lstm"), learning_rate=0.1)
    params = _params(net)
    rng = np.random.default_rng(0)
    result = execute(
        build_workload(net, run), params, rng.normal(size=(B, T, I)), rng.integers(0, C, B)
    )
    assert set(result.fptt_state) == {"W_l1", "b_l1", "W_y", "b_y"}
    for name in ("W", "b", "b_hn"):  # the frozen GRU layer 0
        np.testing.assert_array_equal(result.params[name], np.float32(params[name]))
    assert np.max(np.abs(result.params["W_l1"] - params["W_l1"])) > 1e-3
    workload = build_workload(net, run)
    assert "W_grad" not in workload.buffers and "W_bar" not in workload.buffers
    # h of both layers crosses partitions, c only for the LSTM layer
    assert set(result.carried) == {"h_carry", "h_carry_l1", "c_carry_l1"}


@pytest.mark.parametrize("cells", [("lstm", "lstm"), ("gru", "gru")])
def test_readout_only_skips_every_recurrent_backward(cells):
    net, run = _specs(2, "readout", cells)
    workload = build_workload(net, run)
    backward_ops = {k.op for k in workload.kernels if k.phase == "backward"}
    assert backward_ops == {"softmax_xent", "matmul", "bias_grad"}
    assert [k.group for k in workload.kernels if k.phase == "backward" and k.matmul] == [
        "MatMul-3"
    ] * 2  # dW_y in each partition, no dh
    # Forward only: no per-step activations at all, just one step of scratch per layer.
    roles = {b.role for b in workload.buffers.values()}
    assert "activation" not in roles
    full = plan_memory(*_specs(2, "all", cells), "lifetime").total_bytes
    top = plan_memory(*_specs(2, "top", cells), "lifetime").total_bytes
    readout = plan_memory(net, run, "lifetime").total_bytes
    assert readout < top < full


@pytest.mark.parametrize("cells", [("lstm", "lstm"), ("gru", "gru"), ("lstm", "gru")])
@pytest.mark.parametrize("trainable", ["all", "top", "readout", "0"])
@pytest.mark.parametrize("recompute", [False, True])
def test_lifetime_plans_never_overlap_and_run_in_their_arena(cells, trainable, recompute):
    net, run = _specs(3, trainable, cells)
    workload = build_workload(net, run, recompute)
    plan = lifetime_plan(workload)
    ranges = live_ranges(workload)
    allocs = plan.allocations
    for a in allocs:
        for b in allocs:
            if a.name >= b.name:
                continue
            disjoint = (
                a.offset_bytes + a.size_bytes <= b.offset_bytes
                or b.offset_bytes + b.size_bytes <= a.offset_bytes
            )
            if not disjoint:
                together = any(
                    s1 <= e2 and s2 <= e1 for s1, e1 in ranges[a.name] for s2, e2 in ranges[b.name]
                )
                assert not together, (a.name, b.name)
    params = _params(net)
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(B, T, I)), rng.integers(0, C, B)
    plain = execute(workload, params, x, y)
    inside = execute(workload, params, x, y, arena=plan)
    np.testing.assert_array_equal(plain.losses, inside.losses)
    for name in plain.params:
        np.testing.assert_array_equal(plain.params[name], inside.params[name])


def _matmul_adds(workload, phase):
    """add/sub of the phase's matmuls (one per multiply-accumulate)."""
    return sum(
        k.matmul.m * k.matmul.n * k.matmul.k
        for k in workload.kernels
        if k.matmul is not None and k.phase == phase
    )


def test_op_counts_of_a_frozen_bottom_layer_are_its_forward_only():
    # Layer 0 frozen below a trainable top: the forward is that of the all-trainable network;
    # the backward loses layer 0's dW (4H(I+H) MACs per sample and step), its dh matmul
    # (4H*H per sample, T-1 steps) and layer 1's dx matmul (4H*H per sample and step).
    all_net, run = _specs(1, "all", ("lstm", "lstm"))
    top_net, _ = _specs(1, "top", ("lstm", "lstm"))
    full_w, top_w = build_workload(all_net, run), build_workload(top_net, run)
    full, top = count_ops(full_w), count_ops(top_w)
    assert full["forward"] == top["forward"]
    dropped = B * T * 4 * H * (I + H) + B * (T - 1) * 4 * H * H + B * T * 4 * H * H
    assert _matmul_adds(full_w, "backward") - _matmul_adds(top_w, "backward") == dropped
    assert full["backward"].nonlinear == top["backward"].nonlinear  # tanh(c) is stored
    assert not any(k.op == "lstm_cell_backward" and k.reads[0].buffer == "dh"
                   for k in top_w.kernels)  # fmt: skip
    # the update touches only the trainable tensors: 2 fewer than with all trainable
    assert sum(k.op == "fptt_sgd" for k in top_w.kernels) == 4


def test_the_one_lstm_network_keeps_its_numbers(tmp_path):
    # The seed paper's network must not change with the layer list: the memory table and op
    # counts of docs/workload.md (K = 14), and the golden losses of an export, taken from the
    # tree before layers existed.
    from edgefptt.codegen.export import export_c
    from edgefptt.config import LayerSpec, NetworkSpec

    net, run = make_specs("paper-smnist", partitions=14)
    exact = run.model_copy(update={"schedule": "exact"})
    got = (
        plan_memory(net, run, "paper").total_bytes,
        plan_memory(net, run, "lifetime").total_bytes,
        plan_memory(net, exact, "lifetime").total_bytes,
        plan_memory(net, exact, "recompute").total_bytes,
    )
    assert got == (2_526_224, 2_509_680, 2_360_368, 1_344_560)
    net, run = make_specs("paper-smnist", partitions=14, dtype="bf16", schedule="exact")
    assert plan_memory(net, run, "recompute").total_bytes == 672_280
    net, run = make_specs("paper-smnist", partitions=14)
    ops = count_ops(build_workload(net, run))
    assert (ops["backward"].add_sub, ops["backward"].mul_div) == (571_340_938, 579_212_746)
    assert (ops["update"].add_sub, ops["update"].mul_div) == (7_599_200, 4_749_500)
    # The layer list spelled out builds the same workload as the default.
    small, run = make_specs(
        input_size=3, hidden_size=16, num_classes=5, batch_size=2, seq_len=12, partitions=4,
        schedule="exact",
    )  # fmt: skip
    spelled = NetworkSpec(
        input_size=3, hidden_size=16, num_classes=5, layers=(LayerSpec(hidden_size=16),)
    )
    assert build_workload(spelled, run).kernels == build_workload(small, run).kernels
    export = export_c(small, run, tmp_path)
    assert export.arena_bytes == 26928
    assert export.golden_losses == [
        1.7871646881103516,
        1.8011469841003418,
        1.8126161098480225,
        1.743873119354248,
    ]
