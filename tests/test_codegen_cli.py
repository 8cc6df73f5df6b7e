"""`edgefptt export-c`: JSON output, files, errors, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgefptt.cli import main
from edgefptt.config import make_specs
from edgefptt.plan import plan_memory

SIZES = ["--input", "2", "--hidden", "4", "--classes", "3", "--batch", "2", "--seq-len", "9"]


def test_export_json_and_files(tmp_path, capsys):
    out = tmp_path / "gen"
    code = main(["export-c", *SIZES, "--partitions", "3", "--plan", "recompute", "--json",
                 "-o", str(out)])  # fmt: skip
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    net, run = make_specs(None, input_size=2, hidden_size=4, num_classes=3, batch_size=2,
                          seq_len=9, partitions=3, schedule="exact")  # fmt: skip
    assert doc["arena_bytes"] == plan_memory(net, run, "recompute").total_bytes
    golden = json.loads((out / "golden.json").read_text())
    assert golden["arena_bytes"] == doc["arena_bytes"]
    assert len(golden["losses"]) == 3
    for name in ("Makefile", "model.c", "runtime.c", "matmul_gemmini.c", "matmul_portable.c"):
        assert (out / name).is_file()


def test_table_output(tmp_path, capsys):
    assert main(["export-c", *SIZES, "-o", str(tmp_path / "t")]) == 0
    assert "arena" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--schedule", "tbptt"], "schedule"),
        (["--plan", "paper"], "lifetime or recompute"),
        (["--schedule", "paper", "--plan", "recompute"], "lifetime or paper plan"),
        (["--schedule", "paper", "--partitions", "5"], "K to divide T"),
        (["--rounding", "up"], "rounding"),
        (["--cores", "0"], "--cores"),
    ],
)
def test_bad_input_exits_2(tmp_path, capsys, extra, message):
    assert main(["export-c", *SIZES, *extra, "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err


def _checkpoint(path, cell="lstm", layers=1):
    from edgefptt.models import SequenceClassifier
    from edgefptt.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = SequenceClassifier(2, 4, 3, layers, cell, "last")
    save_checkpoint(
        path,
        {
            "config": {"cell": cell, "layers": layers, "readout": "last", "hidden": 4},
            "data": {"input_size": 2, "num_outputs": 3, "task": "classification"},
            "model": model.state_dict(),
        },
    )
    return model


def test_weights_from_a_checkpoint(tmp_path, capsys):
    model = _checkpoint(tmp_path / "ck.pt")
    data = tmp_path / "batch.npz"
    np.savez(data, x=np.ones((4, 9, 2)), y=np.array([2, 1, 0, 0]))
    out = tmp_path / "gen"
    argv = ["export-c", "--batch", "2", "--seq-len", "9", "--weights", str(tmp_path / "ck.pt"),
            "--data", str(data), "--json", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["network"] == {"input_size": 2, "hidden_size": 4, "num_classes": 3}
    text = (out / "data.c").read_text()
    # The first weight of W is torch's weight_ih_l0[0, 0]; the labels are the file's first two.
    first = float(model.rnn.weight_ih_l0[0, 0].detach())
    assert f"{np.float32(first):.9g}" in text
    assert "edgefptt_samples_labels[EDGEFPTT_BATCH_SIZE] = { 2, 1 }" in text


def test_checkpoint_that_disagrees_with_the_options(tmp_path, capsys):
    _checkpoint(tmp_path / "gru.pt", cell="gru")
    argv = ["export-c", "--batch", "2", "--seq-len", "9", "--weights", str(tmp_path / "gru.pt"),
            "-o", str(tmp_path / "x")]  # fmt: skip
    assert main([*argv[:-2], "--cell", "lstm", *argv[-2:]]) == 2
    assert "cell gru, but lstm" in capsys.readouterr().err
    _checkpoint(tmp_path / "ok.pt")
    argv[-3] = str(tmp_path / "ok.pt")
    assert main([*argv[:-2], "--hidden", "5", "-o", str(tmp_path / "y")]) == 2
    assert "hidden size 4" in capsys.readouterr().err
