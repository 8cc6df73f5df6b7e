"""The device's checkpoint schedule: exact BPTT gradients, its arena formula, ops, latency, CLI."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from edgefptt.cli import main
from edgefptt.config import NetworkSpec, make_specs
from edgefptt.edge import execute
from edgefptt.errors import ConfigError
from edgefptt.hw import estimate, make_soc
from edgefptt.plan import count_ops, lifetime_plan, plan_memory
from edgefptt.train.partition import partition_bounds
from edgefptt.workload import build_workload

I, H, C, B, T = 2, 6, 3, 3, 10  # noqa: E741 (the paper's names)
SIZES = {"input_size": I, "hidden_size": H, "num_classes": C, "batch_size": B, "seq_len": T}


def _specs(segments, **values):
    return make_specs(**{**SIZES, **values}, schedule="checkpoint", segments=segments)


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {
        "W": rng.normal(0, 0.5, (4 * H, I + H)),
        "b": rng.normal(0, 0.5, 4 * H),
        "W_y": rng.normal(0, 0.5, (C, H)),
        "b_y": rng.normal(0, 0.5, C),
    }
    return params, rng.normal(size=(B, T, I)), rng.integers(0, C, B)


def _run(workload, params, x, y, **options):
    # The executor reports FPTT state for every tensor; this schedule has none, so it is
    # handed a lam it never reads (kernels see only the workload's buffers).
    unused = {name: {"lam": np.zeros_like(value)} for name, value in params.items()}
    return execute(workload, params, x, y, fptt_state=unused, **options)


def _autograd(params, x, y):
    """Loss, edge-layout gradients and final (h, c) of nn.LSTM + Linear over all T steps."""
    lstm = torch.nn.LSTM(I, H, batch_first=True).double()
    readout = torch.nn.Linear(H, C).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(params["W"][:, :I]))
        lstm.weight_hh_l0.copy_(torch.from_numpy(params["W"][:, I:]))
        lstm.bias_ih_l0.copy_(torch.from_numpy(params["b"]))
        lstm.bias_hh_l0.zero_()
        readout.weight.copy_(torch.from_numpy(params["W_y"]))
        readout.bias.copy_(torch.from_numpy(params["b_y"]))
    out, (h, c) = lstm(torch.from_numpy(x))
    loss = torch.nn.functional.cross_entropy(readout(out[:, -1]), torch.from_numpy(y))
    loss.backward()
    grads = {
        "W": torch.cat([lstm.weight_ih_l0.grad, lstm.weight_hh_l0.grad], 1).numpy(),
        "b": lstm.bias_ih_l0.grad.numpy(),
        "W_y": readout.weight.grad.numpy(),
        "b_y": readout.bias.grad.numpy(),
    }
    return loss.item(), grads, (h[0].detach().numpy(), c[0].detach().numpy())


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("segments", [1, 3, 4, 10])
@pytest.mark.parametrize("in_arena", [False, True])
def test_one_pass_is_exact_bptt_and_one_sgd_step(segments, in_arena):
    """fp64: the loss, the SGD step W - lr * dL/dW and the carried (h, c) equal autograd's over
    the whole sequence; S = 3 and 4 have uneven segments (4, 3, 3 and 3, 3, 2, 2). Inside the
    NaN-filled planned arena a clobbered live value would show."""
    params, x, y = _problem()
    loss, grads, (h, c) = _autograd(params, x, y)
    lr = 0.5
    net, run = _specs(segments, learning_rate=lr)
    workload = build_workload(net, run)
    arena = lifetime_plan(workload) if in_arena else None
    result = _run(workload, params, x, y, precision="fp64", arena=arena)
    assert result.losses == [pytest.approx(loss, rel=1e-12)]
    for name, grad in grads.items():
        assert _rel((params[name] - result.params[name]) / lr, grad) < 1e-10, name
    assert _rel(result.state[0], h) < 1e-12 and _rel(result.state[1], c) < 1e-12


def test_float32_pass_is_close_to_autograd():
    params, x, y = _problem(1)
    _, grads, _ = _autograd(params, x, y)
    net, run = _specs(4, learning_rate=1.0)
    result = _run(build_workload(net, run), params, x, y, precision="fp32")
    for name, grad in grads.items():
        assert _rel(params[name] - result.params[name], grad) < 1e-5, name


def _arena_formula(net: NetworkSpec, batch: int, seq_len: int, segments: int, size: int) -> int:
    """docs/workload.md: s * [2P + 2BH(S + 2) + (L+1)B(I+2H) + 9LBH], L = ceil(T/S); at
    S = 1 the one boundary (the carried state) is dead after the first kernels: 2BH * 2."""
    i, h, b, length = net.input_size, net.hidden_size, batch, -(-seq_len // segments)
    stored = segments if segments > 1 else 0
    elements = 2 * net.num_params + 2 * b * h * (stored + 2)
    elements += (length + 1) * b * (i + 2 * h) + 9 * length * b * h
    return size * elements


CASES = [
    # (I, H, C, B, T, S)
    (1, 128, 10, 4, 784, 28),
    (1, 128, 10, 4, 784, 66),
    (2, 6, 3, 3, 10, 1),
    (2, 6, 3, 3, 10, 3),
    (2, 6, 3, 3, 10, 10),
    (40, 128, 12, 8, 100, 10),
    (3, 16, 5, 2, 13, 5),
]


@pytest.mark.parametrize("case", CASES, ids=[f"T{c[4]}S{c[5]}" for c in CASES])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_lifetime_arena_equals_the_documented_formula(case, dtype):
    i, h, c, b, t, s = case
    net, run = make_specs(
        input_size=i, hidden_size=h, num_classes=c, batch_size=b, seq_len=t,
        schedule="checkpoint", segments=s, dtype=dtype,
    )  # fmt: skip
    plan = plan_memory(net, run, "lifetime")
    size = 4 if dtype == "fp32" else 2
    assert plan.total_bytes == _arena_formula(net, b, t, s, size)
    assert plan.breakdown["fptt_state"] == 0
    assert plan.floor_bytes == 2 * net.num_params * size  # W and its gradient only
    # the activations the schedule keeps: S boundary (h, c), one segment's workspace
    length = run.max_segment_len
    kept = 2 * s * b * h + (length + 1) * b * (i + 2 * h) + 5 * length * b * h
    assert plan.breakdown["activations"] == size * kept


def test_no_two_live_buffers_overlap():
    net, run = _specs(3)
    workload = build_workload(net, run)
    plan = lifetime_plan(workload)
    place = {a.name: (a.offset_bytes, a.offset_bytes + a.size_bytes) for a in plan.allocations}
    first, last = {}, {}
    for j, kernel in enumerate(workload.kernels):
        for v in (*kernel.reads, *kernel.writes):
            first.setdefault(v.buffer, j)
            last[v.buffer] = j
    for j, _ in enumerate(workload.kernels):
        live = [
            n
            for n in place
            if workload.buffers[n].scope == "persistent" or first[n] <= j <= last[n]
        ]
        spans = sorted(place[n] for n in live)
        for (_, stop), (start, _) in itertools.pairwise(spans):
            assert stop <= start, f"overlap at kernel {j}"


def test_checkpointing_saves_memory_against_stored_bptt():
    """The paper network: S = 28 keeps 28 (h, c) pairs and one 28-step workspace instead of
    784 steps of gates; below the exact schedule's K = 1 arena less W_bar and lam."""
    net, run = make_specs("paper-smnist", schedule="checkpoint", segments=28)
    ckpt = plan_memory(net, run, "lifetime").total_bytes
    _, exact = make_specs("paper-smnist", schedule="exact")
    bptt = plan_memory(net, exact, "lifetime").total_bytes - 2 * net.num_params * 4
    assert ckpt < bptt / 10
    sizes = [
        plan_memory(net, run.model_copy(update={"segments": s}), "lifetime").total_bytes
        for s in (1, 4, 28, 66)
    ]
    assert sizes == sorted(sizes, reverse=True)


