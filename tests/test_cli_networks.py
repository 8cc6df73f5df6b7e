"""--cell, --layers and --trainable on memory, ops, estimate, explore and export-c."""

import json

import pytest

from edgefptt.cli import main
from edgefptt.config import make_specs
from edgefptt.plan import count_ops, plan_memory
from edgefptt.workload import build_workload

SIZES = ["--input", "3", "--hidden", "5", "--classes", "4", "--batch", "2", "--seq-len", "6"]
SPEC_SIZES = {"input_size": 3, "hidden_size": 5, "num_classes": 4, "batch_size": 2, "seq_len": 6}
NETWORKS = [
    (["--cell", "gru"], {"cell": "gru"}),
    (["--layers", "2", "--trainable", "readout"], {"num_layers": 2, "trainable": "readout"}),
    (
        ["--cell", "gru", "--layers", "2", "--trainable", "top"],
        {"cell": "gru", "num_layers": 2, "trainable": "top"},
    ),
]


def _specs(layer_values: dict, **run_values):
    return make_specs(
        "paper-smnist", **SPEC_SIZES, partitions=2, schedule="exact", **layer_values, **run_values
    )


@pytest.mark.parametrize(("options", "layer_values"), NETWORKS)
@pytest.mark.parametrize("plan", ["lifetime", "recompute"])
def test_memory_of_a_network_equals_the_planner(capsys, options, layer_values, plan):
    code = main(["memory", *SIZES, *options, "--partitions", "2", "--plan", plan, "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    net, run = _specs(layer_values)
    expected = plan_memory(net, run, plan)
    assert doc["total_bytes"] == expected.total_bytes
    assert doc["breakdown"] == expected.breakdown
    assert doc["run"]["schedule"] == "exact"
    assert [layer["cell"] for layer in doc["network"]["layers"]] == [
        layer.cell for layer in net.layers
    ]


def test_memory_differs_between_networks(capsys):
    totals = []
    for options, _ in NETWORKS:
        assert main(["memory", *SIZES, *options, "--json"]) == 0
        totals.append(json.loads(capsys.readouterr().out)["total_bytes"])
    assert len(set(totals)) == len(totals)


@pytest.mark.parametrize(("options", "layer_values"), NETWORKS)
def test_ops_of_a_network_equal_the_counter(capsys, options, layer_values):
    code = main(["ops", *SIZES, *options, "--partitions", "2", "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    net, run = _specs(layer_values)
    expected = {phase: c.to_dict() for phase, c in count_ops(build_workload(net, run)).items()}
    for phase, counts in expected.items():
        assert doc[phase] == counts


def test_readout_only_network_has_no_recurrent_weight_gradient_work(capsys):
    assert main(["ops", *SIZES, "--layers", "2", "--json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert main(["ops", *SIZES, "--layers", "2", "--trainable", "readout", "--json"]) == 0
    readout = json.loads(capsys.readouterr().out)
    assert readout["update"]["mul_div"] < full["update"]["mul_div"]
    assert readout["forward"] == full["forward"]


def test_estimate_runs_for_a_gru_stack(capsys):
    code = main(
        ["estimate", *SIZES, "--cell", "gru", "--layers", "2", "--code", "generated", "--json"]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total_cycles"] > 0
    assert main(["estimate", *SIZES, "--code", "generated", "--json"]) == 0
    lstm = json.loads(capsys.readouterr().out)
    assert lstm["total_cycles"] != doc["total_cycles"]


def test_explore_a_gru_with_the_exact_schedule(capsys):
    code = main(
        [
            "explore",
            *SIZES,
            "--cell",
            "gru",
            "--mesh",
            "4",
            "--cores",
            "1",
            "--partitions",
            "1,2",
            "--schedule",
            "exact",
            "--json",
        ]
    )
    assert code == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 2


def test_paper_schedule_of_a_gru_is_refused_in_one_line(capsys):
    code = main(["memory", *SIZES, "--cell", "gru", "--schedule", "paper"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "--schedule exact" in err and "\n" not in err


def test_bad_trainable_is_refused(capsys):
    code = main(["memory", *SIZES, "--layers", "2", "--trainable", "middle"])
    assert code == 2
    assert "trainable" in capsys.readouterr().err


def test_export_c_of_a_gru_stack_plans_the_same_arena(tmp_path, capsys):
    out = tmp_path / "gen"
    argv = ["export-c", *SIZES, "--cell", "gru", "--layers", "2", "--trainable", "top",
            "--partitions", "2", "--plan", "recompute", "--json", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    net, run = _specs({"cell": "gru", "num_layers": 2, "trainable": "top"})
    assert doc["arena_bytes"] == plan_memory(net, run, "recompute").total_bytes
    assert len(doc["golden_losses"]) == 2
    header = " ".join((out / "edgefptt.h").read_text().split())
    assert "EDGEFPTT_B_HN_L1, EDGEFPTT_W_Y, EDGEFPTT_B_Y, EDGEFPTT_NUM_PARAMS" in header
    assert "Frozen (no gradient, W_bar or lambda): W, b, b_hn." in header
