"""Generated C cross-compiled for RISC-V (static) and run under qemu-riscv64."""

from __future__ import annotations

import numpy as np
import pytest

from edgefptt.codegen import arena_symbols, export_c, make, run_binary, tool_missing
from edgefptt.codegen.build import instructions_per_pass
from edgefptt.config import make_specs
from edgefptt.edge import execute
from edgefptt.workload import build_exact

_MISSING = tool_missing("riscv") or tool_missing("host")
pytestmark = pytest.mark.skipif(
    _MISSING is not None,
    reason=f"RISC-V tests need gcc-riscv64-linux-gnu and qemu-user: {_MISSING}",
)

SMALL = dict(input_size=2, hidden_size=6, num_classes=3, batch_size=3, schedule="exact")


def _export(tmp_path_factory, t, k, dtype="fp32", **sizes):
    net, run = make_specs(None, seq_len=t, partitions=k, dtype=dtype, **(sizes or SMALL))
    return export_c(net, run, tmp_path_factory.mktemp(f"rv{k}{dtype}"), seed=5)


@pytest.mark.parametrize(("k", "dtype"), [(1, "fp32"), (14, "fp32"), (4, "bf16")])
def test_riscv_matches_host_and_golden(tmp_path_factory, k, dtype):
    export = _export(tmp_path_factory, 28, k, dtype)
    shapes = (export.network.param_shapes(), (export.run.batch_size, export.network.num_classes))
    host = run_binary(make(export.out_dir, "host", learner=False), dump_shapes=shapes)
    riscv_bin = make(export.out_dir, "riscv", learner=False)
    golden = execute(build_exact(export.network, export.run), export.params, export.inputs,
                     export.labels)  # fmt: skip
    for threads in (1, 4):
        rv = run_binary(riscv_bin, qemu=True, threads=threads, dump_shapes=shapes)
        # Same C, same operation order; only libm may differ in the last float32 bit.
        np.testing.assert_allclose(rv.losses, host.losses, rtol=1e-6)
        tol = 2**-7 if dtype == "bf16" else 1e-5
        np.testing.assert_allclose(rv.losses, golden.losses, rtol=tol)
        for name, value in host.params.items():
            np.testing.assert_allclose(rv.params[name], value, rtol=1e-5, atol=1e-7)
    assert arena_symbols(riscv_bin, "riscv64-linux-gnu-nm")["edgefptt_arena"] == export.arena_bytes


def test_instruction_counts_grow_with_the_update_per_partition(tmp_path_factory):
    """One pass's guest instructions per K (qemu plugin). More partitions add one FPTT update
    (4P parameters touched) and one readout/loss per partition, while the per-step work stays;
    so counts must grow with K, by at least the update's loads and stores."""
    counts = {}
    for k in (1, 7, 28):
        export = _export(tmp_path_factory, 28, k)
        counts[k] = instructions_per_pass(make(export.out_dir, "riscv", learner=False))
    p = export.network.num_params
    assert counts[1] < counts[7] < counts[28]
    # Each extra update reads and writes W, grad, W_bar, lam: at least 8 memory ops per parameter.
    assert counts[28] - counts[1] >= 27 * 8 * p


def test_profile_by_function_adds_up_to_the_instruction_count(tmp_path_factory):
    """The per-function profile (insn_profile_plugin.c + nm) of one pass sums to what the plain
    counting plugin counts, and puts the bulk in the matmul and the kernels, not in memcpy (the
    scalar kernels of rv64gc copy nothing through the C library)."""
    from edgefptt.codegen.profile import by_group, pass_profile

    export = _export(tmp_path_factory, 28, 7)
    binary = make(export.out_dir, "riscv", learner=False)
    profile = pass_profile(binary, build_dir=export.out_dir)
    # Equal but for the printing of the measured time (its digits differ from run to run).
    counted = instructions_per_pass(binary, build_dir=export.out_dir)
    assert abs(sum(profile.values()) - counted) <= 0.005 * counted
    groups = by_group(profile)
    assert groups["matmul"] > 0 and groups["fptt_sgd"] > 0 and groups["lstm_cell_forward"] > 0
    assert profile.get("memcpy", 0) < 0.05 * sum(profile.values())  # (ef_copy uses it)