def test_op_counts_are_exact_bptt_plus_the_recomputed_forward():
    """Forward as the exact schedule at K = 1; backward plus one forward of every step but
    the last segment's (per step: B*4H(I+H) MACs, then BH adds, 3BH multiplies and 5BH
    nonlinear in the cell), and the 4H multiplies by 1/B of each segment's own db;
    update: one multiply and one add per parameter (plain SGD)."""
    for segments in (1, 3, 4):
        net, run = _specs(segments)
        ops = count_ops(build_workload(net, run))
        _, exact_run = make_specs(**SIZES, schedule="exact")
        exact = count_ops(build_workload(net, exact_run))
        assert ops["forward"] == exact["forward"]
        bounds = partition_bounds(T, segments)
        steps = T - (bounds[-1][1] - bounds[-1][0])
        macs = B * 4 * H * (I + H)
        extra = (
            steps * (macs + B * H),
            steps * (macs + 3 * B * H) + (segments - 1) * 4 * H,  # db scaled per segment
            steps * 5 * B * H,
        )
        back, ref = ops["backward"], exact["backward"]
        assert (back.add_sub - ref.add_sub, back.mul_div - ref.mul_div) == extra[:2]
        assert back.nonlinear - ref.nonlinear == extra[2]
        assert (ops["update"].add_sub, ops["update"].mul_div) == (net.num_params,) * 2


