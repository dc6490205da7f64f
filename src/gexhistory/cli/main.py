"""Argument parsing and printing only: every command is a thin call into a library function."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager

import click

from gexhistory.calendar import last_completed_session
from gexhistory.config import database_url, load_dotenv_file, parse_symbols, redact_url
from gexhistory.errors import BadInput, GexHistoryError
from gexhistory.pipeline.options import backfill_options, parse_date
from gexhistory.runtime import Terminated, configure_process
from gexhistory.words import plural


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)




class _Group(click.Group):
    def main(self, *args, **kwargs):  # one clear line and exit 2 for every usage error
        configure_process()
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort as exc:  # click turns Ctrl-C into Abort; the shell's convention is 130
            if isinstance(exc.__context__, KeyboardInterrupt):
                _interrupted(exc.__context__)
            _fail("aborted", 1)
        except click.UsageError as exc:
            _fail(exc.format_message().replace("\n", " "), 2)
        except click.ClickException as exc:
            _fail(exc.format_message().replace("\n", " "), exc.exit_code)
        except GexHistoryError as exc:
            _fail(str(exc), exc.exit_code)
        except Exception as exc:  # noqa: BLE001
            argv = kwargs.get("args") if kwargs.get("args") is not None else (args[0] if args else None)
            _fail_unexpected(exc, list(sys.argv[1:] if argv is None else argv))
        except KeyboardInterrupt as exc:
            _interrupted(exc)
        if isinstance(rv, int) and rv:
            sys.exit(rv)


def _interrupted(exc: KeyboardInterrupt) -> None:
    """Ctrl-C exits 130, SIGTERM 143: the shell's conventions (128 + the signal's number)."""
    if isinstance(exc, Terminated):
        _fail("terminated", 143)
    _fail("interrupted", 130)


def _fail_unexpected(exc: Exception, argv: list[str]) -> None:
    """Database and OS errors met during work: one line, no traceback. Anything else is a bug: one line
    naming it and a log file holding its traceback (cli/crash.py), exit 1."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    psycopg = sys.modules.get("psycopg")
    if (sa_exc is not None and isinstance(exc, sa_exc.SQLAlchemyError)) or (
            psycopg is not None and isinstance(exc, psycopg.Error)):
        from gexhistory.store.db import user_error  # lazy: SQLAlchemy is loaded already if it failed

        err = user_error(exc)
        _fail(str(err), err.exit_code)
    if isinstance(exc, OSError):
        _fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), 1)
    from gexhistory.cli.crash import internal_error_line  # lazy: only a bug reaches here

    _fail(internal_error_line(exc, argv), 1)


db_option = click.option("--db", default=None, metavar="URL-or-path",
                         help="Database: file path or postgresql:// URL (default: DATABASE_URL, DATABASE_PATH, ./gex_copilot.db).")


@click.group(cls=_Group)
@click.version_option(package_name="gexhistory")
def main() -> None:
    """gexhistory: years of gamma-exposure (GEX) history on day one."""
    load_dotenv_file()


@main.command()
@db_option
def init(db: str | None) -> None:
    """Create or migrate the schema (idempotent)."""
    from gexhistory.store.db import init_schema, open_engine  # lazy: only this command loads it

    created = init_schema(open_engine(db))
    what = ", ".join(created) if created else "nothing to do, schema is current"
    click.echo(f"initialised {redact_url(database_url(db))}: {what}")


@main.command()
@click.option("--days", type=int, default=None,
              help="Calendar days back from the last completed session (default: 365, when --start is not given).")
@click.option("--start", default=None, metavar="YYYY-MM-DD", help="First date (inclusive).")
@click.option("--end", default=None, metavar="YYYY-MM-DD", help="Last date (inclusive; default: last completed session).")
@click.option("--symbol", "symbol", default=None, help="One symbol (default SPY).")
@click.option("--symbols", "symbols", default=None, help="Comma-separated symbols, e.g. SPY,QQQ.")
@click.option("--source", default="auto", help="auto | polygon | synthetic | csv (default auto: polygon when a key is set).")
@click.option("--bars", default=None, metavar="FILE", help="CSV bars file for --source csv.")
@click.option("--rate", type=float, default=None, help="Massive/Polygon requests per minute, pages and retries included (default: MASSIVE_RATE_PER_MIN or 5).")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the synthetic market.")
@click.option("--force", is_flag=True, help="Replace the window's rows (atomically per batch).")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--quiet", is_flag=True, help="No progress or banner: one summary line (errors still on stderr).")
@click.option("--jobs", type=int, default=1, show_default=True, help="Symbols processed in parallel worker processes.")
@click.option("--cluster", default=None, metavar="tcp://HOST:8786", envvar="DASK_SCHEDULER_ADDRESS", show_envvar=True,
              help="Run the symbols as tasks on this Dask scheduler (needs PostgreSQL and gexhistory[cluster]).")
