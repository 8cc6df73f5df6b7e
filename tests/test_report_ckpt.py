"""The report's equal-memory section: its device numbers against the planner and the hardware
model run on whole workloads, and the variants of train.compare that it relies on."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import pytest
import torch

from edgefptt.config import NetworkSpec, RunSpec, make_specs
from edgefptt.data.base import SequenceData
from edgefptt.errors import ConfigError
from edgefptt.hw import estimate, group_cycles, make_soc, summarize
from edgefptt.plan import plan_memory
from edgefptt.plan.budget import compare_at_budget, soc_for
from edgefptt.plan.memory import lifetime_plan
from edgefptt.report import ckpt_section
from edgefptt.train.compare import compare
from edgefptt.train.config import make_config
from edgefptt.train.loop import fit
from edgefptt.workload import build_exact
from edgefptt.workload.checkpoint import build_checkpoint


@pytest.fixture(scope="module")
def paper() -> dict:
    return ckpt_section.paper_device()


def _paper_specs() -> tuple[NetworkSpec, RunSpec]:
    return make_specs("paper-smnist", schedule="exact", dtype="bf16")


def _point(paper: dict, algorithm: str, count: int) -> dict:
    return next(p for p in paper["points"] if p["algorithm"] == algorithm and p["count"] == count)


def _tbptt_workload(net: NetworkSpec, run: RunSpec, recompute: bool):
    """TBPTT written out kernel by kernel: the exact schedule without W_bar and lambda, each
    partition's FPTT update replaced by the checkpoint schedule's plain SGD step."""
    exact = build_exact(net, run, recompute=recompute)
    sgd_run = RunSpec(batch_size=run.batch_size, seq_len=1, schedule="checkpoint", segments=1)
    sgd = [k for k in build_checkpoint(net, sgd_run).kernels if k.phase == "update"]
    kernels = []
    for kernel in exact.kernels:
        if kernel.op == "fptt_sgd":
            if kernel.writes[0].buffer == "W":  # the first of the partition's four
                kernels += [replace(k, partition=kernel.partition, dtype=run.dtype) for k in sgd]
            continue
        kernels.append(kernel)
    buffers = {n: b for n, b in exact.buffers.items() if b.role != "fptt_state"}
    return replace(exact, kernels=kernels, buffers=buffers)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("plan", ["lifetime", "recompute"])
def test_tbptt_placement_equals_a_tbptt_workload(dtype: str, plan: str) -> None:
    net = NetworkSpec(input_size=3, hidden_size=16, num_classes=5)
    for k in (1, 3):  # 3: partitions of 7, 7 and 6 steps
        run = RunSpec(batch_size=2, seq_len=20, partitions=k, dtype=dtype, schedule="exact")
        workload = _tbptt_workload(net, run, plan == "recompute")
        assert not any(k.op == "fptt_sgd" for k in workload.kernels)
        assert sum(k.phase == "update" for k in workload.kernels) == k * (4 * 16 + 5 + 2 + 4)
        want_arena = lifetime_plan(workload, plan).total_bytes
        want_cycles = sum(group_cycles(summarize(workload), soc_for(dtype)).values())
        assert ckpt_section.tbptt_arena_bytes(net, run, plan) == want_arena
        assert ckpt_section.tbptt_pass_cycles(net, run, plan) == pytest.approx(want_cycles, 1e-12)


def test_bptt_as_tbptt_at_k1_meets_the_checkpoint_schedule_at_s1(paper: dict) -> None:
    """Two different workloads of plain BPTT on the paper network: the same arena, and cycles
    that differ only by the checkpoint schedule's extra copies of the carried state."""
    tbptt, ckpt = _point(paper, "tbptt", 1), _point(paper, "bptt-ckpt", 1)
    assert tbptt["arena_bytes"] == ckpt["arena_bytes"] == 9_114_800
    assert tbptt["cycles"] == pytest.approx(ckpt["cycles"], rel=1e-5)


