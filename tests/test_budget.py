"""Fitting the learner into a RAM budget: shortcuts against the planner, the choice, the CLI."""

from __future__ import annotations

import json
import time

import pytest

from edgefptt.cli import main
from edgefptt.codegen.export import export_workload
from edgefptt.config import NetworkSpec, RunSpec, make_specs
from edgefptt.errors import ConfigError
from edgefptt.hw import group_cycles, make_soc, summarize
from edgefptt.plan.budget import (
    BudgetError,
    arena_bytes,
    batch_bytes,
    choose,
    dtype_choices,
    parse_bytes,
    pass_cycles,
    state_bytes,
)

SMALL = NetworkSpec(input_size=2, hidden_size=4, num_classes=3)
SMALL_RUN = RunSpec(batch_size=2, seq_len=9)
SIZES = ["--input", "2", "--hidden", "4", "--classes", "3", "--batch", "2", "--seq-len", "9"]
E = {"fp32": 4, "bf16": 2}


def _learner(net: NetworkSpec, run: RunSpec, k: int, plan: str, dtype: str) -> tuple[int, float]:
    """Total RAM and modelled cycles from the full workload, independently of budget.py."""
    exact = run.model_copy(update={"partitions": k, "dtype": dtype, "schedule": "exact"})
    workload, memory = export_workload(net, exact, plan)
    e = E[dtype]
    b, t, i = run.batch_size, run.seq_len, net.input_size
    total = memory.total_bytes + (b * t * i * e + 4 * b) + (140 + 3 * net.num_params * e)
    cycles = sum(group_cycles(summarize(workload), make_soc(None, dtype=dtype)).values())
    return total, cycles


# ------------------------------------------------------------------------------ byte counts


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("600000", 600_000),
        (" 580KB ", 580_000),
        ("580k", 580_000),
        ("1MB", 1_000_000),
        ("1.5MB", 1_500_000),
        ("1.1M", 1_100_000),
        ("512KiB", 524_288),
        ("1MiB", 1_048_576),
        ("2G", 2_000_000_000),
        ("100B", 100),
        ("1.2345K", 1234),  # rounded down
        (4096, 4096),
    ],
)
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "lots", "1.5.2MB", "-5", "12 parsecs", "0", "0.4", "KB"])
def test_parse_bytes_rejects_junk(text):
    with pytest.raises(ConfigError):
        parse_bytes(text)


def test_dtype_choices():
    assert dtype_choices(None) == ("fp32",)
    assert dtype_choices("auto") == ("fp32", "bf16")
    assert dtype_choices("bf16") == ("bf16",)
    with pytest.raises(ConfigError):
        dtype_choices("fp16")


def test_state_and_batch_bytes_follow_the_contract():
    net, run = make_specs("paper-smnist")
    assert state_bytes(net, "fp32") == 140 + 3 * 67_850 * 4
    assert state_bytes(net, "bf16") == 140 + 3 * 67_850 * 2
    assert batch_bytes(net, run, "bf16") == 4 * 784 * 1 * 2 + 16


# ------------------------------------------------------------------------------ shortcuts


@pytest.mark.parametrize(
    ("net", "batch", "seq_len"),
    [(SMALL, 2, 9), (NetworkSpec(input_size=1, hidden_size=8, num_classes=10), 4, 13)],
)
def test_shortcuts_equal_the_planner_and_the_hw_model_for_every_k(net, batch, seq_len):
    for k in range(1, seq_len + 1):
        for plan in ("lifetime", "recompute"):
            for dtype in ("fp32", "bf16"):
                run = RunSpec(
                    batch_size=batch, seq_len=seq_len, partitions=k, dtype=dtype, schedule="exact"
                )
                workload, memory = export_workload(net, run, plan)
                assert arena_bytes(net, run, plan) == memory.total_bytes, (k, plan, dtype)
                full = sum(group_cycles(summarize(workload), make_soc(None, dtype=dtype)).values())
                assert pass_cycles(net, run, plan) == pytest.approx(full, rel=1e-9)


@pytest.mark.parametrize("k", [1, 3, 56, 500])
def test_shortcuts_on_the_paper_preset(k):
    net, base = make_specs("paper-smnist", schedule="exact", partitions=k)
    for plan in ("lifetime", "recompute"):
        workload, memory = export_workload(net, base, plan)
        assert arena_bytes(net, base, plan) == memory.total_bytes
        full = sum(group_cycles(summarize(workload), make_soc(None, dtype="fp32")).values())
        assert pass_cycles(net, base, plan) == pytest.approx(full, rel=1e-9)


