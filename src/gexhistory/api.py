"""The Python API: ``import gexhistory as gx``.

The same operations as the ``gexhistory`` command, as functions that take Python values and give back
result objects and pandas DataFrames::

    import gexhistory as gx

    gx.backfill("SPY", days=365, source="synthetic", db="gex.db")
    gx.history("SPY", db="gex.db").tail()          # one row per snapshot, tz-aware New York index
    gx.daily("SPY", db="gex.db", start="2025-01-01")
    gx.signals(db="gex.db", pattern="FLIP_POINT_CRITICAL")
    gx.export("gex_history", "spy.parquet", symbols="SPY", db="gex.db")

``db`` is a file path or a ``postgresql://`` URL; None means the CLI's default (``DATABASE_URL``, else
``DATABASE_PATH``, else ``./gex_copilot.db``). Dates are ``"YYYY-MM-DD"`` strings or
``datetime.date`` values and windows include both ends. Errors are the classes of
:mod:`gexhistory.errors`: ``gx.BadInput`` (and its ``BadFile``, ``BadDatabase``) for what the caller
gave, ``gx.WorkFailed`` (and ``ProviderError``, ``DatabaseError``, ``WorkerDied``) for failures
during valid work; the command line maps them to exit codes 2 and 1.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pandas as pd
import pyarrow as pa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from gexhistory.engine.params import Conventions
from gexhistory.engine.signals import PATTERNS
from gexhistory.errors import BadInput, WorkFailed
from gexhistory.pipeline import columnar
from gexhistory.pipeline.backfill import run_backfill
from gexhistory.pipeline.export import ExportResult, export_table
from gexhistory.pipeline.import_chains import ImportResult
from gexhistory.pipeline.import_chains import import_chains as run_import
from gexhistory.pipeline.options import backfill_options, parse_date, symbol_list
from gexhistory.pipeline.profile import compute_gex_frame, profile_frame
from gexhistory.pipeline.runs import BackfillResult
from gexhistory.store import frames
from gexhistory.store.db import user_error
from gexhistory.words import plural

Day = str | dt.date | None
Db = str | os.PathLike | None
# Arrow int64/bool become pandas' nullable Int64/boolean, so a NULL stays missing (<NA>) instead of
# turning the column into floats or objects; float64 NULLs are NaN.
_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}


def _path(value: str | os.PathLike | None) -> str | None:
    return os.fspath(value) if value is not None else None


@contextmanager
def _database_errors() -> Iterator[None]:
    """A driver error met during work as gexhistory's own (BadDatabase or DatabaseError), one line."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise user_error(exc) from None


@contextmanager
def _reader(db: Db) -> Iterator[Engine]:
    engine = frames.open_reader(_path(db))
    try:
        with _database_errors():
            yield engine
    finally:
        engine.dispose()


def _window(start: Day, end: Day) -> tuple[dt.date | None, dt.date | None]:
    d_start, d_end = parse_date(start, "start"), parse_date(end, "end")
    if d_start and d_end and d_end < d_start:
        raise BadInput(f"end {d_end} is before start {d_start}")
    return d_start, d_end


def _one_symbol(symbol: str) -> str:
    if not isinstance(symbol, str):
        raise BadInput(f"symbol must be a string such as 'SPY', got {symbol!r}")
    names = symbol_list(symbol)
    if len(names) != 1:
        raise BadInput(f"give one symbol, got {', '.join(names)}")
    return names[0]


def _frame(rows: frames.Rows, index: str) -> pd.DataFrame:
    table = columnar.table(rows.columns, rows.rows)
    return table.to_pandas(types_mapper=_PANDAS_TYPES.get, date_as_object=False).set_index(index)


