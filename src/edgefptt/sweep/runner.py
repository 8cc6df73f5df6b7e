"""Running a sweep: every configuration in its own resumable directory, on a local process
pool or on Ray; a failed run is recorded with its error and the others go on.

A run is finished when its directory holds ``result.json`` written for the same options; a
later sweep over the same directory reuses it instead of training again. A run that stopped
part way resumes from its ``checkpoint.pt``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from edgefptt.errors import ConfigError, UserInputError
from edgefptt.sweep.grid import RunSpec
from edgefptt.train.checkpoint import atomic_write

RESULT_NAME = "result.json"
ENGINES = ("local", "ray")
RAY_MISSING = (
    "--engine ray needs Ray, which is not installed here; install the extra with "
    'pip install -e ".[ray]" (or use --engine local)'
)


@dataclass
class SweepResult:
    """Every run's record, in the sweep's order."""

    records: list[dict[str, Any]]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] == "failed"]


def _jsonable_options(options: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(options, default=str))


def finished_record(spec: RunSpec, out_dir: Path) -> dict[str, Any] | None:
    """The record of an earlier finished run of ``spec`` (same options), or None."""
    path = out_dir / spec.name / RESULT_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("options") != _jsonable_options(spec.options):
        return None
    return {**record, "reused": True}


def run_one(
    name: str, options: dict[str, Any], axes: dict[str, Any], out_dir: str, threads: int = 0
) -> dict[str, Any]:
    """Train one configuration in ``out_dir/name`` (resuming a checkpoint there).

    Never raises for a failed run: the error becomes the record's ``error``.
    """
    import torch

    from edgefptt.train.config import make_config
    from edgefptt.train.loop import CHECKPOINT_NAME, fit

    if threads > 0:
        torch.set_num_threads(threads)
    run_dir = Path(out_dir) / name
    record: dict[str, Any] = {
        "name": name,
        "axes": axes,
        "options": _jsonable_options(options),
        "out_dir": str(run_dir),
        "reused": False,
    }
    started = time.perf_counter()
    try:
        config = make_config(**options)
        resume = (run_dir / CHECKPOINT_NAME).is_file()
        result = fit(config, out_dir=run_dir, resume=resume)
        summary = result.summary()
        record.update(
            status="finished",
            error=None,
            algorithm=summary["algorithm"],
            partitions=summary["partitions"],
            final_test_accuracy=summary["final_test_accuracy"],
            final_test_loss=summary["final_test_loss"],
            peak_activation_bytes=summary["peak_activation_bytes"],
            param_state_bytes=summary["param_state_bytes"],
            mean_epoch_wall_s=summary["mean_epoch_wall_s"],
            epochs=len(summary["epochs"]),
            resumed=resume,
            device=summary.get("device"),
        )
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # recorded; the sweep goes on
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        record.update(status="failed", error=f"{type(exc).__name__}: {first}")
    record["wall_s"] = time.perf_counter() - started
    if record["status"] == "finished":
        text = json.dumps(record, indent=1)
        atomic_write(run_dir / RESULT_NAME, lambda handle: handle.write(text.encode()))
    return record


def _failed(spec: RunSpec, out_dir: Path, error: str) -> dict[str, Any]:
    return {
        "name": spec.name,
        "axes": spec.axes,
        "options": _jsonable_options(spec.options),
        "out_dir": str(out_dir / spec.name),
        "reused": False,
        "status": "failed",
        "error": error,
    }


def run_sweep(
    specs: Sequence[RunSpec],
    out_dir: Path,
    workers: int = 1,
    engine: str = "local",
    ray_address: str | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Run every spec not finished before; returns all records in ``specs``' order."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown --engine {engine!r}; choose local or ray")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1 (got {workers})")
    if ray_address is not None and engine != "ray":
        raise ConfigError("--ray-address goes with --engine ray")
    if engine == "ray":
        ray = _import_ray()
    out_dir.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict[str, Any]] = {}
    pending = []
    for spec in specs:
        earlier = finished_record(spec, out_dir)
        if earlier is None:
            pending.append(spec)
        else:
            records[spec.name] = earlier
            if on_done is not None:
                on_done(earlier)

    def done(record: dict[str, Any]) -> None:
        records[record["name"]] = record
        if on_done is not None:
            on_done(record)

    threads = max(1, (os.cpu_count() or 1) // workers)
    if engine == "ray":
        _run_ray(ray, pending, out_dir, workers, ray_address, threads, done)
    elif workers == 1 or len(pending) <= 1:
        for spec in pending:
            done(run_one(spec.name, spec.options, spec.axes, str(out_dir)))
    else:
        _run_pool(pending, out_dir, workers, threads, done)
    return SweepResult([records[s.name] for s in specs])


def _run_pool(
    pending: Sequence[RunSpec],
    out_dir: Path,
    workers: int,
    threads: int,
    done: Callable[[dict[str, Any]], None],
) -> None:
    # spawn, not fork: a forked copy of a process that already runs torch threads can hang
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {
            pool.submit(run_one, s.name, s.options, s.axes, str(out_dir), threads): s
            for s in pending
        }
        for future in as_completed(futures):
            spec = futures[future]
            try:
                done(future.result())
            except Exception as exc:  # the worker process died
                done(_failed(spec, out_dir, f"{type(exc).__name__}: {exc}"))


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserInputError(RAY_MISSING) from None
    return ray


def _run_ray(
    ray: Any,
    pending: Sequence[RunSpec],
    out_dir: Path,
    workers: int,
    address: str | None,
    threads: int,
    done: Callable[[dict[str, Any]], None],
) -> None:
    """At most ``workers`` runs at a time as Ray tasks (one CPU each). On a cluster the out
    directory and the data must be on storage every node sees."""
    if not pending:
        return
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"--ray-address {address}: cannot connect to Ray ({exc})") from None
    task = ray.remote(num_cpus=1)(run_one)
    waiting = list(pending)
    running: dict[Any, RunSpec] = {}
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                spec = waiting.pop(0)
                ref = task.remote(spec.name, spec.options, spec.axes, str(out_dir), threads)
                running[ref] = spec
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                spec = running.pop(ref)
                try:
                    done(ray.get(ref))
                except Exception as exc:  # the task or its worker died
                    done(_failed(spec, out_dir, f"{type(exc).__name__}: {exc}"))
    finally:
        if started_here:
            ray.shutdown()
