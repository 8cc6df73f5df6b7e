"""export-c --schedule paper: the seed paper's schedule (its truncated backward) as generated C.

The reference is the golden executor's `paper` schedule (which equals the seed authors' own C
to float rounding, tests/test_workload.py): the generated C must reproduce it on the host (1 and
4 threads, fp32 and bf16 with the paper's rounding), on RISC-V under qemu, and on Spike with
Gemmini; the C learner built from it must equal the golden learner. The static layout (`--plan
paper`) must be the seed paper's published memory plus the carried (h, c) and the loss.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from edgefptt.codegen import arena_symbols, export_c, make, run_binary, run_learner, tool_missing
from edgefptt.codegen.build import gemmini_env, gemmini_missing, run_spike
from edgefptt.config import make_specs
from edgefptt.edge import execute
from edgefptt.learn.golden import golden_learn
from edgefptt.learn.samples import write_samples
from edgefptt.plan.memory import paper_layout, static_plan
from edgefptt.workload import build_exact, build_paper
from test_codegen_host import numpy_lstm_logits

needs_host = pytest.mark.skipif(tool_missing("host") is not None, reason=str(tool_missing("host")))
_RISCV = tool_missing("riscv") or tool_missing("host")
needs_riscv = pytest.mark.skipif(_RISCV is not None, reason=f"RISC-V tools: {_RISCV}")

SMALL = dict(input_size=2, hidden_size=6, num_classes=3, batch_size=3, schedule="paper")


def _export(tmp_path_factory, t, k, dtype="fp32", plan="lifetime", rounding="rne", sizes=None):
    net, run = make_specs(None, seq_len=t, partitions=k, dtype=dtype, **(sizes or SMALL))
    out = tmp_path_factory.mktemp(f"paper{k}{dtype}{plan}")
    return export_c(net, run, out, plan=plan, rounding=rounding, seed=3)


def _golden(export):
    workload = build_paper(export.network, export.run)
    return execute(workload, export.params, export.inputs, export.labels, rounding=export.rounding)


def _shapes(export):
    return export.network.param_shapes(), (export.run.batch_size, export.network.num_classes)


@needs_host
@pytest.mark.parametrize("plan", ["lifetime", "paper"])
@pytest.mark.parametrize("k", [1, 3, 12])
def test_host_equals_golden_paper_schedule(tmp_path_factory, plan, k):
    export = _export(tmp_path_factory, 12, k, plan=plan)
    binary = make(export.out_dir, "host", learner=False)
    golden = _golden(export)
    np.testing.assert_allclose(export.golden_losses, golden.losses, rtol=1e-12)
    for threads in (1, 4):
        out = run_binary(binary, threads=threads, dump_shapes=_shapes(export))
        assert len(out.losses) == k
        np.testing.assert_allclose(out.losses, golden.losses, rtol=1e-5)
        for name, value in golden.params.items():
            np.testing.assert_allclose(out.params[name], value, rtol=1e-5, atol=1e-7)
    # Inference after training: the forward of the trained weights (the last step's logits).
    np.testing.assert_allclose(out.logits, numpy_lstm_logits(out.params, export.inputs), rtol=1e-4,
                               atol=1e-5)  # fmt: skip
    assert arena_symbols(binary)["edgefptt_arena"] == export.arena_bytes


def _relative_update_gap(export, out):
    """|update(C) - update(exact)| / |update(exact)| over W, the exact schedule from the same
    start."""
    run = export.run.model_copy(update={"schedule": "exact"})
    exact = execute(build_exact(export.network, run), export.params, export.inputs, export.labels)
    w0 = export.params["W"].astype(np.float64)
    mine, ref = out.params["W"] - w0, exact.params["W"] - w0
    return np.linalg.norm(mine - ref) / np.linalg.norm(ref)


@needs_host
def test_paper_differs_from_exact_beyond_two_steps(tmp_path_factory):
    """The truncated backward is what is generated: beyond two steps per partition the paper's
    update differs from the exact schedule's; with at most two steps it is exact (as the seed's
    backward propagates dc one step back)."""
    four = _export(tmp_path_factory, 12, 3)
    out = run_binary(make(four.out_dir, "host", learner=False), dump_shapes=_shapes(four))
    assert _relative_update_gap(four, out) > 0.05
    two = _export(tmp_path_factory, 12, 6)
    out2 = run_binary(make(two.out_dir, "host", learner=False), dump_shapes=_shapes(two))
    assert _relative_update_gap(two, out2) < 1e-3


@needs_host
def test_bf16_with_the_papers_rounding(tmp_path_factory):
    export = _export(tmp_path_factory, 12, 4, "bf16", rounding="away")
    golden = _golden(export)
    for threads in (1, 4):
        out = run_binary(make(export.out_dir, "host", learner=False), threads=threads,
                         dump_shapes=_shapes(export))  # fmt: skip
        np.testing.assert_allclose(out.losses, golden.losses, rtol=2**-7)
        for name, value in golden.params.items():
            assert np.mean(out.params[name] == value) >= 0.99


def test_static_layout_is_the_papers_published_memory():
    """--plan paper: the seed's static layout (its published bytes per K) plus the carried (h, c)
    (2 B H elements) and the loss (one element), which the seed keeps outside its layout."""
    path = resources.files("edgefptt.reference") / "paper_memory.csv"
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    for row in rows:
        k = int(row["K"])
        for dtype, size in (("fp32", 4), ("bf16", 2)):
            net, run = make_specs("paper-smnist", partitions=k, schedule="paper", dtype=dtype)
            plan = static_plan(build_paper(net, run))
            extra = (2 * run.batch_size * net.hidden_size + 1) * size
            assert plan.total_bytes == int(row[f"{dtype}_bytes"]) + extra
            assert plan.total_bytes == paper_layout(net, run).total_bytes + extra


@needs_riscv
def test_riscv_equals_golden(tmp_path_factory):
    export = _export(tmp_path_factory, 12, 3)
    golden = _golden(export)
    binary = make(export.out_dir, "riscv", learner=False)
    for threads in (1, 4):
        out = run_binary(binary, qemu=True, threads=threads, dump_shapes=_shapes(export))
        np.testing.assert_allclose(out.losses, golden.losses, rtol=1e-5)
        for name, value in golden.params.items():
            np.testing.assert_allclose(out.params[name], value, rtol=1e-5, atol=1e-7)


@needs_host
def test_learner_equals_golden_learner(tmp_path_factory):
    """The C learner of a paper-schedule export trains as the golden learner (fp32, 2 epochs)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32).reshape(-1, 64, 1)
    y = digits.target.astype(np.int64)
    train_x, train_y, test_x, test_y = x[:40], y[:40], x[40:60], y[40:60]
    net, run = make_specs(
        None, input_size=1, hidden_size=6, num_classes=10, batch_size=8, seq_len=64,
        partitions=8, schedule="paper", learning_rate=0.05,
    )  # fmt: skip
    export = export_c(net, run, tmp_path_factory.mktemp("paper_learn"), seed=5)
    make(export.out_dir, "host")
    write_samples(export.out_dir / "train.efs", train_x, train_y, 10)
    write_samples(export.out_dir / "test.efs", test_x, test_y, 10)
    out = run_learner(
        export.out_dir / "learn_host", "--train", str(export.out_dir / "train.efs"),
        "--test", str(export.out_dir / "test.efs"), "--epochs", "2", "--seed", "4",
    )  # fmt: skip
    golden = golden_learn(
        net, run, export.params, train_x, train_y, test_x, test_y, epochs=2, lr0=0.05, seed=4
    )
    assert len(out.epochs) == 2
    for mine, ref in zip(out.epochs, golden.records, strict=True):
        assert mine["train_loss"] == pytest.approx(ref["train_loss"], rel=1e-4)
        assert mine["test_loss"] == pytest.approx(ref["test_loss"], rel=1e-4)
        assert mine["train_acc"] == pytest.approx(ref["train_accuracy"], abs=1e-9)
        assert mine["test_acc"] == pytest.approx(ref["test_accuracy"], abs=1e-9)


