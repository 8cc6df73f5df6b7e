"""The generated C learner against independent references.

- fp32: the C learner's epochs equal the golden learner (NumPy kernels chained over batches in
  the documented order) and the host's `train --recipe device` (torch autograd), within 1e-4
  relative: three implementations of docs/learner.md agreeing.
- bf16: the C learner equals the golden learner in bf16 within one bf16 ulp (2^-7 relative; in
  practice the numbers are equal, see test_codegen_host's module docstring).
- 1 and 4 threads print the same numbers; the state survives a kill -9 at any byte of a write;
  bad input exits 2 and leaves the state file untouched; nothing but the arena and one batch
  is of size in writable memory.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from edgefptt.codegen import arena_symbols, export_c, make, run_learner, tool_missing
from edgefptt.config import make_specs
from edgefptt.data import load_dataset
from edgefptt.learn.golden import golden_learn
from edgefptt.learn.samples import write_samples
from edgefptt.learn.state import read_state, slot_bytes

pytestmark = pytest.mark.skipif(tool_missing("host") is not None, reason=str(tool_missing("host")))

HIDDEN, BATCH, K = 8, 8, 4
N_TRAIN, N_TEST = 48, 20
EPOCHS = 3
LR = 0.05


@pytest.fixture(scope="module")
def digits():
    return _digits_arrays()


def _build(tmp_path_factory, name, dtype="fp32", target="host"):
    net, run = make_specs(
        None, input_size=1, hidden_size=HIDDEN, num_classes=10, batch_size=BATCH, seq_len=64,
        partitions=K, dtype=dtype, schedule="exact", learning_rate=LR,
    )  # fmt: skip
    out = tmp_path_factory.mktemp(name)
    export = export_c(net, run, out, seed=5)
    make(out, target)
    return export


@pytest.fixture(scope="module")
def fp32(tmp_path_factory, digits):
    export = _build(tmp_path_factory, "learn_fp32")
    train_x, train_y, test_x, test_y = digits
    write_samples(export.out_dir / "train.efs", train_x, train_y, 10)
    write_samples(export.out_dir / "test.efs", test_x, test_y, 10)
    return export


def _files(export):
    return [
        "--train",
        str(export.out_dir / "train.efs"),
        "--test",
        str(export.out_dir / "test.efs"),
    ]


def _learn(export, *args, **kwargs):
    return run_learner(export.out_dir / "learn_host", *_files(export), *args, **kwargs)


def _close(got, want, rel):
    assert np.allclose(got, want, rtol=rel, atol=0), (got, want)


def test_fp32_equals_golden_learner(fp32, digits):
    train_x, train_y, test_x, test_y = digits
    out = _learn(fp32, "--epochs", str(EPOCHS), "--lr-step", "2:0.5", "--seed", "7")
    golden = golden_learn(
        fp32.network, fp32.run, fp32.params, train_x, train_y, test_x, test_y,
        epochs=EPOCHS, lr0=LR, lr_step="2:0.5", seed=7,
    )  # fmt: skip
    assert len(out.epochs) == EPOCHS
    for mine, ref in zip(out.epochs, golden.records, strict=True):
        _close(mine["train_loss"], ref["train_loss"], 1e-4)
        _close(mine["test_loss"], ref["test_loss"], 1e-4)
        assert mine["train_acc"] == pytest.approx(ref["train_accuracy"], abs=1e-9)
        assert mine["test_acc"] == pytest.approx(ref["test_accuracy"], abs=1e-9)
        assert np.array_equal(np.array(mine["confusion"]), np.asarray(ref["confusion"]))
        assert mine["lr"] == pytest.approx(ref["lr"], rel=1e-7)
    # the schedule: halved after two epochs
    assert out.epochs[2]["lr"] == pytest.approx(LR / 2, rel=1e-7)
    assert out.epochs[0]["train_samples"] == N_TRAIN // BATCH * BATCH


def test_threads_give_the_same_numbers(fp32):
    one = _learn(fp32, "--epochs", "2", "-t", "1")
    four = _learn(fp32, "--epochs", "2", "-t", "4")
    for a, b in zip(one.epochs, four.epochs, strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }


def test_bf16_equals_golden_learner(tmp_path_factory, digits):
    export = _build(tmp_path_factory, "learn_bf16", dtype="bf16")
    train_x, train_y, test_x, test_y = digits
    write_samples(export.out_dir / "train.efs", train_x, train_y, 10, dtype="bf16")
    write_samples(export.out_dir / "test.efs", test_x, test_y, 10)  # fp32, rounded on reading
    out = _learn(export, "--epochs", "2")
    golden = golden_learn(
        export.network, export.run, export.params, train_x, train_y, test_x, test_y,
        epochs=2, lr0=LR,
    )  # fmt: skip
    for mine, ref in zip(out.epochs, golden.records, strict=True):
        _close(mine["train_loss"], ref["train_loss"], 2**-7)
        _close(mine["test_loss"], ref["test_loss"], 2**-7)


def _uninterrupted(export, tmp_path, *extra):
    return _learn(export, "--epochs", "3", "--state", str(tmp_path / "whole.state"), *extra)


@pytest.mark.parametrize("where", ["first_save", "mid_image", "crc", "mid_epoch"])
def test_kill_during_a_state_write_loses_nothing(fp32, tmp_path, where):
    """SIGKILL after N bytes of state writes, then --resume: the same epochs as without."""
    state = tmp_path / "run.state"
    image = _image_bytes(fp32)
    extra = ("--save-every", "2") if where == "mid_epoch" else ()
    whole = _uninterrupted(fp32, tmp_path, *extra)
    # writes: the initial state (one image), then (mid_epoch) every 2 batches, then each epoch
    kill_at = {
        "first_save": image // 2,
        "mid_image": image + image // 3,  # inside the second image (epoch 1's)
        "crc": 2 * image - 2,  # inside the CRC of the second image
        "mid_epoch": 2 * image + 100,  # inside the second mid-epoch save of epoch 1
    }[where]
    killed = _learn(
        fp32, "--epochs", "3", "--state", str(state), *extra,
        env={"EDGEFPTT_STATE_KILL_AT": str(kill_at)}, check=False,
    )  # fmt: skip
    assert killed.returncode in (-9, 137)
    if where == "first_save":  # nothing complete yet: start again
        assert read_state_fails(state)
        state.unlink()
        again = _learn(fp32, "--epochs", "3", "--state", str(state), *extra)
        assert _same(again.epochs, whole.epochs)
        return
    saved, _ = read_state(state)  # the Python reader finds the last good image
    resumed = _learn(fp32, "--epochs", "3", "--state", str(state), "--resume")
    done = killed.epochs + resumed.epochs
    # epochs printed before the kill may be printed again after it (the state is older)
    by_epoch = {e["epoch"]: e for e in done}
    assert sorted(by_epoch) == [1, 2, 3]
    assert _same([by_epoch[e] for e in (1, 2, 3)], whole.epochs)
    assert saved.epoch <= 1


def _image_bytes(export) -> int:
    net = export.network
    p = net.num_params
    return 140 + 3 * p * export.run.element_bytes


def read_state_fails(path) -> bool:
    from edgefptt.learn.state import StateError

    try:
        read_state(path)
    except StateError:
        return True
    return False


def _same(a, b) -> bool:
    strip = [{k: v for k, v in e.items() if k != "seconds"} for e in a]
    return strip == [{k: v for k, v in e.items() if k != "seconds"} for e in b]


def test_resume_continues_exactly(fp32, tmp_path):
    whole = _learn(fp32, "--epochs", "3")
    state = tmp_path / "s.state"
    first = _learn(fp32, "--epochs", "1", "--state", str(state))
    rest = _learn(fp32, "--epochs", "3", "--state", str(state), "--resume")
    assert _same(first.epochs + rest.epochs, whole.epochs)
    saved, _ = read_state(state)
    assert saved.epoch == 3
    assert os.path.getsize(state) == 2 * slot_bytes(fp32.network.num_params, "fp32")


def _bad(export, *args):
    return _learn(export, *args, check=False)


def test_bad_input_exits_2_and_keeps_the_state(fp32, tmp_path):
    state = tmp_path / "keep.state"
    _learn(fp32, "--epochs", "1", "--state", str(state))
    before = state.read_bytes()
    wrong_t = tmp_path / "t32.efs"
    write_samples(wrong_t, np.zeros((10, 32, 1), np.float32), np.zeros(10, np.int64), 10)
    damaged = tmp_path / "damaged.efs"
    data = bytearray((fp32.out_dir / "train.efs").read_bytes())
    data[100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    truncated = tmp_path / "short.state"
    truncated.write_bytes(before[:1000])
    learner = str(fp32.out_dir / "learn_host")
    cases = {
        "no such file": [learner, "--train", str(tmp_path / "none.efs")],
        "wrong magic": [learner, "--train", str(fp32.out_dir / "Makefile")],
        "T=32": [learner, "--train", str(wrong_t)],
        "CRC mismatch": [learner, "--train", str(damaged)],
        "exists": [learner, *_files(fp32), "--state", str(state)],
        "truncated": [learner, *_files(fp32), "--state", str(truncated), "--resume"],
        "another --lr": [learner, *_files(fp32), "--state", str(state), "--resume", "--lr", "1"],
        "finite number": [learner, *_files(fp32), "--lr", "inf"],
        "-t takes": [learner, *_files(fp32), "-t", "0"],
        "unknown option": [learner, *_files(fp32), "--bogus"],
        "no state file": [learner, *_files(fp32), "--state", str(tmp_path / "x"), "--resume"],
    }
    for words, argv in cases.items():
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert done.returncode == 2, (words, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (words, done.stderr)
        assert words.lower() in lines[0].lower() or words in ("no such file",), (words, lines)
        assert state.read_bytes() == before  # a failed run never touches the state
    # a damaged newest slot falls back to the older one (the power-loss case)
    region = bytearray(before)
    saved, slot = read_state(state)
    region[slot * slot_bytes(fp32.network.num_params, "fp32") + 200] ^= 0x01
    state.write_bytes(bytes(region))
    older, older_slot = read_state(state)
    assert older_slot != slot and older.sequence == saved.sequence - 1
    out = _learn(fp32, "--epochs", "1", "--state", str(state), "--resume")
    assert out.epochs[0]["epoch"] == 1  # the older image is epoch 0: epoch 1 runs again


def test_learner_memory_is_the_arena_and_one_batch(fp32):
    sizes = arena_symbols(fp32.out_dir / "learn_host")
    assert sizes["edgefptt_arena"] == fp32.arena_bytes
    batch = BATCH * 64 * 1 * 4
    assert sizes["batch_x"] == batch
    others = {k: v for k, v in sizes.items() if k not in ("edgefptt_arena", "batch_x")}
    assert max(others.values()) <= 1024, others  # libc's and our bookkeeping: small


@pytest.mark.skipif(tool_missing("riscv") is not None, reason=str(tool_missing("riscv")))
def test_riscv_under_qemu_equals_host(fp32):
    make(fp32.out_dir, "riscv")
    host = _learn(fp32, "--epochs", "2")
    riscv = run_learner(
        fp32.out_dir / "learn_riscv", *_files(fp32), "--epochs", "2", "-t", "2", qemu=True
    )
    for a, b in zip(host.epochs, riscv.epochs, strict=True):
        _close(b["train_loss"], a["train_loss"], 1e-5)
        _close(b["test_loss"], a["test_loss"], 1e-5)
        assert b["confusion"] == a["confusion"]


def test_json_lines_parse(fp32):
    out = _learn(fp32, "--epochs", "1")
    record = json.loads(out.stdout.splitlines()[0])
    assert set(record) >= {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"}
    text = subprocess.run(
        [str(fp32.out_dir / "learn_host"), *_files(fp32), "--epochs", "1"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert text[0::2][:6] == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc",
                              "seconds"]  # fmt: skip


def test_c_learner_equals_host_device_recipe(tmp_path, digits):
    """A checkpoint trained on the host, exported with --weights; the C learner and the host's
    `--recipe device` (torch autograd) fine-tune it for 3 epochs: the same epochs to 1e-4."""
    import torch

    from edgefptt.codegen.inputs import checkpoint_params
    from edgefptt.data.base import SequenceData
    from edgefptt.train.config import make_config
    from edgefptt.train.loop import fit

    train_x, train_y, test_x, test_y = digits
    data = SequenceData(
        "digits-small", torch.from_numpy(train_x), torch.from_numpy(train_y),
        torch.from_numpy(test_x), torch.from_numpy(test_y), num_classes=10,
    )  # fmt: skip
    pretrain = make_config(hidden=HIDDEN, partitions=K, batch_size=BATCH, epochs=1, seed=1)
    fit(pretrain, data, out_dir=tmp_path / "pre")
    ckpt = tmp_path / "pre" / "checkpoint.pt"
    params, sizes = checkpoint_params(ckpt)
    net, run = make_specs(
        None, **sizes, batch_size=BATCH, seq_len=64, partitions=K, schedule="exact",
        learning_rate=LR,
    )  # fmt: skip
    export = export_c(net, run, tmp_path / "c", params=params)
    make(export.out_dir, "host")
    write_samples(export.out_dir / "train.efs", train_x, train_y, 10)
    write_samples(export.out_dir / "test.efs", test_x, test_y, 10)
    device = _learn(export, "--epochs", "3", "--seed", "3", "--lr-step", "1:0.8")
    host = fit(
        make_config(
            recipe="device", init=str(ckpt), hidden=HIDDEN, partitions=K, batch_size=BATCH,
            epochs=3, seed=3, lr=LR, lr_step="1:0.8",
        ),
        data,
    )  # fmt: skip
    for mine, ref in zip(device.epochs, host.history, strict=True):
        _close(mine["train_loss"], ref["train_loss"], 1e-4)
        _close(mine["test_loss"], ref["test_loss"], 1e-4)
        assert mine["train_acc"] == pytest.approx(ref["train_accuracy"], abs=1e-9)
        assert mine["test_acc"] == pytest.approx(ref["test_accuracy"], abs=1e-9)


def test_learner_is_clean_under_sanitizers(fp32, tmp_path):
    """AddressSanitizer + UndefinedBehaviorSanitizer over training, a state write, a resume and
    an evaluation: no report, and the same numbers as the optimized build."""
    make(fp32.out_dir, "sanitize")
    sanitized = fp32.out_dir / "learn_sanitize"
    state = str(tmp_path / "asan.state")
    first = run_learner(sanitized, *_files(fp32), "--epochs", "1", "--state", state, "-t", "2")
    rest = run_learner(sanitized, *_files(fp32), "--epochs", "2", "--state", state, "--resume")
    only = run_learner(sanitized, "--evaluate", "--test", str(fp32.out_dir / "test.efs"))
    assert "Sanitizer" not in first.stderr + rest.stderr + only.stderr
    plain = _learn(fp32, "--epochs", "2")
    for a, b in zip(first.epochs + rest.epochs, plain.epochs, strict=True):
        _close(a["train_loss"], b["train_loss"], 1e-5)
        assert a["confusion"] == b["confusion"]
    assert only.epochs[0]["epoch"] == 0 and only.epochs[0]["train_loss"] is None


def test_flash_image_sensor_callback_and_memory_store(fp32, tmp_path):
    """The library as a device uses it (tests/learner_driver.c): training samples from a sample
    file's bytes in memory, test samples from a callback, the state in a two-slot memory region
    reloaded after the first epoch (a reset). Same epochs as learn_host."""
    from pathlib import Path

    out = fp32.out_dir
    driver = Path(__file__).with_name("learner_driver.c")
    binary = tmp_path / "driver"
    sources = [str(driver)] + [
        str(out / name)
        for name in ("learner.c", "model.c", "data.c", "runtime.c", "matmul_portable.c",
                     "matmul_gemmini.c")
    ]  # fmt: skip
    subprocess.run(
        ["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", f"-I{out}", "-o", str(binary),
         *sources, "-lm", "-lpthread"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    done = subprocess.run(
        [str(binary), str(out / "train.efs"), str(out / "test.efs"), "3"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = [line.split() for line in done.stdout.splitlines()]
    reference = _learn(fp32, "--epochs", "3", "--lr", "0.05")
    assert len(lines) == 3
    for words, ref in zip(lines, reference.epochs, strict=True):
        assert int(words[1]) == ref["epoch"]
        _close(float(words[3]), ref["train_loss"], 1e-5)
        _close(float(words[5]), ref["test_loss"], 1e-5)
        assert float(words[7]) == pytest.approx(ref["test_acc"], abs=1e-9)


def test_early_stop_matches_the_golden_learner(fp32, digits):
    """--patience 1 with a learning rate too large to improve: both stop at the same epoch."""
    train_x, train_y, test_x, test_y = digits
    out = _learn(fp32, "--epochs", "8", "--lr", "3", "--patience", "1")
    golden = golden_learn(
        fp32.network, fp32.run, fp32.params, train_x, train_y, test_x, test_y,
        epochs=8, lr0=3.0, patience=1,
    )  # fmt: skip
    assert golden.stopped_early and out.epochs[-1]["stopped"]
    assert len(out.epochs) == len(golden.records) < 8


def test_import_c_of_a_learner_state_evaluates_like_the_device(fp32, tmp_path, capsys):
    """The state learn_host wrote, imported as a checkpoint, scores on the host exactly what the
    device printed for its last epoch (torch forward on the imported W_bar)."""
    import torch

    from edgefptt.cli import main
    from edgefptt.data.base import SequenceData
    from edgefptt.train.config import make_config
    from edgefptt.train.loop import fit

    train_x, train_y, test_x, test_y = (torch.from_numpy(a) for a in _digits_arrays())
    like = tmp_path / "like"
    data = SequenceData("digits-small", train_x, train_y, test_x, test_y, num_classes=10)
    fit(make_config(hidden=HIDDEN, partitions=K, batch_size=BATCH, epochs=1), data, out_dir=like)
    state = tmp_path / "device.state"
    device = _learn(fp32, "--epochs", "2", "--state", str(state))
    out = tmp_path / "device.pt"
    assert (
        main(["import-c", str(state), "--like", str(like / "checkpoint.pt"), "-o", str(out)]) == 0
    )
    capsys.readouterr()
    code = main(["evaluate", "--checkpoint", str(out), "--samples",
                 str(fp32.out_dir / "test.efs"), "--json"])  # fmt: skip
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["accuracy"] == pytest.approx(device.epochs[-1]["test_acc"], abs=1e-9)
    _close(doc["loss"], device.epochs[-1]["test_loss"], 1e-5)


def _digits_arrays():
    data = load_dataset("digits")
    return (
        data.train_x[:N_TRAIN].numpy(),
        data.train_y[:N_TRAIN].numpy(),
        data.test_x[:N_TEST].numpy(),
        data.test_y[:N_TEST].numpy(),
    )
