"""The exceptions gexhistory raises, in two families the CLI maps to exit codes.

`BadInput` (exit 2): what the user gave is wrong (arguments, files, environment, the database
target); nothing was changed. `WorkFailed` (exit 1): something outside failed while doing valid
work (a provider, the database server, a worker process); committed work stays, and a rerun of the
same command completes it. Library callers catch these by family or by the subclass they care for:

    try:
        gx.backfill("SPY", days=365)
    except gx.BadInput as exc:       # fix the arguments
        ...
    except gx.ProviderError as exc:  # retry later
        ...
"""

from __future__ import annotations


class GexHistoryError(Exception):
    """Base class of every gexhistory error; `exit_code` is what the CLI returns for it."""

    exit_code = 1


class BadInput(GexHistoryError):
    """The user's arguments, files or environment are wrong; nothing was changed (exit 2)."""

    exit_code = 2


class BadFile(BadInput):
    """A file the user named (bars, chains, a reference series) is missing, unreadable or malformed.
    The message names the file and, where one is to blame, the line."""


class BadDatabase(BadInput):
    """The database target cannot be used as given: a corrupt, read-only or non-database file, a
    directory, an unsupported URL, an empty target, a URL naming no database, credentials or a
    database name the server refuses. (A server that cannot be reached, or a lock another writer
    holds, is `DatabaseError`: a retry may succeed.)"""


class WorkFailed(GexHistoryError):
    """Something failed while doing valid work, e.g. a provider outage (exit 1)."""

    exit_code = 1


class ProviderError(WorkFailed):
    """The market-data provider failed or refused (network faults after retries, plan limits, an
    unknown ticker, a malformed answer)."""


class DatabaseError(WorkFailed):
    """The database failed during work: an unreachable server, a full disk, a lock never released."""


class WorkerDied(WorkFailed):
    """A worker process or cluster task ended without reporting (killed, out of memory, lost node)."""


class NonFiniteValue(WorkFailed):
    """A value about to be stored is NaN or infinite: refused at the store boundary, so the transaction
    it belonged to writes nothing. Inputs are checked for plausible ranges before any work, so this
    means a computation overflowed: report it (exit 1)."""
