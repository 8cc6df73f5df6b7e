"""export-c --schedule checkpoint: checkpointed BPTT (one stored (h, c) per segment, each
segment recomputed in backward, one SGD step per sequence) as generated C, against the golden
executor (which tests/test_checkpoint_schedule.py checks against torch autograd over the whole
sequence). The arena is the planner's; there is no learner (it runs the FPTT schedules)."""

from __future__ import annotations

import numpy as np
import pytest

from edgefptt.codegen import arena_symbols, export_c, make, run_binary, tool_missing
from edgefptt.config import make_specs
from edgefptt.edge import execute
from edgefptt.plan import plan_memory
from edgefptt.workload import build_workload

pytestmark = pytest.mark.skipif(tool_missing("host") is not None, reason=str(tool_missing("host")))
_RISCV = tool_missing("riscv")

SMALL = dict(input_size=2, hidden_size=6, num_classes=3, batch_size=3, schedule="checkpoint")


def _export(tmp_path_factory, segments, dtype="fp32"):
    net, run = make_specs(None, seq_len=12, segments=segments, dtype=dtype, **SMALL)
    return export_c(net, run, tmp_path_factory.mktemp(f"ckpt{segments}{dtype}"), seed=4)


def _shapes(export):
    return export.network.param_shapes(), (export.run.batch_size, export.network.num_classes)


@pytest.mark.parametrize("segments", [1, 3, 12])
def test_host_equals_golden(tmp_path_factory, segments):
    export = _export(tmp_path_factory, segments)
    golden = execute(build_workload(export.network, export.run), export.params, export.inputs,
                     export.labels)  # fmt: skip
    binary = make(export.out_dir, "host", learner=False)
    for threads in (1, 4):
        out = run_binary(binary, threads=threads, dump_shapes=_shapes(export))
        np.testing.assert_allclose(out.losses, golden.losses, rtol=1e-5)
        for name, value in golden.params.items():
            np.testing.assert_allclose(out.params[name], value, rtol=1e-5, atol=1e-7)
    plan = plan_memory(export.network, export.run, "lifetime")
    assert export.arena_bytes == plan.total_bytes
    assert arena_symbols(binary)["edgefptt_arena"] == plan.total_bytes
    assert "#error" in (export.out_dir / "learner.c").read_text()  # no learner: one pass only


def test_bf16_equals_golden(tmp_path_factory):
    export = _export(tmp_path_factory, 4, "bf16")
    golden = execute(build_workload(export.network, export.run), export.params, export.inputs,
                     export.labels)  # fmt: skip
    out = run_binary(make(export.out_dir, "host", learner=False), dump_shapes=_shapes(export))
    np.testing.assert_allclose(out.losses, golden.losses, rtol=2**-7)
    for name, value in golden.params.items():
        assert np.mean(out.params[name] == value) >= 0.99


@pytest.mark.skipif(_RISCV is not None, reason=f"RISC-V tools: {_RISCV}")
def test_riscv_equals_golden(tmp_path_factory):
    export = _export(tmp_path_factory, 3)
    out = run_binary(make(export.out_dir, "riscv", learner=False), qemu=True,
                     dump_shapes=_shapes(export))  # fmt: skip
    np.testing.assert_allclose(out.losses, export.golden_losses, rtol=1e-5)
