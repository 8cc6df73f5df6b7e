"""The SYNTHETIC espeak-ng corpus: layout, and FPTT learning on it (skipped without espeak-ng)."""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import pytest

from edgefptt.cli import main
from edgefptt.data import speech_commands as sc
from edgefptt.data import synthetic_speech
from edgefptt.train.config import make_config
from edgefptt.train.loop import fit

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install -y espeak-ng)",
)


@pytest.fixture(scope="module")
def synthetic_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install -y espeak-ng)")
    root = tmp_path_factory.mktemp("synthetic") / "gsc"
    synthetic_speech.make_synthetic_speech(root, speakers=20, background_s=10.0, seed=0)
    return root


@needs_espeak
def test_layout_is_gsc_and_marked_synthetic(synthetic_corpus: Path) -> None:
    root = synthetic_corpus
    assert "SYNTHETIC" in (root / sc.SYNTHETIC_MARKER).read_text()
    words = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    assert words == sorted(synthetic_speech.DEFAULT_WORDS)
    listed = {
        "validation": (root / "validation_list.txt").read_text().split(),
        "test": (root / "testing_list.txt").read_text().split(),
    }
    speakers_of = {
        split: {Path(p).name.split("_nohash_")[0] for p in paths} for split, paths in listed.items()
    }
    train_files = [
        f"{w}/{f.name}"
        for w in words
        for f in (root / w).glob("*.wav")
        if f"{w}/{f.name}" not in listed["validation"] + listed["test"]
    ]
    speakers_of["train"] = {Path(p).name.split("_nohash_")[0] for p in train_files}
    # a speaker's clips are all in one split, and each split has speakers
    assert all(speakers_of.values())
    assert not speakers_of["train"] & speakers_of["validation"]
    assert not speakers_of["train"] & speakers_of["test"]
    assert not speakers_of["validation"] & speakers_of["test"]
    assert len(train_files) + len(listed["validation"]) + len(listed["test"]) == 20 * len(words)
    for path in [*listed["test"][:5], *(p.relative_to(root) for p in root.glob("_back*/*.wav"))]:
        with wave.open(str(root / path)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16_000, 1, 2)
            if str(path).startswith(sc.BACKGROUND_DIR):
                assert Path(path).name.startswith("synthetic_")
                assert w.getnframes() == 10 * 16_000
            else:
                assert w.getnframes() == 16_000


@needs_espeak
def test_fptt_learns_synthetic_speech_well_above_chance(
    synthetic_corpus: Path, tmp_path: Path
) -> None:
    config = make_config(
        dataset="speech_commands", data_dir=str(synthetic_corpus), cache_dir=str(tmp_path),
        algorithm="fptt", partitions=4, hidden=48, epochs=8, batch_size=16, seed=1,
    )  # fmt: skip
    result = fit(config)
    # 12 classes: chance is 1/12; 24 test clips from two held-out "speakers"
    assert result.final_test_accuracy > 0.3
    assert result.dataset == "synthetic-speech_commands-12"


@needs_espeak
def test_make_speech_data_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "syn"
    args = ["make-speech-data", "-o", str(out), "--words", "yes,no,cat", "--speakers", "3"]
    code = main([*args, "--background-s", "3", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["synthetic"] is True and "stand-in" in doc["note"]
    assert doc["clips"] == {"train": 3, "validation": 3, "test": 3}
    code = main([*args, "--background-s", "3"])  # not empty: refused
    err = capsys.readouterr().err
    assert code == 2 and "not empty" in err and len(err.strip().splitlines()) == 1
    assert main([*args, "--background-s", "3", "--overwrite"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out


def test_missing_espeak_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(synthetic_speech.shutil, "which", lambda name: None)
    code = main(["make-speech-data", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "apt-get install -y espeak-ng" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