def test_hardware_model_costs_the_recompute():
    """S = 1 runs exact K = 1's matmuls and cell kernels; S > 1 adds the recomputed forward."""
    soc = make_soc(None, dtype="bf16")
    net, exact_run = make_specs("paper-smnist", schedule="exact", dtype="bf16")
    exact = estimate(net, exact_run, soc)
    checkpoint = {"schedule": "checkpoint", "segments": 1}
    one = estimate(net, exact_run.model_copy(update=checkpoint), soc)
    for group in ("MatMul-1", "MatMul-2", "MatMul-3", "Mat2Vec", "EWO-combo", "softmax"):
        assert one.groups[group] == pytest.approx(exact.groups[group], rel=1e-12), group
    more = estimate(net, exact_run.model_copy(update={**checkpoint, "segments": 28}), soc)
    assert one.total_cycles < more.total_cycles < 2 * one.total_cycles
    assert more.memory_bytes == plan_memory(net, more.run, "lifetime").total_bytes


def test_run_spec_checks_segments():
    assert _specs(None)[1].num_segments == 3  # round(sqrt 10)
    assert make_specs("paper-smnist", schedule="checkpoint")[1].num_segments == 28
    with pytest.raises(ConfigError, match="segments S belongs to the checkpoint schedule"):
        make_specs(**SIZES, schedule="exact", segments=2)
    with pytest.raises(ConfigError, match="K = 1"):
        make_specs(**SIZES, schedule="checkpoint", partitions=2)
    with pytest.raises(ConfigError, match="S=11 exceeds the sequence length T=10"):
        _specs(11)
    with pytest.raises(ConfigError, match="--segments"):
        _specs(0)
    with pytest.raises(ConfigError, match="lifetime plan only"):
        plan_memory(*_specs(2), "paper")
    with pytest.raises(ConfigError, match="recompute"):
        plan_memory(*_specs(2), "recompute")


