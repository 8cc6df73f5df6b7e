"""Cutting sequences into FPTT partitions and cutting the graph at their boundaries."""

from __future__ import annotations

from typing import Any

import torch

from edgefptt.errors import ConfigError


def partition_bounds(seq_len: int, num_partitions: int) -> list[tuple[int, int]]:
    """The (start, stop) step ranges of ``num_partitions`` contiguous parts of ``seq_len`` steps.

    When K does not divide T the parts differ by at most one step and the longer ones come
    first, so the last part is the shorter one (T = 10, K = 4 gives 3, 3, 2, 2). Every step
    belongs to exactly one part and there are always exactly K parts.
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ConfigError(f"sequence length must be a positive integer (got {seq_len!r})")
    if isinstance(num_partitions, bool) or not isinstance(num_partitions, int):
        raise ConfigError(f"number of partitions must be an integer (got {num_partitions!r})")
    if num_partitions < 1:
        raise ConfigError(f"number of partitions K must be at least 1 (got {num_partitions})")
    if num_partitions > seq_len:
        raise ConfigError(
            f"number of partitions K={num_partitions} exceeds the sequence length T={seq_len}; "
            f"choose K <= {seq_len}"
        )
    base, extra = divmod(seq_len, num_partitions)
    bounds = []
    start = 0
    for p in range(num_partitions):
        length = base + (1 if p < extra else 0)
        bounds.append((start, start + length))
        start += length
    return bounds


def partitions(x: torch.Tensor, num_partitions: int) -> list[torch.Tensor]:
    """Split a (B, T, ...) batch along time into K contiguous views.

    Part lengths follow :func:`partition_bounds`.
    """
    if x.dim() < 2:
        raise ConfigError(f"expected a (batch, time, ...) tensor, got shape {tuple(x.shape)}")
    return [x[:, start:stop] for start, stop in partition_bounds(x.shape[1], num_partitions)]


def detach_state(state: Any) -> Any:
    """Detach every tensor in a nested recurrent state (tensors, tuples, lists, dicts, None)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, tuple):
        return tuple(detach_state(s) for s in state)
    if isinstance(state, list):
        return [detach_state(s) for s in state]
    if isinstance(state, dict):
        return {k: detach_state(v) for k, v in state.items()}
    raise TypeError(f"cannot detach a recurrent state of type {type(state).__name__}")
