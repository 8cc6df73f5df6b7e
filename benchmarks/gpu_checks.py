"""The checks that need a GPU, as one short script that prints one JSON document.

- seconds per training pass against K for the seed paper's workload on the GPU (fp32 and bf16
  autocast), with the peak CUDA memory of one partition's forward pass;
- activation memory on the GPU: the saved-tensor measurement beside
  torch.cuda.max_memory_allocated, for FPTT at K = 1 and 8 on pixel digits;
- bf16 autocast training against fp32 on pixel digits (a few epochs);
- with 2 GPUs: one process against two data-parallel processes (nccl) with the same global
  batch: final weights and losses equal within float tolerance.

Without CUDA it prints {"cuda": false, ...} and exits 0.

    python benchmarks/gpu_checks.py [--only passes,memory,bf16,ddp] [--ks 1,14,112,784]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def _passes(ks: list[int]) -> list[dict[str, Any]]:
    from edgefptt.report.gpu_section import pass_row

    device = torch.device("cuda", 0)
    return [pass_row(k, device) for k in ks]


def _fit(**options: Any) -> Any:
    from edgefptt.train.config import make_config
    from edgefptt.train.loop import fit

    return fit(make_config(dataset="digits", **options))


def _memory() -> list[dict[str, Any]]:
    rows = []
    for k in (1, 8):
        result = _fit(algorithm="fptt", partitions=k, epochs=1, device="cuda")
        record = result.history[0]
        rows.append(
            {
                "partitions": k,
                "saved_tensor_bytes": record["peak_activation_bytes"],
                "cuda_peak_forward_bytes": record.get("peak_cuda_bytes"),
            }
        )
    return rows


def _bf16(epochs: int) -> dict[str, Any]:
    out = {}
    for precision in ("fp32", "bf16"):
        started = time.perf_counter()
        result = _fit(algorithm="fptt", partitions=8, epochs=epochs, device="cuda",
                      precision=precision)  # fmt: skip
        out[precision] = {
            "test_accuracy": result.final_test_accuracy,
            "train_loss": result.history[-1]["train_loss"],
            "peak_activation_bytes": result.peak_activation_bytes,
            "seconds": time.perf_counter() - started,
        }
    return out


DDP_OPTIONS = {
    "dataset": "digits",
    "limit": 256,
    "algorithm": "fptt",
    "partitions": 8,
    "hidden": 32,
    "epochs": 2,
    "batch_size": 32,
    "schedule": "constant",
    "device": "cuda",
}


def _ddp_worker(rank: int, rendezvous: str, out: str) -> None:
    import torch.distributed as dist

    from edgefptt.train.config import make_config
    from edgefptt.train.loop import fit

    torch.cuda.set_device(rank)
    os.environ["LOCAL_RANK"] = str(rank)
    dist.init_process_group("nccl", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        result = fit(make_config(**DDP_OPTIONS))
        torch.save(
            {"model": result.model.state_dict(), "history": result.history},
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def _ddp() -> dict[str, Any]:
    if torch.cuda.device_count() < 2:
        return {"skipped": f"needs 2 GPUs, {torch.cuda.device_count()} visible"}
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as work:
        mp.start_processes(_ddp_worker, args=(f"{work}/rdv", work), nprocs=2, join=True,
                           start_method="spawn")  # fmt: skip
        two = torch.load(Path(work) / "rank0.pt", weights_only=True)
    single = _fit(**{k: v for k, v in DDP_OPTIONS.items() if k != "dataset"})
    ref = single.model.state_dict()
    worst = max(float((two["model"][k] - ref[k]).abs().max()) for k in ref)
    pairs = zip(two["history"], single.history, strict=True)
    loss_diff = max(abs(a["train_loss"] - b["train_loss"]) for a, b in pairs)
    return {
        "max_abs_weight_diff": worst,
        "max_abs_loss_diff": loss_diff,
        "ddp_equal": worst < 1e-4 and loss_diff < 1e-4,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="passes,memory,bf16,ddp")
    parser.add_argument("--ks", default="1,14,112,784")
    parser.add_argument("--bf16-epochs", type=int, default=3)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"cuda": False, "skipped": "no CUDA device visible to PyTorch "
                          f"{torch.__version__}; nothing to check"}, indent=2))  # fmt: skip
        return 0
    wanted = set(args.only.split(","))
    document: dict[str, Any] = {
        "cuda": True,
        "gpu": torch.cuda.get_device_name(0),
        "gpus": torch.cuda.device_count(),
        "torch": torch.__version__,
    }
    if "passes" in wanted:
        document["passes"] = _passes([int(k) for k in args.ks.split(",")])
    if "memory" in wanted:
        document["activation_memory"] = _memory()
    if "bf16" in wanted:
        document["bf16_training"] = _bf16(args.bf16_epochs)
    if "ddp" in wanted:
        document["ddp"] = _ddp()
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
