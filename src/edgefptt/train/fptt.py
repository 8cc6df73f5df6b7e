"""The FPTT state: a running average W_bar and a multiplier lam per parameter tensor.

Kag & Saligrama (ICML 2021) train each partition p on

    l_p(W) + R(W),   R(W) = -c * <W, lam> + alpha/2 * ||W - W_bar||^2

and after the optimizer step update

    lam   <- lam - alpha * (W - W_bar)
    W_bar <- (1 - beta) * W_bar + beta * W - (beta / alpha) * lam

This object keeps W_bar and lam (always float32) and works beside any torch optimizer, the way
``torch.optim.swa_utils.AveragedModel`` works beside one: call :meth:`penalty` (or
:meth:`add_penalty_grad_`) before the optimizer step and :meth:`step` after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from edgefptt.errors import ConfigError

_DEFAULTS = {"alpha": 0.1, "beta": 0.5, "linear_coef": 1.0}


class FPTT:
    """FPTT regularizer state over parameters or parameter groups.

    Args:
        params: an iterable of tensors, or of dicts with a ``params`` key (param groups; a group
            may override ``alpha``, ``beta`` or ``linear_coef``).
        alpha: weight of the proximal term and step of the multiplier update.
        beta: averaging rate of W_bar (1/2 in every published run).
        linear_coef: c in R(W); 1 in the reference code, 1/2 in the paper's written formula.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        alpha: float = 0.1,
        beta: float = 0.5,
        linear_coef: float = 1.0,
    ) -> None:
        defaults = {"alpha": alpha, "beta": beta, "linear_coef": linear_coef}
        items = list(params)
        if not items:
            raise ConfigError("FPTT got an empty parameter list; pass model.parameters()")
        if not isinstance(items[0], dict):
            items = [{"params": items}]
        self.param_groups: list[dict[str, Any]] = []
        seen: set[int] = set()
        for raw in items:
            if not isinstance(raw, dict) or "params" not in raw:
                raise ConfigError("FPTT param groups must be dicts with a 'params' key")
            group = {**defaults, **{k: v for k, v in raw.items() if k in _DEFAULTS}}
            _check_hyper(group)
            tensors = [raw["params"]] if torch.is_tensor(raw["params"]) else list(raw["params"])
            for p in tensors:
                if not isinstance(p, torch.Tensor):
                    raise ConfigError(f"FPTT expects tensors, got {type(p).__name__}")
                if id(p) in seen:
                    raise ConfigError("a parameter appears in more than one FPTT param group")
                seen.add(id(p))
            group["params"] = tensors
            self.param_groups.append(group)
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        for p in self._params():
            self.state[p] = {
                "w_bar": p.detach().to(torch.float32).clone(),
                "lam": torch.zeros_like(p, dtype=torch.float32),
            }
        self._index_state()

    # ------------------------------------------------------------------ iteration helpers
    def _params(self) -> Iterator[torch.Tensor]:
        for group in self.param_groups:
            yield from group["params"]

    def _grouped(self) -> Iterator[tuple[dict[str, Any], torch.Tensor, dict[str, torch.Tensor]]]:
        for group in self.param_groups:
            for p in group["params"]:
                yield group, p, self.state[p]

    # ------------------------------------------------------------------ the regularizer
    def penalty(self) -> torch.Tensor:
        """R(W) summed over every parameter, differentiable with respect to W."""
        total = torch.zeros((), dtype=torch.float32, device=next(self._params()).device)
        for group, p, st in self._grouped():
            w = p.to(torch.float32)
            diff = w - st["w_bar"]
            total = total - group["linear_coef"] * torch.sum(w * st["lam"])
            total = total + 0.5 * group["alpha"] * torch.sum(diff * diff)
        return total

    @torch.no_grad()
    def penalty_grad(self, p: torch.Tensor) -> torch.Tensor:
        """grad R for one parameter: alpha * (W - W_bar) - c * lam (float32)."""
        for group in self.param_groups:
            for q in group["params"]:
                if q is p:
                    st = self.state[p]
                    g = (p.to(torch.float32) - st["w_bar"]).mul_(group["alpha"])
                    return g.sub_(st["lam"], alpha=group["linear_coef"])
        raise KeyError("parameter is not managed by this FPTT object")

    @torch.no_grad()
    def add_penalty_grad_(self) -> None:
        """Add grad R to each parameter's ``.grad`` in place (creating it if absent).

        Equivalent to ``penalty().backward()`` but without building a graph.
        """
        for group, (w_bars, lams, fast) in zip(self.param_groups, self._lists, strict=True):
            params = group["params"]
            grads = [p.grad for p in params]
            if any(g is None for g in grads):
                for i, p in enumerate(params):
                    if grads[i] is None:
                        p.grad = grads[i] = torch.zeros_like(p)
            if fast:
                # grad += alpha * W - alpha * W_bar - c * lam, as a few multi-tensor kernels
                torch._foreach_add_(grads, params, alpha=group["alpha"])
                torch._foreach_add_(grads, w_bars, alpha=-group["alpha"])
                torch._foreach_add_(grads, lams, alpha=-group["linear_coef"])
                continue
            for p, grad, w_bar, lam in zip(params, grads, w_bars, lams, strict=True):
                g = (p.to(torch.float32) - w_bar).mul_(group["alpha"])
                grad.add_(g.sub_(lam, alpha=group["linear_coef"]).to(grad.dtype))

    # ------------------------------------------------------------------ the state update
    @torch.no_grad()
    def step(self) -> None:
        """Update lam and W_bar from the current (just optimized) parameters."""
        for group, (w_bars, lams, fast) in zip(self.param_groups, self._lists, strict=True):
            alpha, beta = group["alpha"], group["beta"]
            params = group["params"]
            if fast:
                torch._foreach_add_(lams, params, alpha=-alpha)
                torch._foreach_add_(lams, w_bars, alpha=alpha)
                torch._foreach_lerp_(w_bars, params, beta)  # (1 - beta) W_bar + beta W
                torch._foreach_add_(w_bars, lams, alpha=-beta / alpha)
                continue
            for p, w_bar, lam in zip(params, w_bars, lams, strict=True):
                w = p.to(torch.float32)
                lam.sub_(w - w_bar, alpha=alpha)
                w_bar.mul_(1.0 - beta).add_(w, alpha=beta).sub_(lam, alpha=beta / alpha)

    def _index_state(self) -> None:
        """Per group: the W_bar and lam lists, and whether multi-tensor kernels apply
        (every parameter float32 and dense, like its W_bar and lam)."""
        self._lists = []
        for group in self.param_groups:
            params = group["params"]
            self._lists.append(
                (
                    [self.state[p]["w_bar"] for p in params],
                    [self.state[p]["lam"] for p in params],
                    all(p.dtype == torch.float32 and p.layout == torch.strided for p in params),
                )
            )

    @torch.no_grad()
    def reset_lambda_(self) -> None:
        """Set every lam to zero (the reference code does so at each epoch's end on MNIST)."""
        for st in self.state.values():
            st["lam"].zero_()

    # ------------------------------------------------------------------ using the average
    @contextmanager
    def average(self) -> Iterator[None]:
        """Inside the block the parameters hold W_bar; the originals come back on exit."""
        saved = []
        with torch.no_grad():
            for p, st in self.state.items():
                saved.append((p, p.detach().clone()))
                p.copy_(st["w_bar"].to(p.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for p, original in saved:
                    p.copy_(original)

    @torch.no_grad()
    def load_average_(self) -> None:
        """Copy W_bar into the parameters for good."""
        for p, st in self.state.items():
            p.copy_(st["w_bar"].to(p.dtype))

    # ------------------------------------------------------------------ bookkeeping
    def state_bytes(self) -> int:
        """Bytes held by W_bar and lam."""
        return sum(t.numel() * t.element_size() for st in self.state.values() for t in st.values())

    def state_dict(self) -> dict[str, Any]:
        """Like ``torch.optim.Optimizer.state_dict``: tensors keyed by parameter position."""
        groups = []
        index = 0
        state: dict[int, dict[str, torch.Tensor]] = {}
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                state[index] = {k: v.clone() for k, v in self.state[p].items()}
                ids.append(index)
                index += 1
            groups.append({**{k: group[k] for k in _DEFAULTS}, "params": ids})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore W_bar, lam and hyperparameters saved by :meth:`state_dict`."""
        groups = state_dict.get("param_groups")
        saved_state = state_dict.get("state")
        if not isinstance(groups, list) or not isinstance(saved_state, dict):
            raise ConfigError("not an FPTT state dict (missing 'state' or 'param_groups')")
        if len(groups) != len(self.param_groups) or any(
            len(g["params"]) != len(mine["params"])
            for g, mine in zip(groups, self.param_groups, strict=True)
        ):
            raise ConfigError("FPTT state dict does not match these parameter groups")
        for saved, mine in zip(groups, self.param_groups, strict=True):
            for key in _DEFAULTS:
                mine[key] = float(saved[key])
            _check_hyper(mine)
            for index, p in zip(saved["params"], mine["params"], strict=True):
                entry = saved_state[index]
                for key in ("w_bar", "lam"):
                    if entry[key].shape != p.shape:
                        raise ConfigError(
                            f"FPTT state '{key}' has shape {tuple(entry[key].shape)}, "
                            f"parameter has {tuple(p.shape)}"
                        )
                    self.state[p][key] = (
                        entry[key].detach().to(device=p.device, dtype=torch.float32, copy=True)
                    )
        self._index_state()

    def to(self, device: torch.device | str) -> FPTT:
        """Move W_bar and lam to ``device`` (after moving the parameters there); returns self."""
        for st in self.state.values():
            for key in ("w_bar", "lam"):
                st[key] = st[key].to(device)
        self._index_state()
        return self

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={group[k]}" for k in _DEFAULTS)
            lines.append(f"  group {i}: {len(group['params'])} tensors, {hyper}")
        return "\n".join([*lines, ")"])


def _check_hyper(group: dict[str, Any]) -> None:
    if not group["alpha"] > 0:
        raise ConfigError(f"FPTT alpha must be > 0 (got {group['alpha']})")
    if not 0 < group["beta"] <= 1:
        raise ConfigError(f"FPTT beta must be in (0, 1] (got {group['beta']})")


class OracleTargets:
    """The auxiliary "oracle" soft targets of the reference FPTT code's MNIST/CIFAR training.

    Kag & Saligrama's train.py (github.com/anilkagak2/FPTT) adds to partition p (of K, 0-based)
    the term (1 - (p+1)/K) * mean over batch and classes of -q * log_softmax(logits), where q is
    a soft target per sample. For the last partition q is the one-hot label (and its weight is
    zero). For the others q is the uniform distribution during the first ``uniform_epochs``
    epochs, then a table entry: for the label's class and partition p, the softmax output of
    the most recent misclassified training sample of that class (the first one in each batch
    order). The table starts at zeros and is updated at every partition but the last, after q
    has been read for the batch. This class keeps that table and says what q is.
    """

    def __init__(self, num_classes: int, num_partitions: int, uniform_epochs: int = 19) -> None:
        if num_classes < 2:
            raise ConfigError("the oracle loss needs a classifier with at least 2 classes")
        self.num_classes = num_classes
        self.num_partitions = num_partitions
        self.uniform_epochs = uniform_epochs
        self.table = torch.zeros(num_classes, num_partitions, num_classes, dtype=torch.float32)

    def weight(self, p: int) -> float:
        """The oracle term's weight in partition ``p``: 1 - (p+1)/K."""
        return 1.0 - (p + 1) / self.num_partitions

    def targets(self, labels: torch.Tensor, p: int, epoch: int) -> torch.Tensor:
        """q for each sample (B, C) in partition ``p`` of 0-based ``epoch`` (a copy)."""
        if p >= self.num_partitions - 1:
            return torch.nn.functional.one_hot(labels, self.num_classes).to(torch.float32)
        if epoch < self.uniform_epochs:
            return torch.full(
                (len(labels), self.num_classes), 1.0 / self.num_classes, device=labels.device
            )
        return self.table[labels.cpu(), p].to(labels.device)

    @torch.no_grad()
    def update(self, probs: torch.Tensor, labels: torch.Tensor, p: int) -> None:
        """Take, per class, the first misclassified sample's softmax ``probs`` of this batch."""
        if p >= self.num_partitions - 1:
            return
        probs = probs.detach().to("cpu", torch.float32)
        labels = labels.cpu()
        wrong = probs.argmax(dim=-1) != labels
        filled: set[int] = set()
        for j in torch.nonzero(wrong).flatten().tolist():
            label = int(labels[j])
            if label not in filled:
                self.table[label, p] = probs[j]
                filled.add(label)
                if len(filled) == self.num_classes:
                    break

    def loss(self, logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """mean(-q * log_softmax(logits)) over samples and classes (unweighted)."""
        log_probs = torch.nn.functional.log_softmax(logits.float(), dim=-1)
        return torch.mean(-q * log_probs)

    def state_dict(self) -> dict[str, Any]:
        return {"table": self.table.clone(), "uniform_epochs": self.uniform_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        table = state["table"]
        if tuple(table.shape) != tuple(self.table.shape):
            raise ConfigError(
                f"oracle table has shape {tuple(table.shape)}, expected {tuple(self.table.shape)}"
            )
        self.table = table.detach().to(torch.float32, copy=True)
        self.uniform_epochs = int(state["uniform_epochs"])
