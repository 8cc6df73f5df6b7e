"""The GRU cell through the workload: kernels against torch, a whole FPTT pass against the host
FPTT, closed-form operation counts and activation memory, and the specs' GRU options."""

import numpy as np
import pytest
import torch

from edgefptt import FPTT
from edgefptt.config import make_specs
from edgefptt.edge import execute
from edgefptt.edge.numerics import Numerics
from edgefptt.edge.ops import gru_cell_forward
from edgefptt.errors import ConfigError
from edgefptt.plan import count_ops, plan_memory
from edgefptt.train.partition import partition_bounds
from edgefptt.workload import build_workload

I, H, C, B, T = 3, 4, 3, 2, 9  # noqa: E741


def _specs(**values):
    base = dict(input_size=I, hidden_size=H, num_classes=C, batch_size=B, seq_len=T)
    return make_specs(**{**base, "cell": "gru", "schedule": "exact", **values})


def _params(net, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0, 0.5, shape) for name, shape in net.param_shapes().items()}


def test_gru_layout_and_parameter_count():
    net, _ = _specs()
    assert net.param_shapes() == {
        "W": (3 * H, I + H),
        "b": (3 * H,),
        "b_hn": (H,),
        "W_y": (C, H),
        "b_y": (C,),
    }
    # torch's GRU has 3H(I+H) weights and 6H biases; b_hr and b_hz fold into b (2H fewer).
    gru = torch.nn.GRU(I, H)
    assert net.num_params == sum(p.numel() for p in gru.parameters()) - 2 * H + C * H + C