def test_cli_ops_estimate_and_memory(capsys):
    sizes = ["--input", "2", "--hidden", "6", "--classes", "3", "--batch", "3", "--seq-len", "10"]
    schedule = ["--schedule", "checkpoint", "--segments", "4"]
    assert main(["ops", *sizes, *schedule, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    ops = count_ops(build_workload(*_specs(4)))
    assert doc["backward"] == ops["backward"].to_dict()
    assert doc["run"]["segments"] == 4
    assert main(["estimate", *sizes, *schedule, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schedule"] == "checkpoint" and doc["total_cycles"] == round(
        sum(doc["groups"].values())
    )
    assert main(["memory", *sizes, *schedule, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total_bytes"] == _arena_formula(_specs(4)[0], B, T, 4, 4)
    assert main(["memory", *sizes, *schedule]) == 0
    assert "S=4" in capsys.readouterr().out
    assert main(["memory", *sizes, "--segments", "4"]) == 2
    assert "--schedule checkpoint" in capsys.readouterr().err
    assert main(["memory", *sizes, *schedule, "--plan", "paper"]) == 2


# ---------------------------------------------------------------------------- the planner answer
SMALL = {"input_size": 2, "hidden_size": 4, "num_classes": 3, "batch_size": 2, "seq_len": 9}


def _brute_force(soc):
    """Every FPTT (K, plan) and every checkpoint S of SMALL: whole workloads, planned and costed."""
    from edgefptt.hw import group_cycles, summarize

    net, run = make_specs(**SMALL, schedule="exact", dtype=soc.dtype)
    fptt, ckpt = [], []
    for k in range(1, 10):
        for plan in ("lifetime", "recompute"):
            workload = build_workload(
                net, run.model_copy(update={"partitions": k}), plan == "recompute"
            )
            cycles = sum(group_cycles(summarize(workload), soc).values())
            fptt.append((lifetime_plan(workload).total_bytes, cycles))
    for s in range(1, 10):
        ckpt_run = run.model_copy(update={"schedule": "checkpoint", "segments": s})
        ckpt.append(
            (
                plan_memory(net, ckpt_run, "lifetime").total_bytes,
                estimate(net, ckpt_run, soc).total_cycles,
            )
        )
    return net, run, fptt, ckpt


def test_checkpoint_shortcuts_equal_the_planner_and_the_hardware_model():
    from edgefptt.plan.budget import checkpoint_arena_bytes, checkpoint_pass_cycles

    soc = make_soc(None, dtype="fp32")
    for sizes, segments in (
        (SIZES, range(1, 11)),
        ({**SIZES, "hidden_size": 1, "num_classes": 20}, (1, 5, 10)),
    ):
        net, run = make_specs(**sizes, schedule="checkpoint")
        for s in segments:  # H = 1, C = 20: dpre cannot hold the loss scratch (the fallback)
            r = run.model_copy(update={"segments": s})
            assert checkpoint_arena_bytes(net, r) == plan_memory(net, r, "lifetime").total_bytes
            assert checkpoint_pass_cycles(net, r, soc) == pytest.approx(
                estimate(net, r, soc).total_cycles, rel=1e-9
            )


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_compare_picks_the_fastest_fit_of_each_and_nothing_faster_fits(dtype):
    from edgefptt.plan.budget import compare_at_budget

    soc = make_soc(None, dtype=dtype)
    net, run, fptt, ckpt = _brute_force(soc)
    budgets = sorted({b for b, _ in fptt + ckpt})
    for budget in [*budgets, budgets[-1] + 1]:
        if budget < min(b for b, _ in fptt + ckpt):
            continue
        result = compare_at_budget(net, run, budget, soc, "default")
        for best, everything in ((result.fptt, fptt), (result.checkpoint, ckpt)):
            fitting = [c for b, c in everything if b <= budget]
            if not fitting:
                assert best is None
                continue
            assert best is not None and best.fits and best.arena_bytes <= budget
            assert best.latency == pytest.approx(min(fitting), rel=1e-9)
            faster = [b for b, c in everything if c < best.latency * (1 - 1e-9)]
            assert all(b > budget for b in faster), budget  # the next-better do not fit


def test_compare_cli(capsys):
    sizes = ["--input", "2", "--hidden", "4", "--classes", "3", "--batch", "2", "--seq-len", "9"]
    assert main(["memory", *sizes, "--budget", "4000", "--compare", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["soc"] == "gemmini-fp32" and doc["dtype"] == "fp32"
    for kind in ("fptt", "checkpoint"):
        assert doc[kind] is None or doc[kind]["arena_bytes"] <= 4000
    assert main(["memory", *sizes, "--budget", "4000", "--compare", "--soc", "gemmini-bf16"]) == 0
    out = capsys.readouterr().out
    assert "gemmini-bf16" in out and "ckpt BPTT" in out
    assert main(["memory", *sizes, "--budget", "10", "--compare"]) == 2
    assert "too small" in capsys.readouterr().err
    assert main(["memory", *sizes, "--compare"]) == 2
    assert main(["memory", *sizes, "--budget", "4000", "--compare", "--soc", "x"]) == 2
    assert (
        main(
            [
                "memory",
                *sizes,
                "--budget",
                "4000",
                "--compare",
                "--dtype",
                "bf16",
                "--soc",
                "gemmini-fp32",
            ]
        )
        == 2
    )
