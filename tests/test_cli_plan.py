"""The `memory` and `ops` commands: JSON contract, tables, exit codes."""

import json

import pytest

from edgefptt.cli import main
from edgefptt.reference import paper_memory


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_memory_json_paper_plan_matches_the_table(capsys, dtype):
    code = main(
        [
            "memory",
            "--preset",
            "paper-smnist",
            "--partitions",
            "14",
            "--dtype",
            dtype,
            "--schedule",
            "paper",
            "--plan",
            "paper",
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    row = next(r for r in paper_memory() if r["K"] == 14)
    assert doc["total_bytes"] == row[f"{dtype}_bytes"]
    assert doc["floor_bytes"] == 4 * 67_850 * (4 if dtype == "fp32" else 2)
    assert sum(doc["breakdown"].values()) == doc["total_bytes"]


def test_memory_with_explicit_sizes_and_recompute(capsys):
    code = main(
        [
            "memory",
            "--input",
            "2",
            "--hidden",
            "8",
            "--classes",
            "3",
            "--batch",
            "2",
            "--seq-len",
            "10",
            "--partitions",
            "3",
            "--dtype",
            "bf16",
            "--schedule",
            "exact",
            "--plan",
            "recompute",
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["plan"] == "recompute" and doc["total_bytes"] > doc["floor_bytes"]
    assert set(doc["breakdown"]) >= {"parameters", "fptt_state", "activations", "scratch"}


def test_ops_json(capsys):
    assert main(["ops", "--preset", "paper-smnist", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for phase in ("forward", "backward", "update"):
        assert set(doc[phase]) >= {"add_sub", "mul_div", "nonlinear"}
    assert doc["update"]["add_sub"] == 8 * 67_850


def test_tables_by_default(capsys):
    assert main(["memory", "--preset", "paper-smnist", "--partitions", "14"]) == 0
    assert "total" in capsys.readouterr().out
    assert main(["ops", "--preset", "paper-smnist", "--partitions", "14"]) == 0
    assert "backward" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["memory", "--preset", "paper-smnist", "--partitions", "5"],
        ["memory", "--preset", "paper-smnist", "--partitions", "900", "--schedule", "exact"],
        ["memory", "--preset", "paper-smnist", "--hidden", "0"],
        ["memory", "--preset", "paper-smnist", "--dtype", "fp16"],
        ["memory", "--preset", "paper-smnist", "--plan", "magic"],
        ["memory", "--preset", "paper-smnist", "--plan", "recompute"],
        ["memory", "--preset", "nope"],
        ["memory", "--partitions", "0"],
        ["memory", "--preset", "paper-smnist", "--partitions", "two"],
        ["ops", "--preset", "paper-smnist", "--batch", "0", "--json"],
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