def test_paper_points_equal_the_planner_and_the_hardware_model_on_whole_workloads(
    paper: dict,
) -> None:
    net, run = _paper_specs()
    soc = make_soc("gemmini-bf16")
    for algorithm, count, spec in (
        ("fptt", 14, run.model_copy(update={"partitions": 14})),
        ("bptt-ckpt", 28, run.model_copy(update={"schedule": "checkpoint", "segments": 28})),
    ):
        point = _point(paper, algorithm, count)
        assert point["arena_bytes"] == plan_memory(net, spec, "lifetime").total_bytes
        assert point["cycles"] == pytest.approx(estimate(net, spec, soc).total_cycles, rel=1e-9)
        assert point["seconds"] == pytest.approx(point["cycles"] / 500e6)
    # TBPTT: the FPTT arena less W_bar and lambda, 2 * P bf16 values
    assert (
        _point(paper, "fptt", 14)["arena_bytes"] - _point(paper, "tbptt", 14)["arena_bytes"]
        == 2 * net.num_params * 2
    )


def test_points_are_monotone_and_stop_at_the_smallest_checkpoint_arena(paper: dict) -> None:
    for algorithm in ckpt_section.ALGORITHMS:
        mine = sorted(
            (p for p in paper["points"] if p["algorithm"] == algorithm), key=lambda p: p["count"]
        )
        arenas = [p["arena_bytes"] for p in mine]
        assert all(a > b for a, b in pairwise(arenas)), algorithm
        if algorithm == "bptt-ckpt":  # more segments recompute more: never faster
            cycles = [p["cycles"] for p in mine]
            assert all(a <= b for a, b in pairwise(cycles))
            assert mine[-1]["count"] == paper["segments_min_arena"]
    # S_min is where the planner's arena of the whole workload is smallest
    net, run = _paper_specs()
    s_min = paper["segments_min_arena"]
    arena = {
        s: plan_memory(
            net, run.model_copy(update={"schedule": "checkpoint", "segments": s}), "lifetime"
        ).total_bytes
        for s in (s_min - 1, s_min, s_min + 1)
    }
    assert arena[s_min] < arena[s_min - 1] and arena[s_min] < arena[s_min + 1]


def test_equal_memory_rows_are_the_planners_answer(paper: dict) -> None:
    net, run = _paper_specs()
    soc = make_soc("gemmini-bf16")
    rows = {row["bptt-ckpt"]["segments"]: row for row in paper["equal_memory"]}
    for s in (28, paper["segments_min_arena"]):
        row = rows[s]
        answer = compare_at_budget(net, run, row["budget_bytes"], soc, "gemmini-bf16")
        assert answer.checkpoint is not None and answer.checkpoint.count == s
        if answer.fptt is None:
            assert row["fptt"] is None
        else:
            assert row["fptt"]["partitions"] == answer.fptt.count
            assert row["fptt"]["plan"] == answer.fptt.plan
            assert row["fptt"]["arena_bytes"] == answer.fptt.arena_bytes
            assert row["fptt"]["cycles"] == pytest.approx(answer.fptt.latency, rel=1e-12)
    assert rows[paper["segments_min_arena"]]["fptt"] is None  # below FPTT's least arena
    assert rows[28]["fptt"] is not None


# ---------------------------------------------------------------------------- train.compare


def _tiny_data() -> SequenceData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 9, 2, generator=g)
    y = (x[:, 0, 0] > 0).long() + 2 * (x[:, -1, 1] > 0).long()
    return SequenceData("tiny", x[:30], y[:30], x[30:], y[30:], num_classes=4)


def test_compare_drops_segments_for_variants_of_other_algorithms() -> None:
    data = _tiny_data()
    common = {"hidden": 4, "epochs": 1, "batch_size": 8, "seed": 1}
    base = make_config(algorithm="bptt-ckpt", segments=3, **common)
    results = compare(base, {"ckpt": {}, "fptt": {"algorithm": "fptt", "partitions": 3}}, data=data)
    assert results["ckpt"].segments == 3
    assert results["fptt"].config["segments"] is None
    # the fptt variant trained exactly as a run configured without --segments
    direct = fit(make_config(algorithm="fptt", partitions=3, **common), data)
    for got, want in zip(results["fptt"].history, direct.history, strict=True):
        assert got["train_loss"] == want["train_loss"]


def test_compare_conflicts_are_one_line_config_errors() -> None:
    base = make_config(algorithm="bptt-ckpt", segments=3)
    with pytest.raises(ConfigError, match="variant 'x': --segments belongs to") as info:
        compare(base, {"x": {"algorithm": "fptt", "segments": 2}}, data=_tiny_data())
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="variant 'y': --bogus"):
        compare(base, {"y": {"bogus": 1}}, data=_tiny_data())
