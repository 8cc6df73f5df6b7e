"""Training the same model with several algorithms and putting the costs side by side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgefptt.data import SequenceData
from edgefptt.train.config import TrainConfig
from edgefptt.train.loop import TrainCallbacks, TrainResult, fit, load_data


def compare(
    base: TrainConfig,
    variants: dict[str, dict[str, Any]],
    data: SequenceData | None = None,
    callbacks: Callable[[str], TrainCallbacks] | None = None,
) -> dict[str, TrainResult]:
    """Train ``base`` updated by each variant (name -> overrides) on the same data."""
    if data is None:
        data = load_data(base)
    results = {}
    for name, overrides in variants.items():
        config = base.model_copy(update=overrides)
        config = TrainConfig.model_validate(config.model_dump())
        results[name] = fit(config, data, callbacks=None if callbacks is None else callbacks(name))
    return results


def side_by_side(baseline: TrainResult, candidate: TrainResult) -> dict[str, dict[str, float]]:
    """Accuracy, memory and time of two runs with the candidate/baseline ratios."""

    def metrics(result: TrainResult) -> dict[str, float]:
        epochs = result.history
        return {
            "test_accuracy": result.final_test_accuracy,
            "peak_activation_bytes": result.peak_activation_bytes,
            "param_state_bytes": result.param_state_bytes,
            "epoch_wall_s": sum(r["wall_s"] for r in epochs) / len(epochs),
        }

    base, cand = metrics(baseline), metrics(candidate)
    ratio = {k: (cand[k] / base[k] if base[k] else float("nan")) for k in base}
    ratio["test_accuracy_points"] = 100.0 * (cand["test_accuracy"] - base["test_accuracy"])
    return {"baseline": base, "candidate": cand, "ratio": ratio}
