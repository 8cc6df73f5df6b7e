"""`edgefptt sweep`: every configuration in its own directory, failures recorded, reruns skip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgefptt.cli import main
from edgefptt.sweep import expand_grid, run_sweep
from edgefptt.train.config import make_config
from edgefptt.train.loop import fit

TINY = {"dataset": "digits", "limit": 48, "epochs": 1, "hidden": 8, "batch_size": 16}
GRID = """
[base]
dataset = "digits"
limit = 48
epochs = 1
hidden = 8
batch_size = 16

[grid]
algorithm = ["bptt", "fptt"]
partitions = [4, 100]   # K = 100 > T = 64: that run fails
seed = [0]
"""


def _sweep(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["sweep", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_grid_sweep_records_failure_and_rerun_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    out = tmp_path / "sweep"
    first = _sweep(["--grid", str(grid), "--workers", "2", "--out", str(out)], capsys)
    runs = {r["name"]: r for r in first["runs"]}
    # BPTT ignores K, so it runs once
    assert list(runs) == ["bptt-s0", "fptt-K4-s0", "fptt-K100-s0"]
    assert [runs[n]["status"] for n in runs] == ["finished", "finished", "failed"]
    assert "K=100" in runs["fptt-K100-s0"]["error"]
    assert (first["finished"], first["failed"], first["reused"]) == (2, 1, 0)
    # each run trained the configuration it is named after: same numbers as fit() directly
    direct = fit(make_config(**TINY, algorithm="fptt", partitions=4, seed=0))
    assert runs["fptt-K4-s0"]["final_test_accuracy"] == direct.final_test_accuracy
    assert runs["fptt-K4-s0"]["peak_activation_bytes"] == direct.peak_activation_bytes
    assert runs["fptt-K4-s0"]["partitions"] == 4 and runs["bptt-s0"]["partitions"] == 1
    for name in ("bptt-s0", "fptt-K4-s0"):
        assert (out / name / "checkpoint.pt").is_file()
    assert (out / "sweep.png").stat().st_size > 0
    assert json.loads((out / "sweep.json").read_text())["failed"] == 1

    stamps = {n: (out / n / "result.json").stat().st_mtime_ns for n in ("bptt-s0", "fptt-K4-s0")}
    again = _sweep(["--grid", str(grid), "--out", str(out)], capsys)
    reruns = {r["name"]: r for r in again["runs"]}
    assert reruns["bptt-s0"]["reused"] and reruns["fptt-K4-s0"]["reused"]
    assert reruns["fptt-K4-s0"]["final_test_accuracy"] == direct.final_test_accuracy
    assert reruns["fptt-K100-s0"]["status"] == "failed"  # tried again, failed again
    assert stamps == {n: (out / n / "result.json").stat().st_mtime_ns for n in stamps}


def test_unfinished_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    base = {**TINY, "schedule": "constant"}
    specs = expand_grid(base, {"algorithm": ["fptt"], "partitions": [2]})
    (first,) = run_sweep(specs, tmp_path).records
    assert first["status"] == "finished" and first["epochs"] == 1 and not first["resumed"]
    # a longer run of the same configuration continues the checkpoint instead of restarting
    longer = expand_grid({**base, "epochs": 2}, {"algorithm": ["fptt"], "partitions": [2]})
    (second,) = run_sweep(longer, tmp_path).records
    assert second["status"] == "finished" and second["resumed"] and second["epochs"] == 2
    direct = fit(make_config(**{**base, "epochs": 2}, algorithm="fptt", partitions=2))
    assert second["final_test_accuracy"] == direct.final_test_accuracy


def test_axis_options_expand_and_name_runs() -> None:
    specs = expand_grid(
        {"dataset": "digits"},
        {"algorithm": ["bptt", "tbptt", "fptt"], "partitions": [2, 4], "alpha": [0.1, 0.5]},
    )
    assert [s.name for s in specs] == [
        "bptt",
        "tbptt-K2",
        "tbptt-K4",
        "fptt-K2-a0.1",
        "fptt-K2-a0.5",
        "fptt-K4-a0.1",
        "fptt-K4-a0.5",
    ]
    assert specs[0].options == {"dataset": "digits", "algorithm": "bptt"}
    assert specs[-1].options["alpha"] == 0.5 and specs[-1].options["partitions"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "missing.toml"], "no such file"),
        (["--partitions", "2,x"], "comma-separated list of integers"),
        (["--seeds", "1", "--set", "colour=red"], "not an option of edgefptt train"),
        (["--seeds", "1", "--workers", "0"], "--workers"),
        (["--seeds", "1", "--engine", "spark"], "--engine"),
        (["--epochs", "2"], "nothing to sweep"),
        (["--seeds", "1", "--epochs", "0"], "--epochs"),
    ],
)
def test_bad_input_is_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_grid_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text("[grid]\nalgorithm = [\n")
    assert main(["sweep", "--grid", str(grid), "--out", str(tmp_path / "o")]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_ray_engine_without_ray_says_how_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("Ray is installed here")
    code = main(["sweep", "--engine", "ray", "--seeds", "0", "--out", str(tmp_path / "o")])
    assert code == 2
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err


def test_ray_engine_runs_the_grid_like_the_local_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where Ray is installed (pip install -e ".[ray]"): a local Ray instance runs the same
    configurations, records the failure, and gives fit()'s numbers."""
    pytest.importorskip("ray")
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    out = tmp_path / "ray"
    done = _sweep(["--grid", str(grid), "--engine", "ray", "--workers", "2", "--out", str(out)],
                  capsys)  # fmt: skip
    runs = {r["name"]: r for r in done["runs"]}
    assert [runs[n]["status"] for n in runs] == ["finished", "finished", "failed"]
    direct = fit(make_config(**TINY, algorithm="fptt", partitions=4, seed=0))
    assert runs["fptt-K4-s0"]["final_test_accuracy"] == direct.final_test_accuracy
    assert (out / "fptt-K4-s0" / "checkpoint.pt").is_file()