# ------------------------------------------------------------------------------ the choice


def _brute_force(net, run, budget, dtypes):
    best = None
    for k in range(1, run.seq_len + 1):
        for plan in ("lifetime", "recompute"):
            for dtype in dtypes:
                total, cycles = _learner(net, run, k, plan, dtype)
                if total > budget:
                    continue
                key = (cycles, total, dtype != "fp32", plan != "lifetime", k)
                if best is None or key < best[0]:
                    best = (key, (k, plan, dtype))
    return None if best is None else best[1]


def test_choice_is_the_brute_force_optimum_at_many_budgets():
    totals = sorted(
        {
            _learner(SMALL, SMALL_RUN, k, plan, dtype)[0]
            for k in range(1, 10)
            for plan in ("lifetime", "recompute")
            for dtype in ("fp32", "bf16")
        }
    )
    for budget in [*totals[::3], totals[-1] + 10_000]:
        expected = _brute_force(SMALL, SMALL_RUN, budget, ("fp32", "bf16"))
        choice = choose(SMALL, SMALL_RUN, budget, dtypes=("fp32", "bf16"))
        assert (choice.partitions, choice.plan, choice.dtype) == expected, budget


def test_chosen_total_is_the_real_learner_size_and_one_byte_less_changes_the_answer():
    budget = 9_000
    choice = choose(SMALL, SMALL_RUN, budget, dtypes=("fp32", "bf16"))
    total, cycles = _learner(SMALL, SMALL_RUN, choice.partitions, choice.plan, choice.dtype)
    assert choice.total_bytes == total <= budget
    assert choice.bytes_left == budget - total
    assert choice.latency == pytest.approx(cycles, rel=1e-9)
    assert choice.run.schedule == "exact" and choice.run.max_partition_len == -(
        -9 // choice.partitions
    )
    assert choice.latency_unit == "cycles" and "hardware model" in choice.latency_source
    assert choice.candidates and all(c.total_bytes <= budget for c in choice.candidates if c.fits)
    # Nothing that is faster fits, so with one byte less the answer changes (or nothing fits).
    try:
        smaller = choose(SMALL, SMALL_RUN, choice.total_bytes - 1, dtypes=("fp32", "bf16"))
    except BudgetError:
        return
    assert (smaller.partitions, smaller.plan, smaller.dtype) != (
        choice.partitions,
        choice.plan,
        choice.dtype,
    )
    assert smaller.total_bytes < choice.total_bytes and smaller.latency >= choice.latency


def test_below_the_minimum_the_error_names_it():
    least = min(
        _learner(SMALL, SMALL_RUN, 9, plan, dtype)[0]
        for plan in ("lifetime", "recompute")
        for dtype in ("fp32", "bf16")
    )
    choose(SMALL, SMALL_RUN, least, dtypes=("fp32", "bf16"))  # fits exactly
    with pytest.raises(BudgetError) as info:
        choose(SMALL, SMALL_RUN, least - 1, dtypes=("fp32", "bf16"))
    message = str(info.value)
    assert isinstance(info.value, ConfigError) and "\n" not in message
    assert f"at least {least:,} bytes" in message and "K=9, recompute, bf16" in message
    assert "raise the budget" in message


def test_restrictions_are_obeyed_and_named():
    choice = choose(SMALL, SMALL_RUN, 10**9, dtypes=("bf16",), plans=("recompute",), partitions=[4])
    assert (choice.partitions, choice.plan, choice.dtype) == (4, "recompute", "bf16")
    with pytest.raises(BudgetError, match="with K=1, the lifetime plan"):
        choose(SMALL, SMALL_RUN, 2_000, plans=("lifetime",), partitions=[1])
    with pytest.raises(ConfigError):
        choose(SMALL, SMALL_RUN, 10**9, partitions=[10])
    with pytest.raises(ConfigError):
        choose(SMALL, SMALL_RUN, 10**9, plans=("paper",))
    with pytest.raises(ConfigError):
        choose(SMALL, SMALL_RUN, 0)


