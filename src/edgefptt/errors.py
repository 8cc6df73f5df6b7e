"""Typed errors raised by the library.

The CLI maps :class:`UserInputError` (and subclasses) to exit code 2 with a one-line message,
:class:`TrainingStopped` subclasses to their own messages, and anything else to exit code 1.
"""

from __future__ import annotations


class EdgeFPTTError(Exception):
    """Base class of every error edgefptt raises on purpose."""


class UserInputError(EdgeFPTTError, ValueError):
    """Something the user supplied (option, spec, file) is wrong. The message says how to fix it."""


class ConfigError(UserInputError):
    """An invalid option or spec value, or an invalid combination of them."""


class DataError(UserInputError):
    """A dataset file or directory is missing or malformed."""


class CheckpointError(UserInputError):
    """A checkpoint cannot be read or does not fit the requested run."""


class TrainingStopped(EdgeFPTTError):
    """Training ended early; ``checkpoint`` names the last checkpoint written (or None)."""

    def __init__(self, message: str, checkpoint: str | None = None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


class NonFiniteLossError(TrainingStopped):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(TrainingStopped):
    """The user pressed Ctrl-C; a checkpoint of the current state was written."""
