"""The errors bench raises for setup problems; per-request failures are counted data, never exceptions."""

from __future__ import annotations


class BenchError(Exception):
    """Base class for every error bench reports to a user."""


class ProfileError(BenchError):
    """A profile (or a command-line override of it) is invalid.

    Carries the file, the dotted field path and the offending value, so the
    message tells the user exactly what to change before any process starts.
    """

    def __init__(
        self, path: str, field: str, message: str, *, line: int | None = None, column: int | None = None, flag: str | None = None
    ):
        self.path = path
        self.field = field
        self.message = message
        self.line = line
        self.column = column
        self.flag = flag  # the command-line flag that set the field, e.g. --rate: the message names it, not the file
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.flag is not None:
            return f"{self.flag}: {self.message}"
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class RunError(BenchError):
    """The run could not start or could not be measured (for example a worker failed to start)."""
