"""What a run is: its options, the counts it reports, and the versions recorded with it.

Shared by every pipeline (backfill, chain import, snapshot); nothing here computes or writes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from gexhistory.engine.params import Conventions, ModelParams
from gexhistory.errors import GexHistoryError
from gexhistory.version import __version__

if TYPE_CHECKING:
    from gexhistory.sources.base import PriceSource

TABLES = ("gex_history", "gamma_history", "gamma_daily_summary", "regime_signals")


# A real source outranks synthetic data: without --force a real run replaces synthetic sessions,
# and a synthetic run never overwrites real ones.
def is_synthetic_label(label: str) -> bool:
    return label == "synthetic"


@dataclass
class BackfillOptions:
    """The checked options of one backfill (built by ``gx.backfill`` and the CLI; see pipeline/options.py).

    Attributes
    ----------
    symbols : list of str
        Upper-case symbols, in the order they run.
    start, end : datetime.date
        Inclusive window of NYSE sessions.
    source : str
        "auto", "polygon", "synthetic" or "csv".
    seed : int
        Seed of the synthetic market.
    force : bool
        Replace the window's stored rows.
    db : str or None
        Database file or URL (None: DATABASE_URL, DATABASE_PATH, ./gex_copilot.db).
    bars : str or None
        CSV bars file for the csv source.
    rate : float or None
        Provider requests per minute.
    batch_sessions : int
        Sessions per commit.
    conventions : Conventions
        GEX conventions of the sessions computed.
    model : ModelParams
        The modelled chain's parameters.
    jobs : int
        Local worker processes for the symbols (pipeline/parallel.py).
    cluster : str or None
        A Dask scheduler address (tcp://host:8786): the symbols run there as tasks.
    source_factory : callable or None
        A picklable ``(seed, bars, rate) -> PriceSource`` used instead of ``source``.
    """

    symbols: list[str]
    start: dt.date
    end: dt.date
    source: str = "auto"
    seed: int = 42
    force: bool = False
    db: str | None = None
    bars: str | None = None
    rate: float | None = None
    batch_sessions: int = 250
    conventions: Conventions = field(default_factory=Conventions)
    model: ModelParams = field(default_factory=ModelParams)
    jobs: int = 1  # local worker processes for the symbols (pipeline/parallel.py)
    cluster: str | None = None  # a Dask scheduler address (tcp://host:8786): the symbols run there
    # A picklable callable (seed, bars, rate) -> PriceSource used instead of `source` (embedding, tests).
    source_factory: Callable[..., PriceSource] | None = None


@dataclass
class TableCount:
    """Rows of one table a run inserted, skipped (already stored) and replaced."""

    inserted: int = 0
    skipped: int = 0
    replaced: int = 0


@dataclass
class SymbolResult:
    """What a backfill did for one symbol.

    Attributes
    ----------
    symbol : str
    data_source : str
        The label of its rows ("synthetic", "polygon", "csv:<file>").
    sessions_in_window, sessions_written, sessions_skipped : int
        Sessions of the window, those this run wrote, those already stored.
    counts : dict of str to TableCount
        Per table (gex_history, gamma_history, gamma_daily_summary, regime_signals).
    error : str or None
        Why the symbol failed; its committed batches stay.
    notes : list of str
        What the price source reported (fall-backs, plan limits).
    """

    symbol: str
    data_source: str
    sessions_in_window: int = 0
    sessions_written: int = 0
    sessions_skipped: int = 0
    counts: dict[str, TableCount] = field(default_factory=lambda: {t: TableCount() for t in TABLES})
    error: str | None = None  # why this symbol failed; its committed batches stay
    notes: list[str] = field(default_factory=list)  # what the price source had to say (fall-backs, plan limits)

    def add_skipped(self, sessions: int, snapshots: int) -> None:
        """Count sessions left as they were stored, with the snapshots they hold."""
        self.sessions_skipped += sessions
        self.counts["gamma_daily_summary"].skipped += sessions
        self.counts["gex_history"].skipped += snapshots
        self.counts["gamma_history"].skipped += snapshots

    def merge(self, part: "SymbolResult") -> None:
        """Add the counts of a part of this symbol's window computed elsewhere (a worker, a node)."""
        self.sessions_written += part.sessions_written
        self.sessions_skipped += part.sessions_skipped
        for name, c in part.counts.items():
            mine = self.counts[name]
            mine.inserted += c.inserted
            mine.replaced += c.replaced
            mine.skipped += c.skipped
        self.notes = list(dict.fromkeys([*self.notes, *part.notes]))


@dataclass
class BackfillResult:
    """What a backfill did (``gx.backfill``'s return value; ``as_dict()`` is the CLI's ``--json``).

    Attributes
    ----------
    run_id : int
        Its row in backfill_runs.
    start, end : datetime.date
        The window.
    data_source : str
        The price source's label.
    synthetic : bool
        True when the prices are the synthetic market's.
    symbols : list of SymbolResult
        Per symbol, in the order asked.
    elapsed : float
        Seconds.
    notes : list of str
        Banners and the sources' notes.
    outcomes_filled, outcomes_pending : int
        Stored signals whose outcomes this run filled in, and those still waiting for their horizon.
    new_symbols : list of str
        Synthetic runs: the symbols the database had never held before this run.
    """

    run_id: int
    start: dt.date
    end: dt.date
    data_source: str
    synthetic: bool
    symbols: list[SymbolResult]
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)
    outcomes_filled: int = 0  # stored signals whose outcomes became (more) known in this run
    outcomes_pending: int = 0  # signals still waiting for their 10-session horizon
    new_symbols: list[str] = field(default_factory=list)  # synthetic runs: symbols never held before

    @property
    def failed(self) -> list[SymbolResult]:
        """The symbols that failed (each with its ``error``)."""
        return [s for s in self.symbols if s.error]

    def totals(self) -> dict[str, TableCount]:
        """Counts per table summed over the symbols."""
        out = {t: TableCount() for t in TABLES}
        for s in self.symbols:
            for t, c in s.counts.items():
                out[t].inserted += c.inserted
                out[t].skipped += c.skipped
                out[t].replaced += c.replaced
        return out

    def as_dict(self) -> dict:
        """JSON-ready summary (the CLI's ``--json``)."""
        return {
            "run_id": self.run_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "data_source": self.data_source,
            "synthetic": self.synthetic,
            "elapsed_seconds": round(self.elapsed, 3),
            "notes": self.notes,
            "outcomes_filled": self.outcomes_filled,
            "outcomes_pending": self.outcomes_pending,
            "new_symbols": self.new_symbols,
            "symbols": [
                {
                    "symbol": s.symbol,
                    "sessions_in_window": s.sessions_in_window,
                    "sessions_written": s.sessions_written,
                    "sessions_skipped": s.sessions_skipped,
                    "tables": {t: c.__dict__ for t, c in s.counts.items()},
                    "error": s.error,
                }
                for s in self.symbols
            ],
            "totals": {t: c.__dict__ for t, c in self.totals().items()},
            "failed": [s.symbol for s in self.failed],
        }



def versions() -> dict:
    """The versions of what computes and stores the rows, read from their installed metadata (cheaper
    than importing numpy when a rerun has nothing to compute)."""
    from importlib.metadata import version  # lazy: a sixtieth of a second of every command's start-up

    return {"gexhistory": __version__, "numpy": version("numpy"), "sqlalchemy": version("sqlalchemy")}


ProgressFn = Callable[[str, int, int], None]  # (symbol, sessions done, sessions to do)


def failure_message(exc: BaseException) -> str:
    """One line that says why a symbol failed (the first line of the error, type when empty)."""
    orig = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps driver errors in .orig
    text = str(orig).strip()
    line = text.splitlines()[0] if text else type(orig).__name__
    return line if isinstance(exc, GexHistoryError) else f"{type(orig).__name__}: {line}"
