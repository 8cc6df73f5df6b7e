"""The validated settings of one host training run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgefptt.config import MAX_RATE, MAX_SEED, MAX_SEQ_LEN, MAX_SIZE
from edgefptt.data.audio_features import FeatureSettings
from edgefptt.data.speech_commands import SpeechOptions
from edgefptt.errors import ConfigError

Algorithm = Literal["bptt", "bptt-ckpt", "tbptt", "fptt"]
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
    seq_len: int = Field(
        100, ge=2, le=MAX_SEQ_LEN, description="sequence length of the adding problem"
    )
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
    partitions: int = Field(8, ge=1, le=MAX_SEQ_LEN)
    segments: int | None = Field(
        None, ge=1, description="bptt-ckpt: checkpointed segments S (None: round(sqrt T))"
    )
    loss_weighting: Literal["ramp", "last"] = "ramp"
    alpha: float = Field(0.1, gt=0, le=MAX_RATE)
    beta: float = Field(0.5, gt=0, le=1)
    linear_coef: float = Field(1.0, ge=0, le=MAX_RATE)
    reset_lambda: bool = False
    # model
    cell: Literal["lstm", "gru"] = "lstm"
    hidden: int = Field(128, ge=1, le=MAX_SIZE)
    layers: int = Field(1, ge=1, le=64)
    readout: Literal["last", "mean"] = "last"
    # optimisation
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = Field(5e-3, gt=0, le=MAX_RATE)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, le=MAX_RATE)
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    clip: float | None = Field(1.0, gt=0)
    epochs: int = Field(30, ge=1, le=1_000_000)
    batch_size: int = Field(32, ge=1, le=MAX_SIZE)
    eval_batch_size: int = Field(512, ge=1, le=MAX_SIZE)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    # recipe: "host" (the options above) or "device" (the generated C learner's procedure)
    recipe: Recipe = "host"
    lr_step: str | None = Field(
        None, description="device recipe: E:F multiplies the lr by F every E epochs"
    )
    init: str | None = Field(None, description="edgefptt checkpoint to take the weights from")
    patience: int = Field(
        0, ge=0, le=1_000_000, description="early stop after P epochs without a better loss"
    )
    # where and how to compute (docs/scale.md): auto takes CUDA when present
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    # reproduction options of the reference FPTT code, off by default (docs/scale.md)
    oracle_loss: bool = False
    oracle_uniform_epochs: int = Field(19, ge=0)
    epoch_end_average: bool = False

    @model_validator(mode="before")
    @classmethod
    def _apply_recipe(cls, data: Any) -> Any:
        if isinstance(data, dict):
            try:
                return apply_recipe(data)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return data

    @model_validator(mode="after")
    def _check_segments(self) -> TrainConfig:
        if self.segments is not None and self.algorithm != "bptt-ckpt":
            raise ValueError(
                f"--segments belongs to --algorithm bptt-ckpt (got --algorithm "
                f"{self.algorithm}); drop --segments or use bptt-ckpt"
            )
        return self

    @property
    def lr_step_schedule(self) -> tuple[int, float]:
        """(E, F) of --lr-step; (0, 1.0) for a constant learning rate."""
        from edgefptt.learn.order import parse_lr_step

        return (0, 1.0) if self.lr_step is None else parse_lr_step(self.lr_step)

    @property
    def effective_partitions(self) -> int:
        """K as used: BPTT (checkpointed or not) is one partition whatever --partitions says."""
        return 1 if self.algorithm in ("bptt", "bptt-ckpt") else self.partitions

    def min_memory_bytes(
        self, input_size: int = 1, num_outputs: int = 1, seq_len: int = 0, batch: int = 0
    ) -> int:
        """A lower bound of the memory a run needs: float32 weights, their gradients, the
        optimizer's state (Adam 2 values per weight, SGD momentum 1) and FPTT's (W_bar and
        lambda), and the hidden state of every step of a partition of ``batch`` sequences
        (what backward keeps at the least). The defaults leave the data's shape out."""
        gates = 4 if self.cell == "lstm" else 3
        h = self.hidden
        weights = num_outputs * (h + 1) + sum(
            gates * h * ((input_size if layer == 0 else h) + h + 2) for layer in range(self.layers)
        )
        copies = 2 + (2 if self.optimizer == "adam" else int(self.momentum > 0))
        copies += 2 if self.algorithm == "fptt" else 0
        k = self.effective_partitions if self.algorithm != "bptt-ckpt" else seq_len
        steps = -(-seq_len // max(1, k)) if seq_len else 0
        return 4 * (copies * weights + batch * steps * h * self.layers)

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
    if not first.get("loc"):  # a check across options: its message names them
        return str(first.get("msg", "invalid options")).removeprefix("Value error, ")
    where = ".".join(str(p) for p in first.get("loc", ())) or "value"
    option = "--" + where.replace("_", "-")
    got = first.get("input")
    return f"{option}: {first.get('msg', 'invalid value')} (got {got!r})"
