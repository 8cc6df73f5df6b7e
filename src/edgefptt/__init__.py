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
# starts without it).
_LAZY = {
    "FPTT": "edgefptt.train.fptt",
    "detach_state": "edgefptt.train.partition",
    "partition_bounds": "edgefptt.train.partition",
    "partitions": "edgefptt.train.partition",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
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
