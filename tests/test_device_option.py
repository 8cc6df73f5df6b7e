"""--device and --precision: CUDA when present, a clear error without it, bf16 autocast with
FPTT state in float32, device-independent checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgefptt.cli import main
from edgefptt.data.base import SequenceData
from edgefptt.errors import ConfigError
from edgefptt.train.checkpoint import load_checkpoint
from edgefptt.train.config import make_config
from edgefptt.train.distributed import autocast, resolve_device
from edgefptt.train.loop import Trainer, fit

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def _data(n: int = 24, steps: int = 16) -> SequenceData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n + 8, steps, 3, generator=g)
    y = (x[:, 0, 0] > 0).long() + 2 * (x[:, -1, 1] > 0).long()
    return SequenceData("tiny", x[:n], y[:n], x[n:], y[n:], num_classes=4)


@no_cuda
def test_cuda_without_cuda_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--device", "cuda", "--epochs", "1", "--limit", "8"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "--device cuda" in err and "--device cpu" in err


def test_unknown_device_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--device", "gpu", "--epochs", "1"]) == 2
    assert "--device" in capsys.readouterr().err


def test_auto_picks_cuda_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="one process per GPU"):
        resolve_device("cuda", local_rank=2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_bf16_autocast_saves_less_and_keeps_fptt_state_fp32() -> None:
    data = _data()
    x, y = data.train_x[:8], data.train_y[:8]
    results = {}
    for precision in ("fp32", "bf16"):
        config = make_config(algorithm="fptt", partitions=2, hidden=16, epochs=1, device="cpu",
                             precision=precision, optimizer="sgd", lr=0.05)  # fmt: skip
        trainer = Trainer(config, data)
        loss, _, saved = trainer.train_batch(x, y, measure=True)
        assert trainer.fptt is not None
        dtypes = {t.dtype for st in trainer.fptt.state.values() for t in st.values()}
        assert dtypes == {torch.float32}
        assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
        results[precision] = (loss, saved)
    (loss32, saved32), (loss16, saved16) = results["fp32"], results["bf16"]
    # bf16 saves 2-byte tensors where fp32 saves 4-byte ones (oneDNN's opaque LSTM workspace,
    # the largest saved buffer on CPU, shrinks less)
    assert saved16 < saved32
    # computed in bf16 (not the fp32 numbers), equal to bf16's precision (8-bit mantissa)
    assert loss16 != loss32
    assert loss16 == pytest.approx(loss32, rel=3e-2)
    with autocast(torch.device("cpu"), "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_checkpoint_tensors_are_on_cpu_and_device_may_change_on_resume(tmp_path: Path) -> None:
    data = _data()
    options = {"algorithm": "fptt", "partitions": 2, "hidden": 8, "schedule": "constant"}
    fit(make_config(**options, epochs=1, device="auto"), data, out_dir=tmp_path)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    tensors = [*saved["model"].values()]
    tensors += [t for entry in saved["fptt"]["state"].values() for t in entry.values()]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    result = fit(make_config(**options, epochs=2, device="cpu"), data, out_dir=tmp_path,
                 resume=True)  # fmt: skip
    assert [r["epoch"] for r in result.history] == [1, 2]


@needs_cuda
def test_cuda_training_measures_gpu_memory_and_loads_on_cpu(tmp_path: Path) -> None:
    data = _data()
    config = make_config(algorithm="fptt", partitions=2, hidden=8, epochs=1, device="cuda",
                         precision="bf16")  # fmt: skip
    result = fit(config, data, out_dir=tmp_path)
    assert result.device.startswith("cuda")
    assert result.history[0]["peak_cuda_bytes"] > 0
    assert next(result.model.parameters()).device.type == "cpu"
    saved = torch.load(tmp_path / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert all(t.device.type == "cpu" for t in saved["model"].values())
    cpu = fit(make_config(**{**config.model_dump(), "device": "cpu", "epochs": 2}), data,
              out_dir=tmp_path, resume=True)  # fmt: skip
    assert len(cpu.history) == 2


def test_report_has_a_gpu_section_only_with_a_gpu() -> None:
    from edgefptt.report.build import SECTIONS

    assert ("gpu" in [s.key for s in SECTIONS]) == torch.cuda.is_available()


@no_cuda
def test_evaluate_takes_the_device_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """evaluate --device: cpu evaluates as the default does; cuda without CUDA is exit 2 before
    anything is loaded (the checkpoint here does not even exist)."""
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.pt"), "--device", "cuda"]) == 2
    assert "--device cuda" in capsys.readouterr().err
    out = tmp_path / "run"
    assert (
        main(["train", "--epochs", "1", "--limit", "40", "--hidden", "8", "--out", str(out)]) == 0
    )
    capsys.readouterr()
    results = []
    for device in ("auto", "cpu"):
        args = [
            "evaluate",
            "--checkpoint",
            str(out / "checkpoint.pt"),
            "--json",
            "--device",
            device,
        ]
        assert main(args) == 0
        results.append(capsys.readouterr().out)
    assert results[0] == results[1]
