"""Where training runs: the torch device, bf16 autocast, and data parallelism over processes.

Data parallelism follows torchrun's conventions (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and a
``MASTER_ADDR``/``MASTER_PORT`` rendezvous in the environment). Every process holds the whole
model, FPTT state and optimizer; each global batch is cut into one contiguous shard per rank.
After every partition's backward pass the gradients are summed over ranks with one
``all_reduce`` (each rank scales its shard's mean loss by its share of the global batch), so
every rank then holds the gradient of the global batch's mean loss. The FPTT penalty gradient,
clipping, the optimizer step and the FPTT state update run on identical numbers in every rank,
so the weights, W_bar and lambda stay identical without being sent anywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from edgefptt.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
PRECISION_CHOICES = ("fp32", "bf16")


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    """The torch device of ``--device`` (auto: CUDA when present); ConfigError if unavailable."""
    if choice not in DEVICE_CHOICES:
        raise ConfigError(f"unknown --device {choice!r}; choose auto, cpu or cuda")
    has_cuda = torch.cuda.is_available()
    if choice == "cuda" and not has_cuda:
        raise ConfigError(
            "--device cuda: no CUDA device is visible to PyTorch on this machine "
            f"(torch {torch.__version__}); use --device cpu or auto"
        )
    if choice == "cpu" or not has_cuda:
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ConfigError(
            f"process with local rank {local_rank} has no GPU of its own ({count} visible); "
            "start at most one process per GPU (torchrun --nproc_per_node)"
        )
    return torch.device("cuda", local_rank)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast on ``device`` for ``precision == 'bf16'``; a no-op for fp32.

    Parameters, gradients, optimizer state and FPTT's W_bar and lambda stay float32: autocast
    only runs the matmuls and the recurrent cells in bf16.
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ConfigError(f"unknown --precision {precision!r}; choose fp32 or bf16")
    if not torch.amp.autocast_mode.is_autocast_available(device.type):
        raise ConfigError(
            f"--precision bf16: this PyTorch has no autocast on {device.type}; use fp32"
        )
    return torch.autocast(device.type, dtype=torch.bfloat16)


# ---------------------------------------------------------------------------- process groups
def launched_by_torchrun() -> bool:
    """True when torchrun (or an equivalent launcher) started more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env(device_choice: str, timeout_s: float = 1800.0) -> bool:
    """Join the process group torchrun describes; False when started as a single process.

    The backend is nccl for CUDA and gloo for CPU training.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return dist.is_initialized()
    device = resolve_device(device_choice, local_rank())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo",
        timeout=dt.timedelta(seconds=timeout_s),
    )
    return True


def shutdown() -> None:
    """Leave the process group (if any)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@dataclass(frozen=True)
class Parallel:
    """This process's place among the training processes (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> Parallel:
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ sharding
    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous part of a global batch (parts differ by at most one)."""
        if not self.active:
            return index
        return index.tensor_split(self.world_size)[self.rank]

    def shard_bounds(self, n: int) -> tuple[int, int]:
        """[start, stop) of this rank's contiguous part of ``n`` items."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (1 if self.rank < extra else 0)

    # ------------------------------------------------------------------ collectives
    def sum(self, values: Sequence[float], device: torch.device | None = None) -> list[float]:
        """Element-wise sum of ``values`` over ranks (float64)."""
        if not self.active:
            return [float(v) for v in values]
        t = torch.tensor(list(values), dtype=torch.float64, device=device or self._device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [float(v) for v in t.cpu()]

    def max(self, value: float) -> float:
        if not self.active:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64, device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any (e.g. a Ctrl-C seen by one)."""
        return self.max(1.0 if flag else 0.0) > 0 if self.active else flag

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def reduce_gradients(
        self, params: Sequence[torch.Tensor], extra: Sequence[float] = ()
    ) -> list[float]:
        """Sum every parameter's ``.grad`` over ranks in place, with ``extra`` numbers riding
        along in the same ``all_reduce``; returns the summed ``extra``.

        A parameter without a gradient (an empty shard) counts as zeros and gets one.
        """
        if not self.active:
            return [float(v) for v in extra]
        device = params[0].device
        grads = [
            p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=device)
            for p in params
        ]
        flat = torch.cat([g.to(torch.float32) for g in grads])
        tail = torch.tensor(list(extra), dtype=torch.float32, device=device)
        buffer = torch.cat([flat, tail])
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        offset = 0
        for p in params:
            chunk = buffer[offset : offset + p.numel()].view_as(p)
            if p.grad is None:
                p.grad = chunk.to(p.dtype).clone()
            else:
                p.grad.copy_(chunk)
            offset += p.numel()
        return [float(v) for v in buffer[offset:].cpu()]

    def gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's ``rows`` (any first-dimension length) in rank order."""
        if not self.active:
            return rows
        count = torch.tensor([rows.shape[0]], device=rows.device)
        counts = [torch.zeros_like(count) for _ in range(self.world_size)]
        dist.all_gather(counts, count)
        longest = int(max(int(c) for c in counts))
        padded = torch.zeros((longest, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
        padded[: rows.shape[0]] = rows
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([part[: int(c)] for part, c in zip(parts, counts, strict=True)])

    def _device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def evaluate_sharded(
    evaluate: Callable[..., tuple[float, float]],
    model: torch.nn.Module,
    data: Any,
    batch_size: int,
    parallel: Parallel,
) -> tuple[float, float]:
    """``evaluate(model, data, batch_size)`` with the test split cut into one part per rank;
    the mean loss and accuracy of the whole split, the same on every rank."""
    if not parallel.active:
        return evaluate(model, data, batch_size)
    start, stop = parallel.shard_bounds(len(data.test_y))
    n = stop - start
    loss, accuracy = 0.0, 0.0
    if n > 0:
        part = dataclasses.replace(
            data, test_x=data.test_x[start:stop], test_y=data.test_y[start:stop]
        )
        loss, accuracy = evaluate(model, part, batch_size)
    total_loss, total_correct, total = parallel.sum([loss * n, accuracy * n, n])
    return total_loss / total, total_correct / total


def to_cpu(value: object) -> object:
    """A copy of a nested structure with every tensor moved to the CPU (for checkpoints)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_cpu(v) for v in value]
    if isinstance(value, tuple):
        return tuple(to_cpu(v) for v in value)
    return value
