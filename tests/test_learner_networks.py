"""The generated C learner for GRU, stacked and partly frozen networks (state image version 2).

References: the golden learner (NumPy kernels of the golden executor, itself equal to torch
autograd in float64 for these networks, tests/test_stacked_frozen.py and test_gru_workload.py)
chained over batches in the documented order; the frozen tensors' exported values; the byte
layout docs/learner.md fixes (the Python reader and writer of state images).
"""

from __future__ import annotations

import struct
import subprocess

import numpy as np
import pytest

from edgefptt.codegen import export_c, make, run_learner, tool_missing
from edgefptt.config import LayerSpec, NetworkSpec, make_specs
from edgefptt.learn.golden import golden_learn
from edgefptt.learn.layout import network_image_bytes
from edgefptt.learn.samples import write_samples
from edgefptt.learn.state import (
    HEADER_BYTES,
    StateError,
    encode_state,
    read_state,
    update_state_file,
)
from test_learner_c import _digits_arrays

pytestmark = pytest.mark.skipif(tool_missing("host") is not None, reason=str(tool_missing("host")))

HIDDEN, BATCH, K, LR = 8, 8, 4, 0.05

NETWORKS = {
    # a GRU, every tensor trained
    "gru": dict(cell="gru", num_layers=1, trainable="all"),
    # two LSTM layers, the bottom one frozen (fine-tune the top)
    "lstm2-top": dict(cell="lstm", num_layers=2, trainable="top"),
    # two GRU layers, only the readout trained
    "gru2-readout": dict(cell="gru", num_layers=2, trainable="readout"),
}


def _export(tmp_path_factory, name, dtype="fp32", **layers):
    net, run = make_specs(
        None, input_size=1, hidden_size=HIDDEN, num_classes=10, batch_size=BATCH, seq_len=64,
        partitions=K, dtype=dtype, schedule="exact", learning_rate=LR, **layers,
    )  # fmt: skip
    out = tmp_path_factory.mktemp(name)
    export = export_c(net, run, out, seed=5)
    make(out, "host")
    train_x, train_y, test_x, test_y = _digits_arrays()
    write_samples(out / "train.efs", train_x, train_y, 10, dtype=dtype)
    write_samples(out / "test.efs", test_x, test_y, 10)
    return export


@pytest.fixture(scope="module", params=list(NETWORKS))
def built(request, tmp_path_factory):
    return _export(tmp_path_factory, request.param, **NETWORKS[request.param])


def _learn(export, *args, **kwargs):
    files = ["--train", str(export.out_dir / "train.efs"), "--test",
             str(export.out_dir / "test.efs")]  # fmt: skip
    return run_learner(export.out_dir / "learn_host", *files, *args, **kwargs)


def test_c_learner_equals_golden_and_keeps_frozen_tensors(built, tmp_path):
    state = tmp_path / "s.state"
    out = _learn(built, "--epochs", "2", "--seed", "3", "--state", str(state))
    train_x, train_y, test_x, test_y = _digits_arrays()
    golden = golden_learn(
        built.network, built.run, built.params, train_x, train_y, test_x, test_y,
        epochs=2, lr0=LR, seed=3,
    )  # fmt: skip
    for mine, ref in zip(out.epochs, golden.records, strict=True):
        assert mine["train_loss"] == pytest.approx(ref["train_loss"], rel=1e-4)
        assert mine["test_loss"] == pytest.approx(ref["test_loss"], rel=1e-4)
        assert mine["test_acc"] == pytest.approx(ref["test_accuracy"], abs=1e-9)
        assert mine["confusion"] == ref["confusion"]
    saved, _ = read_state(state)
    net = built.network
    assert saved.version == 2 and saved.network == net
    assert state.stat().st_size == 2 * saved.slot_bytes
    trainable = set(net.trainable_params())
    assert set(saved.w_bar) == set(saved.lam) == trainable
    for name, value in saved.params.items():
        if name in trainable:
            np.testing.assert_allclose(value, golden.params[name], rtol=1e-3, atol=1e-6)
            np.testing.assert_allclose(
                saved.w_bar[name], golden.fptt_state[name]["w_bar"], rtol=1e-3, atol=1e-6
            )
            np.testing.assert_allclose(
                saved.lam[name], golden.fptt_state[name]["lam"], rtol=1e-3, atol=1e-6
            )
            assert not np.array_equal(value, built.params[name].astype(np.float32))
        else:  # frozen: exactly the exported values, no FPTT state stored
            assert np.array_equal(value, built.params[name].astype(np.float32)), name


