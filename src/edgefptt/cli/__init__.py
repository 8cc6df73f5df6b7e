"""The `edgefptt` command line: a thin layer over the library (parsing and printing only).

Exit codes: 0 success, 2 bad input (one-line message on stderr), 1 internal error or a run
that stopped on its own (non-finite loss), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
import traceback
from functools import cache
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import Abort, Exit, TyperException

from edgefptt.cli.common import stderr
from edgefptt.errors import TrainingInterrupted, TrainingStopped, UserInputError

# Each command's module and function, in the order `edgefptt --help` lists them. A module is
# imported only when one of its commands runs or shows its help (they import torch, sklearn,
# matplotlib ...): the list itself reads the docstrings from the source, so `edgefptt --help`
# starts at once.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("train_cmds", "demo"),
    "train": ("train_cmds", "train"),
    "memory": ("plan_cmds", "memory"),
    "ops": ("plan_cmds", "ops"),
    "estimate": ("hw_cmds", "estimate"),
    "explore": ("hw_cmds", "explore"),
    "export-c": ("deploy_cmds", "export_c"),
    "make-speech-data": ("speech_cmds", "make_speech_data"),
    "report": ("report_cmds", "report"),
    "export-data": ("data_cmds", "export_data"),
    "evaluate": ("data_cmds", "evaluate_cmd"),
    "import-c": ("data_cmds", "import_c"),
    "sweep": ("sweep_cmds", "sweep"),
}


@cache
def _docstrings(module: str) -> dict[str, str]:
    """The docstrings of a command module's functions, read from its source (not imported)."""
    tree = ast.parse((Path(__file__).parent / f"{module}.py").read_text())
    return {
        node.name: ast.get_docstring(node) or ""
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }


def show_flags_as_flags(command: Any) -> Any:
    """Give flags (and --help) an empty metavar: typer would show them as taking a <bool>."""
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    help_option = command.get_help_option(typer.Context(command))
    if help_option is not None:
        help_option.metavar = ""
    return command


def load_command(name: str) -> Any:
    """The real command ``name``: its module imported and its function turned into a command."""
    module, _ = COMMANDS[name]
    commands = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    commands.callback()(lambda: None)  # a group, even for a module with one command
    importlib.import_module(f"edgefptt.cli.{module}").register(commands)
    return show_flags_as_flags(typer.main.get_command(commands).commands[name])  # type: ignore[attr-defined]


class _Listed(TyperCommand):
    """A command as the list shows it, before its module is imported."""


class LazyGroup(TyperGroup):
    """The command group: lists every command of COMMANDS and imports one only to run it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, (module, function) in COMMANDS.items():
            if name not in self.commands:
                doc = _docstrings(module).get(function, "")
                self.commands[name] = _Listed(name=name, help=doc, callback=None)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and isinstance(self.commands.get(args[0]), _Listed):
            self.commands[args[0]] = load_command(args[0])
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="edgefptt",
    help="Train RNNs with FPTT for memory-limited edge hardware, and co-design that hardware.",
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _edgefptt() -> None:
    """Train RNNs with FPTT for memory-limited edge hardware, and co-design that hardware."""


def _fail(message: str, code: int) -> int:
    stderr.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the exit code."""
    command = show_flags_as_flags(typer.main.get_command(app))
    try:
        result = command.main(args=argv, prog_name="edgefptt", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except Exit as exc:
        code = exc.exit_code
    except Abort:
        code = _fail("interrupted", 130)
    except TyperException as exc:  # parsing errors: unknown option, value of the wrong type
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]
            code = 2
        else:
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "edgefptt"
            code = _fail(f"{exc.format_message()} (see '{where} --help')", 2)
    except UserInputError as exc:
        code = _fail(str(exc), 2)
    except TrainingInterrupted as exc:
        code = _fail(str(exc), 130)
    except TrainingStopped as exc:
        code = _fail(str(exc), 1)
    except KeyboardInterrupt:
        code = _fail("interrupted", 130)
    except Exception as exc:  # an internal error: say so on one line, details on request
        if os.environ.get("EDGEFPTT_DEBUG"):
            traceback.print_exc()
        code = _fail(
            f"internal error: {type(exc).__name__}: {exc} (set EDGEFPTT_DEBUG=1 for a traceback)",
            1,
        )
    if argv is None:
        sys.exit(code)
    return code
