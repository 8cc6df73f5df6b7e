"""Host training: FPTT state, partitioning, the training loop and memory measurement."""

from edgefptt.train.fptt import FPTT
from edgefptt.train.partition import detach_state, partition_bounds, partitions

__all__ = ["FPTT", "detach_state", "partition_bounds", "partitions"]
