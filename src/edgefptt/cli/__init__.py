"""The `edgefptt` command line: a thin layer over the library (parsing and printing only).

Exit codes: 0 success, 2 bad input (one-line message on stderr), 1 internal error or a run
that stopped on its own (non-finite loss), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer
from typer.exceptions import Abort, Exit, TyperException

from edgefptt.cli import (
    data_cmds,
    deploy_cmds,
    hw_cmds,
    learn_cmds,
    plan_cmds,
    report_cmds,
    speech_cmds,
    train_cmds,
)
from edgefptt.cli.common import stderr
from edgefptt.errors import TrainingInterrupted, TrainingStopped, UserInputError

app = typer.Typer(
    name="edgefptt",
    help="Train RNNs with FPTT for memory-limited edge hardware, and co-design that hardware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
train_cmds.register(app)
plan_cmds.register(app)
hw_cmds.register(app)
deploy_cmds.register(app)
speech_cmds.register(app)
report_cmds.register(app)
data_cmds.register(app)
learn_cmds.register(app)


def _fail(message: str, code: int) -> int:
    stderr.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the exit code."""
    command = typer.main.get_command(app)
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
