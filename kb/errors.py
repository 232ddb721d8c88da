"""The project's own error types: every failure a user can cause is one of these."""

from __future__ import annotations

from dataclasses import dataclass


class KBError(Exception):
    """A domain error with a message fit to show a user as it is."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input: where it is, which field, and what to do."""

    source: str
    message: str
    field: str | None = None
    row: int | None = None
    severity: str = "error"  # "error": the input is refused; "warning": kept, but reported

    def __str__(self) -> str:
        where = self.source
        if self.row is not None:
            where += f", row {self.row}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class EntryError(KBError):
    """An entry that cannot be read or written; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class NotFound(KBError):
    """No entry with that id."""


class Conflict(KBError):
    """A write that would silently overwrite someone else's change."""
