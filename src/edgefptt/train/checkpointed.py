"""Checkpointed BPTT on the host: exact BPTT gradients, only segment-boundary states kept.

The sequence is cut into S segments (the partition rule of :func:`partition_bounds`). The
forward pass runs segments 0..S-2 without building a graph and keeps the recurrent state each
segment ends with (for a ``mean`` readout also the running sum of the top layer's outputs);
only the last segment runs with autograd, up to the loss. The backward pass then walks the
segments from the last to the first: each earlier segment is run again, with autograd, from
its stored starting state, and back-propagated with the gradient that arrived at its end
state. Parameter gradients accumulate in ``.grad`` as one ``loss.backward()`` over the whole
sequence would leave them: the gradient is exact, at the price of one more forward pass over
the first S-1 segments.

The fused ``nn.LSTM`` / ``nn.GRU`` run whole segments (any number of layers), so this is our
own recomputation rather than ``torch.utils.checkpoint``: it keeps the activation-memory
measurement honest. While segment s is recomputed and back-propagated, memory holds the
starting states of segments 1..s and what autograd saves for that one segment; the peak over
segments is what :func:`checkpointed_backward` reports: the bytes of the stored states plus
the distinct bytes a ``SavedTensorMeter`` sees saved for the segment (parameters and the
stored states themselves left out, so nothing is counted twice).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from edgefptt.config import default_segments
from edgefptt.errors import ConfigError
from edgefptt.models import RecurrentState, SequenceClassifier
from edgefptt.train.memory import SavedTensorMeter, tensor_bytes
from edgefptt.train.partition import partition_bounds


def segment_bounds(seq_len: int, segments: int | None) -> list[tuple[int, int]]:
    """The (start, stop) of each segment; ``segments`` None means :func:`default_segments`."""
    count = default_segments(seq_len) if segments is None else segments
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= seq_len:
        raise ConfigError(
            f"--segments must be between 1 and the sequence length T={seq_len} (got {count})"
        )
    return partition_bounds(seq_len, count)


@dataclass
class CheckpointedStep:
    """What one checkpointed forward and backward pass produced.

    loss and outputs are detached; peak_bytes is 0 unless the pass was measured.
    """

    loss: torch.Tensor
    outputs: torch.Tensor
    peak_bytes: int


def _tensors(state: RecurrentState) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def _leaf(state: RecurrentState) -> RecurrentState:
    """A detached copy of ``state`` that records its gradient."""
    if isinstance(state, tuple):
        return tuple(t.detach().requires_grad_() for t in state)  # type: ignore[return-value]
    return state.detach().requires_grad_()


def checkpointed_backward(
    model: SequenceClassifier,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    bounds: list[tuple[int, int]],
    measure: bool = False,
) -> CheckpointedStep:
    """Forward ``x`` (B, T, I) through ``model`` in segments and back-propagate ``loss_fn``.

    ``loss_fn`` maps the model's outputs (B, C) to a scalar loss. Gradients accumulate into
    the parameters' ``.grad`` (zero them first). With ``measure`` the peak activation memory
    is measured: the stored boundary states plus what autograd saves for one segment.
    """
    rnn, mean = model.rnn, model.readout_mode == "mean"
    steps = x.shape[1]
    # Forward without a graph: the state each segment starts from (None for the first).
    starts: list[RecurrentState | None] = [None]
    total = None  # running sum over time of the top layer's output (mean readout)
    with torch.no_grad():
        for start, stop in bounds[:-1]:
            hidden, state = rnn(x[:, start:stop], starts[-1])
            if mean:
                part = hidden.sum(dim=1)
                total = part if total is None else total + part
            starts.append(state)
    stored = [tensor_bytes(_tensors(s)) for s in starts[1:]]  # what stays between segments
    kept = [t for s in starts[1:] for t in _tensors(s)]
    meter = SavedTensorMeter(exclude=[*model.parameters(), *kept]) if measure else None
    measured = meter.measure if meter is not None else contextlib.nullcontext
    peak = 0

    # The last segment, with autograd, up to the loss.
    start, stop = bounds[-1]
    state_in = None if starts[-1] is None else _leaf(starts[-1])
    total_in = None if total is None else total.detach().requires_grad_()
    with measured():
        hidden, _ = rnn(x[:, start:stop], state_in)
        if mean:
            summed = hidden.sum(dim=1) if total_in is None else total_in + hidden.sum(dim=1)
            features = summed / steps
        else:
            features = hidden[:, -1]
        outputs = model.readout(features)
        loss = loss_fn(outputs)
    if meter is not None:
        peak = meter.saved_bytes + sum(stored)
    loss.backward()

    # Earlier segments, last to first: recompute from the stored state, back-propagate.
    grad_total = None if total_in is None else total_in.grad
    for s in range(len(bounds) - 2, -1, -1):
        assert state_in is not None  # segment s + 1 started from a stored state
        grads_out = [t.grad for t in _tensors(state_in)]
        start, stop = bounds[s]
        state_in = None if starts[s] is None else _leaf(starts[s])
        with measured():
            hidden, state_out = rnn(x[:, start:stop], state_in)
        if meter is not None:
            peak = max(peak, meter.saved_bytes + sum(stored[:s]))
        roots = list(_tensors(state_out))
        grads = [
            torch.zeros_like(t) if g is None else g for t, g in zip(roots, grads_out, strict=True)
        ]
        if grad_total is not None:
            roots.append(hidden.sum(dim=1))
            grads.append(grad_total)
        torch.autograd.backward(roots, grads)
        starts[s + 1] = None  # segment s + 1's starting state is no longer needed
    return CheckpointedStep(loss.detach(), outputs.detach(), peak)
