"""Sweeps: many training runs (algorithm x K x alpha x seed ...) with a summary and a plot."""

from edgefptt.sweep.grid import RunSpec, expand_grid, load_grid_file
from edgefptt.sweep.runner import SweepResult, run_sweep

__all__ = ["RunSpec", "SweepResult", "expand_grid", "load_grid_file", "run_sweep"]
