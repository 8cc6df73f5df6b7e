"""Generated C on the host: builds warning-free, matches the golden executor, one arena.

Tolerances: fp32 relative 1e-5 (the C sums matmul products in another order than the golden
model's DIM-wide slices). bf16 rounds after every operation exactly where the golden model does,
and the bf16 accumulator is sequential in K order, so results agree bit for bit in practice; the
tolerance allowed is one bf16 ulp (2^-7 relative), because libm's expf/tanhf/logf may differ from
NumPy's by one float32 ulp, which can flip a bf16 rounding.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgefptt.codegen import arena_symbols, export_c, make, run_binary, tool_missing
from edgefptt.config import make_specs
from edgefptt.edge import execute
from edgefptt.plan import plan_memory
from edgefptt.workload import build_exact

pytestmark = pytest.mark.skipif(tool_missing("host") is not None, reason=str(tool_missing("host")))

SMALL = dict(input_size=2, hidden_size=6, num_classes=3, batch_size=3, schedule="exact")
# K = 784 needs T = 784: a tiny network keeps it fast.
TINY = dict(input_size=1, hidden_size=2, num_classes=2, batch_size=2, schedule="exact")
CASES = {
    "k1": (SMALL, 28, 1),
    "k14": (SMALL, 28, 14),
    "k784": (TINY, 784, 784),
}


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_lstm_logits(params, x):
    """Plain NumPy forward of the edge layout over all steps (float64), from h = c = 0."""
    w, b, w_y, b_y = (np.asarray(params[k], np.float64) for k in ("W", "b", "W_y", "b_y"))
    hidden = w.shape[0] // 4
    h = np.zeros((x.shape[0], hidden))
    c = np.zeros_like(h)
    for t in range(x.shape[1]):
        z = np.concatenate([x[:, t], h], axis=1) @ w.T + b
        i, f, g, o = (z[:, j * hidden : (j + 1) * hidden] for j in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
    return h @ w_y.T + b_y


def _export(tmp_path_factory, name, sizes, t, k, dtype="fp32", plan="lifetime", rounding="rne"):
    net, run = make_specs(None, seq_len=t, partitions=k, dtype=dtype, **sizes)
    out = tmp_path_factory.mktemp(name)
    return export_c(net, run, out, plan=plan, rounding=rounding, cores=1, seed=3)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return {name: _export(tmp_path_factory, name, *case) for name, case in CASES.items()}


def _golden(export, plan="lifetime"):
    workload = build_exact(export.network, export.run, recompute=plan == "recompute")
    return execute(workload, export.params, export.inputs, export.labels, rounding=export.rounding)


def _dump_shapes(export):
    return export.network.param_shapes(), (export.run.batch_size, export.network.num_classes)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("threads", [1, 4])
def test_fp32_matches_golden(exports, case, threads):
    export = exports[case]
    binary = make(export.out_dir, "host", learner=False)  # -O2; make fails on any warning (-Werror)
    out = run_binary(binary, threads=threads, dump_shapes=_dump_shapes(export))
    golden = _golden(export)
    assert len(out.losses) == export.run.partitions
    np.testing.assert_allclose(out.losses, golden.losses, rtol=1e-5)
    saved = json.loads((export.out_dir / "golden.json").read_text())
    np.testing.assert_allclose(saved["losses"], golden.losses, rtol=1e-12)
    for name, value in golden.params.items():
        scale = np.max(np.abs(value))
        np.testing.assert_allclose(out.params[name], value, rtol=1e-5, atol=1e-6 * scale)
    # Inference after training against a plain NumPy forward of the trained parameters.
    expected = numpy_lstm_logits(out.params, export.inputs)
    np.testing.assert_allclose(out.logits, expected, rtol=1e-4, atol=1e-5)
    assert set(out.groups) == {
        "MatMul-1", "MatMul-2", "MatMul-3", "Mat2Vec", "EWO-basic", "EWO-combo",
        "EWO-SGD(FPTT)", "Sigmoid", "tanh", "softmax", "dataMovement",
    }  # fmt: skip
    assert out.groups["MatMul-2"] > 0 and out.groups["EWO-SGD(FPTT)"] > 0


def test_sanitizers_with_threads(exports):
    export = exports["k14"]
    binary = make(export.out_dir, "sanitize", learner=False)
    golden = _golden(export)
    for threads in (1, 4):
        out = run_binary(binary, threads=threads, dump_shapes=_dump_shapes(export))
        np.testing.assert_allclose(out.losses, golden.losses, rtol=1e-5)


@pytest.mark.parametrize("rounding", ["rne", "away"])
@pytest.mark.parametrize("plan", ["lifetime", "recompute"])
def test_bf16_matches_golden(tmp_path_factory, rounding, plan):
    export = _export(tmp_path_factory, "bf16", SMALL, 12, 3, "bf16", plan, rounding)
    binary = make(export.out_dir, "sanitize" if plan == "recompute" else "host", learner=False)
    golden = _golden(export, plan)
    for threads in (1, 4):
        out = run_binary(binary, threads=threads, dump_shapes=_dump_shapes(export))
        np.testing.assert_allclose(out.losses, golden.losses, rtol=2**-7)
        for name, value in golden.params.items():
            np.testing.assert_allclose(out.params[name], value, rtol=2**-7, atol=2**-7 * 1e-2)
            assert np.mean(out.params[name] == value) >= 0.99


def test_rounding_modes_differ_where_ties_occur():
    # 1 + 2^-8 lies halfway between two bf16 values: nearest-even keeps 1, away rounds up.
    from edgefptt.codegen.emit import storage

    tie = np.float32(1.0 + 2.0**-8)
    assert storage(np.array([tie]), "bf16", "rne")[0] == 1.0
    assert storage(np.array([tie]), "bf16", "away")[0] == np.float32(1.0 + 2.0**-7)


def test_recompute_fp32_with_threads(tmp_path_factory):
    export = _export(tmp_path_factory, "rc", SMALL, 20, 3, "fp32", "recompute")
    out = run_binary(
        make(export.out_dir, "host", learner=False), threads=4, dump_shapes=_dump_shapes(export)
    )
    golden = _golden(export, "recompute")
    np.testing.assert_allclose(out.losses, golden.losses, rtol=1e-5)


@pytest.mark.skipif(shutil.which("nm") is None, reason="nm (binutils) is missing")
@pytest.mark.parametrize("case", ["k1", "k14"])
def test_arena_is_the_only_allocation(exports, case):
    export = exports[case]
    binary = make(export.out_dir, "host", learner=False)
    planned = plan_memory(export.network, export.run, "lifetime").total_bytes
    assert export.arena_bytes == planned
    assert json.loads((export.out_dir / "golden.json").read_text())["arena_bytes"] == planned
    symbols = arena_symbols(binary)
    assert symbols["edgefptt_arena"] == planned
    others = {name: size for name, size in symbols.items() if name != "edgefptt_arena"}
    assert sum(others.values()) < 1024, others  # barrier words, counters: nothing of size
    source = (export.out_dir / "model.c").read_text() + (export.out_dir / "runtime.c").read_text()
    assert "malloc" not in source


# Sizes past the matmul's register blocks at every vector width (16 floats: 4 x 64 blocks of C,
# then 4 x 16, dot products of 16 lanes four rows of B at a time), with edge rows, columns and
# k tails: 4H = 280, I + H = 73, B = 5.
WIDE = dict(input_size=3, hidden_size=70, num_classes=5, batch_size=5, schedule="exact")


@pytest.fixture(scope="module")
def wide_export(tmp_path_factory):
    return _export(tmp_path_factory, "wide", WIDE, 20, 2)


@pytest.mark.parametrize("portable", [False, True])
@pytest.mark.parametrize("flush", [False, True])
def test_portable_and_flush_builds_match_golden(exports, wide_export, portable, flush):
    # make host PORTABLE=1 (baseline ISA, no FMA contraction) and FLUSH_SUBNORMALS=1 (x86
    # FTZ|DAZ) stay within the fp32 tolerance of the golden executor, as the default does.
    for export in (exports["k14"], exports["k784"], wide_export):
        name = f"train_p{int(portable)}_f{int(flush)}"
        binary = make(
            export.out_dir,
            "host",
            binary=name,
            portable=portable,
            flush_subnormals=flush,
            learner=False,
        )
        out = run_binary(binary, threads=1, dump_shapes=_dump_shapes(export))
        golden = _golden(export)
        np.testing.assert_allclose(out.losses, golden.losses, rtol=1e-5)
        for key, value in golden.params.items():
            scale = np.max(np.abs(value))
            np.testing.assert_allclose(out.params[key], value, rtol=1e-5, atol=1e-6 * scale)
