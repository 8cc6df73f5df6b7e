"""Generated C for GRU, stacked and frozen networks (exact schedule) against the golden executor,
and the trained parameters' inference against a plain NumPy forward.

Tolerances as in test_codegen_host.py: fp32 relative 1e-5, bf16 one bf16 ulp (2^-7).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgefptt.codegen import export_c, make, run_binary, tool_missing
from edgefptt.config import LayerSpec, NetworkSpec, make_specs
from edgefptt.edge import execute
from edgefptt.workload import build_exact

_HOST = tool_missing("host")
pytestmark = pytest.mark.skipif(_HOST is not None, reason=f"needs a host C compiler: {_HOST}")

I, H, C, B = 3, 5, 4, 3  # noqa: E741


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_stack_logits(net: NetworkSpec, params: dict, x: np.ndarray) -> np.ndarray:
    """Plain NumPy forward (float64) of the edge layout, every layer from h = c = 0: LSTM gates
    i, f, g, o; GRU torch's r, z, n with b_hn inside the reset product."""
    seq = np.asarray(x, np.float64)
    for layer, spec in enumerate(net.stack):
        suffix = f"_l{layer}" if layer else ""
        w = np.asarray(params[f"W{suffix}"], np.float64)
        b = np.asarray(params[f"b{suffix}"], np.float64)
        n_in, h_sz = w.shape[1] - spec.hidden_size, spec.hidden_size
        h = np.zeros((seq.shape[0], h_sz))
        c = np.zeros_like(h)
        outs = []
        for t in range(seq.shape[1]):
            xt = seq[:, t]
            if spec.cell == "lstm":
                z = np.concatenate([xt, h], axis=1) @ w.T + b
                i, f, g, o = (z[:, j * h_sz : (j + 1) * h_sz] for j in range(4))
                c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
                h = _sigmoid(o) * np.tanh(c)
            else:
                b_hn = np.asarray(params[f"b_hn{suffix}"], np.float64)
                rz = np.concatenate([xt, h], axis=1) @ w[: 2 * h_sz].T + b[: 2 * h_sz]
                r, zg = _sigmoid(rz[:, :h_sz]), _sigmoid(rz[:, h_sz:])
                n = np.tanh(
                    xt @ w[2 * h_sz :, :n_in].T + b[2 * h_sz :]
                    + r * (h @ w[2 * h_sz :, n_in:].T + b_hn)
                )  # fmt: skip
                h = (1 - zg) * n + zg * h
            outs.append(h)
        seq = np.stack(outs, axis=1)
    return seq[:, -1] @ np.asarray(params["W_y"]).T + np.asarray(params["b_y"])


def _mixed() -> NetworkSpec:
    layers = (
        LayerSpec(cell="gru", hidden_size=4, trainable=False),
        LayerSpec(cell="lstm", hidden_size=H, trainable=True),
    )
    return NetworkSpec(input_size=I, hidden_size=H, num_classes=C, layers=layers)


def _specs(case: str, seq_len: int = 8, partitions: int = 2, dtype: str = "fp32"):
    run_values = dict(batch_size=B, seq_len=seq_len, partitions=partitions, dtype=dtype,
                      schedule="exact")  # fmt: skip
    if case == "mixed":
        return make_specs(None, **_mixed().model_dump(), **run_values)
    layers = {
        "gru": dict(cell="gru"),
        "lstm2": dict(num_layers=2),
        "gru2_readout": dict(cell="gru", num_layers=2, trainable="readout"),
        "gru2_top": dict(cell="gru", num_layers=2, trainable="top"),
    }[case]
    return make_specs(None, input_size=I, hidden_size=H, num_classes=C, **layers, **run_values)


def _export(tmp_path_factory, case, plan="lifetime", **run_values):
    net, run = _specs(case, **run_values)
    out = tmp_path_factory.mktemp(f"{case}_{plan}")
    return export_c(net, run, out, plan=plan, cores=1, seed=3)


def _golden(export, plan="lifetime"):
    workload = build_exact(export.network, export.run, recompute=plan == "recompute")
    return execute(workload, export.params, export.inputs, export.labels, rounding=export.rounding)


def _shapes(export):
    return export.network.param_shapes(), (export.run.batch_size, export.network.num_classes)


CASES = [
    ("gru", "lifetime"),
    ("gru", "recompute"),
    ("lstm2", "lifetime"),
    ("gru2_readout", "lifetime"),
    ("gru2_top", "recompute"),
    ("mixed", "lifetime"),
]


@pytest.mark.parametrize(("case", "plan"), CASES)
def test_fp32_matches_golden_with_1_and_4_threads(tmp_path_factory, case, plan):
    export = _export(tmp_path_factory, case, plan)
    net = export.network
    binary = make(export.out_dir, "host", learner=False)  # -Werror: warnings fail the build
    golden = _golden(export, plan)
    frozen = set(net.param_shapes()) - set(net.trainable_params())
    for threads in (1, 4):
        out = run_binary(binary, threads=threads, dump_shapes=_shapes(export))
        assert len(out.losses) == export.run.partitions
        np.testing.assert_allclose(out.losses, golden.losses, rtol=1e-5)
        for name, value in golden.params.items():
            scale = np.max(np.abs(value))
            np.testing.assert_allclose(out.params[name], value, rtol=1e-5, atol=1e-6 * scale)
        for name in frozen:  # frozen tensors: exactly the exported values
            np.testing.assert_array_equal(out.params[name], export.params[name])
        # Inference after training (a second pass in the same process: every layer's carried
        # h and c must restart at zero) against an independent NumPy forward from zero state.
        expected = numpy_stack_logits(net, out.params, export.inputs)
        np.testing.assert_allclose(out.logits, expected, rtol=1e-4, atol=1e-5)
    # training moved every trainable tensor
    for name in net.trainable_params():
        assert not np.array_equal(golden.params[name], export.params[name])


