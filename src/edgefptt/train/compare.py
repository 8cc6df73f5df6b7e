"""Training the same model with several algorithms and putting the costs side by side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from edgefptt.data import SequenceData
from edgefptt.errors import ConfigError
from edgefptt.train.config import TrainConfig, describe_validation_error
from edgefptt.train.loop import TrainCallbacks, TrainResult, fit, load_data

# Options that belong to one algorithm only: a variant of another algorithm drops the base's
# value (None is each option's "not given") unless the variant sets the option itself.
ALGORITHM_ONLY: dict[str, str] = {"segments": "bptt-ckpt"}


def variant_config(base: TrainConfig, name: str, overrides: dict[str, Any]) -> TrainConfig:
    """``base`` updated by ``overrides`` and validated again.

    Settings of the base that do not apply to the variant's algorithm are dropped (a bptt-ckpt
    base's ``segments`` for a ``fptt`` variant); anything else invalid, such as a variant that
    sets ``segments`` with another algorithm, is a one-line ConfigError naming the variant.
    """
    options = {**base.model_dump(), **overrides}
    for option, algorithm in ALGORITHM_ONLY.items():
        if option not in overrides and options.get("algorithm") != algorithm:
            options[option] = None
    try:
        return TrainConfig.model_validate(options)
    except ValidationError as exc:
        raise ConfigError(f"variant {name!r}: {describe_validation_error(exc)}") from None


def compare(
    base: TrainConfig,
    variants: dict[str, dict[str, Any]],
    data: SequenceData | None = None,
    callbacks: Callable[[str], TrainCallbacks] | None = None,
) -> dict[str, TrainResult]:
    """Train ``base`` updated by each variant (name -> overrides) on the same data.

    Every variant is validated (:func:`variant_config`) before any training starts.
    """
    configs = {name: variant_config(base, name, o) for name, o in variants.items()}
    if data is None:
        data = load_data(base)
    results = {}
    for name, config in configs.items():
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
