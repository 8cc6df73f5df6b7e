"""The HTML report: it builds, references only files it wrote, and shows the published figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edgefptt.cli import main
from edgefptt.report import SECTIONS, build_report, report_settings

# The seed paper's memory table (JLPEA 2025, 15, 15; thesis table), fp32 and bf16 bytes by K.
PUBLISHED = {
    1: (20662160, 10331080),
    2: (10896656, 5448328),
    7: (3921296, 1960648),
    14: (2526224, 1263112),
    28: (1828688, 914344),
    56: (1479920, 739960),
    112: (1305536, 652768),
    392: (1180976, 590488),
    784: (1156064, 578032),
}
TINY = {"train_epochs": 1, "train_ks": [2, 4], "hidden": 8, "train_limit": 120}


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    build_report(out, report_settings(True, **TINY))
    return out


def test_every_referenced_image_exists(report_dir: Path) -> None:
    html = (report_dir / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', html)
    assert images, "the report shows no figures"
    for image in images:
        path = report_dir / image
        assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG", image
    assert "http://" not in html and "https://" not in html  # works offline
    assert "<script" not in html


def test_results_json_holds_the_numbers_in_the_tables(report_dir: Path) -> None:
    document = json.loads((report_dir / "results.json").read_text())
    html = (report_dir / "index.html").read_text()
    for key, section in document["sections"].items():
        assert section["error"] is None, (key, section["error"])
        for table in section["tables"]:
            for row in table["rows"]:
                for cell in row:
                    assert f"<td>{cell}</td>" in html.replace("&#39;", "'")


def test_paper_layout_equals_the_published_figures(report_dir: Path) -> None:
    document = json.loads((report_dir / "results.json").read_text())
    rows = document["sections"]["memory"]["results"]["rows"]
    assert len(rows) == 18
    for row in rows:
        fp32, bf16 = PUBLISHED[row["K"]]
        assert row["paper layout"] == (fp32 if row["dtype"] == "fp32" else bf16)
        assert row["published_bytes"] == row["paper layout"]


def test_training_section_measures_fptt_below_bptt(report_dir: Path) -> None:
    document = json.loads((report_dir / "results.json").read_text())
    runs = document["sections"]["training"]["results"]["digits-pixel"]["runs"]
    bptt = next(r for r in runs if r["algorithm"] == "bptt")
    fptt4 = next(r for r in runs if r["algorithm"] == "fptt" and r["partitions"] == 4)
    assert fptt4["peak_activation_bytes"] < bptt["peak_activation_bytes"] / 2


def test_a_failing_section_is_shown_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, report_dir: Path
) -> None:
    broken = next(s for s in SECTIONS if s.key == "training")

    def explode(ctx: object) -> dict:
        raise RuntimeError("no data today")

    monkeypatch.setattr(broken, "compute", explode)
    outcomes = build_report(tmp_path, report_settings(True, **{**TINY, "train_epochs": 2}))
    failed = [o for o in outcomes if o.error]
    assert [o.key for o in failed] == ["training"]
    html = (tmp_path / "index.html").read_text()
    assert "This section failed: RuntimeError: no data today" in html
    assert "memory_vs_k.png" in html  # the rest of the report is still written


def test_cache_is_reused(report_dir: Path) -> None:
    outcomes = build_report(report_dir, report_settings(True, **TINY))
    # every section but the headline (cheap, derived from the others) comes from the cache
    assert {o.key for o in outcomes if not o.cached} == {"headline"}


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["report", "-o", str(tmp_path), "--dataset", "smnist"])
    assert code == 2
    assert "--data-dir" in capsys.readouterr().err


def test_ckpt_section_places_each_digits_run_at_the_planners_device_arena(
    report_dir: Path,
) -> None:
    from edgefptt.config import NetworkSpec, RunSpec
    from edgefptt.plan import plan_memory

    document = json.loads((report_dir / "results.json").read_text())
    section = document["sections"]["ckpt"]
    assert section["error"] is None and section["figures"] == ["figures/ckpt_equal_memory.png"]
    digits = section["results"]["digits"]
    net = NetworkSpec(input_size=1, hidden_size=TINY["hidden"], num_classes=10)
    fptt_state = 2 * net.num_params * 4  # W_bar and lambda in fp32: not held by (T)BPTT
    for row in digits["arenas"]:
        if row["algorithm"] == "bptt-ckpt":
            spec = {"schedule": "checkpoint", "segments": row["count"]}
        else:
            spec = {"schedule": "exact", "partitions": row["count"]}
        run = RunSpec(batch_size=32, seq_len=64, dtype="fp32", **spec)
        planned = plan_memory(net, run, "lifetime").total_bytes
        if row["algorithm"] in ("bptt", "tbptt"):
            planned -= fptt_state
        assert row["arena_bytes"] == planned, row
    # the accuracy table shows the training section's runs, with their accuracies
    training = document["sections"]["training"]["results"]["digits-pixel"]["runs"]
    rows = {(r[0], r[1]): r for r in section["tables"][2]["rows"]}
    for run in training:
        row = rows[(run["algorithm"], f"K={run['partitions']}")]
        assert row[3] == f"{100 * run['test_accuracy']:.2f}%" and row[6] == "training section"
    assert rows[("bptt-ckpt", "S=8")][6] == "this section"  # round(sqrt 64) in a quick report
