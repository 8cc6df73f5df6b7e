"""The validated settings of one host training run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgefptt.data.audio_features import FeatureSettings
from edgefptt.data.speech_commands import SpeechOptions
from edgefptt.errors import ConfigError

Algorithm = Literal["bptt", "tbptt", "fptt"]


class TrainConfig(BaseModel):
    """Everything that decides what a training run computes.

    The defaults are tuned for the bundled ``digits`` dataset (pixel order, T = 64).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # data
    dataset: Literal["digits", "smnist", "adding", "speech_commands"] = "digits"
    data_dir: str | None = None
    order: Literal["pixel", "row"] = "pixel"
    permute: bool = False
    seq_len: int = Field(100, ge=2, description="sequence length of the adding problem")
    limit: int | None = Field(None, ge=1, description="use only the first N samples per split")
    # speech_commands only
    task: Literal["12", "35", "custom"] = "12"
    words: str | None = Field(None, description="comma-separated words of --task custom")
    features: Literal["mfcc", "logmel"] = "mfcc"
    num_features: int = Field(40, ge=1, le=128)
    unknown_fraction: float = Field(0.1, ge=0, le=10)
    silence_fraction: float = Field(0.1, ge=0, le=10)
    augment: int = Field(0, ge=0, le=100, description="augmented copies per training clip")
    time_shift_ms: float = Field(100.0, ge=0, le=1000)
    noise_level: float = Field(0.1, ge=0, le=10)
    cache_dir: str | None = None
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

    def speech_options(self) -> SpeechOptions:
        """The speech_commands loader's options (40 mel bands or more behind MFCCs)."""
        words = tuple(w.strip() for w in (self.words or "").split(",") if w.strip())
        if self.task == "custom" and not words:
            raise ConfigError("--task custom needs --words, e.g. --words yes,no,cat")
        if words and self.task != "custom":
            raise ConfigError("--words applies to --task custom only")
        return SpeechOptions(
            task=self.task,
            words=words,
            features=FeatureSettings(
                kind=self.features,
                features=self.num_features,
                mel_bands=max(40, self.num_features),
            ),
            unknown_fraction=self.unknown_fraction,
            silence_fraction=self.silence_fraction,
            augment=self.augment,
            time_shift_ms=self.time_shift_ms,
            noise_level=self.noise_level,
            cache_dir=self.cache_dir,
        )


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
