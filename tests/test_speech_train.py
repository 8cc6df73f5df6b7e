"""Training on a Speech Commands layout (tones, no espeak-ng), per-class metrics, the gsc preset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgefptt.cli import main
from edgefptt.config import PRESETS, make_specs
from edgefptt.data import speech_commands as sc
from edgefptt.data.base import SequenceData
from edgefptt.train.config import make_config
from edgefptt.train.loop import fit
from edgefptt.train.metrics import class_report, confusion_matrix, per_class_accuracy
from test_speech_data import make_tone_corpus


@pytest.fixture(scope="module")
def tone_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tone_corpus(tmp_path_factory.mktemp("speech") / "gsc", repeats=2)


def _train_args(corpus: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "train", "--dataset", "speech_commands", "--data-dir", str(corpus), "--task", "12",
        "--cache-dir", str(tmp_path / "cache"), "--hidden", "32", "--out", str(tmp_path / "run"),
        *extra,
    ]  # fmt: skip


def test_fptt_learns_tones_well_above_chance_with_plot(
    tone_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "cm.png"
    args = _train_args(tone_corpus, tmp_path, "--algorithm", "fptt", "--partitions", "4")
    code = main([*args, "--epochs", "6", "--batch-size", "16", "--plot", str(plot), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    classes = doc["classes"]
    assert classes["class_names"] == [*sc.KEYWORDS, "_unknown_", "_silence_"]
    counts = np.array(classes["confusion_matrix"])
    # test split: speaker 5's 2 clips per keyword, ceil(10 % of 20) = 2 unknown and 2 silence
    assert counts.sum() == 24 and counts.sum(axis=1).tolist() == [2] * 12
    assert np.trace(counts) / counts.sum() == pytest.approx(doc["final_test_accuracy"])
    assert doc["final_test_accuracy"] > 0.5  # chance is 1/12
    assert doc["data"]["name"] == "speech_commands-12" and doc["data"]["synthetic"] is False
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("algorithm", "k"), [("bptt", "1"), ("tbptt", "4"), ("fptt", "10")])
def test_every_algorithm_prints_per_class_table(
    tone_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], algorithm: str, k: str
) -> None:
    args = _train_args(tone_corpus, tmp_path, "--algorithm", algorithm, "--partitions", k)
    code = main([*args, "--epochs", "1", "--limit", "30"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "per-class test accuracy" in captured.out and "confusion matrix" in captured.out
    assert "_silence_" in captured.out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--task", "custom"], "--words"),
        (["--task", "7"], "--task"),
        (["--features", "wavelet"], "--features"),
        (["--plot", "cm.pdf"], ".png"),
    ],
)
def test_speech_options_bad_input_exit_2(
    tone_corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    needle: str,
) -> None:
    base = _train_args(tone_corpus, tmp_path, "--epochs", "1")
    base = [a for a in base if a not in ("--task", "12")]
    code = main([*base, *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and needle in err
    assert len(err.strip().splitlines()) == 1


def test_class_report_uses_fptt_average(tone_corpus: Path, tmp_path: Path) -> None:
    config = make_config(
        dataset="speech_commands", data_dir=str(tone_corpus), cache_dir=str(tmp_path / "c"),
        hidden=16, epochs=2, algorithm="fptt", partitions=5, limit=40,
    )  # fmt: skip
    result = fit(config)
    data = sc.load(tone_corpus, config.speech_options(), limit=40)
    report = class_report(result.model, data, result.fptt)
    assert report["accuracy"] == pytest.approx(result.final_test_accuracy)


def test_confusion_matrix_and_per_class_accuracy_by_hand() -> None:
    targets = [0, 0, 1, 1, 1, 2]
    predictions = [0, 1, 1, 1, 0, 1]
    counts = confusion_matrix(targets, predictions, 4)
    assert counts.tolist() == [[1, 1, 0, 0], [1, 2, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert per_class_accuracy(counts) == [0.5, 2 / 3, 0.0, None]


def test_class_report_on_a_fixed_model() -> None:
    # a "model" that predicts the class written in the first feature of the first step
    class Oracle(torch.nn.Module):
        def forward(self, x: torch.Tensor, state: object = None) -> tuple[torch.Tensor, None]:
            return torch.nn.functional.one_hot(x[:, 0, 0].long(), 3).float(), None

    x = torch.tensor([0.0, 1.0, 2.0, 2.0]).reshape(4, 1, 1)
    data = SequenceData("toy", x, torch.tensor([0, 1, 2, 2]), x, torch.tensor([0, 2, 2, 1]), 3)
    report = class_report(Oracle(), data)
    assert report["confusion_matrix"] == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    assert report["per_class_accuracy"] == {"0": 1.0, "1": 0.0, "2": 0.5}
    assert report["accuracy"] == 0.5


def test_gsc_preset_in_memory_and_ops(capsys: pytest.CaptureFixture[str]) -> None:
    network, run = make_specs("gsc")
    assert (network.input_size, network.hidden_size, network.num_classes) == (40, 128, 12)
    assert run.seq_len == 100
    assert network.num_params == 4 * 128 * (40 + 128) + 4 * 128 + 12 * 128 + 12
    assert "paper-smnist" in PRESETS  # appended, not replaced
    for command in ("memory", "ops"):
        code = main([command, "--preset", "gsc", "--partitions", "4", "--json"])
        out = capsys.readouterr().out
        assert code == 0
        assert json.loads(out)["network"]["input_size"] == 40
