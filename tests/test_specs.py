"""Specs: the preset, validation, and one-line ConfigError messages."""

import pytest
from pydantic import ValidationError

from edgefptt.config import PRESETS, NetworkSpec, RunSpec, make_specs
from edgefptt.errors import ConfigError


def test_paper_preset_matches_the_paper():
    net, run = make_specs("paper-smnist")
    assert (net.input_size, net.hidden_size, net.num_classes) == (1, 128, 10)
    assert (run.batch_size, run.seq_len, run.partitions) == (4, 784, 1)
    assert (run.learning_rate, run.alpha, run.beta) == (0.01, 0.1, 0.5)
    # fptt.md: P = 67,850 parameters for I=1, H=128, C=10.
    assert net.num_params == 67_850


def test_overrides_apply_on_top_of_the_preset():
    net, run = make_specs("paper-smnist", partitions=14, dtype="bf16", hidden_size=None)
    assert run.partitions == 14 and run.dtype == "bf16" and net.hidden_size == 128
    assert PRESETS["paper-smnist"].run.partitions == 1  # the preset itself is untouched


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"partitions": 5}, "divide"),
        ({"partitions": 785, "schedule": "exact"}, "exceeds"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"dtype": "fp16"}, "dtype"),
        ({"schedule": "fast"}, "schedule"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"beta": 1.5}, "beta"),
    ],
)
def test_invalid_specs_raise_one_line_config_errors(values, fragment):
    with pytest.raises(ConfigError) as info:
        make_specs("paper-smnist", **values)
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_unknown_preset_and_missing_sizes():
    with pytest.raises(ConfigError, match="unknown preset"):
        make_specs("nope")
    with pytest.raises(ConfigError, match="required"):
        make_specs(partitions=2)
    with pytest.raises(ConfigError, match="unknown spec field"):
        make_specs("paper-smnist", hidden=3)


def test_exact_schedule_accepts_k_not_dividing_t():
    _, run = make_specs("paper-smnist", partitions=5, schedule="exact")
    assert run.max_partition_len == 157  # ceil(784 / 5)


def test_specs_are_frozen_and_strict():
    net = NetworkSpec(input_size=1, hidden_size=2, num_classes=3)
    with pytest.raises(ValidationError):
        net.hidden_size = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        RunSpec(batch_size=1, seq_len=4, partitions=3)  # paper schedule, 3 does not divide 4
