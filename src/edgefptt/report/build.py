"""Building the report: run every section, write index.html, results.json and the figures."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2

from edgefptt.report import (
    c_section,
    ckpt_section,
    gpu_section,
    hardware_section,
    headline_section,
    memory_section,
    training_section,
)
from edgefptt.report.section import ReportContext, Section, SectionOutcome
from edgefptt.train.checkpoint import atomic_write

QUICK = {"train_epochs": 6, "train_ks": [2, 8, 16], "hidden": 64, "train_limit": None}
FULL = {"train_epochs": 30, "train_ks": [1, 2, 4, 8, 16, 32], "hidden": 128, "train_limit": None}

SECTIONS = [
    Section(
        "memory", "Memory against K (paper preset)", memory_section.compute, memory_section.render
    ),
    Section(
        "latency",
        "Latency against K on the paper's design points (hardware model)",
        hardware_section.compute_latency,
        hardware_section.render_latency,
    ),
    Section(
        "headline",
        "The headline: memory saved for latency paid",
        headline_section.compute,
        headline_section.render,
        compute_last=True,
        cached=False,
    ),
    Section(
        "pareto",
        "Design space: the Pareto front",
        hardware_section.compute_pareto,
        hardware_section.render_pareto,
        ("quick",),
    ),
    Section(
        "training",
        "Training: accuracy and activation memory against K",
        training_section.compute,
        training_section.render,
        ("train_epochs", "train_ks", "hidden", "train_limit", "dataset", "data_dir"),
    ),
    Section(
        "ckpt",
        "FPTT against checkpointed BPTT at equal memory",
        ckpt_section.compute,
        ckpt_section.render,  # reads the training section's runs (ctx.shared) when rendering
        ("train_epochs", "train_ks", "hidden", "train_limit", "quick"),
    ),
    Section(
        "c_runtime",
        "Generated C against PyTorch on this host",
        c_section.compute,
        c_section.render,
        ("quick",),
    ),
]
if gpu_section.available():  # only where a CUDA GPU is present
    SECTIONS.append(
        Section(
            "gpu",
            "Training passes on this machine's GPU against K",
            gpu_section.compute,
            gpu_section.render,
            ("quick",),
            compute_last=True,  # after c_runtime, whose C timings it shows beside its own
        )
    )


def report_settings(quick: bool, **overrides: Any) -> dict[str, Any]:
    settings = dict(QUICK if quick else FULL)
    settings["quick"] = quick
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return settings


def build_report(
    out_dir: Path,
    settings: dict[str, Any],
    fresh: bool = False,
    progress: Callable[[str, str, float], None] | None = None,
    command: str = "edgefptt report",
) -> list[SectionOutcome]:
    """Run every section (reusing cached results unless ``fresh``) and write the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = ReportContext(out_dir=out_dir, settings=settings, fresh=fresh)
    computed: dict[str, SectionOutcome] = {}
    for section in sorted(SECTIONS, key=lambda s: s.compute_last):
        if progress is not None:
            ctx.progress = lambda message, fraction, key=section.key: progress(
                key, message, fraction
            )
        computed[section.key] = section.compute_or_load(ctx)
        if progress is not None:
            progress(section.key, "done", 1.0)
    outcomes = [s.render_outcome(computed[s.key], ctx) for s in SECTIONS]
    _write(out_dir, settings, outcomes, command)
    return outcomes


def _write(
    out_dir: Path, settings: dict[str, Any], outcomes: list[SectionOutcome], command: str
) -> None:
    from edgefptt import __version__

    document = {
        "settings": settings,
        "sections": {
            o.key: {
                "title": o.title,
                "results": o.results,
                "error": o.error,
                "source": None if o.rendered is None else o.rendered.source,
                "tables": [] if o.rendered is None else [asdict(t) for t in o.rendered.tables],
                "figures": [] if o.rendered is None else [f.file for f in o.rendered.figures],
            }
            for o in outcomes
        },
    }
    text = json.dumps(document, indent=1, default=str)
    atomic_write(out_dir / "results.json", lambda handle: handle.write(text.encode()))
    template = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
        files("edgefptt.report").joinpath("templates/index.html.j2").read_text(encoding="utf-8")
    )
    html = template.render(
        sections=outcomes,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=command,
        version=__version__,
    )
    atomic_write(out_dir / "index.html", lambda handle: handle.write(html.encode()))
