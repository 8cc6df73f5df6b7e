"""Generated C for RISC-V cores with the V extension (RVV 1.0, `make riscv_rvv`: clang-16
-march=rv64gcv), run under qemu-riscv64 with the V extension at two vector lengths, against
the golden executor.

Tolerances as in test_codegen_riscv.py and test_codegen_host.py: fp32 relative 1e-5 (the C
sums matmul products in k order with fused multiply-add, the golden model in DIM-wide slices
without), bf16 one bf16 ulp (2^-7). The kernels are vector-length agnostic: every element's
operations are the same whatever the vector length, so 128- and 256-bit vector registers must
give the same bits.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from edgefptt.codegen import export_c, make, run_binary, run_learner, tool_missing
from edgefptt.codegen.build import QEMU_RVV_CPU
from edgefptt.config import make_specs
from edgefptt.edge import execute
from edgefptt.workload import build_exact


def _qemu_without_rvv() -> str | None:
    """Why qemu-riscv64 cannot emulate the V extension here (None when it can): a qemu that
    lacks it rejects the CPU's properties before it looks for the program."""
    done = subprocess.run(
        ["qemu-riscv64", "-cpu", QEMU_RVV_CPU, "/nonexistent"], capture_output=True, text=True
    )
    rejected = "propert" in done.stderr.lower() or "can't apply" in done.stderr
    return f"qemu-riscv64 without RVV: {done.stderr.strip()}" if rejected else None


_MISSING = tool_missing("riscv_rvv") or _qemu_without_rvv()
pytestmark = pytest.mark.skipif(
    _MISSING is not None,
    reason=f"RVV tests need clang-16, gcc-riscv64-linux-gnu and qemu-user: {_MISSING}",
)

SMALL = dict(input_size=2, hidden_size=6, num_classes=3, batch_size=3, schedule="exact")
CPUS = {"vlen128": QEMU_RVV_CPU, "vlen256": QEMU_RVV_CPU.replace("vlen=128", "vlen=256")}


def _export(tmp_path_factory, t, k, dtype="fp32", **sizes):
    net, run = make_specs(None, seq_len=t, partitions=k, dtype=dtype, **(sizes or SMALL))
    return export_c(net, run, tmp_path_factory.mktemp(f"rvv{k}{dtype}"), seed=5)


def _shapes(export):
    return export.network.param_shapes(), (export.run.batch_size, export.network.num_classes)


def _golden(export):
    workload = build_exact(export.network, export.run)
    return execute(workload, export.params, export.inputs, export.labels, rounding=export.rounding)


def _disassembly(binary, function: str) -> str:
    """The disassembly of one function of a static binary, vector instructions decoded
    (llvm-objdump from llvm-16, which clang-16 depends on)."""
    done = subprocess.run(
        ["llvm-objdump-16", "-d", "--mattr=+v", f"--disassemble-symbols={function}", str(binary)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


@pytest.mark.parametrize(
    ("k", "dtype", "cell"),
    [(1, "fp32", "lstm"), (14, "fp32", "lstm"), (4, "fp32", "gru"), (4, "bf16", "lstm")],
)
def test_rvv_matches_golden_at_two_vector_lengths(tmp_path_factory, k, dtype, cell):
    export = _export(tmp_path_factory, 28, k, dtype, **SMALL, cell=cell)
    binary = make(export.out_dir, "riscv_rvv", learner=False)
    golden = _golden(export)
    tol = 2**-7 if dtype == "bf16" else 1e-5
    runs = {}
    for name, cpu in CPUS.items():
        for threads in (1, 2):
            out = run_binary(binary, qemu=True, qemu_cpu=cpu, threads=threads,
                             dump_shapes=_shapes(export))  # fmt: skip
            assert len(out.losses) == k
            np.testing.assert_allclose(out.losses, golden.losses, rtol=tol)
            for param, value in golden.params.items():
                scale = np.max(np.abs(value))
                atol = 2**-7 * 1e-2 if dtype == "bf16" else 1e-6 * scale
                np.testing.assert_allclose(out.params[param], value, rtol=tol, atol=atol)
            runs[name, threads] = out
    # Vector-length agnostic and element by element: the same bits at any VLEN and hart count.
    first = runs["vlen128", 1]
    for out in runs.values():
        assert out.losses == first.losses
        for param, value in first.params.items():
            np.testing.assert_array_equal(out.params[param], value)


def test_rvv_build_uses_vector_kernels_and_needs_the_v_extension(tmp_path_factory):
    """The fp32 matmul, the element-wise copies and the FPTT update are vector code (a build
    that fell back to the scalar kernels would still match golden), so the binary cannot run
    on a core without the V extension."""
    export = _export(tmp_path_factory, 12, 3)
    binary = make(export.out_dir, "riscv_rvv", learner=False)
    matmul = _disassembly(binary, "ef_matmul_backend")  # rv_row_block inlined
    assert "vfmacc.vf" in matmul and "vlse32.v" in matmul  # B and B^T
    assert "vfnmsub.vf" in _disassembly(binary, "ef_fptt_sgd")  # w - lr * (...), fused
    forward = _disassembly(binary, "ef_lstm_cell_forward")
    assert "vlse32.v" in forward and "vfmul.vv" in forward  # strided gather (2 harts), math
    done = subprocess.run(["qemu-riscv64", str(binary), "-t", "1"], capture_output=True)
    assert done.returncode != 0  # rv64gc without V: an illegal instruction


def test_rvv_learner_equals_golden_learner(tmp_path_factory):
    """learn_riscv_rvv trains on pixel digits like the golden learner (NumPy), at the learner
    tests' fp32 tolerance (test_learner_c.py)."""
    from edgefptt.data import load_dataset
    from edgefptt.learn.golden import golden_learn
    from edgefptt.learn.samples import write_samples

    net, run = make_specs(
        None, input_size=1, hidden_size=8, num_classes=10, batch_size=8, seq_len=64,
        partitions=4, dtype="fp32", schedule="exact", learning_rate=0.05,
    )  # fmt: skip
    export = export_c(net, run, tmp_path_factory.mktemp("rvv_learn"), seed=5)
    learner = make(export.out_dir, "riscv_rvv").parent / "learn_riscv_rvv"
    data = load_dataset("digits")
    train_x, train_y = data.train_x[:16].numpy(), data.train_y[:16].numpy()
    test_x, test_y = data.test_x[:8].numpy(), data.test_y[:8].numpy()
    write_samples(export.out_dir / "train.efs", train_x, train_y, 10)
    write_samples(export.out_dir / "test.efs", test_x, test_y, 10)
    out = run_learner(
        learner, "--train", str(export.out_dir / "train.efs"), "--test",
        str(export.out_dir / "test.efs"), "--epochs", "2", "-t", "2", qemu=True,
        qemu_cpu=QEMU_RVV_CPU,
    )  # fmt: skip
    golden = golden_learn(export.network, export.run, export.params, train_x, train_y, test_x,
                          test_y, epochs=2, lr0=0.05)  # fmt: skip
    assert len(out.epochs) == 2
    for mine, ref in zip(out.epochs, golden.records, strict=True):
        np.testing.assert_allclose(mine["train_loss"], ref["train_loss"], rtol=1e-4)
        np.testing.assert_allclose(mine["test_loss"], ref["test_loss"], rtol=1e-4)
