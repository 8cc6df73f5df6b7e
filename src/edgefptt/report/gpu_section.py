"""Report section, shown only where a CUDA GPU is present: seconds per training pass on it.

One pass is the seed paper's workload (an LSTM with 128 units over a 784-step pixel sequence,
batch 4, 10 classes): K partitions, each with a forward pass, the last-step cross-entropy,
backward, the FPTT penalty, an SGD step (0.01) and the FPTT update (alpha 0.1, beta 0.5),
state carried detached. Timed with CUDA synchronisation, fastest of several passes, in fp32 and
under bf16 autocast; beside it the generated C on this host's CPU (the c_runtime section).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from edgefptt.report.section import Rendered, ReportContext, Table
from edgefptt.train.distributed import autocast
from edgefptt.train.fptt import FPTT
from edgefptt.train.memory import CudaPeakMeter

# The seed paper's S-MNIST workload (I, H, C, B, T) and its update.
PAPER = {"input": 1, "hidden": 128, "classes": 10, "batch": 4, "seq_len": 784}
LR, ALPHA, BETA = 0.01, 0.1, 0.5
QUICK_KS = (1, 14, 112)
FULL_KS = (1, 2, 7, 14, 28, 56, 112, 392, 784)


def available() -> bool:
    return torch.cuda.is_available()


def pass_seconds(
    k: int, device: torch.device, precision: str = "fp32", passes: int = 5
) -> dict[str, Any]:
    """Fastest seconds of one FPTT training pass at K on ``device``, and its peak memory."""
    from edgefptt.models import SequenceClassifier

    torch.manual_seed(0)
    model = SequenceClassifier(PAPER["input"], PAPER["hidden"], PAPER["classes"]).to(device)
    params = list(model.parameters())
    sgd = torch.optim.SGD(params, lr=LR)
    fptt = FPTT(params, alpha=ALPHA, beta=BETA)
    x = torch.rand(PAPER["batch"], PAPER["seq_len"], PAPER["input"], device=device)
    y = torch.randint(0, PAPER["classes"], (PAPER["batch"],), device=device)
    length = PAPER["seq_len"] // k
    meter = CudaPeakMeter(device)

    def one_pass(measure: bool = False) -> None:
        state = None
        for p in range(k):
            sgd.zero_grad(set_to_none=True)
            with meter.measure(measure), autocast(device, precision):
                logits, state = model(x[:, p * length : (p + 1) * length], state)
                loss = torch.nn.functional.cross_entropy(logits, y)
            loss.backward()
            fptt.add_penalty_grad_()
            sgd.step()
            fptt.step()
            state = tuple(s.detach() for s in state)

    one_pass(measure=True)  # warm-up (cuDNN plans, allocator) and the memory measurement
    best = float("inf")
    for _ in range(passes):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        one_pass()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "peak_forward_bytes": meter.peak_bytes}


def pass_row(k: int, device: torch.device) -> dict[str, Any]:
    """Seconds and forward peak memory of one pass at K in fp32 and in bf16 autocast."""
    fp32 = pass_seconds(k, device, "fp32")
    bf16 = pass_seconds(k, device, "bf16")
    return {
        "partitions": k,
        "fp32_s": fp32["seconds"],
        "bf16_s": bf16["seconds"],
        "fp32_peak_forward_bytes": fp32["peak_forward_bytes"],
        "bf16_peak_forward_bytes": bf16["peak_forward_bytes"],
    }


def compute(ctx: ReportContext) -> dict[str, Any]:
    if not available():
        raise RuntimeError("no CUDA GPU on this machine; the section is left out without one")
    device = torch.device("cuda", torch.cuda.current_device())
    ks = QUICK_KS if ctx.settings.get("quick") else FULL_KS
    rows = []
    for i, k in enumerate(ks):
        ctx.progress(f"K={k}", i / len(ks))
        rows.append(pass_row(k, device))
    return {
        "gpu": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "workload": PAPER,
        "rows": rows,
    }


def render(results: dict[str, Any], ctx: ReportContext) -> Rendered:
    c_rows = {r["partitions"]: r for r in (ctx.shared.get("c_runtime") or {}).get("rows", [])}
    table = Table(
        f"One FPTT training pass of the paper's workload on {results['gpu']} "
        f"(torch {results['torch']}), and the generated C on this host's CPU",
        ["K", "GPU fp32 (ms)", "GPU bf16 (ms)", "GPU fp32 peak forward", "C on host CPU (ms)"],
        [
            [
                str(r["partitions"]),
                f"{1000 * r['fp32_s']:.2f}",
                f"{1000 * r['bf16_s']:.2f}",
                f"{r['fp32_peak_forward_bytes']:,} B",
                f"{1000 * c_rows[r['partitions']]['c_pass_s']:.2f}"
                if r["partitions"] in c_rows
                else "-",
            ]
            for r in results["rows"]
        ],
    )
    return Rendered(
        source="measured here (this machine's GPU; C from the c_runtime section)",
        commands=["python benchmarks/gpu_checks.py"],
        paragraphs=[
            "Seconds per pass are the fastest of 5 passes after a warm-up, with the GPU "
            "synchronised around each; bf16 is autocast (weights, gradients and FPTT state "
            "stay float32). Peak forward is torch.cuda.max_memory_allocated over one "
            "partition's forward pass, above what was allocated before it.",
            "The seed paper also times this pass on cloud GPUs (T4, L4, V100). Those figures "
            "are not among the reference material this project carries, so they are not "
            "shown here rather than quoted from memory.",
        ],
        tables=[table],
    )
