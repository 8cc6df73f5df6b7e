"""Host training: FPTT state, partitioning, the training loop and memory measurement."""

# torch is imported on first use of these names, not by importing a module of this package.
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
    raise AttributeError(f"module 'edgefptt.train' has no attribute {name!r}")


__all__ = ["FPTT", "detach_state", "partition_bounds", "partitions"]