@click.option("--batch-sessions", type=click.IntRange(1, 100_000), default=250, show_default=True,
              envvar="GEXHISTORY_BATCH_SESSIONS", show_envvar=True,
              help="Sessions per commit: a crash loses at most one batch of work, never part of a session.")
@db_option
def backfill(days, start, end, symbol, symbols, source, bars, rate, seed, force, as_json, quiet, jobs, cluster, db,
             batch_sessions) -> int:
    """Backfill GEX snapshots, gamma snapshots, daily summaries and signals.

    Without --days or --start, the window is the last 365 calendar days up to the last completed
    session (about 251 sessions). With no API key the prices are the synthetic market's: a SYNTHETIC
    DATA banner says so before the work, and a symbol the database has never held is named.
    """
    from gexhistory.pipeline.backfill import run_backfill  # lazy: only this command loads it

    if symbol is not None and symbols is not None:
        raise BadInput("give either --symbol or --symbols, not both")
    opts = backfill_options(symbols if symbols is not None else symbol if symbol is not None else "SPY",
                            days=days, start=start, end=end, source=source, seed=seed, force=force, db=db,
                            bars=bars, rate=rate, jobs=jobs, cluster=cluster, batch_sessions=batch_sessions)
    if quiet or as_json:  # nothing to draw: the terminal code (ui, rich) is not even imported
        result = run_backfill(opts)
        if quiet and not as_json:
            from gexhistory.cli.lines import backfill_line  # lazy: only this command loads it

            click.echo(backfill_line(result))
    else:
        from gexhistory.cli.ui import Progress, print_summary  # lazy: only this command loads it

        announced: list[str] = []
        with Progress(idle="nothing to do, every session in the window is complete") as progress:
            def notice(text: str) -> None:
                announced.append(text)
                progress.note(text)

            result = run_backfill(opts, progress=progress.update, notice=notice)
        print_summary(result, tuple(announced))
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    if result.failed:  # the others' work is kept; say which failed and why, even when quiet
        from gexhistory.cli.ui import print_failures  # lazy: only this command loads it

        print_failures(result)
        return 1
    return 0


@main.command()
@click.option("--symbol", default=None, help="Only this symbol (or comma-separated symbols).")
@click.option("--check", is_flag=True, help="Health check: only the problems, one line each (the kinds in the README's "
              "health-check table), exit 1 if any.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with --check: the problems).")
@db_option
def status(symbol: str | None, check: bool, as_json: bool, db: str | None) -> int:
    """Per symbol and table: counts, first/last date, sources, pending outcomes, and the problems found.

    `status` and `status --check` read the same checks: --check prints only the problems and exits 1
    when there is one (a symbol asked for that has no rows is one).
    """
    from gexhistory.store import status as st  # lazy: only this command loads it
    from gexhistory.store.db import open_engine  # lazy: only this command loads it

    engine = open_engine(db, must_exist=True, write=False)
    if not st.has_tables(engine):
        raise BadInput("the database has no gexhistory tables: run `gexhistory init` or a backfill first")
    names = parse_symbols(symbol) if symbol else st.symbols(engine)
    last = last_completed_session().date
    if check:
        return _status_check(engine, names, last, as_json)
    if as_json:
        click.echo(json.dumps({"symbols": [st.symbol_status(engine, s, last).as_dict() for s in names]}, indent=2))
        return 0
    from gexhistory.cli.ui import print_status  # lazy: only this command loads it

    print_status([st.symbol_status(engine, s, last) for s in names])
    return 0


def _status_check(engine, names: list[str], last, as_json: bool = False) -> int:
    from gexhistory.store import status as st  # lazy: only this command loads it

    problems = [p for s in names for p in st.check_symbol(engine, s, last)]
    if as_json:
        click.echo(json.dumps({"ok": not problems, "symbols": names, "problems": [vars(p) for p in problems]},
                              indent=2))
        return 1 if problems else 0
    for p in problems:
        click.echo(p.line())
    if problems:
        click.echo(f"{plural(len(problems), 'problem')} found in {plural(len(names), 'symbol')}", err=True)
        return 1
    click.echo(f"ok: no problems found in {plural(len(names), 'symbol')}" if names else "ok: the database is empty")
    return 0


