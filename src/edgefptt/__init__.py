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

__version__ = "0.1.0"

# torch is imported on first use of these names, not by `import edgefptt` (the command line
# starts without it): edgefptt.train loads them lazily.
_FROM_TRAIN = ("FPTT", "detach_state", "partition_bounds", "partitions")


def __getattr__(name: str) -> object:
    if name in _FROM_TRAIN:
        from edgefptt import train

        return getattr(train, name)
    raise AttributeError(f"module 'edgefptt' has no attribute {name!r}")


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