def test_gru_cell_forward_equals_torch_gru_cell():
    rng = np.random.default_rng(5)
    w_ih, w_hh = rng.normal(size=(3 * H, I)), rng.normal(size=(3 * H, H))
    b_ih, b_hh = rng.normal(size=3 * H), rng.normal(size=3 * H)
    x, h = rng.normal(size=(B, I)), rng.normal(size=(B, H))
    cell = torch.nn.GRUCell(I, H).double()
    with torch.no_grad():
        for p, v in zip(cell.parameters(), (w_ih, w_hh, b_ih, b_hh), strict=True):
            p.copy_(torch.from_numpy(v))
    ref = cell(torch.from_numpy(x), torch.from_numpy(h)).detach().numpy()
    # The kernel's block: r, z pre-activations over [x, h] (b_hr, b_hz folded into b), the n
    # gate's input part and its hidden part hn = W_hn h + b_hn.
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    block = np.concatenate([gi[:, : 2 * H] + gh[:, : 2 * H], gi[:, 2 * H :], gh[:, 2 * H :]], 1)
    act, h_new = gru_cell_forward(Numerics("fp64"), [block, h], None)
    np.testing.assert_allclose(h_new, ref, rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(act[:, 3 * H :], gh[:, 2 * H :])  # hn kept for backward


@pytest.mark.parametrize("k", [2, 3])
def test_one_pass_equals_k_host_fptt_partitions(k):
    lr, alpha, beta = 0.05, 0.1, 0.5
    net, run = _specs(partitions=k, learning_rate=lr, alpha=alpha, beta=beta)
    params = _params(net, 1)
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(B, T, I)), rng.integers(0, C, B)
    result = execute(build_workload(net, run), params, x, y, precision="fp64")

    gru = torch.nn.GRU(I, H, batch_first=True).double()
    readout = torch.nn.Linear(H, C).double()
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.from_numpy(params["W"][:, :I]))
        gru.weight_hh_l0.copy_(torch.from_numpy(params["W"][:, I:]))
        gru.bias_ih_l0.copy_(torch.from_numpy(params["b"]))
        gru.bias_hh_l0.zero_()
        gru.bias_hh_l0[2 * H :] = torch.from_numpy(params["b_hn"])
        readout.weight.copy_(torch.from_numpy(params["W_y"]))
        readout.bias.copy_(torch.from_numpy(params["b_y"]))
    # b_hr and b_hz stay zero on the device: mask their gradient with a hook.
    mask = torch.cat([torch.zeros(2 * H), torch.ones(H)]).double()
    gru.bias_hh_l0.register_hook(lambda g: g * mask)
    trainable = [*gru.parameters(), *readout.parameters()]
    fptt = FPTT(trainable, alpha=alpha, beta=beta)
    sgd = torch.optim.SGD(trainable, lr=lr)
    state = None
    losses = []
    for start, stop in partition_bounds(T, k):
        sgd.zero_grad()
        out, state = gru(torch.from_numpy(x[:, start:stop]), state)
        state = state.detach()
        loss = torch.nn.functional.cross_entropy(readout(out[:, -1]), torch.from_numpy(y))
        (loss + fptt.penalty()).backward()
        sgd.step()
        fptt.step()
        losses.append(loss.item())
    # FPTT keeps W_bar and lam in float32: agreement to float32 precision.
    np.testing.assert_allclose(result.losses, losses, rtol=1e-6)
    w = torch.cat([gru.weight_ih_l0, gru.weight_hh_l0], 1).detach().numpy()
    np.testing.assert_allclose(result.params["W"], w, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(result.params["b"], gru.bias_ih_l0.detach().numpy(), atol=1e-8)
    b_hn = gru.bias_hh_l0.detach().numpy()[2 * H :]
    np.testing.assert_allclose(result.params["b_hn"], b_hn, atol=1e-8)
    np.testing.assert_allclose(result.params["W_y"], readout.weight.detach().numpy(), atol=1e-8)
    w_bar = fptt.state[gru.weight_ih_l0]["w_bar"].double().numpy()
    np.testing.assert_allclose(result.fptt_state["W"]["w_bar"][:, :I], w_bar, atol=1e-7)
    assert np.max(np.abs(result.params["W"] - params["W"])) > 1e-3


@pytest.mark.parametrize("k", [1, 3])
def test_forward_operation_counts_in_closed_form(k):
    # Per sample and step: 3H(I+H) multiply-accumulates (r, z over [x, h]; n's input and
    # hidden parts), and the cell: r, z (2 sigmoids), n = tanh(nx + r hn) (1 add, 1 mul,
    # 1 tanh), h = n + z (h - n) (2 add/sub, 1 mul). The readout: C*H MACs per sample and
    # partition.
    net, run = _specs(partitions=k)
    ops = count_ops(build_workload(net, run))["forward"]
    macs = B * T * 3 * H * (I + H) + k * B * C * H
    assert ops.add_sub == macs + B * T * H * 3
    assert ops.mul_div == macs + B * T * H * 2
    assert ops.nonlinear == B * T * H * 3


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("k", [1, 3])
def test_activation_memory_in_closed_form(k, dtype):
    # A GRU layer keeps [x_t, h_{t-1}] ((L+1) slots) and its 4H gate block per step, and no
    # cell state: (L+1)B(I+H) + 4LBH elements; the recompute plan keeps [x, h] only.
    net, run = _specs(partitions=k, dtype=dtype)
    s, length = run.element_bytes, run.max_partition_len
    lifetime = plan_memory(net, run, "lifetime")
    assert lifetime.breakdown["activations"] == s * (
        (length + 1) * B * (I + H) + 4 * length * B * H
    )
    assert lifetime.breakdown["carried_state"] == s * B * H
    assert lifetime.floor_bytes == 4 * s * net.num_params
    recompute = plan_memory(net, run, "recompute")
    assert recompute.breakdown["activations"] == s * (length + 1) * B * (I + H)
    assert recompute.total_bytes < lifetime.total_bytes


def test_bf16_pass_rounds_every_value():
    net, run = _specs(partitions=3, dtype="bf16")
    params = _params(net)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(B, T, I)), rng.integers(0, C, B)
    workload = build_workload(net, run)
    ref = execute(workload, params, x, y, precision="fp64")
    for rounding in ("rne", "away"):
        result = execute(workload, params, x, y, rounding=rounding)
        np.testing.assert_allclose(result.losses, ref.losses, rtol=3e-2)
        bits = result.params["b_hn"].astype(np.float32).view(np.uint32)
        assert np.all(bits & 0xFFFF == 0)