_GEMMINI_ENV = gemmini_env(Path(__file__).resolve().parent.parent.parent / "shared" / "toolchains"
                           / "spike-gemmini")  # fmt: skip
_NO_GEMMINI = gemmini_missing(_GEMMINI_ENV, "fp32_dim4")


@pytest.mark.skipif(_NO_GEMMINI is not None, reason=str(_NO_GEMMINI))
@pytest.mark.parametrize("network", ["small", "paper"])
def test_spike_gemmini_equals_golden(tmp_path_factory, network):
    """On Spike with Gemmini's functional model (fp32, DIM 4): the small network at K = 3 and the
    seed paper's network (I=1, H=128, C=10, B=4, T=784) at K = 14, its own schedule."""
    if network == "small":
        export = _export(tmp_path_factory, 12, 3)
    else:
        net, run = make_specs("paper-smnist", partitions=14, schedule="paper")
        export = export_c(net, run, tmp_path_factory.mktemp("paper_spike"), seed=0)
    binary = make(export.out_dir, "gemmini", learner=False, gemmini_config="fp32_dim4",
                  env=_GEMMINI_ENV)  # fmt: skip
    out = run_spike(binary, "fp32_dim4", _GEMMINI_ENV, dump_shapes=_shapes(export),
                    timeout_s=300)  # fmt: skip
    np.testing.assert_allclose(out.losses, export.golden_losses, rtol=1e-5)
    if network == "small":  # (the paper network's golden run takes a minute: losses suffice)
        for name, value in _golden(export).params.items():
            np.testing.assert_allclose(out.params[name], value, rtol=1e-5, atol=1e-6)
