"""Timing one training pass: the generated C against the same pass in PyTorch."""

from __future__ import annotations

import time

import numpy as np
import torch

from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.train.fptt import FPTT


def torch_pass_s(
    net: NetworkSpec,
    run: RunSpec,
    x: np.ndarray,
    y: np.ndarray,
    passes: int,
    flush_denormal: bool = False,
) -> float:
    """Fastest wall time of one FPTT pass with torch.nn.LSTM per partition."""
    torch.set_num_threads(1)
    if not torch.set_flush_denormal(flush_denormal) and flush_denormal:
        raise RuntimeError("torch.set_flush_denormal(True) is not supported on this CPU")
    try:
        torch.manual_seed(0)
        lstm = torch.nn.LSTM(net.input_size, net.hidden_size, batch_first=True)
        readout = torch.nn.Linear(net.hidden_size, net.num_classes)
        params = [*lstm.parameters(), *readout.parameters()]
        sgd = torch.optim.SGD(params, lr=run.learning_rate)
        fptt = FPTT(params, alpha=run.alpha, beta=run.beta)
        xs = torch.as_tensor(x, dtype=torch.float32)
        ys = torch.as_tensor(y, dtype=torch.long)
        length = run.seq_len // run.partitions

        def one_pass() -> None:
            state = None
            for p in range(run.partitions):
                out, (h, c) = lstm(xs[:, p * length : (p + 1) * length], state)
                loss = torch.nn.functional.cross_entropy(readout(out[:, -1]), ys)
                sgd.zero_grad()
                (loss + fptt.penalty()).backward()
                sgd.step()
                fptt.step()
                state = (h.detach(), c.detach())

        one_pass()  # warm up
        best = float("inf")
        for _ in range(passes):
            start = time.perf_counter()
            one_pass()
            best = min(best, time.perf_counter() - start)
        return best
    finally:
        torch.set_flush_denormal(False)