def test_specs_choose_the_exact_schedule_and_refuse_the_others():
    net, run = make_specs("gsc", cell="gru")
    assert run.schedule == "exact" and net.stack[0].cell == "gru"
    for schedule in ("paper", "checkpoint"):
        with pytest.raises(ConfigError, match="--schedule exact"):
            make_specs("gsc", cell="gru", schedule=schedule)
    with pytest.raises(ConfigError, match="--schedule exact"):
        build_workload(net, run.model_copy(update={"schedule": "paper"}))
    # the one-LSTM network spelled out is the default network, dumped as before
    net_lstm, run_lstm = make_specs("gsc", cell="lstm", num_layers=1, trainable="all")
    assert (net_lstm, run_lstm) == make_specs("gsc")
    assert net_lstm.model_dump() == {"input_size": 40, "hidden_size": 128, "num_classes": 12}


@pytest.mark.parametrize(
    ("trainable", "layers", "readout"),
    [
        ("all", [True, True, True], True),
        ("top", [False, False, True], True),
        ("readout", [False, False, False], True),
        ("0,readout", [True, False, False], True),
        ("1, 2", [False, True, True], False),
    ],
)
def test_trainable_option(trainable, layers, readout):
    net, _ = make_specs("gsc", num_layers=3, trainable=trainable)
    assert [la.trainable for la in net.stack] == layers
    assert net.readout_trainable is readout


@pytest.mark.parametrize("bad", ["3", "x", "-1", ""])
def test_trainable_option_rejects_what_is_not_a_layer(bad):
    with pytest.raises(ConfigError, match="--trainable"):
        make_specs("gsc", num_layers=3, trainable=bad)


def test_cli_spec_options_build_the_layers():
    from edgefptt.cli.spec_options import specs_from_options

    net, run = specs_from_options("gsc", None, 64, None, None, None, cell="gru", layers=2,
                                  trainable="top", partitions=10)  # fmt: skip
    assert [(la.cell, la.hidden_size, la.trainable) for la in net.stack] == [
        ("gru", 64, False),
        ("gru", 64, True),
    ]
    assert run.schedule == "exact" and run.partitions == 10


def test_estimate_costs_the_gru_kernels_from_their_work():
    # Both codes cost the GRU's element-wise kernels (no missing instruction count), and a
    # GRU's cell kernels, which do fewer operations per unit than an LSTM's, cost less.
    from edgefptt.hw import estimate
    from edgefptt.hw.spec import SOC_PRESETS

    soc = SOC_PRESETS["gemmini-fp32"]
    for code in ("paper", "generated"):
        lstm = estimate(*make_specs("gsc", partitions=10, schedule="exact"), soc, code=code)
        gru = estimate(*make_specs("gsc", partitions=10, cell="gru"), soc, code=code)
        assert 0 < gru.groups["EWO-combo"] < lstm.groups["EWO-combo"]
        assert gru.groups["MatMul-2"] > 0


@pytest.mark.parametrize("values", [{"cell": "gru"}, {"num_layers": 2}, {"trainable": "readout"}])
def test_export_c_writes_the_pass_and_the_learner(tmp_path, values):
    # C == golden for these networks: tests/test_codegen_gru.py (one pass) and
    # test_learner_networks.py (the learner). Here: the export's arena and losses are the
    # planner's and the executor's, and the learner keeps a version-2 state image.
    from edgefptt.codegen.export import export_c

    base = dict(input_size=I, hidden_size=H, num_classes=C, batch_size=B, seq_len=T)
    net, run = make_specs(**{**base, "partitions": 3, "schedule": "exact", **values})
    export = export_c(net, run, tmp_path)
    assert export.arena_bytes == plan_memory(net, run, "lifetime").total_bytes
    golden = execute(build_workload(net, run), export.params, export.inputs, export.labels)
    assert export.golden_losses == [float(v) for v in golden.losses]
    assert "#error" not in (tmp_path / "learner.c").read_text()
    assert "#define EDGEFPTT_STATE_VERSION 2" in (tmp_path / "config.h").read_text()
