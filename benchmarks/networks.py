"""LSTM vs GRU, 1 vs 2 layers, all / top / readout trainable, as one JSON document.

Part "device" (the keyword-spotting preset ``gsc``: I = 40, H = 128, C = 12, B = 8, T = 100,
exact schedule): for each network and dtype, the arena bytes (lifetime and recompute plans)
and modelled cycles and seconds of one training pass (``edgefptt.hw.estimate`` on the
gemmini-<dtype> SoC preset, the paper's code) at K = 1, and at the smallest K (of the divisors
of T) whose better plan fits the budget (default 512 KB = 524,288 bytes), or the least bytes
over those K when none fits.

Part "accuracy" (host, torch): scikit-learn's 8x8 digits as 8 rows of 8 pixels. A base network
(cell, layers) is trained with BPTT and Adam on the first half of the training split, then
fine-tuned with FPTT (K partitions, SGD, ``edgefptt.FPTT`` on the trainable tensors only) on
the second half with the frozen tensors' ``requires_grad`` off; test accuracy before and after.

Run: python benchmarks/networks.py [--budget BYTES] [--epochs N] [--no-accuracy] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from edgefptt import FPTT
from edgefptt.config import make_specs
from edgefptt.hw import estimate
from edgefptt.hw.spec import SOC_PRESETS
from edgefptt.plan import plan_memory

NETWORKS = [
    ("lstm", 1, "all"),
    ("lstm", 1, "readout"),
    ("gru", 1, "all"),
    ("gru", 1, "readout"),
    ("lstm", 2, "all"),
    ("lstm", 2, "top"),
    ("lstm", 2, "readout"),
    ("gru", 2, "all"),
    ("gru", 2, "top"),
    ("gru", 2, "readout"),
]


def _point(cell: str, layers: int, trainable: str, dtype: str, k: int) -> dict:
    net, run = make_specs(
        "gsc", cell=cell, num_layers=layers, trainable=trainable, dtype=dtype, partitions=k,
        schedule="exact",
    )  # fmt: skip
    plans = {plan: plan_memory(net, run, plan).total_bytes for plan in ("lifetime", "recompute")}
    best = min(plans, key=lambda p: (plans[p], p))
    est = estimate(net, run, SOC_PRESETS[f"gemmini-{dtype}"], plan=best)
    return {
        "K": k,
        "lifetime_bytes": plans["lifetime"],
        "recompute_bytes": plans["recompute"],
        "plan": best,
        "bytes": plans[best],
        "cycles": round(est.total_cycles),
        "seconds": est.seconds,
        "params": net.num_params,
    }


def device_part(budget: int, dtypes: list[str]) -> list[dict]:
    seq_len = make_specs("gsc")[1].seq_len
    candidates = [k for k in range(1, seq_len + 1) if seq_len % k == 0]
    rows = []
    for cell, layers, trainable in NETWORKS:
        for dtype in dtypes:
            first = _point(cell, layers, trainable, dtype, 1)
            fit, least = None, first
            if first["bytes"] <= budget:
                fit = first
            else:
                for k in candidates[1:]:
                    point = _point(cell, layers, trainable, dtype, k)
                    least = point if point["bytes"] < least["bytes"] else least
                    if point["bytes"] <= budget:
                        fit = point
                        break
            rows.append(
                {
                    "cell": cell,
                    "layers": layers,
                    "trainable": trainable,
                    "dtype": dtype,
                    "k1": first,
                    "fits_budget": fit,
                    "least_bytes": None if fit else least,
                }
            )
    return rows


def _digits_rows() -> tuple[torch.Tensor, ...]:
    from edgefptt.data import digits

    data = digits.load("row")
    return data.train_x, data.train_y, data.test_x, data.test_y


class _Net(torch.nn.Module):
    def __init__(self, cell: str, layers: int, hidden: int) -> None:
        super().__init__()
        kind = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
        self.rnn = kind(8, hidden, num_layers=layers, batch_first=True)
        self.readout = torch.nn.Linear(hidden, 10)

    def forward(self, x, state=None):
        out, state = self.rnn(x, state)
        return self.readout(out[:, -1]), state

    def trainable(self, which: str) -> list[torch.nn.Parameter]:
        layers = self.rnn.num_layers
        keep = {"all": set(range(layers)), "top": {layers - 1}, "readout": set()}[which]
        params = [p for n, p in self.rnn.named_parameters() if int(n.rsplit("_l", 1)[1]) in keep]
        return params + list(self.readout.parameters())


def _accuracy(model: _Net, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x)[0].argmax(1) == y).float().mean())


def accuracy_part(epochs: int, hidden: int, partitions: int) -> list[dict]:
    torch.manual_seed(0)
    train_x, train_y, test_x, test_y = _digits_rows()
    half = len(train_x) // 2
    base_x, base_y, tune_x, tune_y = train_x[:half], train_y[:half], train_x[half:], train_y[half:]
    rows = []
    bases: dict[tuple[str, int], dict] = {}
    for cell, layers, trainable in NETWORKS:
        key = (cell, layers)
        if key not in bases:
            torch.manual_seed(1)
            model = _Net(cell, layers, hidden)
            opt = torch.optim.Adam(model.parameters(), lr=5e-3)
            for _ in range(epochs):
                for idx in torch.randperm(half).split(32):
                    opt.zero_grad()
                    loss = torch.nn.functional.cross_entropy(model(base_x[idx])[0], base_y[idx])
                    loss.backward()
                    opt.step()
            bases[key] = {k: v.clone() for k, v in model.state_dict().items()}
        model = _Net(cell, layers, hidden)
        model.load_state_dict(bases[key])
        before = _accuracy(model, test_x, test_y)
        params = model.trainable(trainable)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        fptt = FPTT(params, alpha=0.1, beta=0.5)
        sgd = torch.optim.SGD(params, lr=0.05)
        bounds = [(8 * j // partitions, 8 * (j + 1) // partitions) for j in range(partitions)]
        started = time.perf_counter()
        torch.manual_seed(2)
        for _ in range(epochs):
            for idx in torch.randperm(len(tune_x)).split(32):
                state = None
                for start, stop in bounds:
                    sgd.zero_grad()
                    logits, state = model(tune_x[idx, start:stop], state)
                    state = (
                        tuple(s.detach() for s in state)
                        if isinstance(state, tuple)
                        else state.detach()
                    )
                    loss = torch.nn.functional.cross_entropy(logits, tune_y[idx])
                    (loss + fptt.penalty()).backward()
                    sgd.step()
                    fptt.step()
        # FPTT evaluates with the running average W_bar of the trainable tensors.
        with fptt.average():
            after = _accuracy(model, test_x, test_y)
        rows.append(
            {
                "cell": cell,
                "layers": layers,
                "trainable": trainable,
                "trainable_params": sum(p.numel() for p in params),
                "test_accuracy_before": before,
                "test_accuracy_after": after,
                "finetune_seconds": time.perf_counter() - started,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=512 * 1024)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--quick", action="store_true", help="bf16 only on the device part")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    dtypes = ["bf16"] if args.quick else ["fp32", "bf16"]
    document = {
        "preset": "gsc",
        "budget_bytes": args.budget,
        "device": device_part(args.budget, dtypes),
    }
    if not args.no_accuracy:
        document["accuracy"] = {
            "dataset": "digits, 8 rows of 8 pixels; fine-tuned on the train split's second half",
            "epochs": args.epochs,
            "hidden": args.hidden,
            "partitions": args.partitions,
            "rows": accuracy_part(args.epochs, args.hidden, args.partitions),
        }
    document["seconds"] = time.perf_counter() - started
    return document


if __name__ == "__main__":
    json.dump(main(sys.argv[1:]), sys.stdout, indent=1)
    sys.stdout.write("\n")
