"""The Gemmini backend (matmul_gemmini.c): built with `make gemmini` and run on Spike with
Gemmini's functional model (libgemmini), against golden.json.

The toolchain (Spike, pk, libgemmini, Gemmini's headers) is the environment's: its variables
(GEMMINI_ROCC_TESTS, GEMMINI_PARAMS_DIR, LIBGEMMINI_DIR, PK, spike on PATH) as env.sh sets them,
or ../shared/toolchains/spike-gemmini beside the repository. bf16 is compile-checked only:
libgemmini computes on the integer bit patterns of 16-bit types. The backend's own logic (one
flush before the first command, low_D for a wider accumulator) is checked on the host against
a stand-in gemmini.h (tests/gemmini_mock), with no toolchain.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgefptt.codegen import BuildError, export_c, make, tool_missing
from edgefptt.codegen.build import GEMMINI_VARS, gemmini_env, gemmini_missing, run_spike
from edgefptt.config import make_specs

_HERE = Path(__file__).resolve().parent
ENV = gemmini_env(_HERE.parent.parent / "shared" / "toolchains" / "spike-gemmini")
_MISSING = gemmini_missing(ENV)
needs_gemmini = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))
needs_host = pytest.mark.skipif(tool_missing("host") is not None, reason=str(tool_missing("host")))

SMALL = dict(input_size=2, hidden_size=6, num_classes=3, batch_size=3, schedule="exact")
# K = 784 (one step per partition, pixel MNIST's length) on a smaller network.
TINY = dict(input_size=1, hidden_size=4, num_classes=3, batch_size=2, schedule="exact")


def _export(tmp_path_factory, t: int, k: int, dtype: str = "fp32", sizes=None):
    net, run = make_specs(None, seq_len=t, partitions=k, dtype=dtype, **(sizes or SMALL))
    return export_c(net, run, tmp_path_factory.mktemp(f"gem{k}{dtype}"), seed=5)


@needs_host
@pytest.mark.parametrize(("acc_bits", "low_d"), [(32, 1), (16, 0)])
def test_backend_flushes_once_and_moves_bf16_d_in_low(tmp_path_factory, acc_bits, low_d):
    """A bf16 export on a BF16 Gemmini: with the stock fp32 accumulator our bf16 D must be moved
    in with low_D (else Gemmini reads it as 32-bit, past its end); with a bf16 accumulator not.
    gemmini_flush(0) comes once, before the first command."""
    export = _export(tmp_path_factory, 8, 2, "bf16")
    binary = export.out_dir / f"mock{acc_bits}"
    mock = _HERE / "gemmini_mock"
    subprocess.run(
        ["cc", "-std=gnu99", "-Wall", "-Wextra", "-Werror", "-DEDGEFPTT_GEMMINI=1",
         f"-DMOCK_ACC_BITS={acc_bits}", "-I", str(export.out_dir), "-isystem", str(mock),
         "-o", str(binary), str(mock / "driver.c"), str(export.out_dir / "matmul_gemmini.c"),
         "-lm"],
        check=True,
    )  # fmt: skip
    printed = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout
    assert printed.split() == ["flushes", "1", "calls", "3", "low_D", str(low_d),
                               "before_flush", "0"]  # fmt: skip


def test_missing_variable_names_it(tmp_path_factory):
    export = _export(tmp_path_factory, 8, 2)
    env = {k: v for k, v in os.environ.items() if k not in GEMMINI_VARS}
    done = subprocess.run(
        ["make", "-s", "-C", str(export.out_dir), "gemmini", "GEMMINI_CONFIG=fp32_dim4"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "GEMMINI_ROCC_TESTS is not set" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@needs_gemmini
def test_mismatched_params_header_does_not_compile(tmp_path_factory):
    """Gemmini's elem_t and acc_t must be the export's type (else the casts compute garbage)."""
    fp32 = _export(tmp_path_factory, 8, 2)
    with pytest.raises(BuildError, match="fp32 export needs Gemmini elem_t and acc_t to be float"):
        make(fp32.out_dir, "gemmini", learner=False, gemmini_config="bf16_dim4", env=ENV)
    bf16 = _export(tmp_path_factory, 8, 2, "bf16")
    with pytest.raises(BuildError, match="this bf16 export needs a BF16 Gemmini"):
        make(bf16.out_dir, "gemmini", learner=False, gemmini_config="fp32_dim4", env=ENV)
    # The matching configs compile without a diagnostic (bf16 cannot run on this Spike).
    make(bf16.out_dir, "gemmini", learner=False, gemmini_config="bf16_dim4", env=ENV)
    make(fp32.out_dir, "gemmini", learner=False, gemmini_config="fp32_dim4", env=ENV)


@needs_gemmini
@pytest.mark.parametrize(
    ("config", "t", "k", "sizes"),
    [("fp32_dim4", 28, 1, SMALL), ("fp32_dim4", 28, 14, SMALL), ("fp32_dim4", 784, 784, TINY),
     ("fp32_dim8", 28, 14, SMALL), ("fp32chip_dim4", 28, 14, SMALL)],
)  # fmt: skip
def test_spike_matches_golden(tmp_path_factory, config, t, k, sizes):
    missing = gemmini_missing(ENV, config)
    if missing:
        pytest.skip(missing)
    export = _export(tmp_path_factory, t, k, sizes=sizes)
    learner = k == 14 and config == "fp32_dim4"  # make gemmini builds learn_gemmini too
    binary = make(export.out_dir, "gemmini", learner=learner, gemmini_config=config, env=ENV)
    if learner:
        assert (export.out_dir / "learn_gemmini").is_file()
    shapes = (export.network.param_shapes(), (export.run.batch_size, export.network.num_classes))
    out = run_spike(binary, config, ENV, dump_shapes=shapes, timeout_s=120)
    assert len(out.losses) == k
    np.testing.assert_allclose(out.losses, export.golden_losses, rtol=1e-5)
    assert all(np.isfinite(v).all() for v in out.params.values())


@pytest.fixture(scope="module")
def paper_k14(tmp_path_factory):
    """The seed paper's network (I=1, H=128, C=10, B=4, T=784) at K = 14, fp32."""
    net, run = make_specs("paper-smnist", partitions=14, schedule="exact")
    return export_c(net, run, tmp_path_factory.mktemp("gem_paper"), seed=0)


