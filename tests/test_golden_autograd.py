"""The golden executor against torch autograd and the host FPTT (edgefptt.FPTT + SGD)."""

import numpy as np
import pytest
import torch

from edgefptt import FPTT
from edgefptt.config import make_specs
from edgefptt.edge import execute
from edgefptt.train.partition import partition_bounds
from edgefptt.workload import build_workload

I, H, C, B, T = 2, 6, 3, 3, 10  # noqa: E741 (the paper's names)


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {
        "W": rng.normal(0, 0.5, (4 * H, I + H)),
        "b": rng.normal(0, 0.5, 4 * H),
        "W_y": rng.normal(0, 0.5, (C, H)),
        "b_y": rng.normal(0, 0.5, C),
    }
    return params, rng.normal(size=(B, T, I)), rng.integers(0, C, B)


def _torch_model(params):
    """nn.LSTM + Linear in float64 holding the edge parameters (bias_hh fixed at zero)."""
    lstm = torch.nn.LSTM(I, H, batch_first=True).double()
    readout = torch.nn.Linear(H, C).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(params["W"][:, :I]))
        lstm.weight_hh_l0.copy_(torch.from_numpy(params["W"][:, I:]))
        lstm.bias_ih_l0.copy_(torch.from_numpy(params["b"]))
        lstm.bias_hh_l0.zero_()
        readout.weight.copy_(torch.from_numpy(params["W_y"]))
        readout.bias.copy_(torch.from_numpy(params["b_y"]))
    lstm.bias_hh_l0.requires_grad_(False)
    return lstm, readout


def _trainable(lstm, readout):
    return [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, readout.weight, readout.bias]


def _edge_grads(lstm, readout):
    return {
        "W": torch.cat([lstm.weight_ih_l0.grad, lstm.weight_hh_l0.grad], 1).numpy().copy(),
        "b": lstm.bias_ih_l0.grad.numpy().copy(),
        "W_y": readout.weight.grad.numpy().copy(),
        "b_y": readout.bias.grad.numpy().copy(),
    }


def _partition_loss(lstm, readout, x, y, start, stop, state):
    out, (h, c) = lstm(torch.from_numpy(x[:, start:stop]), state)
    loss = torch.nn.functional.cross_entropy(readout(out[:, -1]), torch.from_numpy(y))
    return loss, (h.detach(), c.detach())


def _autograd_per_partition(params, x, y, k):
    """Gradients of each partition's loss at fixed parameters, (h, c) carried detached."""
    lstm, readout = _torch_model(params)
    state = (torch.zeros(1, B, H, dtype=torch.float64),) * 2
    losses, grads = [], []
    for start, stop in partition_bounds(T, k):
        for p in _trainable(lstm, readout):
            p.grad = None
        loss, state = _partition_loss(lstm, readout, x, y, start, stop, state)
        loss.backward()
        losses.append(loss.item())
        grads.append(_edge_grads(lstm, readout))
    return losses, grads


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def _frozen_run(schedule, k, precision, recompute=False):
    """Execute with a vanishing learning rate, so every partition sees the starting weights."""
    net, run = make_specs(
        input_size=I,
        hidden_size=H,
        num_classes=C,
        batch_size=B,
        seq_len=T,
        partitions=k,
        schedule=schedule,
        learning_rate=1e-300,
    )
    params, x, y = _problem()
    result = execute(
        build_workload(net, run, recompute), params, x, y, precision=precision, record_grads=True
    )
    return result, _autograd_per_partition(params, x, y, k)


@pytest.mark.parametrize(("k", "recompute"), [(1, False), (3, False), (4, False), (3, True)])
def test_exact_gradients_equal_autograd_float64(k, recompute):
    result, (losses, grads) = _frozen_run("exact", k, "fp64", recompute)
    assert len(result.grads) == k
    np.testing.assert_allclose(result.losses, losses, rtol=1e-12)
    for mine, ref in zip(result.grads, grads, strict=True):
        for name in ref:
            assert _rel(mine[name], ref[name]) < 1e-10, name


@pytest.mark.parametrize("recompute", [False, True])
def test_exact_gradients_equal_autograd_float32(recompute):
    result, (_, grads) = _frozen_run("exact", 4, "fp32", recompute)
    for mine, ref in zip(result.grads, grads, strict=True):
        for name in ref:
            assert _rel(mine[name], ref[name]) < 1e-5, name


