"""The two kinds of failure a user sees, mapped to exit codes by the CLI."""


class GexHistoryError(Exception):
    """Base class; `exit_code` is what the CLI returns."""

    exit_code = 1


class BadInput(GexHistoryError):
    """The user's arguments, files or environment are wrong; nothing was changed (exit 2)."""

    exit_code = 2


class WorkFailed(GexHistoryError):
    """Something failed while doing valid work, e.g. a provider outage (exit 1)."""

    exit_code = 1