@needs_gemmini
@pytest.mark.parametrize("config", ["fp32_dim4", "fp32_dim8", "fp32chip_dim4"])
def test_paper_network_on_spike_matches_golden(paper_k14, config):
    """The paper network at K = 14 on Gemmini's DIM 4, DIM 8 and small-scratchpad configs (the
    last tiles every matmul into many pieces): golden.json's losses to 1e-5."""
    missing = gemmini_missing(ENV, config)
    if missing:
        pytest.skip(missing)
    binary = make(paper_k14.out_dir, "gemmini", learner=False, gemmini_config=config, env=ENV)
    out = run_spike(binary, config, ENV, timeout_s=300)
    assert len(out.losses) == 14
    np.testing.assert_allclose(out.losses, paper_k14.golden_losses, rtol=1e-5)


@needs_gemmini
@needs_host
def test_learner_on_spike_equals_learn_host(tmp_path_factory):
    """learn_gemmini (the learner with Gemmini's matmuls) on Spike trains as learn_host does:
    the same epochs to float rounding. Without --state: pk, Spike's proxy kernel, has no fsync
    or pwrite, which the state file needs (docs/deploy.md)."""
    from edgefptt.codegen import run_learner
    from edgefptt.codegen.build import spike_command
    from edgefptt.learn.samples import write_samples

    net, run = make_specs(
        None, input_size=1, hidden_size=6, num_classes=10, batch_size=8, seq_len=16,
        partitions=4, schedule="exact", learning_rate=0.05,
    )  # fmt: skip
    export = export_c(net, run, tmp_path_factory.mktemp("learn_gem"), seed=5)
    out = export.out_dir
    make(out, "gemmini", learner=True, gemmini_config="fp32_dim4", env=ENV)
    make(out, "host")
    rng = np.random.default_rng(0)
    write_samples(out / "train.efs", rng.normal(size=(32, 16, 1)), rng.integers(0, 10, 32), 10)
    args = ["--train", str(out / "train.efs"), "--epochs", "2", "--seed", "3"]
    host = run_learner(out / "learn_host", *args)
    done = subprocess.run(
        spike_command(out / "learn_gemmini", "fp32_dim4", ENV, *args, "--json"),
        capture_output=True, text=True, env={**os.environ, **ENV}, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    spike = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(spike) == len(host.epochs) == 2
    for mine, ref in zip(spike, host.epochs, strict=True):
        assert mine["train_loss"] == pytest.approx(ref["train_loss"], rel=1e-5)
        assert mine["train_acc"] == ref["train_acc"]
