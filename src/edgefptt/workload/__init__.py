"""The on-device training pass as one ordered list of kernels over named buffers."""

from __future__ import annotations

from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.workload.checkpoint import build_checkpoint
from edgefptt.workload.exact import build_exact
from edgefptt.workload.kernels import GROUPS, Buffer, Kernel, MatmulSpec, View, Workload
from edgefptt.workload.paper import build_paper


def build_workload(net: NetworkSpec, run: RunSpec, recompute: bool = False) -> Workload:
    """The workload of ``run.schedule``; ``recompute`` (exact only) keeps just h and c per step."""
    if run.schedule != "exact" and not net.is_single_lstm:
        from edgefptt.errors import ConfigError

        raise ConfigError(
            f"the {run.schedule} schedule describes one trainable LSTM layer and readout; "
            "use --schedule exact for GRU, stacked or frozen layers"
        )
    if run.schedule == "paper":
        if recompute:
            from edgefptt.errors import ConfigError

            raise ConfigError(
                "recomputation is defined for the exact schedule; use --schedule exact"
            )
        return build_paper(net, run)
    if run.schedule == "checkpoint":
        if recompute:
            from edgefptt.errors import ConfigError

            raise ConfigError(
                "the checkpoint schedule already recomputes each segment; drop the recompute "
                "plan or use --schedule exact"
            )
        return build_checkpoint(net, run)
    return build_exact(net, run, recompute=recompute)


__all__ = [
    "GROUPS",
    "Buffer",
    "Kernel",
    "MatmulSpec",
    "View",
    "Workload",
    "build_checkpoint",
    "build_exact",
    "build_paper",
    "build_workload",
]