def test_paper_schedule_is_exact_for_two_step_partitions():
    # The 2-step truncation of the cell-state gradient loses nothing when L <= 2.
    result, (_, grads) = _frozen_run("paper", 5, "fp64")
    for mine, ref in zip(result.grads, grads, strict=True):
        for name in ref:
            assert _rel(mine[name], ref[name]) < 1e-10, name


def test_paper_schedule_truncates_longer_partitions():
    result, (_, grads) = _frozen_run("paper", 1, "fp64")
    error = _rel(result.grads[0]["W"], grads[0]["W"])
    assert error > 1e-6  # dropped cell-state paths of three and more steps
    # The readout gradient does not go through the recurrence: still exact.
    assert _rel(result.grads[0]["W_y"], grads[0]["W_y"]) < 1e-10


@pytest.mark.parametrize("k", [2, 3])
def test_one_pass_equals_k_host_fptt_partitions(k):
    lr, alpha, beta = 0.05, 0.1, 0.5
    net, run = make_specs(
        input_size=I,
        hidden_size=H,
        num_classes=C,
        batch_size=B,
        seq_len=T,
        partitions=k,
        schedule="exact",
        learning_rate=lr,
        alpha=alpha,
        beta=beta,
    )
    params, x, y = _problem(1)
    result = execute(build_workload(net, run), params, x, y, precision="fp64")

    lstm, readout = _torch_model(params)
    trainable = _trainable(lstm, readout)
    fptt = FPTT(trainable, alpha=alpha, beta=beta)
    sgd = torch.optim.SGD(trainable, lr=lr)
    state = (torch.zeros(1, B, H, dtype=torch.float64),) * 2
    losses = []
    for start, stop in partition_bounds(T, k):
        sgd.zero_grad()
        loss, state = _partition_loss(lstm, readout, x, y, start, stop, state)
        (loss + fptt.penalty()).backward()
        sgd.step()
        fptt.step()
        losses.append(loss.item())
    # FPTT keeps W_bar and lam in float32, so agreement is to float32 precision.
    np.testing.assert_allclose(result.losses, losses, rtol=1e-6)
    names = ["W_ih", "W_hh", "b", "W_y", "b_y"]
    mine = {
        "W_ih": lambda d: d["W"][:, :I],
        "W_hh": lambda d: d["W"][:, I:],
        "b": lambda d: d["b"],
        "W_y": lambda d: d["W_y"],
        "b_y": lambda d: d["b_y"],
    }
    for name, p in zip(names, trainable, strict=True):
        np.testing.assert_allclose(
            mine[name](result.params), p.detach().numpy(), rtol=1e-6, atol=1e-8
        )
        st = fptt.state[p]
        key = "W" if name.startswith("W_") and name != "W_y" else name
        for field in ("w_bar", "lam"):
            edge = result.fptt_state[key][field]
            edge = mine[name]({key: edge}) if key == "W" else edge
            np.testing.assert_allclose(edge, st[field].double().numpy(), rtol=1e-5, atol=1e-7)
    # The pass really trained: parameters moved by much more than the tolerance.
    assert np.max(np.abs(result.params["W"] - params["W"])) > 1e-3


@pytest.mark.parametrize("schedule", ["exact", "paper"])
def test_bf16_runs_in_both_rounding_modes(schedule):
    net, run = make_specs(
        input_size=I,
        hidden_size=H,
        num_classes=C,
        batch_size=B,
        seq_len=T,
        partitions=5,
        schedule=schedule,
        dtype="bf16",
    )
    params, x, y = _problem()
    workload = build_workload(net, run)
    ref = execute(workload, params, x, y, precision="fp64")
    rne = execute(workload, params, x, y)
    away = execute(workload, params, x, y, rounding="away")
    for result in (rne, away):
        np.testing.assert_allclose(result.losses, ref.losses, rtol=3e-2)
        # Every stored value is a bf16 number: its low 16 bits are zero.
        bits = result.params["W"].astype(np.float32).view(np.uint32)
        assert np.all(bits & 0xFFFF == 0)
    assert any(not np.array_equal(rne.params[name], away.params[name]) for name in rne.params)
