"""The validated settings of one host training run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgefptt.data.audio_features import FeatureSettings
from edgefptt.data.speech_commands import SpeechOptions
from edgefptt.errors import ConfigError

Algorithm = Literal["bptt", "tbptt", "fptt"]
Recipe = Literal["host", "device"]

# What ``recipe="device"`` fixes: the procedure of the generated C learner (docs/learner.md).
# An option given with another value is a ConfigError; one not given takes this value.
DEVICE_RECIPE: dict[str, Any] = {
    "algorithm": "fptt",
    "cell": "lstm",
    "layers": 1,
    "readout": "last",
    "optimizer": "sgd",
    "momentum": 0.0,
    "weight_decay": 0.0,
    "clip": None,
    "loss_weighting": "last",
    "schedule": "constant",
    "reset_lambda": False,
}
# How to say each fixed value on the command line.
_DEVICE_SHOWN = {"clip": "none, --clip 0", "reset_lambda": "--keep-lambda"}


class TrainConfig(BaseModel):
    """Everything that decides what a training run computes.

    The defaults are tuned for the bundled ``digits`` dataset (pixel order, T = 64).
    ``recipe="device"`` fixes the options in :data:`DEVICE_RECIPE` (FPTT, one LSTM layer,
    last-step readout, SGD without momentum or weight decay, no clipping, the last partition's
    loss, a constant lr or ``lr_step``): left out, they take those values; given otherwise,
    they are a ConfigError.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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
    # recipe: "host" (the options above) or "device" (the generated C learner's procedure)
    recipe: Recipe = "host"
    lr_step: str | None = Field(
        None, description="device recipe: E:F multiplies the lr by F every E epochs"
    )
    init: str | None = Field(None, description="edgefptt checkpoint to take the weights from")
    patience: int = Field(0, ge=0, description="early stop after P epochs without a better loss")

    @model_validator(mode="before")
    @classmethod
    def _apply_recipe(cls, data: Any) -> Any:
        if isinstance(data, dict):
            try:
                return apply_recipe(data)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return data

    @property
    def lr_step_schedule(self) -> tuple[int, float]:
        """(E, F) of --lr-step; (0, 1.0) for a constant learning rate."""
        from edgefptt.learn.order import parse_lr_step

        return (0, 1.0) if self.lr_step is None else parse_lr_step(self.lr_step)

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


def apply_recipe(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the device recipe's fixed values filled in (unchanged for the host).

    Under ``recipe="device"`` an option given with a value the device does not use is a
    ConfigError that names every such option; ``lr_step`` is checked here too.
    """
    recipe = options.get("recipe", "host")
    if recipe != "device":
        if options.get("lr_step") is not None:
            raise ConfigError(
                "--lr-step belongs to --recipe device; the host recipe's learning rate follows "
                "--schedule"
            )
        return dict(options)
    from edgefptt.learn.order import parse_lr_step

    conflicts = []
    for key, fixed in DEVICE_RECIPE.items():
        if key in options and options[key] != fixed:
            shown = _DEVICE_SHOWN.get(key, f"{fixed:g}" if isinstance(fixed, float) else fixed)
            hint = " (for a stepped lr give --lr-step E:F)" if key == "schedule" else ""
            conflicts.append(f"--{key.replace('_', '-')} {options[key]} (needs {shown}){hint}")
    if conflicts:
        raise ConfigError(
            "--recipe device trains as the device does (FPTT, one LSTM layer, last-step readout, "
            "plain SGD, last-partition loss, no clipping); these options contradict it: "
            + ", ".join(conflicts)
        )
    if options.get("lr_step") is not None:
        parse_lr_step(options["lr_step"])
    return {**DEVICE_RECIPE, **options}


def make_config(**options: Any) -> TrainConfig:
    """Build a :class:`TrainConfig`, turning validation errors into one-line ConfigErrors."""
    options = apply_recipe(options)
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
