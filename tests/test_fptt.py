"""The FPTT state object against hand-computed values and against autograd."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgefptt import FPTT, ConfigError


def _param(values: list[float]) -> nn.Parameter:
    return nn.Parameter(torch.tensor(values, dtype=torch.float32))


def test_penalty_matches_hand_computation() -> None:
    w = _param([1.0, -2.0])
    fptt = FPTT([w], alpha=0.5, linear_coef=1.0)
    fptt.state[w]["w_bar"].copy_(torch.tensor([0.0, 1.0]))
    fptt.state[w]["lam"].copy_(torch.tensor([2.0, 3.0]))
    # -<W, lam> = -(2 - 6) = 4 ; alpha/2 ||W - W_bar||^2 = 0.25 * (1 + 9) = 2.5
    assert fptt.penalty().item() == pytest.approx(6.5)
    fptt.param_groups[0]["linear_coef"] = 0.5
    assert fptt.penalty().item() == pytest.approx(2.0 + 2.5)


def test_step_matches_hand_computation() -> None:
    w = _param([1.0, -2.0])
    fptt = FPTT([w], alpha=0.5, beta=0.5)
    fptt.state[w]["w_bar"].copy_(torch.tensor([0.0, 1.0]))
    fptt.state[w]["lam"].copy_(torch.tensor([2.0, 3.0]))
    fptt.step()
    # lam = lam - 0.5 * (W - W_bar) = [2 - 0.5, 3 + 1.5] = [1.5, 4.5]
    # W_bar = 0.5 * W_bar + 0.5 * W - (0.5 / 0.5) * lam = [0.5 - 1.5, -0.5 - 4.5]
    assert fptt.state[w]["lam"].tolist() == pytest.approx([1.5, 4.5])
    assert fptt.state[w]["w_bar"].tolist() == pytest.approx([-1.0, -5.0])


@pytest.mark.parametrize("linear_coef", [1.0, 0.5])
def test_penalty_gradient_is_alpha_diff_minus_c_lam(linear_coef: float) -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    fptt = FPTT(model.parameters(), alpha=0.3, linear_coef=linear_coef)
    for st in fptt.state.values():
        st["w_bar"].normal_()
        st["lam"].normal_()
    fptt.penalty().backward()
    autograd = [p.grad.clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    fptt.add_penalty_grad_()
    for p, expected in zip(model.parameters(), autograd, strict=True):
        st = fptt.state[p]
        closed_form = 0.3 * (p.detach() - st["w_bar"]) - linear_coef * st["lam"]
        torch.testing.assert_close(expected, closed_form)
        torch.testing.assert_close(p.grad, closed_form)
        torch.testing.assert_close(fptt.penalty_grad(p), closed_form)


def test_one_partition_with_sgd_equals_the_fused_update() -> None:
    """penalty + SGD step + FPTT.step reproduces the seed paper's fused C loop."""
    torch.manual_seed(1)
    lr, alpha = 0.05, 0.1
    w = nn.Parameter(torch.randn(5))
    fptt = FPTT([w], alpha=alpha, beta=0.5)
    fptt.state[w]["w_bar"].copy_(torch.randn(5))
    fptt.state[w]["lam"].copy_(torch.randn(5))
    target = torch.randn(5)
    task_loss = lambda: ((w - target) ** 2).sum()  # noqa: E731

    # reference: the fused loop of fptt.md on plain tensors
    W = w.detach().clone()
    W_bar = fptt.state[w]["w_bar"].clone()
    lam = fptt.state[w]["lam"].clone()
    g = 2 * (W - target)
    W = W - lr * (g - lam + alpha * (W - W_bar))
    lam = lam - alpha * (W - W_bar)
    W_bar = 0.5 * (W_bar + W) - (0.5 / alpha) * lam

    optimizer = torch.optim.SGD([w], lr=lr)
    optimizer.zero_grad()
    (task_loss() + fptt.penalty()).backward()
    optimizer.step()
    fptt.step()
    torch.testing.assert_close(w.detach(), W)
    torch.testing.assert_close(fptt.state[w]["lam"], lam)
    torch.testing.assert_close(fptt.state[w]["w_bar"], W_bar)


def test_average_swaps_in_w_bar_and_restores() -> None:
    w = _param([1.0, 2.0])
    fptt = FPTT([w])
    fptt.state[w]["w_bar"].copy_(torch.tensor([5.0, 6.0]))
    with fptt.average():
        assert w.tolist() == [5.0, 6.0]
    assert w.tolist() == [1.0, 2.0]
    fptt.load_average_()
    assert w.tolist() == [5.0, 6.0]


def test_state_is_float32_for_low_precision_parameters() -> None:
    w = nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    fptt = FPTT([w])
    assert fptt.state[w]["w_bar"].dtype == torch.float32
    assert fptt.state[w]["lam"].dtype == torch.float32
    w.grad = torch.zeros_like(w)
    fptt.add_penalty_grad_()
    assert w.grad.dtype == torch.bfloat16


def test_state_dict_round_trip_and_param_groups() -> None:
    torch.manual_seed(2)
    model = nn.Linear(3, 2)
    groups = [{"params": [model.weight], "alpha": 0.2}, {"params": [model.bias]}]
    fptt = FPTT(groups, alpha=0.1)
    assert fptt.param_groups[0]["alpha"] == 0.2 and fptt.param_groups[1]["alpha"] == 0.1
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        fptt.step()
    saved = fptt.state_dict()
    other = FPTT([{"params": [model.weight]}, {"params": [model.bias]}])
    other.load_state_dict(saved)
    assert other.param_groups[0]["alpha"] == 0.2
    for p in model.parameters():
        for key in ("w_bar", "lam"):
            torch.testing.assert_close(other.state[p][key], fptt.state[p][key])


def test_works_with_any_optimizer() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    fptt = FPTT(model.parameters())
    for optimizer in (torch.optim.Adam, torch.optim.RMSprop, torch.optim.AdamW):
        opt = optimizer(model.parameters(), lr=1e-2)
        opt.zero_grad()
        (model(torch.randn(5, 4)).pow(2).mean() + fptt.penalty()).backward()
        opt.step()
        fptt.step()
    assert all(torch.isfinite(st["w_bar"]).all() for st in fptt.state.values())


@pytest.mark.parametrize("kwargs", [{"alpha": 0.0}, {"beta": 0.0}, {"beta": 1.5}])
def test_bad_hyperparameters_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        FPTT([_param([1.0])], **kwargs)
