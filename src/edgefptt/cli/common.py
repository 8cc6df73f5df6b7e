"""What every command shares: printing results, one-line errors, exit codes."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from rich.console import Console

# Results go to stdout; messages, tables meant for people and progress bars go to stderr only
# when --json is on, so that stdout then holds one JSON document and nothing else.
stdout = Console()
stderr = Console(stderr=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def emit_json(document: Any) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json.dumps(_jsonable(document), indent=2) + "\n")
    sys.stdout.flush()


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover
