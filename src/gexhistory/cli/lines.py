"""One-line summaries in plain text, for `--quiet` runs and scripts: no terminal library is loaded.

A scheduled `backfill --days 7 --quiet` mails its output: one line that still says what was written,
from which source, and what needs a look (synthetic prices, a symbol never held before, failures).
"""

from __future__ import annotations

from gexhistory.words import plural


def backfill_line(result) -> str:
    """`SPY 2025-12-05..2026-12-04 (synthetic): 251 of 251 sessions written, 0 skipped (1,004 snapshots,
    23 signals), 4 outcomes filled, 0.62 s; SYNTHETIC DATA`."""
    names = ",".join(s.symbol for s in result.symbols)
    written = sum(s.sessions_written for s in result.symbols)
    skipped = sum(s.sessions_skipped for s in result.symbols)
    total = sum(s.sessions_in_window for s in result.symbols)
    t = result.totals()
    snaps = t["gex_history"].inserted + t["gex_history"].replaced
    signals = t["regime_signals"].inserted + t["regime_signals"].replaced
    replaced = f", {t['gex_history'].replaced:,} of them replacing stored ones" if t["gex_history"].replaced else ""
    line = (f"{names} {result.start}..{result.end} ({result.data_source}): {written:,} of "
            f"{plural(total, 'session')} written, {skipped:,} skipped ({plural(snaps, 'snapshot')}{replaced}, "
            f"{plural(signals, 'signal')}), {plural(result.outcomes_filled, 'outcome')} filled, {result.elapsed:.2f} s")
    tail = []
    if result.synthetic:
        tail.append("SYNTHETIC DATA")
    if result.new_symbols:
        tail.append(f"new {'symbol' if len(result.new_symbols) == 1 else 'symbols'}: {', '.join(result.new_symbols)}")
    if result.failed:
        tail.append(f"{len(result.failed)} of {plural(len(result.symbols), 'symbol')} failed")
    return "; ".join([line, *tail])