@main.command()
@click.option("--project-dir", default=None, metavar="DIR", help="Folder the jobs run in (its .env and database; default: here).")
@click.option("--python", "python", default=None, metavar="PATH", help="Python that has gexhistory installed (default: this one).")
@click.option("--symbols", default=None, help="Comma-separated symbols for every job (default: those stored in the "
              "jobs' database).")
@click.option("--db", default=None, metavar="URL-or-path", help="Database for every job (default: the project's "
              ".env DATABASE_URL/DATABASE_PATH, else DIR/gex_copilot.db); a password belongs in .env, not here.")
def schedule(project_dir: str | None, python: str | None, symbols: str | None, db: str | None) -> None:
    """Print crontab lines and systemd units for the daily/weekly refreshes and intraday snapshots.

    The jobs refresh the symbols stored in their database, and take the snapshots from Massive when
    they will have an API key, else from Cboe's delayed quotes (no key); comment lines say which.
    """
    from gexhistory.pipeline.schedule import render  # lazy: only this command loads it

    click.echo(render(project_dir, python, ",".join(parse_symbols(symbols)) if symbols else None, db), nl=False)


@main.command()
@click.option("--reference", required=True, metavar="FILE",
              help="CSV with date, a close column and gex: SqueezeMetrics' DIX.csv as published (close: price) or "
                   "date,spx_close,gex; other columns are ignored.")
@click.option("--calibrate-until", "calibrate_until", default=None, metavar="YYYY-MM-DD",
              help="Last date the model's parameters were fitted on (default: the one recorded in chain_model.py).")
@click.option("--stored", is_flag=True,
              help="Score the database's stored close GEX of --symbol instead (imported chains, import-oi, backfills).")
@click.option("--symbol", default="SPX", show_default=True, help="With --stored: the stored symbol to score.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@db_option
def validate(reference: str, calibrate_until: str | None, stored: bool, symbol: str, as_json: bool,
             db: str | None) -> None:
    """Compare modelled GEX with a published GEX series: held out, in sample, per calendar year, and
    cross-validated (each year scored by parameters fitted without it). With --stored, compare the
    GEX the database holds for --symbol instead, beside the modelled chain's on the same sessions.

    The reference is a CSV with columns date, a close column and gex, such as the DIX.csv that
    SqueezeMetrics publishes (docs/validate.md says where to download it and how to read the output).
    """
    from gexhistory.pipeline.validate import validate as run_validation  # lazy: only this command loads it
    from gexhistory.sources.reference import read_reference  # lazy: only this command loads it

    until = parse_date(calibrate_until, "--calibrate-until")
    if stored and until is not None:
        raise BadInput("--calibrate-until applies to the modelled chain, not to --stored")
    if not stored and (db is not None or symbol.upper() != "SPX"):
        raise BadInput("--db and --symbol apply to --stored: without it, validate models SPX over the file's prices")
    ref = read_reference(reference)
    if stored:
        from gexhistory.cli.ui import print_stored_validation  # lazy: as below
        from gexhistory.pipeline.validate_stored import validate_stored

        with _job_progress(("session", "sessions"), "modelled", enabled=not as_json) as progress:
            result = validate_stored(ref, symbol.strip().upper(), db, progress=progress)
        if as_json:
            click.echo(json.dumps(result, indent=2))
        else:
            print_stored_validation(result)
        return
    folds = {"cross-validation": ("fold", "folds")}
    with _job_progress(("session", "sessions"), "modelled", enabled=not as_json, units=folds) as progress:
        result = run_validation(ref, until, progress=progress)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        from gexhistory.cli.ui import print_validation  # lazy: rich, only for a terminal's tables

        print_validation(result)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="TCP port.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Server processes (default: one per core).")
@db_option
def serve(host: str, port: int, workers: int | None, db: str | None) -> None:
    """Serve the read-only pages (/gex/history, /gamma, /psychology/performance, /probability) and API."""
    from gexhistory.web.server import serve as run_server  # lazy: only this command loads it

    run_server(db, host=host, port=port, workers=workers)


@main.command("import-chains")
@click.argument("files", nargs=-1, required=True, metavar="FILES...")
@click.option("--oi-file", default=None, metavar="FILE", help="OptionsDX only: take open interest from this chain file.")
@click.option("--volume-as-oi", is_flag=True, help="OptionsDX only: use each contract's volume as a labelled OI proxy.")
@click.option("--underlying", default=None, metavar="SYMBOL",
              help="Underlying of files that do not name it (OptionsDX); overrides a Cboe quotedata file's roots.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--jobs", type=int, default=1, show_default=True, help="Files read in parallel worker processes.")
