"""Data-parallel training over 2 CPU processes (gloo) against one process, same global batch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from edgefptt.data.base import SequenceData
from edgefptt.train.checkpoint import load_checkpoint
from edgefptt.train.config import make_config
from edgefptt.train.distributed import Parallel
from edgefptt.train.loop import fit

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch without gloo"
)

# 29 samples in batches of 7: full batches split 4/3 over two ranks (unequal shards) and a
# last batch of one sample leaves rank 1 an empty shard.
OPTIONS: dict[str, Any] = {
    "algorithm": "fptt",
    "partitions": 3,
    "hidden": 8,
    "batch_size": 7,
    "optimizer": "adam",
    "lr": 0.01,
    "schedule": "constant",
    "clip": 0.5,
    "oracle_loss": True,
    "oracle_uniform_epochs": 0,  # the oracle table (gathered over ranks) is used at once
    "device": "cpu",
    "seed": 3,
}


def _data() -> SequenceData:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(29 + 11, 12, 2, generator=g)
    y = (x[:, 0, 0] > 0).long() + 2 * (x[:, -1, 1] > 0).long()
    return SequenceData("tiny", x[:29], y[:29], x[29:], y[29:], num_classes=4)


def _snapshot(result: Any) -> dict[str, Any]:
    return {
        "model": {k: v.clone() for k, v in result.model.state_dict().items()},
        "fptt": result.fptt.state_dict(),
        "history": result.history,
        "world_size": result.world_size,
    }


def _worker(rank: int, world: int, rendezvous: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        run_dir = Path(out) / "run"
        first = fit(make_config(**OPTIONS, epochs=1), _data(), out_dir=run_dir)
        # resume the same directory for a second epoch (constant lr: epochs may grow)
        second = fit(make_config(**OPTIONS, epochs=2), _data(), out_dir=run_dir, resume=True)
        torch.save(
            {"first": _snapshot(first), "second": _snapshot(second)},
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def _fptt_tensors(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {f"{i}.{k}": v for i, entry in state["state"].items() for k, v in entry.items()}


def test_two_processes_train_like_one(tmp_path: Path) -> None:
    mp.start_processes(
        _worker,
        args=(2, str(tmp_path / "rendezvous"), str(tmp_path)),
        nprocs=2,
        join=True,
        start_method="fork",
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert [r["second"]["world_size"] for r in ranks] == [2, 2]
    # every rank holds bit-identical weights, W_bar and lambda
    for part in ("first", "second"):
        for key, value in ranks[0][part]["model"].items():
            assert torch.equal(value, ranks[1][part]["model"][key]), key
        a, b = (_fptt_tensors(r[part]["fptt"]) for r in ranks)
        assert all(torch.equal(a[k], b[k]) for k in a)

    # one process, same global batch, two epochs straight through
    single = _snapshot(fit(make_config(**OPTIONS, epochs=2), _data()))
    assert single["world_size"] == 1
    two = ranks[0]["second"]
    _assert_close(two["model"], single["model"])
    _assert_close(_fptt_tensors(two["fptt"]), _fptt_tensors(single["fptt"]))
    assert len(two["history"]) == len(single["history"]) == 2
    for mine, ref in zip(two["history"], single["history"], strict=True):
        for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
            assert mine[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), key

    # rank 0 wrote one checkpoint (no temporary files left) holding the final weights
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt", "metrics.jsonl"]
    saved = load_checkpoint(run_dir / "checkpoint.pt")
    assert saved["epoch"] == 2
    for key, value in two["model"].items():
        assert torch.equal(saved["model"][key], value), key


def test_shards_are_disjoint_and_cover_the_batch() -> None:
    index = torch.arange(11)
    for world in (1, 2, 3, 4):
        parts = [Parallel(rank, world).shard(index) for rank in range(world)]
        assert torch.equal(torch.cat(parts), index)
        bounds = [Parallel(rank, world).shard_bounds(11) for rank in range(world)]
        assert [len(p) for p in parts] == [stop - start for start, stop in bounds]


@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 GPUs"
)
def test_nccl_two_gpus_match_one() -> None:  # pragma: no cover - needs two GPUs
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_checks.py"
    done = subprocess.run(
        [sys.executable, str(script), "--only", "ddp"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr
    assert '"ddp_equal": true' in done.stdout
