"""The validated settings of one host training run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgefptt.errors import ConfigError

Algorithm = Literal["bptt", "tbptt", "fptt"]


class TrainConfig(BaseModel):
    """Everything that decides what a training run computes.

    The defaults are tuned for the bundled ``digits`` dataset (pixel order, T = 64).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # data
    dataset: Literal["digits", "smnist", "adding"] = "digits"
    data_dir: str | None = None
    order: Literal["pixel", "row"] = "pixel"
    permute: bool = False
    seq_len: int = Field(100, ge=2, description="sequence length of the adding problem")
    limit: int | None = Field(None, ge=1, description="use only the first N samples per split")
    # algorithm
    algorithm: Algorithm = "fptt"
    partitions: int = Field(8, ge=1)
    loss_weighting: Literal["ramp", "last"] = "ramp"
    alpha: float = Field(0.1, gt=0)
    beta: float = Field(0.5, gt=0, le=1)
    linear_coef: float = Field(1.0, ge=0)
    reset_lambda: bool = False
    # model
    cell: Literal["lstm", "gru"] = "lstm"
    hidden: int = Field(128, ge=1)
    layers: int = Field(1, ge=1)
    readout: Literal["last", "mean"] = "last"
    # optimisation
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = Field(5e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    clip: float | None = Field(1.0, gt=0)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    seed: int = Field(0, ge=0)

    @property
    def effective_partitions(self) -> int:
        """K as used: BPTT is one partition whatever --partitions says."""
        return 1 if self.algorithm == "bptt" else self.partitions


def make_config(**options: Any) -> TrainConfig:
    """Build a :class:`TrainConfig`, turning validation errors into one-line ConfigErrors."""
    try:
        return TrainConfig(**options)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """The first problem of a pydantic error, as 'option: message (got value)'."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "value"
    option = "--" + where.replace("_", "-")
    got = first.get("input")
    return f"{option}: {first.get('msg', 'invalid value')} (got {got!r})"
