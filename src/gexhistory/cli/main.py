"""Argument parsing and printing only: every command is a thin call into a library function."""

from __future__ import annotations

import datetime as dt
import gc
import json
import sys

import click

from gexhistory.errors import BadInput, GexHistoryError

MAX_DAYS = 20000  # about 55 years: more is a typo, not a request


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _parse_date(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{name} {value!r} is not a date (expected YYYY-MM-DD)") from None


def resolve_window(days: int | None, start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    """--days N (calendar days ending at the last completed session) or --start/--end, inclusive."""
    from gexhistory.calendar import last_completed_session, window_for_days

    if days is not None and start is not None:
        raise BadInput("give either --days or --start/--end, not both")
    last = last_completed_session().date
    if days is not None:
        if days < 1 or days > MAX_DAYS:
            raise BadInput(f"--days must be between 1 and {MAX_DAYS}, got {days}")
        return window_for_days(days)
    d_start = _parse_date(start, "--start")
    d_end = _parse_date(end, "--end") or last
    if d_start is None:
        d_start, _ = window_for_days(365)
    if d_end < d_start:
        raise BadInput(f"--end {d_end} is before --start {d_start}")
    if d_end > last:
        raise BadInput(f"--end {d_end} is after the last completed session {last}")
    return d_start, d_end


# Start-up (click, SQLAlchemy, numpy, the schema) creates objects that live as long as the process.
# With CPython's default gen-0 threshold of 700 the cyclic collector runs ~150 times during a no-op
# run, older generations and one full collection included, to free ~500 objects: ~60 ms of 0.6 s.
# Collections stay on, only rarer (a cold 3650-day run keeps the same peak memory).
GC_THRESHOLDS = (20_000, 20, 20)


class _Group(click.Group):
    def main(self, *args, **kwargs):  # one clear line and exit 2 for every usage error
        gc.set_threshold(*GC_THRESHOLDS)
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort as exc:  # click turns Ctrl-C into Abort; the shell's convention is 130
            if isinstance(exc.__context__, KeyboardInterrupt):
                _fail("interrupted", 130)
            _fail("aborted", 1)
        except click.UsageError as exc:
            _fail(exc.format_message().replace("\n", " "), 2)
        except click.ClickException as exc:
            _fail(exc.format_message().replace("\n", " "), exc.exit_code)
        except GexHistoryError as exc:
            _fail(str(exc), exc.exit_code)
        except Exception as exc:  # noqa: BLE001
            _fail_unexpected(exc)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        if isinstance(rv, int) and rv:
            sys.exit(rv)


def _fail_unexpected(exc: Exception) -> None:
    """Database and OS errors met during work: one line, no traceback; anything else is a bug: re-raise."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.SQLAlchemyError):
        from gexhistory.store.db import user_error

        err = user_error(exc)
        _fail(str(err), err.exit_code)
    if isinstance(exc, OSError):
        _fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), 1)
    raise exc


db_option = click.option("--db", default=None, metavar="URL-or-path",
                         help="Database: file path or postgresql:// URL (default: DATABASE_URL, DATABASE_PATH, ./gex_copilot.db).")


@click.group(cls=_Group)
@click.version_option(package_name="gexhistory")
def main() -> None:
    """gexhistory: years of gamma-exposure (GEX) history on day one."""
    from gexhistory.config import load_dotenv_file

    load_dotenv_file()


@main.command()
@db_option
def init(db: str | None) -> None:
    """Create or migrate the schema (idempotent)."""
    from gexhistory.config import database_url, redact_url
    from gexhistory.store.db import init_schema, open_engine

    created = init_schema(open_engine(db))
    what = ", ".join(created) if created else "nothing to do, schema is current"
    click.echo(f"initialised {redact_url(database_url(db))}: {what}")


@main.command()
@click.option("--days", type=int, default=None, help="Calendar days back from the last completed session.")
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
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--jobs", type=int, default=1, show_default=True, help="Symbols processed in parallel worker processes.")
@click.option("--batch-sessions", type=click.IntRange(1, 100_000), default=250, show_default=True,
              envvar="GEXHISTORY_BATCH_SESSIONS", show_envvar=True,
              help="Sessions per commit: a crash loses at most one batch of work, never part of a session.")
@db_option
def backfill(days, start, end, symbol, symbols, source, bars, rate, seed, force, as_json, quiet, jobs, db,
             batch_sessions) -> int:
    """Backfill GEX snapshots, gamma snapshots, daily summaries and signals."""
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
    from gexhistory.config import parse_symbols

    if symbol is not None and symbols is not None:
        raise BadInput("give either --symbol or --symbols, not both")
    names = parse_symbols(symbols if symbols is not None else symbol if symbol is not None else "SPY")
    if rate is not None and not rate > 0:
        raise BadInput(f"--rate must be a positive number of requests per minute, got {rate}")
    if days is None and start is None and end is None:
        days = 365
    d_start, d_end = resolve_window(days, start, end)
    opts = BackfillOptions(names, d_start, d_end, source=source.lower(), seed=seed, force=force, db=db,
                           bars=bars, rate=rate, jobs=jobs, batch_sessions=batch_sessions)
    if quiet or as_json:  # nothing to draw: the terminal code (ui, rich) is not even imported
        result = run_backfill(opts)
    else:
        from gexhistory.cli.ui import Progress, print_summary

        with Progress() as progress:
            result = run_backfill(opts, progress=progress.update)
        print_summary(result)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    if result.failed:  # the others' work is kept; say which failed and why, even when quiet
        from gexhistory.cli.ui import print_failures

        print_failures(result)
        return 1
    return 0


@main.command()
@click.option("--symbol", default=None, help="Only this symbol.")
@click.option("--check", is_flag=True, help="Look for problems (gaps, short sessions, NULL-heavy columns, "
              "GEX outliers, synthetic rows mixed with real ones): one line each, exit 1 if any.")
@db_option
def status(symbol: str | None, check: bool, db: str | None) -> int:
    """Per symbol and table: counts, first/last date, sources, calendar gaps, pending outcomes."""
    from gexhistory.config import parse_symbols
    from gexhistory.store import status as st
    from gexhistory.store.db import open_engine
    from gexhistory.cli.ui import print_status

    engine = open_engine(db, must_exist=True, write=False)
    from sqlalchemy import inspect

    if "gamma_daily_summary" not in inspect(engine).get_table_names():
        raise BadInput("the database has no gexhistory tables: run `gexhistory init` or a backfill first")
    names = parse_symbols(symbol) if symbol else st.symbols(engine)
    if check:
        return _status_check(engine, names)
    print_status([st.symbol_status(engine, s) for s in names])
    return 0


def _status_check(engine, names: list[str]) -> int:
    from gexhistory.calendar import last_completed_session
    from gexhistory.store import status as st

    last = last_completed_session().date
    problems = [p for s in names for p in st.check_symbol(engine, s, last)]
    for p in problems:
        click.echo(p.line())
    if problems:
        click.echo(f"{len(problems)} problems found in {len(names)} symbols", err=True)
        return 1
    click.echo(f"ok: no problems found in {len(names)} symbols" if names else "ok: the database is empty")
    return 0


@main.command()
@click.option("--project-dir", default=None, metavar="DIR", help="Folder the jobs run in (its .env and database; default: here).")
@click.option("--python", "python", default=None, metavar="PATH", help="Python that has gexhistory installed (default: this one).")
@click.option("--symbols", default=None, help="Comma-separated symbols for every job (default: each command's own).")
def schedule(project_dir: str | None, python: str | None, symbols: str | None) -> None:
    """Print crontab lines and systemd units for the daily/weekly refreshes and intraday snapshots."""
    from gexhistory.pipeline.schedule import render
    from gexhistory.config import parse_symbols

    click.echo(render(project_dir, python, ",".join(parse_symbols(symbols)) if symbols else None), nl=False)


@main.command()
@click.option("--reference", required=True, metavar="FILE", help="CSV with columns date, a close column (e.g. spx_close) and gex.")
@click.option("--calibrate-until", "calibrate_until", default=None, metavar="YYYY-MM-DD",
              help="Last date the model's parameters were fitted on (default: the one recorded in chain_model.py).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def validate(reference: str, calibrate_until: str | None, as_json: bool) -> None:
    """Compare modelled GEX with a reference GEX series (SPEC 4.4) on held-out and in-sample days."""
    from gexhistory.pipeline.validate import validate as run_validation
    from gexhistory.sources.reference import read_reference
    from gexhistory.cli.ui import print_validation

    until = _parse_date(calibrate_until, "--calibrate-until")
    result = run_validation(read_reference(reference), until)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        print_validation(result)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="TCP port.")
@db_option
def serve(host: str, port: int, db: str | None) -> None:
    """Serve the read-only pages (/gex/history, /gamma, /psychology/performance, /probability) and API."""
    from gexhistory.web.server import serve as run_server

    run_server(db, host=host, port=port)


@main.command("import-chains")
@click.argument("files", nargs=-1, required=True, metavar="FILES...")
@click.option("--oi-file", default=None, metavar="FILE", help="OptionsDX only: take open interest from this chain file.")
@click.option("--volume-as-oi", is_flag=True, help="OptionsDX only: use each contract's volume as a labelled OI proxy.")
@click.option("--underlying", default=None, metavar="SYMBOL", help="Underlying of files that do not name it (OptionsDX).")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@db_option
def import_chains(files, oi_file, volume_as_oi, underlying, as_json, db) -> None:
    """Import real option-chain files and recompute the GEX of the sessions they cover."""
    from gexhistory.pipeline.import_chains import import_chains as run_import
    from gexhistory.cli.ui import print_chain_import

    result = run_import(list(files), db=db, oi_file=oi_file, volume_as_oi=volume_as_oi, underlying=underlying)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        print_chain_import(result)


@main.command()
@click.option("--symbol", "symbol", default=None, help="One symbol (default SPY).")
@click.option("--symbols", "symbols", default=None, help="Comma-separated symbols, e.g. SPY,QQQ.")
@click.option("--anytime", is_flag=True, help="Take the snapshot even outside market hours.")
@click.option("--rate", type=float, default=None, help="Provider requests per minute (default 5).")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
@db_option
def snapshot(symbol, symbols, anytime, rate, as_json, quiet, db) -> int:
    """One live GEX snapshot now from the Massive/Polygon option chain snapshot (for cron)."""
    from gexhistory.config import parse_symbols
    from gexhistory.pipeline.snapshot import run_snapshot

    if symbol and symbols:
        raise BadInput("give either --symbol or --symbols, not both")
    names = parse_symbols(symbols or symbol or "SPY")
    done, failed = run_snapshot(names, db, anytime=anytime, rate=rate)
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
                       f"({g.regime}), flip {flip}; {r.used} of {r.contracts} contracts (massive_snapshot)")
            for note in r.notes:
                click.echo(f"  note: {note}")
    for s, e in failed:
        click.echo(f"{s}: FAILED: {e}", err=True)
    if failed:
        click.echo(f"error: {len(failed)} of {len(names)} symbols failed ({', '.join(s for s, _ in failed)})", err=True)
        return 1
    return 0


def backfill_script_main(argv: list[str] | None = None) -> None:
    """`python backfill_historical_data.py --days 365 [--symbol QQQ] [--force]` from the guide."""
    args = list(sys.argv[1:] if argv is None else argv)
    main(args=["backfill", *args], prog_name="backfill_historical_data.py")


if __name__ == "__main__":  # pragma: no cover
    main()
