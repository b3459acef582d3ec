"""Error kinds. Each one says who can fix it: the operator, the input, or time."""

from __future__ import annotations


class ChuteError(Exception):
    """Base for errors chute reports as one clear line (never a traceback)."""


class UsageError(ChuteError):
    """Bad command line, configuration or environment: exit code 2."""


class InputError(ChuteError):
    """The file itself is bad; retrying will not help. Leads to quarantine.

    ``line`` is the 1-based line in the file, ``column`` the column name, when known.
    """

    def __init__(self, message: str, *, line: int | None = None, column: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class TargetError(ChuteError):
    """ClickHouse refused or could not be reached. Retryable; never a reason to quarantine.

    ``unreachable`` marks connection-level failures (refused, reset, timeout), for which
    the engine waits for the server instead of burning attempts.
    """

    def __init__(self, message: str, *, unreachable: bool = False, code: int | None = None) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        self.code = code


class HoldError(ChuteError):
    """The file needs an operator's decision (schema drift, changed content)."""


class FileChanged(ChuteError):
    """The file changed while it was read: settle it again."""
