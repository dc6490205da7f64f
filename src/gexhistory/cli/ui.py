"""Terminal output: a live progress bar on a TTY, plain lines otherwise, and the final tables."""

from __future__ import annotations

import sys
import time

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table

from gexhistory.config import env_float
from gexhistory.words import first_of, plural

PROGRESS_ENV = "GEXHISTORY_PROGRESS_SECONDS"


def progress_seconds(default: float = 1.0) -> float:
    """Seconds between plain progress lines of import-chains, validate and export: PROGRESS_ENV, else
    `default` (0: a line at every step, as a log that wants them all)."""
    return env_float(PROGRESS_ENV, default, 0.0, 86400.0)


class Progress:
    """Progress of a long job, one task per label (a symbol's sessions, an export's rows, a validation's
    sessions): a rich bar per task on a terminal, plain lines on stderr otherwise.

    `unit` is the thing counted, singular and plural (`units` overrides it per label); `verb` what
    happens to it; `idle` what a task with nothing to do says (None: nothing). A plain line comes once `every` seconds
    have passed since the job started or since the task's last line, and the task's last line once it
    had one: a job quicker than `every` prints none, and a backfill (`every=0`) one per batch, which
    tests/test_crash.py waits for before a kill.
    """

    def __init__(self, unit: tuple[str, str] = ("session", "sessions"), verb: str = "written",
                 enabled: bool = True, every: float = 0.0, units: dict[str, tuple[str, str]] | None = None,
                 idle: str | None = None):
        self.unit, self.verb, self.every, self.idle = unit, verb, every, idle
        self._units = units or {}
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._bar = None
        self._tasks: dict[str, int] = {}
        self._printed: dict[str, float] = {}
        self._t0 = time.perf_counter()

    def __enter__(self) -> Progress:
        if self.enabled and self.tty:
            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def note(self, text: str) -> None:
        """A line the user must read before the work goes on (the SYNTHETIC DATA banner, a new symbol)."""
        if self._bar is not None:
            self._bar.console.print(f"[bold yellow]{escape(text)}[/]")
        else:
            print(text, flush=True)

    def units(self, label: str, n: int) -> str:
        one, many = self._units.get(label, self.unit)
        return one if n == 1 else many

    def update(self, label: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            if label not in self._tasks:
                self._tasks[label] = self._bar.add_task(label, total=max(total, 1), unit=self.units(label, total))
            if total == 0:
                self._bar.update(self._tasks[label], completed=1, total=1,
                                 description=f"{label} ({self.idle or 'none'})")
            else:
                self._bar.update(self._tasks[label], completed=done, total=total)
            return
        now = time.perf_counter()
        if total == 0:
            if self.idle and label not in self._printed:
                self._printed[label] = now
                print(f"{label}: {self.idle}", file=sys.stderr, flush=True)
        elif 0 < done and (now - self._printed.get(label, self._t0) >= self.every
                           or (done >= total and label in self._printed)):
            self._printed[label] = now
            what = " ".join(w for w in (self.units(label, total), self.verb) if w)
            print(f"{label}: {done}/{total} {what} ({now - self._t0:.1f}s)", file=sys.stderr, flush=True)


def print_summary(result, announced: tuple[str, ...] = ()) -> None:
    """The backfill's final table and lines; `announced`: notes already shown before the work."""
    console = Console()
    for note in result.notes:
        if note not in announced:
            console.print(f"[bold yellow]{escape(note)}[/]")
    table = Table(title=f"backfill {result.start} .. {result.end}  source={result.data_source}  run #{result.run_id}")
    table.add_column("symbol")
    table.add_column("table")
    for col in ("inserted", "skipped", "replaced"):
        table.add_column(col, justify="right")
    for s in result.symbols:
        for name, c in s.counts.items():
            table.add_row(s.symbol, name, f"{c.inserted:,}", f"{c.skipped:,}", f"{c.replaced:,}")
    console.print(table)
    written = sum(s.sessions_written for s in result.symbols)
    total = sum(s.sessions_in_window for s in result.symbols)
    if written == 0:
        every = "the 1 session" if total == 1 else f"all {plural(total, 'session')}"
        console.print(f"nothing to do: {every} in the window {'was' if total == 1 else 'were'} already complete "
                      f"(0 rows written)")
    loud = " [bold yellow](SYNTHETIC DATA)[/]" if result.synthetic else ""
    console.print(f"{written:,} of {plural(total, 'session')} written in {result.elapsed:.2f}s{loud}")
    pending = result.outcomes_pending
    wait = "still waits for its" if pending == 1 else "still wait for their"
    console.print(f"signal outcomes updated: {result.outcomes_filled:,} ({pending:,} {wait} 10-session horizon)")
    for s in result.failed:
        console.print(f"[bold red]{s.symbol} FAILED[/] ({plural(s.sessions_written, 'session')} written before): "
                      f"{escape(s.error)}")


def print_failures(result) -> None:
    """One stderr line per failed symbol, then one `error:` line: the run's exit code is 1."""
    for s in result.failed:
        print(f"{s.symbol}: FAILED after {plural(s.sessions_written, 'session')} written: {s.error}", file=sys.stderr)
    ok = len(result.symbols) - len(result.failed)
    names = ", ".join(s.symbol for s in result.failed)
    print(f"error: {len(result.failed)} of {plural(len(result.symbols), 'symbol')} failed ({names}); "
          f"the other {ok} completed and their rows are kept", file=sys.stderr)


def print_status(statuses) -> None:
    """The status table, then per symbol the problems `status --check` reports and what is pending."""
    console = Console()
    if not statuses:
        console.print("the database is empty: run `gexhistory backfill --days 365` to fill it")
        return
    table = Table(title="gexhistory status")
    for col in ("symbol", "table", "rows", "real-chain sessions", "first", "last", "sources"):
        table.add_column(col, justify="right" if col in ("rows", "real-chain sessions") else "left")
    for st in statuses:
        for t in st.tables:
            table.add_row(st.symbol, t.table, f"{t.rows:,}", f"{t.real_chain_sessions:,}", t.first or "-",
                          t.last or "-", ", ".join(t.sources) or "-")
    console.print(table)
    for st in statuses:
        if st.problems:
            count = plural(len(st.problems), "problem")
            console.print(f"[bold red]{st.symbol}: {count}[/] (as `status --check` reports):")
            for p in st.problems:
                console.print(f"  {escape(p.kind)}: {escape(p.message)}")
        else:
            console.print(f"{st.symbol}: no problems found")
        real = st.real_chain_sessions
        console.print(f"{st.symbol}: {plural(real, 'session')} with a real option chain" if real else
                      f"{st.symbol}: no session with a real option chain yet (import-chains, snapshot --source cboe)")
        if st.end_of_day_sessions:
            console.print(f"{st.symbol}: {plural(st.end_of_day_sessions, 'session')} from imported end-of-day chains "
                          f"(the close snapshot only, by design)")
        if st.signals_by_pattern:
            mix = ", ".join(f"{k} {v}" for k, v in sorted(st.signals_by_pattern.items(), key=lambda kv: -kv[1]))
            console.print(f"{st.symbol} signals: {sum(st.signals_by_pattern.values()):,} ({mix}); "
                          f"{st.unscored_signals:,} not yet scored (5-session move unknown), "
                          f"{plural(st.pending_outcomes, 'signal')} with pending 10-session outcomes")


def _fmt(v, digits=3) -> str:
    """A metric as the validate tables print it: n/a for none."""
    return "n/a" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def print_validation(result: dict) -> None:
    """The validate metrics: held out beside in sample, then per calendar year, then the cross-validation."""

    ins = result["in_sample"]
    ignored = f"; ignored columns: {', '.join(result['ignored_columns'])}" if result["ignored_columns"] else ""
    click.echo(f"reference {result['reference']} (close: {result['close_column']}{ignored}; modelled as "
               f"{result['symbol']}); parameters calibrated until {result['calibrated_until']}")
    click.echo(f"held out: {_fmt(result['held_out'])}; in sample: {_fmt(ins['span'])} "
               f"(after {result['warmup_sessions']} warm-up sessions)")
    click.echo(f"{'metric':<40}{'held out':>10}{'in sample':>11}")
    for key, label in (("n", "n (sessions)"), ("spearman", "Spearman rank correlation"),
                       ("sign_agreement", "sign agreement"), ("negative_precision", "negative-GEX precision"),
                       ("negative_recall", "negative-GEX recall"),
                       ("level_ratio", "level: median |model| / median |ref|"),
                       ("baseline_drawdown_60d_spearman", "baseline: 60-day drawdown Spearman")):
        click.echo(f"{label:<40}{_fmt(result[key]):>10}{_fmt(ins[key]):>11}")
    click.echo("\nper calendar year (in sample: the parameters were fitted on it; held out: after "
               f"{result['calibrated_until']}):")
    _year_table(result["by_year"])
    cv = result["cross_validation"]
    if cv:
        click.echo(f"\ncross-validation: {cv['method']}")
        _year_table(cv["by_year"])
        _year_table([{**f, "year": f["held_out_years"], "part": "fold"} for f in cv["folds"]], "years")
        pooled = cv["pooled"]
        click.echo(f"pooled out of fold: n={pooled['n']} Spearman {_fmt(pooled['spearman'])}, sign agreement "
                   f"{_fmt(pooled['sign_agreement'])}, negative precision/recall "
                   f"{_fmt(pooled['negative_precision'], 2)}/{_fmt(pooled['negative_recall'], 2)}; mean of the years' "
                   f"Spearmans {_fmt(cv['mean_year_spearman'])}; 60-day drawdown baseline "
                   f"{_fmt(pooled['baseline_drawdown_60d_spearman'])}")
    for note in result["notes"]:
        click.echo(f"note: {note}")


def print_stored_validation(result: dict) -> None:
    """validate --stored: the stored close GEX beside the modelled chain's, pooled, per chain_source, per year."""

    click.echo(f"stored close GEX of {result['symbol']} {result['span']} vs {result['reference']} "
               f"(close: {result['close_column']})")
    # As wide as the longest chain_source label: a file's label (Cboe pieces: both names) is long.
    width = max([26, *(len(c["chain_source"]) + 4 for c in result["by_chain_source"])])
    click.echo(f"{'':<{width}}{'n':>6}{'Spearman':>10}{'sign':>7}{'neg prec':>10}{'neg recall':>12}{'level':>7}")

    def line(label: str, m: dict) -> None:
        click.echo(f"{label:<{width}}{m['n']:>6}{_fmt(m['spearman']):>10}{_fmt(m['sign_agreement']):>7}"
                   f"{_fmt(m['negative_precision'], 2):>10}{_fmt(m['negative_recall'], 2):>12}{_fmt(m['level_ratio'], 2):>7}")

    line("stored", result["stored"])
    line("modelled, same sessions", result["modelled_same_sessions"])
    for c in result["by_chain_source"]:
        line(f"  {c['chain_source']}", c)
    for y in result["by_year"]:
        line(f"{y['year']} stored", y["stored"])
        line(f"{y['year']} modelled", y["modelled_same_sessions"])
    for note in result["notes"]:
        click.echo(f"note: {note}")


def _year_table(rows: list[dict], first: str = "year") -> None:
    click.echo(f"{first:<10}{'part':<12}{'n':>5}{'Spearman':>10}{'sign':>7}{'neg prec':>10}{'neg recall':>12}"
               f"{'level':>7}{'baseline':>10}")
    for r in rows:
        click.echo(f"{r['year']:<10}{r['part'].replace('_', ' '):<12}{r['n']:>5}{_fmt(r['spearman']):>10}"
                   f"{_fmt(r['sign_agreement']):>7}{_fmt(r['negative_precision'], 2):>10}"
                   f"{_fmt(r['negative_recall'], 2):>12}{_fmt(r['level_ratio'], 2):>7}"
                   f"{_fmt(r['baseline_drawdown_60d_spearman']):>10}")


LISTED_UNDERLYINGS = 12  # a market-wide file has thousands: the first ones, then how many more
LISTED_SESSIONS = 40  # session lines printed; --json holds every one


def print_chain_import(result) -> None:
    """What an import-chains run read and wrote, one line per file and per session (up to
    LISTED_SESSIONS of them: a file of a whole market covers thousands)."""
    for f in result.files:
        names = f["underlyings"]
        shown = first_of(names, LISTED_UNDERLYINGS, ",")
        print(f"{f['file']}: {f['format']}, {plural(f['chains'], 'chain')}, {plural(f['contracts'], 'contract')}, "
              f"{shown} {f['first_date']}..{f['last_date']}, chain_source={f['chain_source']}")
        for note in f["notes"]:
            print(f"  note: {note}")
    for s in result.sessions[:LISTED_SESSIONS]:
        flip = f"{s['flip_point']:.2f}" if s["flip_point"] is not None else "none"
        print(f"  {s['symbol']} {s['date']}: {plural(s['snapshots'], 'snapshot')}, spot from {s['spot_source']}, "
              f"net GEX {s['net_gex']:,.0f} ({s['regime']}), flip {flip}")
    if len(result.sessions) > LISTED_SESSIONS:
        print(f"  ... and {plural(len(result.sessions) - LISTED_SESSIONS, 'more session')} (--json lists every one)")
    t = result.totals
    if t:  # none when there was nothing to do
        print("rows: " + ", ".join(f"{name} +{c['inserted']} ~{c['replaced']} replaced" for name, c in t.items()))
    for note in result.notes:
        print(f"note: {note}")