def test_image_layout_is_the_documented_one(built, tmp_path):
    """Header, layer list (count; cell, H, trainable per layer; readout), every parameter,
    then W_bar and lambda of the trainable ones, CRC: sizes and words from the spec alone."""
    state = tmp_path / "s.state"
    _learn(built, "--epochs", "1", "--state", str(state))
    data = state.read_bytes()
    saved, slot = read_state(state)
    net = built.network
    size = saved.slot_bytes
    image = data[slot * size : (slot + 1) * size]
    words = [len(net.stack)]
    for layer in net.stack:
        words += [{"lstm": 0, "gru": 1}[layer.cell], layer.hidden_size, int(layer.trainable)]
    words.append(int(net.readout_trainable))
    assert list(struct.unpack_from(f"<{len(words)}I", image, HEADER_BYTES)) == words
    assert struct.unpack_from("<I", image, 8)[0] == 2  # version
    frozen = net.num_params - sum(saved.params[n].size for n in net.trainable_params())
    expected = HEADER_BYTES + 4 * len(words) + 4 * (3 * net.num_params - 2 * frozen) + 4
    assert network_image_bytes(net, "fp32") == expected
    assert encode_state(saved) == image[:expected]  # the Python writer gives the same bytes
    assert not any(image[expected:])


def test_resume_and_a_host_written_state(tmp_path_factory, tmp_path):
    """Kill -9 inside a mid-epoch save, --resume: the same epochs as without. A state the host
    writes (Python) with changed parameters is what the C learner continues from."""
    export = _export(tmp_path_factory, "gru2-top", cell="gru", num_layers=2, trainable="top")
    whole = _learn(export, "--epochs", "2", "--save-every", "2",
                   "--state", str(tmp_path / "whole.state"))  # fmt: skip
    state = tmp_path / "run.state"
    image = network_image_bytes(export.network, "fp32")
    killed = _learn(
        export, "--epochs", "2", "--save-every", "2", "--state", str(state),
        env={"EDGEFPTT_STATE_KILL_AT": str(2 * image + 100)}, check=False,
    )  # fmt: skip
    assert killed.returncode in (-9, 137)
    resumed = _learn(export, "--epochs", "2", "--state", str(state), "--resume")
    by_epoch = {e["epoch"]: e for e in killed.epochs + resumed.epochs}
    strip = [{k: v for k, v in by_epoch[e].items() if k != "seconds"} for e in (1, 2)]
    assert strip == [{k: v for k, v in e.items() if k != "seconds"} for e in whole.epochs]

    # the host halves the readout and resets the run to epoch 0: the C learner continues from
    # those parameters and its sample-order PRNG state as the golden learner does
    saved, _ = read_state(state)
    saved.params["W_y"] = saved.params["W_y"] * 0.5
    saved.w_bar["W_y"] = saved.params["W_y"].copy()
    saved.epochs_completed, saved.batches_done, saved.flags = 0, 0, 0
    update_state_file(state, saved)
    out = _learn(export, "--epochs", "1", "--state", str(state), "--resume")
    train_x, train_y, test_x, test_y = _digits_arrays()
    fptt = {n: {"w_bar": saved.w_bar[n], "lam": saved.lam[n]} for n in saved.w_bar}
    golden = golden_learn(
        export.network, export.run, saved.params, train_x, train_y, test_x, test_y,
        epochs=1, lr0=LR, fptt_state=fptt, seed=saved.prng_state,
    )  # fmt: skip
    for key in ("train_loss", "test_loss"):
        assert out.epochs[0][key] == pytest.approx(golden.records[0][key], rel=1e-4)


