"""edgefptt: train recurrent networks with FPTT for memory-limited edge hardware."""

from edgefptt.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    EdgeFPTTError,
    NonFiniteLossError,
    TrainingInterrupted,
    UserInputError,
)
from edgefptt.train.fptt import FPTT
from edgefptt.train.partition import detach_state, partition_bounds, partitions

__version__ = "0.1.0"

__all__ = [
    "FPTT",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "EdgeFPTTError",
    "NonFiniteLossError",
    "TrainingInterrupted",
    "UserInputError",
    "__version__",
    "detach_state",
    "partition_bounds",
    "partitions",
]
