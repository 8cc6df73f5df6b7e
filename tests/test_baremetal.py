"""Bare-metal builds under qemu-system with semihosting (docs/deploy.md, "Bare metal").

- RISC-V (qemu virt, machine mode, picolibc): 1 and 4 harts print the same losses, bit for bit,
  and equal golden.json and the host build within the fp32 tolerance (relative 1e-5; the host
  contracts into FMA, the bare-metal builds do not).
- Cortex-M4F (mps2-an386) and Cortex-M7 (mps2-an500), fp32 and bf16: golden.json within the
  documented tolerances (fp32 relative 1e-5, bf16 one bf16 ulp; see test_codegen_host).
- The learner with its sample files and state through semihosting, on RISC-V (2 harts, a
  resumed run) and on the Cortex-M4F: the epochs of learn_host within 1e-5.
- An export whose arena does not fit the board's RAM fails to link, with the linker script's
  message: the bytes needed, the RAM, the shortfall and what to do.

Each test is skipped with the reason when its cross compiler, picolibc or qemu is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgefptt.codegen import (
    LEARNERS,
    BuildError,
    arena_symbols,
    export_c,
    make,
    run_baremetal,
    run_baremetal_learner,
    run_binary,
    run_learner,
    tool_missing,
)
from edgefptt.codegen.boards import BOARDS, memory_budget_hint, stack_bytes
from edgefptt.config import make_specs
from edgefptt.learn.samples import write_samples
from edgefptt.learn.state import read_state

pytestmark = pytest.mark.skipif(tool_missing("host") is not None, reason=str(tool_missing("host")))

SMALL = dict(input_size=2, hidden_size=6, num_classes=3, batch_size=3, schedule="exact")
T, K = 28, 14
GROUPS = {"MatMul-1", "MatMul-2", "MatMul-3", "Mat2Vec", "EWO-basic", "EWO-combo",
          "EWO-SGD(FPTT)", "Sigmoid", "tanh", "softmax", "dataMovement"}  # fmt: skip
TOL = {"fp32": 1e-5, "bf16": 2**-7}


def needs(target: str):
    missing = tool_missing(target)
    return pytest.mark.skipif(missing is not None, reason=f"{target}: {missing}")


def _export(tmp_path_factory, dtype: str):
    net, run = make_specs(None, seq_len=T, partitions=K, dtype=dtype, learning_rate=0.05, **SMALL)
    export = export_c(net, run, tmp_path_factory.mktemp(f"bm_{dtype}"), seed=5)
    make(export.out_dir, "host")  # train_host and learn_host, the references
    return export


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    export = _export(tmp_path_factory, "fp32")
    rng = np.random.default_rng(11)
    for name, count in (("train.efs", 12), ("test.efs", 7)):
        x = rng.standard_normal((count, T, SMALL["input_size"])).astype(np.float32)
        y = rng.integers(0, SMALL["num_classes"], count)
        write_samples(export.out_dir / name, x, y, SMALL["num_classes"])
    return export


@pytest.fixture(scope="module")
def bf16(tmp_path_factory):
    return _export(tmp_path_factory, "bf16")


def _host(export):
    return run_binary(export.out_dir / "train_host")


def _close(got, want, rel):
    assert np.allclose(got, want, rtol=rel, atol=0), (got, want)


@needs("baremetal-riscv")
def test_riscv_harts_equal_host_and_golden(fp32):
    host = _host(fp32)
    runs = {}
    for harts in (1, 4):
        elf = make(fp32.out_dir, "baremetal-riscv", learner=False, harts=harts)
        runs[harts] = run_baremetal(elf, "baremetal-riscv", harts=harts)
        _close(runs[harts].losses, fp32.golden_losses, TOL["fp32"])
        _close(runs[harts].losses, host.losses, TOL["fp32"])
        assert set(runs[harts].groups) == GROUPS
        assert runs[harts].groups["MatMul-1"] > 0  # mcycle counts
    # every element is computed by one hart in the same order, whatever the number of harts
    assert runs[1].losses == runs[4].losses
    assert arena_symbols(elf, "riscv64-unknown-elf-nm")["edgefptt_arena"] == fp32.arena_bytes


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize(
    "target", [pytest.param(t, marks=needs(t)) for t in ("cortex-m-an386", "cortex-m-an500")]
)
def test_cortex_m_matches_golden(request, target, dtype):
    export = request.getfixturevalue(dtype)
    elf = make(export.out_dir, target, learner=False)
    out = run_baremetal(elf, target)
    _close(out.losses, export.golden_losses, TOL[dtype])
    _close(out.losses, _host(export).losses, TOL[dtype])
    assert set(out.groups) == GROUPS and out.groups["MatMul-1"] > 0  # SysTick cycles
    assert max(out.groups.values()) < 2**40  # never a negative difference (a missed wrap)
    assert arena_symbols(elf, "arm-none-eabi-nm")["edgefptt_arena"] == export.arena_bytes


def _files(export):
    out = export.out_dir
    return ["--train", str(out / "train.efs"), "--test", str(out / "test.efs")]


@pytest.mark.parametrize(
    "target", [pytest.param(t, marks=needs(t)) for t in ("baremetal-riscv", "cortex-m-an386")]
)
def test_learner_equals_learn_host(fp32, tmp_path, target):
    """Two epochs: one run that saves its state through semihosting, then a resumed run."""
    harts = 2 if target == "baremetal-riscv" else 1
    make(fp32.out_dir, target, harts=harts)
    elf = fp32.out_dir / LEARNERS[target]
    host = run_learner(fp32.out_dir / "learn_host", *_files(fp32), "--epochs", "2")
    state = tmp_path / "device.state"
    common = (*_files(fp32), "--state", str(state))
    first = run_baremetal_learner(elf, target, *common, "--epochs", "1", harts=harts)
    rest = run_baremetal_learner(elf, target, *common, "--epochs", "2", "--resume", harts=harts)
    device = first.epochs + rest.epochs
    assert [e["epoch"] for e in device] == [1, 2]
    for mine, ref in zip(device, host.epochs, strict=True):
        _close(mine["train_loss"], ref["train_loss"], 1e-5)
        _close(mine["test_loss"], ref["test_loss"], 1e-5)
        assert mine["train_acc"] == ref["train_acc"] and mine["test_acc"] == ref["test_acc"]
        assert mine["confusion"] == ref["confusion"] and mine["lr"] == ref["lr"]
    saved, _ = read_state(state)  # the state file the device wrote, read by the host side
    assert saved.epoch == 2
    # bad input: one `error:` line and exit status 2, through semihosting
    bad = run_baremetal_learner(
        elf, target, "--train", str(tmp_path / "none.efs"), harts=harts, check=False
    )
    assert bad.returncode == 2 and "error: cannot read the sample file" in bad.stdout


@needs("cortex-m-an386")
def test_oversized_export_fails_to_link(tmp_path):
    """An arena larger than the mps2-an386's 4 MiB of RAM: the link fails with our message."""
    net, run = make_specs(
        None, input_size=1, hidden_size=16, num_classes=3, batch_size=8, seq_len=784,
        partitions=1, schedule="exact",
    )  # fmt: skip
    export = export_c(net, run, tmp_path, seed=1)
    board = BOARDS["an386"]
    assert export.arena_bytes > board.ram_bytes
    with pytest.raises(BuildError) as failed:
        make(export.out_dir, "cortex-m-an386", learner=False)
    text = str(failed.value)
    stack = stack_bytes(net, run)
    need = export.arena_bytes + stack
    assert f"does not fit the {board.ram_bytes} bytes of RAM of {board.title}" in text
    assert f"the arena ({export.arena_bytes} bytes) and 1 stack of {stack} bytes" in text
    assert f"need {need} bytes: {need - board.ram_bytes} bytes short" in text
    budget = memory_budget_hint(board, 1, stack)
    assert (
        "choose a smaller K, the recompute plan or bf16: edgefptt export-c --memory-budget "
        f"{budget} --dtype auto"
    ) in text
    assert "region `RAM' overflowed" in text  # ld's own count