@click.option("--cluster", default=None, metavar="tcp://HOST:8786", envvar="DASK_SCHEDULER_ADDRESS", show_envvar=True,
              help="Read the files as tasks on this Dask scheduler (its workers must see the same paths).")
@db_option
def import_chains(files, oi_file, volume_as_oi, underlying, as_json, jobs, cluster, db) -> None:
    """Import real option-chain files and recompute the GEX of the sessions they cover.

    Each file's format is found from its content: Cboe delayed-quotes downloads, Cboe DataShop EOD
    summaries, ORATS strikes, OptionsDX EOD files, generic long CSV. A file may be compressed
    (.gz, .bz2, .xz, or a .zip holding it). All files are checked before anything is written;
    past 2,000,000 contracts (GEXHISTORY_IMPORT_HOLD_CONTRACTS) the chains read wait in a
    temporary file (TMPDIR) instead of memory, so a year of files can be one command.
    """
    from gexhistory.pipeline.import_chains import import_chains as run_import  # lazy: only this command loads it

    files_read = {"reading chain files": ("file", "files")}
    with _job_progress(("session", "sessions"), "", enabled=not as_json, units=files_read) as progress:
        result = run_import(list(files), db=db, oi_file=oi_file, volume_as_oi=volume_as_oi, underlying=underlying,
                            jobs=jobs, cluster=cluster, progress=progress)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        from gexhistory.cli.ui import print_chain_import  # lazy: rich, only for a terminal's tables

        print_chain_import(result)


@main.command("import-oi")
@click.option("--symbol", required=True, metavar="SYMBOL", help="Underlying whose options' open interest to read (SPX, SPY, ...).")
@click.option("--days", type=int, default=None, help="Calendar days ending at the last completed session.")
@click.option("--start", default=None, metavar="YYYY-MM-DD", help="First date (inclusive).")
@click.option("--end", default=None, metavar="YYYY-MM-DD", help="Last date (inclusive; default: the last completed session).")
@click.option("--roots", default=None, metavar="ROOT,...", help="OCC roots to read (default: SPX,SPXW for SPX; the symbol otherwise).")
@click.option("--rate", type=float, default=None, help="Requests per minute (default: MASSIVE_RATE_PER_MIN, else 5).")
@click.option("--force", is_flag=True, help="Fetch again the sessions imported already (skipped otherwise).")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@db_option
def import_oi(symbol, days, start, end, roots, rate, force, as_json, db) -> None:
    """Real open interest from Massive for past sessions -> their GEX (implied vols from the model's surface).

    Reads Massive's daily open interest per contract (/options/v1/open-interest) as it stood at the end
    of the session before each one, prices it on the chain model's implied-vol surface and the real
    daily closes, and replaces the sessions' rows, labelled chain_source massive_oi+model_iv. About a
    month is stored at a time; a rerun skips the sessions imported already, so it resumes a failed one.
    """
    from gexhistory.pipeline.import_oi import import_open_interest  # lazy: only this command loads it
    from gexhistory.pipeline.options import resolve_window

    d_start, d_end = resolve_window(days, start, end)
    names = tuple(r for r in roots.split(",")) if roots is not None else None
    with _job_progress(("session", "sessions"), "", enabled=not as_json) as progress:
        result = import_open_interest(symbol, d_start, d_end, db=db, roots=names, rate=rate, force=force,
                                      progress=progress)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        from gexhistory.cli.ui import print_chain_import  # lazy: rich, only for a terminal's tables

        print_chain_import(result)


@main.command()
@click.option("--symbol", "symbol", default=None, help="One symbol (default SPY).")
@click.option("--symbols", "symbols", default=None, help="Comma-separated symbols, e.g. SPY,QQQ.")
@click.option("--source", default="massive", show_default=True,
              help="massive (needs POLYGON_API_KEY/MASSIVE_API_KEY) | cboe (Cboe's delayed quotes, no key).")