def test_paper_preset_is_fast_and_exact():
    net, run = make_specs("paper-smnist")
    start = time.perf_counter()
    choice = choose(net, run, 1_000_000, dtypes=("fp32", "bf16"))
    assert time.perf_counter() - start < 30  # about 1.5 s on two cores
    # fp32's parameter state alone (4 P e = 1,085,600 B) is over 1 MB: only bf16 can fit.
    assert choice.dtype == "bf16" and choice.total_bytes <= 1_000_000
    total, _ = _learner(net, run, choice.partitions, choice.plan, choice.dtype)
    assert choice.total_bytes == total
    least, _ = _learner(net, run, 784, "recompute", "bf16")
    with pytest.raises(BudgetError, match=f"at least {least:,} bytes \\(K=784, recompute, bf16\\)"):
        choose(net, run, 580_000, dtypes=("fp32", "bf16"))


# ------------------------------------------------------------------------------ CLI


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), captured.err
    return lines[0]


def test_memory_budget_json(capsys):
    assert main(["memory", *SIZES, "--budget", "9KB", "--dtype", "auto", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    choice = choose(SMALL, SMALL_RUN, 9_000, dtypes=("fp32", "bf16"))
    assert doc["budget_bytes"] == 9_000 and doc["partitions"] == choice.partitions
    assert doc["total_bytes"] == doc["arena_bytes"] + doc["batch_bytes"] + doc["state_bytes"]
    assert sum(doc["arena_breakdown"].values()) == doc["arena_bytes"]
    assert doc["run"]["partitions"] == doc["partitions"] and doc["run"]["dtype"] == doc["dtype"]
    assert doc["candidates"] and doc["latency_unit"] == "cycles"


def test_memory_budget_table(capsys):
    assert main(["memory", *SIZES, "--budget", "9000", "--dtype", "auto"]) == 0
    out = capsys.readouterr().out
    assert "state image" in out and "left" in out and "latency" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", "lots"], "byte count"),
        (["--budget", "1KB", "--dtype", "auto"], "at least"),
        (["--budget", "2000", "--partitions", "1"], "with K=1"),
        (["--budget", "1MB", "--plan", "paper"], "plan"),
        (["--budget", "1MB", "--schedule", "paper"], "exact schedule"),
        (["--dtype", "auto"], "--budget"),
    ],
)
def test_memory_budget_errors(capsys, extra, message):
    assert main(["memory", *SIZES, *extra]) == 2
    assert message in _one_error_line(capsys)


def test_memory_budget_paper_preset_below_the_minimum(capsys):
    code = main(["memory", "--preset", "paper-smnist", "--budget", "580KB", "--dtype", "auto"])
    assert code == 2
    line = _one_error_line(capsys)
    assert "(K=784, recompute, bf16)" in line and "shrink --hidden/--batch" in line


def test_export_with_a_memory_budget(tmp_path, capsys):
    out = tmp_path / "gen"
    argv = ["export-c", *SIZES, "--memory-budget", "9KB", "--dtype", "auto", "--json"]
    assert main([*argv, "-o", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    choice = choose(SMALL, SMALL_RUN, 9_000, dtypes=("fp32", "bf16"))
    assert doc["budget"]["total_bytes"] == choice.total_bytes <= 9_000
    assert doc["run"]["partitions"] == choice.partitions and doc["plan"] == choice.plan
    assert doc["run"]["dtype"] == choice.dtype
    assert doc["arena_bytes"] == doc["budget"]["arena_bytes"]
    golden = json.loads((out / "golden.json").read_text())
    assert golden["arena_bytes"] == doc["arena_bytes"]


def test_export_budget_table_and_fixed_plan(tmp_path, capsys):
    argv = ["export-c", *SIZES, "--memory-budget", "1MB", "--plan", "recompute", "--partitions"]
    assert main([*argv, "3", "-o", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "memory budget" in out and "K=3 recompute fp32" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--memory-budget", "2000", "--partitions", "1", "--plan", "lifetime"], "with K=1"),
        (["--memory-budget", "1KB", "--dtype", "auto"], "at least"),
        (["--memory-budget", "1 parsec"], "byte count"),
        (["--dtype", "auto"], "--memory-budget"),
    ],
)
def test_export_budget_errors(tmp_path, capsys, extra, message):
    assert main(["export-c", *SIZES, *extra, "-o", str(tmp_path / "x")]) == 2
    assert message in _one_error_line(capsys)
