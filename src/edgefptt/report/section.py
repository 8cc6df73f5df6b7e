"""What a report section is: numbers computed once (and cached), then tables and figures."""

from __future__ import annotations

import hashlib
import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefptt.train.checkpoint import atomic_write

CACHE_VERSION = 1


@dataclass
class Table:
    caption: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    file: str  # relative to the report directory
    caption: str


@dataclass
class Rendered:
    """What a section shows: prose, tables, figures, with the source of its numbers."""

    source: str  # "published", "modelled", "measured here", or a mix, in words
    commands: list[str]
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


@dataclass
class SectionOutcome:
    key: str
    title: str
    results: dict[str, Any] | None
    rendered: Rendered | None
    error: str | None = None
    cached: bool = False


@dataclass
class ReportContext:
    """Where the report goes and how each section reports progress."""

    out_dir: Path
    settings: dict[str, Any]
    fresh: bool = False
    progress: Callable[[str, float], None] = lambda message, fraction: None
    shared: dict[str, Any] = field(default_factory=dict)  # results of earlier sections

    @property
    def figures_dir(self) -> Path:
        path = self.out_dir / "figures"
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Section:
    """A report section: ``compute`` returns JSON-able numbers, ``render`` shows them."""

    key: str
    title: str
    compute: Callable[[ReportContext], dict[str, Any]]
    render: Callable[[dict[str, Any], ReportContext], Rendered]
    settings_keys: tuple[str, ...] = ()
    compute_last: bool = False  # computed after the others (it reads their results)
    cached: bool = True  # False: cheap and derived from other sections, always recomputed

    def cache_path(self, ctx: ReportContext) -> Path:
        relevant = {k: ctx.settings.get(k) for k in self.settings_keys}
        digest = hashlib.sha256(
            json.dumps([CACHE_VERSION, self.key, relevant], sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        return ctx.out_dir / "cache" / f"{self.key}-{digest}.json"

    def compute_or_load(self, ctx: ReportContext) -> SectionOutcome:
        """Compute (or reuse cached) results; a failure becomes an error shown in place."""
        cache = self.cache_path(ctx)
        try:
            if self.cached and cache.is_file() and not ctx.fresh:
                results = json.loads(cache.read_text())
                cached = True
            else:
                results = self.compute(ctx)
                text = json.dumps(results, indent=1, default=_jsonable)
                atomic_write(cache, lambda handle: handle.write(text.encode()))
                results = json.loads(text)
                cached = False
        except Exception as exc:  # a failing section must not stop the report
            return SectionOutcome(self.key, self.title, None, None, _describe(exc))
        ctx.shared[self.key] = results
        return SectionOutcome(self.key, self.title, results, None, None, cached)

    def render_outcome(self, outcome: SectionOutcome, ctx: ReportContext) -> SectionOutcome:
        if outcome.error is not None or outcome.results is None:
            return outcome
        try:
            outcome.rendered = self.render(outcome.results, ctx)
        except Exception as exc:
            outcome.error = _describe(exc)
        return outcome

    def run(self, ctx: ReportContext) -> SectionOutcome:
        return self.render_outcome(self.compute_or_load(ctx), ctx)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _describe(exc: Exception) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"
