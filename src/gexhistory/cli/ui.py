"""Terminal output: a live progress bar on a TTY, plain lines otherwise, and the final tables."""

from __future__ import annotations

import sys
import time

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table


class Progress:
    """Progress of sessions written per symbol; rich bar on a terminal, one line per batch otherwise."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._bar = None
        self._tasks: dict[str, int] = {}
        self._t0 = time.perf_counter()

    def __enter__(self) -> "Progress":
        if self.enabled and self.tty:

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("sessions"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, symbol: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            if symbol not in self._tasks:
                self._tasks[symbol] = self._bar.add_task(symbol, total=max(total, 1))
                if total == 0:
                    self._bar.update(self._tasks[symbol], completed=1, description=f"{symbol} (up to date)")
            self._bar.update(self._tasks[symbol], completed=done)
        else:
            elapsed = time.perf_counter() - self._t0
            if total == 0:
                print(f"{symbol}: nothing to do, every session in the window is complete", file=sys.stderr)
            elif done > 0:
                print(f"{symbol}: {done}/{total} sessions written ({elapsed:.1f}s)", file=sys.stderr)


def print_summary(result) -> None:
    console = Console()
    for note in result.notes:
        console.print(f"[bold yellow]{note}[/]")
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
        console.print(f"nothing to do: all {total} sessions in the window were already complete (0 rows written)")
    console.print(f"{written} of {total} sessions written in {result.elapsed:.2f}s")
    console.print(f"signal outcomes updated: {result.outcomes_filled} "
                  f"({result.outcomes_pending} still wait for their 10-session horizon)")
    for s in result.failed:
        console.print(f"[bold red]{s.symbol} FAILED[/] ({s.sessions_written} sessions written before): {s.error}")


def print_failures(result) -> None:
    """One stderr line per failed symbol, then one `error:` line: the run's exit code is 1."""
    for s in result.failed:
        print(f"{s.symbol}: FAILED after {s.sessions_written} sessions written: {s.error}", file=sys.stderr)
    ok = len(result.symbols) - len(result.failed)
    names = ", ".join(s.symbol for s in result.failed)
    print(f"error: {len(result.failed)} of {len(result.symbols)} symbols failed ({names}); "
          f"the other {ok} completed and their rows are kept", file=sys.stderr)


def print_status(statuses) -> None:
    console = Console()
    if not statuses:
        console.print("the database is empty: run `gexhistory backfill --days 365` to fill it")
        return
    table = Table(title="gexhistory status")
    for col in ("symbol", "table", "rows", "first", "last", "sources"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for st in statuses:
        for t in st.tables:
            table.add_row(st.symbol, t.table, f"{t.rows:,}", t.first or "-", t.last or "-", ", ".join(t.sources) or "-")
    console.print(table)
    for st in statuses:
        gaps = f"{len(st.gaps)} missing sessions" + (f" (first {st.gaps[0]})" if st.gaps else "")
        short = f"{len(st.short_sessions)} sessions with fewer than 4 snapshots"
        console.print(f"{st.symbol}: {gaps}; {short}; {st.pending_outcomes} signals with pending outcomes")
        if st.signals_by_pattern:
            mix = ", ".join(f"{k} {v}" for k, v in sorted(st.signals_by_pattern.items(), key=lambda kv: -kv[1]))
            console.print(f"{st.symbol} signals: {sum(st.signals_by_pattern.values())} ({mix}); "
                          f"{st.unscored_signals} not yet scored (5-session move unknown)")


def print_validation(result: dict) -> None:
    """The validate metrics: held out beside in sample, then per calendar year, then the cross-validation."""

    def fmt(v, digits=3):
        return "n/a" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))

    ins = result["in_sample"]
    ignored = f"; ignored columns: {', '.join(result['ignored_columns'])}" if result["ignored_columns"] else ""
    click.echo(f"reference {result['reference']} (close: {result['close_column']}{ignored}; modelled as "
               f"{result['symbol']}); parameters calibrated until {result['calibrated_until']}")
    click.echo(f"held out: {fmt(result['held_out'])}; in sample: {fmt(ins['span'])} "
               f"(after {result['warmup_sessions']} warm-up sessions)")
    click.echo(f"{'metric':<40}{'held out':>10}{'in sample':>11}")
    for key, label in (("n", "n (sessions)"), ("spearman", "Spearman rank correlation"),
                       ("sign_agreement", "sign agreement"), ("negative_precision", "negative-GEX precision"),
                       ("negative_recall", "negative-GEX recall"),
                       ("level_ratio", "level: median |model| / median |ref|"),
                       ("baseline_drawdown_60d_spearman", "baseline: 60-day drawdown Spearman")):
        click.echo(f"{label:<40}{fmt(result[key]):>10}{fmt(ins[key]):>11}")
    click.echo("\nper calendar year (in sample: the parameters were fitted on it; held out: after "
               f"{result['calibrated_until']}):")
    _year_table(result["by_year"], fmt)
    cv = result["cross_validation"]
    if cv:
        click.echo(f"\ncross-validation: {cv['method']}")
        _year_table(cv["by_year"], fmt)
        _year_table([{**f, "year": f["held_out_years"], "part": "fold"} for f in cv["folds"]], fmt, "years")
        pooled = cv["pooled"]
        click.echo(f"pooled out of fold: n={pooled['n']} Spearman {fmt(pooled['spearman'])}, sign agreement "
                   f"{fmt(pooled['sign_agreement'])}, negative precision/recall "
                   f"{fmt(pooled['negative_precision'], 2)}/{fmt(pooled['negative_recall'], 2)}; mean of the years' "
                   f"Spearmans {fmt(cv['mean_year_spearman'])}; 60-day drawdown baseline "
                   f"{fmt(pooled['baseline_drawdown_60d_spearman'])}")
    for note in result["notes"]:
        click.echo(f"note: {note}")


def _year_table(rows: list[dict], fmt, first: str = "year") -> None:
    click.echo(f"{first:<10}{'part':<12}{'n':>5}{'Spearman':>10}{'sign':>7}{'neg prec':>10}{'neg recall':>12}"
               f"{'level':>7}{'baseline':>10}")
    for r in rows:
        click.echo(f"{r['year']:<10}{r['part'].replace('_', ' '):<12}{r['n']:>5}{fmt(r['spearman']):>10}"
                   f"{fmt(r['sign_agreement']):>7}{fmt(r['negative_precision'], 2):>10}"
                   f"{fmt(r['negative_recall'], 2):>12}{fmt(r['level_ratio'], 2):>7}"
                   f"{fmt(r['baseline_drawdown_60d_spearman']):>10}")


def print_chain_import(result) -> None:
    """What an import-chains run read and wrote, one line per file and per session."""
    for f in result.files:
        print(f"{f['file']}: {f['format']}, {f['chains']} chain(s), {f['contracts']} contracts, "
              f"{','.join(f['underlyings'])} {f['first_date']}..{f['last_date']}, chain_source={f['chain_source']}")
        for note in f["notes"]:
            print(f"  note: {note}")
    for s in result.sessions:
        flip = f"{s['flip_point']:.2f}" if s["flip_point"] is not None else "none"
        print(f"  {s['symbol']} {s['date']}: {s['snapshots']} snapshot(s), spot from {s['spot_source']}, "
              f"net GEX {s['net_gex']:,.0f} ({s['regime']}), flip {flip}")
    t = result.totals
    print("rows: " + ", ".join(f"{name} +{c['inserted']} ~{c['replaced']} replaced" for name, c in t.items()))
    for note in result.notes:
        print(f"note: {note}")
