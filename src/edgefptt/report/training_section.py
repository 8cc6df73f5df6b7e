"""Section 5: accuracy and activation memory against K, FPTT beside BPTT and truncated BPTT."""

from __future__ import annotations

from typing import Any

from edgefptt.data import load_dataset
from edgefptt.report.plots import MIB, k_axis, new_figure, plain_log_y, save
from edgefptt.report.section import Figure, Rendered, ReportContext, Table
from edgefptt.train.config import make_config
from edgefptt.train.loop import TrainCallbacks, fit


class _Progress(TrainCallbacks):
    def __init__(self, ctx: ReportContext, label: str, done: float, share: float) -> None:
        self.ctx, self.label, self.done, self.share = ctx, label, done, share

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        epochs = self.ctx.settings["train_epochs"]
        self.ctx.progress(self.label, self.done + self.share * record["epoch"] / epochs)


def compute(ctx: ReportContext) -> dict[str, Any]:
    s = ctx.settings
    datasets = [("digits", None)]
    if s.get("data_dir") and s.get("dataset") and s["dataset"] != "digits":
        datasets.append((s["dataset"], s["data_dir"]))
    runs_total = len(datasets) * (1 + 2 * len(s["train_ks"]))
    done = 0
    out: dict[str, Any] = {"settings": {k: s[k] for k in ("train_epochs", "train_ks", "hidden")}}
    for name, data_dir in datasets:
        data = load_dataset(name, data_dir=data_dir, limit=s.get("train_limit"))
        runs = []
        plan = [("bptt", 1)] + [(a, k) for k in s["train_ks"] for a in ("tbptt", "fptt")]
        for algorithm, k in plan:
            if k > data.seq_len:
                continue
            label = f"{name} {algorithm} K={k}"
            config = make_config(
                dataset=name,
                data_dir=data_dir,
                algorithm=algorithm,
                partitions=k,
                epochs=s["train_epochs"],
                hidden=s["hidden"],
                limit=s.get("train_limit"),
            )
            result = fit(
                config, data, callbacks=_Progress(ctx, label, done / runs_total, 1 / runs_total)
            )
            done += 1
            runs.append(
                {
                    "algorithm": algorithm,
                    "partitions": k,
                    "test_accuracy": result.final_test_accuracy,
                    "peak_activation_bytes": result.peak_activation_bytes,
                    "param_state_bytes": result.param_state_bytes,
                    "epoch_wall_s": sum(r["wall_s"] for r in result.history) / len(result.history),
                }
            )
        out[data.name] = {"seq_len": data.seq_len, "runs": runs}
    return out


def render(results: dict[str, Any], ctx: ReportContext) -> Rendered:
    figures, tables = [], []
    for name, entry in results.items():
        if name == "settings":
            continue
        runs = entry["runs"]
        fig, (acc_ax, mem_ax) = new_figure(2)
        bptt = next(r for r in runs if r["algorithm"] == "bptt")
        for algorithm, style in (("tbptt", "s-"), ("fptt", "o-")):
            mine = [r for r in runs if r["algorithm"] == algorithm]
            ks = [r["partitions"] for r in mine]
            acc_ax.plot(ks, [100 * r["test_accuracy"] for r in mine], style, label=algorithm)
            mem_ax.plot(
                ks, [r["peak_activation_bytes"] / MIB for r in mine], style, label=algorithm
            )
        acc_ax.axhline(100 * bptt["test_accuracy"], color="k", ls="--", label="bptt")
        mem_ax.axhline(bptt["peak_activation_bytes"] / MIB, color="k", ls="--", label="bptt")
        all_ks = [r["partitions"] for r in runs if r["algorithm"] != "bptt"]
        for ax in (acc_ax, mem_ax):
            k_axis(ax, all_ks)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        acc_ax.set_ylabel("test accuracy (%)")
        mem_ax.set_ylabel("peak activation memory (MiB)")
        plain_log_y(mem_ax)
        acc_ax.set_title(f"{name} (T = {entry['seq_len']})")
        mem_ax.set_title("bytes saved for backward, one partition")
        file = f"figures/training_{name}.png"
        save(fig, ctx.out_dir / file)
        figures.append(Figure(file, f"Accuracy and activation memory against K on {name}."))
        tables.append(
            Table(
                f"Training on {name} ({results['settings']['train_epochs']} epochs, "
                f"LSTM {results['settings']['hidden']})",
                [
                    "algorithm",
                    "K",
                    "test accuracy",
                    "peak activation",
                    "parameter state",
                    "s/epoch",
                ],
                [
                    [
                        r["algorithm"],
                        str(r["partitions"]),
                        f"{100 * r['test_accuracy']:.2f}%",
                        f"{r['peak_activation_bytes']:,} B",
                        f"{r['param_state_bytes']:,} B",
                        f"{r['epoch_wall_s']:.2f}",
                    ]
                    for r in runs
                ],
            )
        )
    return Rendered(
        source="measured here (host training with PyTorch on this machine's CPU)",
        commands=[
            "edgefptt train --dataset digits --algorithm fptt --partitions K --json",
            "edgefptt demo",
        ],
        paragraphs=[
            "Activation memory is what autograd saves for the backward pass during one "
            "partition, measured with saved-tensor hooks; FPTT and truncated BPTT hold the same "
            "activations, FPTT adds the regularizer and evaluates with W_bar.",
        ],
        tables=tables,
        figures=figures,
    )
