"""Output paths checked before work, one run per output folder, file modes, help and progress."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgefptt.cli import COMMANDS, _docstrings, load_command, main
from edgefptt.train.checkpoint import atomic_write
from edgefptt.train.rundir import LOCK_NAME

TRAIN = ["train", "--dataset", "digits", "--hidden", "4", "-K", "2", "--limit", "40"]
TRAIN += ["--batch-size", "20", "--epochs", "1"]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _unusable(tmp_path: Path) -> dict[str, Path]:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    return {"file": blocker, "under_file": blocker / "sub"}


@pytest.mark.parametrize("kind", ["file", "under_file"])
@pytest.mark.parametrize(
    "argv",
    [
        [*TRAIN, "--out", "{dir}"],
        [*TRAIN, "--out", "{tmp}/ok", "--plot", "{under}/c.png"],
        [*TRAIN, "--dataset", "speech_commands", "--data-dir", "{tmp}", "--cache-dir", "{dir}"],
        ["export-c", "--batch", "2", "-o", "{dir}"],
        ["make-speech-data", "-o", "{dir}"],
        ["report", "--quick", "-o", "{dir}"],
        ["explore", "--mesh", "4", "--cores", "1", "--partitions", "14", "--csv", "{under}/p.csv"],
        ["explore", "--mesh", "4", "--cores", "1", "--partitions", "14", "--plot", "{under}/p.png"],
    ],
)
def test_unusable_output_paths_exit_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], kind: str
) -> None:
    paths = _unusable(tmp_path)
    filled = [a.format(dir=paths[kind], under=paths["under_file"], tmp=tmp_path) for a in argv]
    started = time.perf_counter()
    code, out, err = _run(capsys, *filled)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "a_file" in lines[0], err
    assert "is a file" in lines[0] and "internal error" not in lines[0]
    assert "epoch" not in err and out == ""  # nothing was trained or written first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
    assert time.perf_counter() - started < 60


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, _, err = _run(capsys, *TRAIN, "--out", str(locked / "run"))
        assert code == 2 and "not writable" in err, err
        code, _, err = _run(capsys, *TRAIN, "--out", str(locked))
        assert code == 2 and "not writable" in err, err
    finally:
        locked.chmod(0o755)


def test_existing_run_needs_resume_or_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n')
    code, _, err = _run(capsys, *TRAIN, "--out", str(out))
    assert code == 2 and "already holds a run" in err and "--overwrite" in err, err
    assert (out / "metrics.jsonl").read_text() == '{"epoch": 1}\n'
    code, _, err = _run(capsys, *TRAIN, "--out", str(out), "--overwrite", "--json")
    assert code == 0, err
    assert "replaced the earlier run" in err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1] and "train_loss" in records[0]
    assert not (out / LOCK_NAME).exists()  # released at the end
    code, _, err = _run(capsys, *TRAIN, "--out", str(out), "--resume", "--overwrite")
    assert code == 2 and "give one" in err


def test_resume_without_a_checkpoint_is_refused_early(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, *TRAIN, "--out", str(tmp_path / "new"), "--resume")
    assert code == 2 and "train without --resume first" in err and "epoch" not in err


def test_a_second_run_into_a_locked_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from edgefptt.train.rundir import RunLock\n"
         f"with RunLock({str(out)!r}):\n print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, _, err = _run(capsys, *TRAIN, "--out", str(out))
        assert code == 2, err
        assert str(out / LOCK_NAME) in err and f"pid {holder.pid}" in err, err
        assert not (out / "checkpoint.pt").exists()
    finally:
        holder.communicate("")
    assert holder.returncode == 0 and not (out / LOCK_NAME).exists()
    assert _run(capsys, *TRAIN, "--out", str(out))[0] == 0  # free again


def test_a_stale_lock_is_taken_over(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    out = tmp_path / "run"
    out.mkdir()
    lock = {"pid": gone.pid, "host": socket.gethostname(), "started": time.time() - 60}
    (out / LOCK_NAME).write_text(json.dumps(lock))
    code, _, err = _run(capsys, *TRAIN, "--out", str(out))
    assert code == 0, err
    assert "stale lock" in err and f"pid {gone.pid}" in err
    assert (out / "checkpoint.pt").is_file() and not (out / LOCK_NAME).exists()
    # a lock from another host is never taken over
    (out / LOCK_NAME).write_text(json.dumps({**lock, "host": "elsewhere.invalid"}))
    code, _, err = _run(capsys, *TRAIN, "--out", str(out), "--overwrite")
    assert code == 2 and "elsewhere.invalid" in err


def test_stale_temporaries_are_removed_when_a_run_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    left = [out / ".checkpoint.pt.a1b2c3d4.tmp", out / ".metrics.jsonl.zz_9x8y7.tmp"]
    kept = [out / ".checkpoint.pt.mine.tmp", out / "notes.tmp", out / ".other.pt.a1b2c3d4.tmp"]
    for path in left + kept:
        path.write_bytes(b"half a file")
    code, _, err = _run(capsys, *TRAIN, "--out", str(out))
    assert code == 0, err
    assert "removed 2 temporary file(s)" in err
    assert not any(p.exists() for p in left) and all(p.exists() for p in kept)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_writes_honour_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        atomic_write(tmp_path / "x.bin", lambda handle: handle.write(b"data"))
        with open(tmp_path / "plain.bin", "wb") as handle:  # what an ordinary write gives
            handle.write(b"data")
    finally:
        os.umask(previous)
    mode = (tmp_path / "x.bin").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask == (tmp_path / "plain.bin").stat().st_mode & 0o777


def test_checkpoint_and_log_modes_follow_the_umask(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    previous = os.umask(0o022)
    try:
        assert _run(capsys, *TRAIN, "--out", str(tmp_path / "run"))[0] == 0
    finally:
        os.umask(previous)
    for name in ("checkpoint.pt", "metrics.jsonl"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644


# ---------------------------------------------------------------------------- help
@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_has_help_and_flags_show_as_flags(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command = load_command(name)
    module, function = COMMANDS[name]
    assert command.callback.__name__ == function
    # the list `edgefptt --help` shows (read from the source) is the command's own help
    assert " ".join(_docstrings(module)[function].split()) == " ".join(command.help.split())
    for param in command.params:
        if param.param_type_name != "option":
            continue
        text = re.sub(r"\(default: [^)]*\)", "", param.help or "").strip()
        assert len(text.split()) >= 2, f"{name} {param.opts[0]} has no help text"
    code, out, _ = _run(capsys, name, "--help")
    assert code == 0 and "--help" in out
    assert "<bool>" not in out


def test_top_level_help_is_fast_and_imports_no_heavy_module() -> None:
    probe = (
        "import sys\nfrom edgefptt.cli import main\ncode = main(['--help'])\n"
        "heavy = [m for m in ('torch', 'sklearn', 'scipy', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY', heavy, code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert "HEAVY [] 0" in done.stdout, done.stdout + done.stderr
    for name in COMMANDS:
        assert name in done.stdout
    assert "<bool>" not in done.stdout


# ---------------------------------------------------------------------------- report progress
def test_report_prints_plain_progress_when_stderr_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgefptt.report

    def fake_build(out: Path, settings: object, fresh: bool, progress, command: str) -> list:
        progress("memory", "paper layout", 0.0)
        progress("memory", "paper layout", 0.5)  # same message: not repeated
        progress("training", "digits fptt K=8", 0.25)
        progress("memory", "done", 1.0)
        progress("memory", "done", 1.0)
        return []

    monkeypatch.setattr(edgefptt.report, "build_report", fake_build)
    code, _, err = _run(capsys, "report", "--quick", "-o", str(tmp_path / "r"))
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("report: ")]
    assert lines == [
        "report: memory: paper layout (0%)",
        "report: training: digits fptt K=8 (25%)",
        "report: memory: done (100%)",
    ]


# ---------------------------------------------------------------------------- demo timing
def test_demo_timing_takes_medians_over_epochs() -> None:
    from types import SimpleNamespace

    from edgefptt.cli.train_cmds import epoch_timing

    def run(walls: list[float], cpus: list[float]) -> SimpleNamespace:
        return SimpleNamespace(
            history=[{"wall_s": w, "cpu_s": c} for w, c in zip(walls, cpus, strict=True)]
        )

    # one epoch slowed 20-fold by other work moves the mean, not the median
    timing = epoch_timing(run([1.0, 9.0, 2.0], [2.0, 2.2, 1.8]), run([4.0, 4.0, 100.0], [4, 4, 4]))
    assert timing["baseline"] == {"median_epoch_wall_s": 2.0, "median_epoch_cpu_s": 2.0}
    assert timing["ratio"]["median_epoch_wall_s"] == 2.0
    assert timing["ratio"]["median_epoch_cpu_s"] == 2.0


def test_epoch_records_carry_cpu_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, *TRAIN, "--epochs", "2", "--out", str(tmp_path / "r"), "--json")
    assert code == 0
    for record in json.loads(out)["epochs"]:
        assert record["cpu_s"] > 0 and record["wall_s"] > 0