def test_bf16_gru_stack_matches_golden(tmp_path_factory):
    export = _export(tmp_path_factory, "gru2_top", dtype="bf16", seq_len=6, partitions=3)
    binary = make(export.out_dir, "host", learner=False)
    golden = _golden(export)
    for threads in (1, 4):
        out = run_binary(binary, threads=threads, dump_shapes=_shapes(export))
        np.testing.assert_allclose(out.losses, golden.losses, rtol=2**-7)
        for name, value in golden.params.items():
            np.testing.assert_allclose(out.params[name], value, rtol=2**-7, atol=2**-7 * 1e-2)
            assert np.mean(out.params[name] == value) >= 0.99


_RISCV = tool_missing("riscv")


@pytest.mark.skipif(_RISCV is not None, reason=f"needs riscv64 gcc and qemu-user: {_RISCV}")
def test_riscv_gru_stack_matches_golden(tmp_path_factory):
    export = _export(tmp_path_factory, "mixed")
    golden = _golden(export)
    binary = make(export.out_dir, "riscv", learner=False)
    for threads in (1, 4):
        out = run_binary(binary, qemu=True, threads=threads, dump_shapes=_shapes(export))
        np.testing.assert_allclose(out.losses, golden.losses, rtol=1e-5)
        for name, value in golden.params.items():
            scale = np.max(np.abs(value))
            np.testing.assert_allclose(out.params[name], value, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("target", ["baremetal-riscv", "cortex-m-an386"])
def test_baremetal_gru_stack_matches_golden(tmp_path_factory, target):
    from edgefptt.codegen.build import run_baremetal

    missing = tool_missing(target)
    if missing is not None:
        pytest.skip(f"{target} needs its bare-metal tools: {missing}")
    export = _export(tmp_path_factory, "gru2_top", seq_len=6)
    golden = _golden(export)
    for harts in (1, 2) if target == "baremetal-riscv" else (1,):
        elf = make(export.out_dir, target, learner=False, harts=harts)
        out = run_baremetal(elf, target, harts=harts)
        np.testing.assert_allclose(out.losses, golden.losses, rtol=1e-5)


# ---------------------------------------------------------------------------- --weights
TRAIN = ["train", "--dataset", "digits", "--hidden", "4", "--limit", "40", "--batch-size", "20"]
TRAIN += ["--schedule", "constant", "--epochs", "1", "--algorithm", "bptt"]


@pytest.mark.parametrize("layers", [1, 2])
def test_trained_gru_checkpoint_exports_the_torch_models_logits(tmp_path, capsys, layers):
    import json

    import torch

    from edgefptt.cli import main
    from edgefptt.models import SequenceClassifier
    from edgefptt.train.checkpoint import load_checkpoint

    run_dir = tmp_path / "run"
    argv = [*TRAIN, "--cell", "gru", "--layers", str(layers), "--out", str(run_dir), "--json"]
    assert main(argv) == 0
    capsys.readouterr()
    checkpoint = run_dir / "checkpoint.pt"
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 64, 1)).astype(np.float32)  # float32: embedded exactly
    data = tmp_path / "batch.npz"
    np.savez(data, x=x, y=np.array([1, 5, 9]))
    out = tmp_path / "gen"
    # A learning rate far below any weight's last bit: the pass leaves the weights as exported,
    # so the logits the binary computes after it are the checkpoint's.
    argv = ["export-c", "--weights", str(checkpoint), "--batch", "3", "--seq-len", "64",
            "--data", str(data), "--lr", "1e-30", "--json", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [la["cell"] for la in doc["network"]["layers"]] == ["gru"] * layers
    net = NetworkSpec(**doc["network"])
    dumped = run_binary(make(out, "host", learner=False), dump_shapes=(net.param_shapes(), (3, 10)))
    # The torch model, straight from the checkpoint's state dict (bptt: no W_bar).
    model = SequenceClassifier(1, 4, 10, layers, "gru", "last").double()
    model.load_state_dict(load_checkpoint(checkpoint)["model"])
    with torch.no_grad():
        expected = model(torch.from_numpy(x.astype(np.float64)))[0].numpy()
    np.testing.assert_allclose(dumped.logits, expected, rtol=1e-4, atol=1e-5)


def test_edge_layout_round_trips_through_a_torch_gru_stack():
    import torch

    from edgefptt.codegen.inputs import edge_to_module, module_to_edge
    from edgefptt.models import SequenceClassifier

    torch.manual_seed(1)
    model = SequenceClassifier(I, H, C, 2, "gru", "last").double()
    params = module_to_edge(model)
    net, _ = make_specs(None, input_size=I, hidden_size=H, num_classes=C, cell="gru",
                        num_layers=2, batch_size=B, seq_len=5, schedule="exact")  # fmt: skip
    assert {k: v.shape for k, v in params.items()} == net.param_shapes()
    x = np.random.default_rng(2).normal(size=(B, 5, I))
    with torch.no_grad():
        expected = model(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(numpy_stack_logits(net, params, x), expected, rtol=1e-12)
    # and back: a fresh model loaded from the edge layout computes the same logits
    fresh = SequenceClassifier(I, H, C, 2, "gru", "last").double()
    edge_to_module(params, fresh)
    with torch.no_grad():
        again = fresh(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(again, expected, rtol=1e-12)
