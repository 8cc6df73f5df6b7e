"""Measuring what training holds in memory.

Activation memory is measured, not estimated: while a partition's forward pass runs, a
``saved_tensors_hooks`` pair sees every tensor autograd keeps for the backward pass. Views of
one storage are counted once by taking the union of the byte ranges they cover, and storages
that belong to parameters are left out (they are parameter state, counted separately).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch


def _byte_range(t: torch.Tensor) -> tuple[int, int]:
    """The [start, stop) bytes of its storage that a strided tensor can touch."""
    if t.numel() == 0:
        return (0, 0)
    size = t.element_size()
    start = t.storage_offset()
    span = sum((n - 1) * abs(s) for n, s in zip(t.shape, t.stride(), strict=True))
    return (start * size, (start + span + 1) * size)


def _union_length(ranges: list[tuple[int, int]]) -> int:
    total = 0
    end = -1
    for start, stop in sorted(ranges):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


class SavedTensorMeter:
    """Counts the distinct bytes autograd saves for backward inside :meth:`measure` blocks."""

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        self._excluded = {p.untyped_storage().data_ptr() for p in exclude}
        self._ranges: dict[int, list[tuple[int, int]]] = {}

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key not in self._excluded and storage.nbytes() > 0:
            self._ranges.setdefault(key, []).append(_byte_range(t))
        return t

    @staticmethod
    def _unpack(t: torch.Tensor) -> torch.Tensor:
        return t

    @contextmanager
    def measure(self) -> Iterator[None]:
        """Start a fresh count; tensors saved inside the block are recorded."""
        self._ranges = {}
        with torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack):
            yield

    @property
    def saved_bytes(self) -> int:
        """Distinct bytes saved during the last :meth:`measure` block."""
        return sum(_union_length(r) for r in self._ranges.values())


class CudaPeakMeter:
    """Peak CUDA memory allocated in :meth:`measure` blocks, above the level at their start.

    On a GPU this is what a partition's forward pass adds to the allocator's peak: the tensors
    saved for backward plus the kernels' transient buffers (cuDNN workspaces among them). On
    any other device it measures nothing and stays 0.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes = 0

    @contextmanager
    def measure(self, enabled: bool = True) -> Iterator[None]:
        if not enabled or self.device.type != "cuda":
            yield
            return
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        start = torch.cuda.memory_allocated(self.device)
        yield
        torch.cuda.synchronize(self.device)
        self.peak_bytes = max(self.peak_bytes, torch.cuda.max_memory_allocated(self.device) - start)


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def parameter_state_bytes(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, fptt_state_bytes: int = 0
) -> dict[str, int]:
    """Bytes of weights, gradients (one per trainable weight), optimizer state and FPTT state."""
    params = [p for p in model.parameters() if p.requires_grad]
    weights = tensor_bytes(params)
    optimizer_bytes = tensor_bytes(
        v for st in optimizer.state.values() for v in st.values() if torch.is_tensor(v)
    )
    breakdown = {
        "weights_bytes": weights,
        "gradients_bytes": weights,
        "optimizer_bytes": optimizer_bytes,
        "fptt_bytes": fptt_state_bytes,
    }
    breakdown["total_bytes"] = sum(breakdown.values())
    return breakdown
