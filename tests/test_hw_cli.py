"""CLI contract of `edgefptt estimate` and `edgefptt explore`."""

from __future__ import annotations

import csv
import json

import pytest

from edgefptt.cli import main

KEYS = {
    "total_cycles",
    "seconds",
    "clock_hz",
    "groups",
    "memory_bytes",
    "lut",
    "ff",
    "bram",
    "dsp",
    "power_w",
    "energy_j",
}


def test_estimate_json_contract(capsys):
    code = main(
        [
            "estimate",
            "--preset",
            "paper-smnist",
            "--mesh",
            "4",
            "--cores",
            "1",
            "--dtype",
            "bf16",
            "--partitions",
            "14",
            "--schedule",
            "paper",
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= KEYS
    assert len(doc["groups"]) == 11
    assert doc["total_cycles"] == pytest.approx(sum(doc["groups"].values()), abs=11)
    assert doc["seconds"] == pytest.approx(doc["total_cycles"] / doc["clock_hz"], rel=1e-6)
    assert doc["memory_bytes"] == 1263112  # the seed paper's BF16 layout at K = 14


def test_estimate_table_and_variants(capsys):
    assert main(["estimate", "--partitions", "7"]) == 0
    assert "EWO-SGD(FPTT)" in capsys.readouterr().out
    assert main(["estimate", "--no-accelerator", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lut"] > 0
    assert main(["estimate", "--matmul-model", "naive", "--json"]) == 0
    capsys.readouterr()


def test_estimate_cpu_only_explain_and_generated_code(capsys):
    short = ["--seq-len", "28", "--dtype", "fp32", "--json"]
    assert main(["estimate", "--no-accelerator", "--explain", *short]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["code"] == "paper" and not doc["accelerator"]
    assert set(doc["breakdown"]) == set(doc["groups"])
    for group, part in doc["breakdown"].items():  # cycles = instructions + fitted + stalls
        parts = part["instructions"] + part["fitted_cycles"] + part["stall_cycles"]
        assert part["cycles"] == pytest.approx(parts, abs=2), group
    explain = doc["explain"]
    assert explain["partitions"] == [1, 28] and len(explain["groups"]) == 11
    assert explain["ratio"] == pytest.approx(
        explain["total_cycles"][1] / explain["total_cycles"][0]
    )
    assert sum(g["share_of_change"] for g in explain["groups"]) == pytest.approx(1.0)
    assert main(["estimate", "--code", "generated", "--schedule", "exact", *short]) == 0
    gen = json.loads(capsys.readouterr().out)
    assert gen["code"] == "generated" and gen["accelerator"]
    assert gen["breakdown"]["MatMul-2"]["fitted_cycles"] == gen["groups"]["MatMul-2"]
    assert main(["estimate", "--no-accelerator", "--explain", "--seq-len", "28"]) == 0
    assert "why K=28" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ["estimate", "--code", "ours"],
        ["estimate", "--code", "generated", "--schedule", "checkpoint"],
        ["estimate", "--mesh", "3"],
        ["estimate", "--cores", "17"],
        ["estimate", "--dtype", "fp16"],
        ["estimate", "--partitions", "5"],
        ["estimate", "--matmul-model", "exactish"],
        ["estimate", "--dataflow", "OS"],
        ["estimate", "--soc", "nope"],
        ["estimate", "--plan", "recompute"],
        ["explore", "--cores", "a,b"],
        ["explore", "--dtype", "fp16"],
        ["explore", "--mesh", "4", "--cores", "1", "--partitions", "3"],
    ],
)
def test_bad_specs_exit_2(args, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_explore_json_csv_plot(tmp_path, capsys):
    csv_path, png = tmp_path / "points.csv", tmp_path / "front.png"
    code = main(
        [
            "explore",
            "--mesh",
            "4,8",
            "--cores",
            "1,2",
            "--partitions",
            "1,14,784",
            "--dtype",
            "bf16",
            "--schedule",
            "paper",
            "--json",
            "--csv",
            str(csv_path),
            "--plot",
            str(png),
        ]
    )
    assert code == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 12
    for r in records:
        assert KEYS | {"mesh", "cores", "partitions", "dtype", "schedule", "pareto"} <= set(r)
    assert any(r["pareto"] for r in records)
    # The smallest memory (K=784) on the fewest LUTs (4x4-1) cannot be dominated.
    assert next(r for r in records if (r["mesh"], r["cores"], r["partitions"]) == (4, 1, 784))[
        "pareto"
    ]
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 12 and "MatMul-2_cycles" in rows[0]
    assert png.stat().st_size > 10_000
    assert main(["explore", "--mesh", "4", "--cores", "1", "--partitions", "1,2"]) == 0
    assert "Pareto" in capsys.readouterr().out