def backfill(symbols: str | Sequence[str] = "SPY", days: int | None = None, *, start: Day = None, end: Day = None,
             source: str = "auto", db: Db = None, force: bool = False, seed: int = 42, jobs: int = 1,
             cluster: str | None = None, bars: str | os.PathLike | None = None, rate: float | None = None, batch_sessions: int = 250,
             conventions: Conventions | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> BackfillResult:
    """Backfill GEX snapshots, gamma snapshots, daily summaries and signals (``gexhistory backfill``).

    Sessions already stored are skipped, so a rerun writes nothing; a crash loses at most one batch and
    the next call completes it.

    Parameters
    ----------
    symbols : str or sequence of str, default "SPY"
        One symbol, a comma-separated string ("SPY,QQQ") or a list.
    days : int, optional
        Calendar days ending at the last completed NYSE session (1-20000). With neither ``days`` nor
        ``start``/``end``: 365.
    start, end : str or datetime.date, optional
        Inclusive window instead of ``days``; ``end`` defaults to the last completed session.
    source : {"auto", "polygon", "synthetic", "csv"}, default "auto"
        "auto" uses Massive/Polygon when ``POLYGON_API_KEY`` or ``MASSIVE_API_KEY`` is set, a CSV file
        when ``bars`` is given, else the labelled synthetic market.
    db : str or path-like, optional
        Database file or ``postgresql://`` URL (default: ``DATABASE_URL``, ``DATABASE_PATH``,
        ``./gex_copilot.db``). Created when missing.
    force : bool, default False
        Replace the window's stored rows (atomically per batch).
    seed : int, default 42
        Seed of the synthetic market.
    jobs : int, default 1
        Symbols computed in parallel local worker processes.
    cluster : str, optional
        A Dask scheduler address (``tcp://host:8786``, default ``DASK_SCHEDULER_ADDRESS``): the symbols
        run as tasks on that cluster, writing to ``db``, which must then be PostgreSQL.
    bars : str or path-like, optional
        CSV bars file for ``source="csv"``.
    rate : float, optional
        Provider requests per minute (default ``MASSIVE_RATE_PER_MIN`` or 5).
    batch_sessions : int, default 250
        Sessions per commit.
    conventions : Conventions, optional
        GEX conventions (r, q, DTE window, ...) for the sessions this call computes; stored sessions
        keep theirs unless ``force=True``.
    progress : callable, optional
        Called as ``progress(symbol, sessions_done, sessions_to_do)`` while the run goes on.

    Returns
    -------
    BackfillResult
        ``run_id``, window, ``data_source``, ``synthetic``, per-symbol counts (``symbols``),
        ``totals()``, ``notes``, ``outcomes_filled``/``outcomes_pending``; ``as_dict()`` is the
        CLI's ``--json``.

    Raises
    ------
    BadInput
        Bad arguments (window, symbols, source, rate), a bad bars file (``BadFile``) or database
        target (``BadDatabase``); nothing was written.
    WorkFailed
        The provider (``ProviderError``) or the database (``DatabaseError``) failed. When several
        symbols ran and some failed, the others' rows are kept and the exception's ``result``
        attribute holds the BackfillResult.
    """
    opts = backfill_options(symbols, days=days, start=start, end=end, source=source, seed=seed, force=force,
                            db=_path(db), bars=_path(bars), rate=rate, jobs=jobs, batch_sessions=batch_sessions,
                            flag="", cluster=cluster, **({"conventions": conventions} if conventions is not None else {}))
    with _database_errors():
        result = run_backfill(opts, progress=progress)
    if result.failed:
        why = "; ".join(f"{s.symbol}: {s.error}" for s in result.failed)
        exc = WorkFailed(f"{len(result.failed)} of {plural(len(result.symbols), 'symbol')} failed ({why}); "
                         "the others' rows are stored")
        exc.result = result
        raise exc
    return result


def import_chains(files: str | os.PathLike | Sequence[str | os.PathLike], db: Db = None, *,
                  oi_file: str | os.PathLike | None = None, volume_as_oi: bool = False,
                  underlying: str | None = None, conventions: Conventions | None = None, jobs: int = 1,
                  cluster: str | None = None) -> ImportResult:
    """Import real option-chain files and recompute the GEX of the sessions they cover (``import-chains``).

    Every file is parsed and checked before anything is written; the chains and the recomputed rows
    are then stored in one transaction. Past 2,000,000 contracts (``GEXHISTORY_IMPORT_HOLD_CONTRACTS``)
    the parsed chains wait packed in a temporary file (``TMPDIR``) instead of memory and are stored a
    batch at a time, in the same transaction and with the same result.

    Parameters
    ----------
    files : str, path-like or sequence of them
        Cboe delayed-quotes downloads, Cboe DataShop, ORATS, OptionsDX or generic long CSV files, plain
        or compressed (format detected from the content).
    db : str or path-like, optional
        Database file or ``postgresql://`` URL (default as for :func:`backfill`).
    oi_file : str or path-like, optional
        OptionsDX only: a chain file to take open interest from.
    volume_as_oi : bool, default False
        OptionsDX only: use volume as an explicitly labelled OI proxy.
    underlying : str, optional
        Underlying of files that do not name it.
    conventions : Conventions, optional
        GEX conventions for the recomputed sessions.
    jobs : int, default 1
        Files read in parallel local worker processes.
    cluster : str, optional
        A Dask scheduler address: the files are read by its workers (which must see the same paths).

    Returns
    -------
    ImportResult
        ``run_id``, per-file summaries (``files``), per-session results (``sessions``), ``totals``
        per table, ``notes``; ``as_dict()`` is the CLI's ``--json``.

    Raises
    ------
    BadInput
        A file that is not a chain or has a malformed row (the message names ``FILE:LINE``), a bad
        database target (``BadDatabase``); nothing was written.
    WorkFailed
        The database failed during the write (``DatabaseError``).
    """
    paths = [os.fspath(files)] if isinstance(files, (str, os.PathLike)) else [os.fspath(f) for f in files]
    with _database_errors():
        return run_import(paths, db=_path(db), oi_file=_path(oi_file), volume_as_oi=volume_as_oi,
                          underlying=underlying, conv=conventions, jobs=jobs, cluster=cluster)


def import_open_interest(symbol: str, days: int | None = None, db: Db = None, *, start: Day = None, end: Day = None,
                         roots: Sequence[str] | None = None, conventions: Conventions | None = None,
                         rate: float | None = None, force: bool = False) -> ImportResult:
    """Real open interest from Massive for past sessions, and their GEX (``import-oi``).

    Each session's chain is every contract of the symbol's roots (SPX: SPX and SPXW) with the open
    interest Massive's ``/options/v1/open-interest`` reports for the end of the session before (the
    figure published that morning), priced on the chain model's implied-vol surface (the endpoint has
    no IV: stored with ``iv_source`` ``m``) at the underlying's real closes; the sessions' rows are
    replaced, labelled ``chain_source`` ``massive_oi+model_iv``. Needs ``POLYGON_API_KEY`` or
    ``MASSIVE_API_KEY`` with options data.

    Parameters
    ----------
    symbol : str
        The underlying, as stored (``SPX``, not ``I:SPX``; its bars are read from ``I:SPX``).
    days : int, optional
        Calendar days ending at the last completed session (default 365); or give ``start``/``end``.
    db : str or path-like, optional
        Database file or ``postgresql://`` URL (default as for :func:`backfill`).
    start, end : str or date, optional
        The window, both inclusive.
    roots : sequence of str, optional
        The OCC roots to read (default: the symbol's listed roots).
    conventions : Conventions, optional
        GEX conventions for the recomputed sessions.
    rate : float, optional
        Requests per minute (default ``MASSIVE_RATE_PER_MIN``, else the free plan's 5).
    force : bool, default False
        Fetch again the sessions imported already (skipped otherwise: a rerun resumes a failed one,
        whose earlier batches of about a month each are stored).

    Returns
    -------
    ImportResult
        As :func:`import_chains`'s; ``notes`` name the sessions Massive had no open interest for.

    Raises
    ------
    BadInput
        No API key, a bad window, symbol or roots; nothing was written.
    ProviderError
        Massive refused (a plan without the data), failed, or answered for another day or root than asked:
        the month being fetched is not written, the months before it are (a rerun resumes).
    """
    from gexhistory.pipeline.import_oi import import_open_interest as run_oi  # lazy: httpx, for this call only
    from gexhistory.pipeline.options import resolve_window

    d_start, d_end = resolve_window(days, start, end, flag="")
    with _database_errors():
        return run_oi(_one_symbol(symbol), d_start, d_end, db=_path(db), roots=tuple(roots) if roots else None,
                      conv=conventions, rate=rate, force=force)


def symbols(db: Db = None) -> list[str]:
    """The symbols the database holds sessions of.

    Parameters
    ----------
    db : str or path-like, optional
        Database file or ``postgresql://`` URL (default as for :func:`backfill`).

    Returns
    -------
    list of str
        Sorted symbols with at least one daily summary.

    Raises
    ------
    BadDatabase
        No database at ``db``, or not a gexhistory database.
    """
    with _reader(db) as engine:
        return frames.stored_symbols(engine)


def history(symbol: str, db: Db = None, start: Day = None, end: Day = None) -> pd.DataFrame:
    """Every stored snapshot of one symbol: the gex_history and gamma_history columns, one row each.

    Parameters
    ----------
    symbol : str
        e.g. "SPY" (case-insensitive).
    db : str or path-like, optional
        Database file or ``postgresql://`` URL (default as for :func:`backfill`).
    start, end : str or datetime.date, optional
        First and last session date, both included (default: everything stored).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``timestamp`` (tz-aware America/New_York, ascending), one row per snapshot:
        gex_history's ``symbol, net_gex, flip_point, call_wall, put_wall, spot_price, mm_state,
        regime, call_gex, put_gex, gex_unit, flip_found, data_source, chain_source, run_id`` and
        gamma_history's ``date, time_of_day, implied_volatility, put_call_ratio,
        distance_to_flip_pct, zero_dte_gamma, gamma_expiring_this_week, gamma_expiring_next_week,
        max_pain`` (joined on symbol and timestamp; the values both tables hold are identical and
        appear once). Floats are float64 with NaN for NULL (a flip_point without a zero crossing
        within +-20%), ``run_id`` is Int64, ``flip_found`` boolean, ``date`` datetime64.

    Raises
    ------
    BadDatabase
        No database at ``db`` ("run gexhistory backfill first"), or not a gexhistory database.
    BadInput
        A malformed or unknown symbol (the message names the stored ones), a bad date, end before start.
    """
    sym = _one_symbol(symbol)
    window = _window(start, end)
    with _reader(db) as engine:
        return _frame(frames.history(engine, frames.known_symbol(engine, sym), *window), "timestamp")


def daily(symbol: str, db: Db = None, start: Day = None, end: Day = None) -> pd.DataFrame:
    """One row per stored session of one symbol: the gamma_daily_summary table.

    Parameters
    ----------
    symbol : str
        e.g. "SPY" (case-insensitive).
    db : str or path-like, optional
        Database file or ``postgresql://`` URL (default as for :func:`backfill`).
    start, end : str or datetime.date, optional
        First and last session date, both included (default: everything stored).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``date`` (datetime64, the session date, ascending): open/close/high/low GEX,
        ``gex_change(_pct)``, open/close flip and its change, open/close price and
        ``price_change_pct``, ``avg_iv``, ``snapshots_count`` (Int64), ``price_gex_corr_20d`` (NaN for
        the first 20 sessions), ``data_source``, ``chain_source``, ``run_id``.

    Raises
    ------
    BadDatabase
        No database at ``db``, or not a gexhistory database.
    BadInput
        A malformed or unknown symbol, a bad date, end before start.
    """
    sym = _one_symbol(symbol)
    window = _window(start, end)
    with _reader(db) as engine:
        return _frame(frames.daily(engine, frames.known_symbol(engine, sym), *window), "date")


def signals(symbol: str | None = None, db: Db = None, start: Day = None, end: Day = None,
            pattern: str | None = None) -> pd.DataFrame:
    """Stored psychology-trap signals with their outcomes: the regime_signals table.

    Parameters
    ----------
    symbol : str, optional
        One symbol; None for every symbol.
    db : str or path-like, optional
        Database file or ``postgresql://`` URL (default as for :func:`backfill`).
    start, end : str or datetime.date, optional
        First and last session date, both included.
    pattern : str, optional
        Only signals of this primary pattern, e.g. "FLIP_POINT_CRITICAL" (case-insensitive).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``timestamp`` (tz-aware America/New_York, the close snapshot the signal was computed
        at, ascending; several symbols may share one), with every regime_signals column:
        ``symbol, primary_regime_type, secondary_regime_type, confidence_score, trade_direction,
        spy_price, rsi_*, wall fields, net_gamma, ...`` and the outcomes ``price_change_1d/5d/10d``
        (NaN until known) and ``signal_correct`` (Int64 1/0, <NA> while pending).

    Raises
    ------
    BadDatabase
        No database at ``db``, or not a gexhistory database.
    BadInput
        A malformed or unknown symbol, an unknown pattern (the message lists the thirteen), a bad
        date, end before start.
    """
    sym = _one_symbol(symbol) if symbol is not None else None
    kind = None
    if pattern is not None:
        kind = str(pattern).strip().upper()
        if kind not in PATTERNS:
            raise BadInput(f"unknown pattern {pattern!r}: choose one of {', '.join(PATTERNS)}")
    window = _window(start, end)
    with _reader(db) as engine:
        if sym is not None:
            frames.known_symbol(engine, sym)
        return _frame(frames.signals(engine, sym, *window, kind), "timestamp")


def export(table: str, out: str | os.PathLike, *, symbols: str | Sequence[str] | None = None, start: Day = None,
           end: Day = None, format: str | None = None, db: Db = None, force: bool = False) -> ExportResult:
    """Stream one table's rows to a Parquet or CSV file (``gexhistory export``).

    Rows are read a chunk at a time and written as they come, so the table never sits in memory
    whole. The file appears complete or not at all (written under a temporary name, then renamed).

    Parameters
    ----------
    table : str
        gex_history, gamma_history, gamma_daily_summary, regime_signals, price_bars, option_chains,
        option_chain_contracts or backfill_runs.
    out : str or path-like
        The file to write; its folder must exist.
    symbols : str or sequence of str, optional
        Only these symbols (option tables: underlyings; backfill_runs: runs that list them);
        default every symbol.
    start, end : str or datetime.date, optional
        Inclusive dates of the table's time column (timestamp, date, as_of, or a run's started_at).
    format : {"parquet", "csv"}, optional
        Default: from ``out``'s suffix (.parquet, .pq, .csv).
    db : str or path-like, optional
        Database file or ``postgresql://`` URL (default as for :func:`backfill`).
    force : bool, default False
        Replace ``out`` when it exists.

    Returns
    -------
    ExportResult
        ``path``, ``table``, ``format``, ``rows``, ``columns``, ``bytes``, ``elapsed``.
        Parquet holds every column with its type (timestamps as tz-aware America/New_York,
        dates as date32); CSV holds the stored text of timestamps and dates.

    Raises
    ------
    BadInput
        Unknown table or format, a bad date, an existing ``out`` without ``force``, a missing or
        unwritable folder, a symbol the table holds no rows of; a missing database is ``BadDatabase``.
    WorkFailed
        Writing the file failed (e.g. a full disk); no partial file is left.
    """
    names = symbol_list(symbols) if symbols is not None else None
    d_start, d_end = _window(start, end)
    return export_table(table, out, fmt=format, db=_path(db), symbols=names, start=d_start, end=d_end,
                        force=force, flag="")


def profile(symbol: str, at: str | dt.datetime | None = None, db: Db = None) -> pd.DataFrame:
    """GEX by strike of one stored snapshot, recomputed from the chain its run used.

    Parameters
    ----------
    symbol : str
        e.g. "SPY".
    at : str or datetime, optional
        The snapshot's time (New York); default the latest stored snapshot.
    db : str or path-like, optional
        Database file or ``postgresql://`` URL (default as for :func:`backfill`).

    Returns
    -------
    pandas.DataFrame
        One row per strike: strike, call_gex, put_gex, net_gex and the net GEX of each expiry bucket
        (gex_0dte, gex_this_week, gex_monthly, gex_other); ``df.attrs`` holds the snapshot (spot, net
        GEX, flip, walls, regime, provenance, conventions) and the net GEX curve over hypothetical
        spots. As ``gexhistory.pipeline.profile.profile_frame`` documents.

    Raises
    ------
    BadDatabase
        No database at ``db``.
    BadInput
        An unknown symbol or a time without a stored snapshot.
    """
    with _database_errors():
        return profile_frame(symbol, at=at, db=_path(db))


def compute_gex(chain_df: pd.DataFrame, spot: float, at: str | dt.datetime, conventions: Conventions | None = None,
                *, by_strike: bool = False) -> pd.Series | pd.DataFrame:
    """GEX of a chain the caller holds, by the same engine as the stored history.

    Parameters
    ----------
    chain_df : pandas.DataFrame
        One row per contract: expiration, strike, right ("C"/"P"), open_interest, iv (decimal), and
        optionally the vendor's gamma.
    spot : float
        The underlying's price at ``at``.
    at : str or datetime
        A tz-aware datetime, or "YYYY-MM-DD HH:MM" in New York time.
    conventions : Conventions, optional
        r, q, DTE window and the other GEX conventions (default: the stored rows' own).
    by_strike : bool, default False
        Return the GEX by strike instead of the snapshot's figures.

    Returns
    -------
    pandas.Series or pandas.DataFrame
        The snapshot's figures (net, call and put GEX, flip point, walls, regime, ...), or with
        ``by_strike`` one row per strike with the figures in ``attrs``; as
        ``gexhistory.pipeline.profile.compute_gex_frame`` documents.

    Raises
    ------
    BadInput
        A missing column, a bad value (naming its column and row), a bad spot or time.
    """
    return compute_gex_frame(chain_df, spot, at, conventions, by_strike=by_strike)