def test_a_state_of_another_layer_list_is_refused(tmp_path_factory, tmp_path):
    """Same I, H, C and P, another trainable set: the C learner exits 2 naming the layer list,
    and the state file is untouched."""
    top = _export(tmp_path_factory, "lstm2-top-b", cell="lstm", num_layers=2, trainable="top")
    every = _export(tmp_path_factory, "lstm2-all", cell="lstm", num_layers=2, trainable="all")
    assert top.network.num_params == every.network.num_params
    state = tmp_path / "top.state"
    _learn(top, "--epochs", "1", "--state", str(state))
    before = state.read_bytes()
    done = _learn(every, "--epochs", "1", "--state", str(state), "--resume", check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "layer list" in lines[0], done.stderr
    assert state.read_bytes() == before


def test_a_damaged_layer_list_is_reported(tmp_path):
    net = NetworkSpec(
        input_size=2, hidden_size=4, num_classes=3,
        layers=(LayerSpec(cell="gru", hidden_size=5, trainable=False),
                LayerSpec(cell="lstm", hidden_size=4)),
    )  # fmt: skip
    from edgefptt.learn.state import LearnerState, write_state_file

    state = LearnerState(
        input_size=2, hidden=4, num_classes=3, batch_size=2, seq_len=6, partitions=2,
        layers=net.layers, readout_trainable=True,
    )  # fmt: skip
    path = tmp_path / "s.state"
    write_state_file(path, state)
    again, _ = read_state(path)
    assert again.network == net and set(again.lam) == {"W_l1", "b_l1", "W_y", "b_y"}
    data = bytearray(path.read_bytes())
    data[HEADER_BYTES + 4] = 7  # layer 0's cell code
    path.write_bytes(bytes(data))
    with pytest.raises(StateError, match="cell code 7"):
        read_state(path)


@pytest.mark.skipif(tool_missing("riscv") is not None, reason=str(tool_missing("riscv")))
def test_riscv_learner_of_a_gru_equals_host(tmp_path_factory):
    export = _export(tmp_path_factory, "gru-rv", cell="gru", num_layers=2, trainable="top")
    make(export.out_dir, "riscv")
    host = _learn(export, "--epochs", "1")
    files = ["--train", str(export.out_dir / "train.efs"), "--test",
             str(export.out_dir / "test.efs")]  # fmt: skip
    riscv = run_learner(export.out_dir / "learn_riscv", *files, "--epochs", "1", qemu=True)
    for a, b in zip(host.epochs, riscv.epochs, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-5)


def test_bf16_gru_learner_equals_golden(tmp_path_factory):
    export = _export(tmp_path_factory, "gru-bf16", dtype="bf16", cell="gru", num_layers=1)
    out = _learn(export, "--epochs", "2")
    train_x, train_y, test_x, test_y = _digits_arrays()
    golden = golden_learn(
        export.network, export.run, export.params, train_x, train_y, test_x, test_y,
        epochs=2, lr0=LR,
    )  # fmt: skip
    for mine, ref in zip(out.epochs, golden.records, strict=True):
        assert mine["train_loss"] == pytest.approx(ref["train_loss"], rel=2**-7)
        assert mine["test_loss"] == pytest.approx(ref["test_loss"], rel=2**-7)


def test_no_learner_for_the_checkpoint_schedule(tmp_path):
    """The checkpoint schedule (plain SGD, no FPTT state) has the one-pass program only."""
    net, run = make_specs(
        None, input_size=1, hidden_size=4, num_classes=3, batch_size=2, seq_len=6,
        schedule="checkpoint",
    )  # fmt: skip
    export = export_c(net, run, tmp_path / "ck", seed=1)
    assert "#error" in (export.out_dir / "learner.c").read_text()
    done = subprocess.run(
        ["make", "-C", str(export.out_dir), "learn_host"], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "checkpoint-schedule" in done.stderr


@pytest.mark.skipif(
    tool_missing("baremetal-riscv") is not None, reason=str(tool_missing("baremetal-riscv"))
)
def test_baremetal_learner_of_a_stack_equals_host(tmp_path_factory, tmp_path):
    """Bare-metal RISC-V, 2 harts: a run that saves a version-2 state through semihosting,
    then a resumed run, equal the hosted learner's two epochs."""
    from edgefptt.codegen.build import LEARNERS, run_baremetal_learner

    export = _export(tmp_path_factory, "gru2-bm", cell="gru", num_layers=2, trainable="top")
    make(export.out_dir, "baremetal-riscv", harts=2)
    elf = export.out_dir / LEARNERS["baremetal-riscv"]
    host = _learn(export, "--epochs", "2")
    files = ["--train", str(export.out_dir / "train.efs"), "--test",
             str(export.out_dir / "test.efs"), "--state", str(tmp_path / "bm.state")]  # fmt: skip
    first = run_baremetal_learner(elf, "baremetal-riscv", *files, "--epochs", "1", harts=2)
    rest = run_baremetal_learner(
        elf, "baremetal-riscv", *files, "--epochs", "2", "--resume", harts=2
    )
    device = first.epochs + rest.epochs
    assert [e["epoch"] for e in device] == [1, 2]
    for mine, ref in zip(device, host.epochs, strict=True):
        assert mine["train_loss"] == pytest.approx(ref["train_loss"], rel=1e-5)
        assert mine["test_loss"] == pytest.approx(ref["test_loss"], rel=1e-5)
        assert mine["confusion"] == ref["confusion"]
    saved, _ = read_state(tmp_path / "bm.state")
    assert saved.epoch == 2 and saved.network == export.network