@click.option("--anytime", is_flag=True, help="Massive: take the snapshot even outside market hours.")
@click.option("--rate", type=float, default=None, help="Provider requests per minute (default 5).")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
@db_option
def snapshot(symbol, symbols, source, anytime, rate, as_json, quiet, db) -> int:
    """One live GEX snapshot now from a real option chain (for cron): Massive/Polygon's chain snapshot,
    or with --source cboe Cboe's delayed quotes (no key; the snapshot's time is the quotes' own)."""
    if symbol and symbols:
        raise BadInput("give either --symbol or --symbols, not both")
    names = parse_symbols(symbols or symbol or "SPY")
    source = source.strip().lower()
    if source == "cboe":
        from gexhistory.pipeline.cboe_snapshot import run_cboe_snapshot  # lazy: only this source loads it

        done, failed = run_cboe_snapshot(names, db)
    elif source == "massive":
        from gexhistory.pipeline.snapshot import run_snapshot  # lazy: only this command loads it

        done, failed = run_snapshot(names, db, anytime=anytime, rate=rate)
    else:
        raise BadInput(f"unknown snapshot source {source!r}: massive or cboe")
    if as_json:
        click.echo(json.dumps({"snapshots": [r.as_dict() for r in done],
                               "failed": [{"symbol": s, "error": e} for s, e in failed],
                               "market_closed": not done and not failed}, indent=2))
    elif not quiet:
        if not done and not failed:
            click.echo("market closed: no snapshot taken (use --anytime to take one anyway)")
        for r in done:
            g = r.snapshot
            flip = f"{g.flip_point:.2f}" if g.flip_point is not None else "none in range"
            click.echo(f"{r.symbol} {r.timestamp} ET: spot {g.spot:.2f}, net GEX {g.net_gex / 1e9:+.3f}bn "
                       f"({g.regime}), flip {flip}; {r.used:,} of {plural(r.contracts, 'contract')} ({r.chain_source}"
                       + (f", quotes of {r.quotes_at}" if r.quotes_at else "") + ")")
            for note in r.notes:
                click.echo(f"  note: {note}")
    for s, e in failed:
        click.echo(f"{s}: FAILED: {e}", err=True)
    if failed:
        click.echo(f"error: {len(failed)} of {plural(len(names), 'symbol')} failed ({', '.join(s for s, _ in failed)})",
                   err=True)
        return 1
    return 0


@main.command()
@click.option("--table", required=True, help="gex_history, gamma_history, gamma_daily_summary, regime_signals, "
              "price_bars, option_chains, option_chain_contracts or backfill_runs.")
@click.option("--format", "fmt", default=None, help="parquet | csv (default: from --out's suffix).")
@click.option("--out", required=True, metavar="FILE", help="File to write (replaced only with --force).")
@click.option("--symbol", "symbol", default=None, help="One symbol (default: every symbol).")
@click.option("--symbols", "symbols", default=None, help="Comma-separated symbols, e.g. SPY,QQQ.")
@click.option("--start", default=None, metavar="YYYY-MM-DD", help="First date (inclusive).")
@click.option("--end", default=None, metavar="YYYY-MM-DD", help="Last date (inclusive).")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@db_option
def export(table, fmt, out, symbol, symbols, start, end, force, as_json, db) -> None:
    """Stream stored rows of one table to a Parquet or CSV file (written whole or not at all)."""
    from gexhistory.pipeline.export import export_table  # lazy: pyarrow and SQLAlchemy, for this command only

    if symbol is not None and symbols is not None:
        raise BadInput("give either --symbol or --symbols, not both")
    names = parse_symbols(symbols if symbols is not None else symbol) if (symbol or symbols) is not None else None
    with _job_progress(("row", "rows"), "exported", enabled=not as_json) as progress:
        result = export_table(table, out, fmt=fmt, db=db, symbols=names, start=parse_date(start, "--start"),
                              end=parse_date(end, "--end"), force=force, progress=progress)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        which = ", ".join(result.symbols) if result.symbols else "all symbols"
        click.echo(f"exported {plural(result.rows, 'row')} of {result.table} ({which}) to {result.path} "
                   f"({result.format}, {result.bytes:,} bytes) in {result.elapsed:.2f} s")


@contextmanager
def _job_progress(unit: tuple[str, str], verb: str, enabled: bool = True, units: dict | None = None):
    """A long job's progress callback (a rich bar on a terminal, a plain line every second or so
    otherwise), or None when the output must stay machine-readable."""
    if not enabled:
        yield None
        return
    from gexhistory.cli.ui import Progress, progress_seconds  # lazy: rich, only for the commands that draw

    with Progress(unit, verb, every=progress_seconds(), units=units) as progress:
        yield progress.update


def backfill_script_main(argv: list[str] | None = None) -> None:
    """`python backfill_historical_data.py --days 365 [--symbol QQQ] [--force]` from the guide."""
    args = list(sys.argv[1:] if argv is None else argv)
    main(args=["backfill", *args], prog_name="backfill_historical_data.py")


if __name__ == "__main__":  # pragma: no cover
    main()
