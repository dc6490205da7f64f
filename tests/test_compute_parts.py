"""A long synthetic window computed and written by several processes holds what one process writes.

backfill cuts the sessions still to do into contiguous parts (backfill.split); this process computes and
writes the first, worker processes of the executor (pipeline/parallel.py) the others, each through its
own connection. None of that may change
a value: the stored content must be equal to the last bit to a one-process run's, on both backends, and
the counts the run reports must add up. Also: the rows of a session never depend on the gaps of the
window (sessions already stored), which is what lets any part start anywhere.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest

from dbcheck import content_digest, session_problems
from gexhistory.pipeline import backfill, compute
from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
from gexhistory.calendar import sessions_between
from gexhistory.engine.chain_model import ModelParams
from gexhistory.engine.exposure import Conventions
from gexhistory.errors import WorkerDied, WorkFailed
from gexhistory.sources.synthetic import SyntheticMarket

START, END = dt.date(2023, 3, 1), dt.date(2023, 9, 29)
TODO = sessions_between(START, END)


def _backfill(db, monkeypatch, processes: int, **kw):
    monkeypatch.setattr(backfill, "MIN_PART_SESSIONS", 40)
    monkeypatch.setenv("GEXHISTORY_PROCESSES", str(processes))
    opts = BackfillOptions(symbols=["QQQ"], start=START, end=END, source="synthetic", seed=5, db=db,
                           batch_sessions=25, **kw)
    return run_backfill(opts)


@pytest.mark.parametrize("processes", [2, 3])
def test_parts_store_what_one_process_stores(db_url, tmp_path, monkeypatch, processes):
    one = str(tmp_path / "one.db")
    single = _backfill(one, monkeypatch, 1)
    split = _backfill(db_url, monkeypatch, processes)
    assert content_digest(db_url) == content_digest(one)
    assert session_problems(db_url) == []
    assert split.totals() == single.totals()
    assert split.symbols[0].sessions_written == len(TODO)
    again = _backfill(db_url, monkeypatch, processes)  # a rerun: nothing to do, nothing written
    assert again.totals()["gex_history"].inserted == 0 and again.symbols[0].sessions_skipped == len(TODO)
    forced = _backfill(db_url, monkeypatch, processes, force=True)  # --force: every part replaces its own
    assert content_digest(db_url) == content_digest(one)
    assert forced.totals()["gex_history"].replaced == 4 * len(TODO)


def _rows(bundles) -> list:
    out = []
    for b in bundles:
        b.pop("snapshots", None)
        for r in b["regime_signals"]:
            r.pop("created_at")  # the moment of computation, not a computed value
        out.append(b)
    return out


def test_a_session_rows_do_not_depend_on_the_gaps_of_the_window():
    # Sessions already stored are not recomputed, but the ones around them read the same bars (minute
    # RSI, close GEX history): the rows of every session computed are those of the full window.
    full = _rows(compute.compute_sessions(SyntheticMarket(5), "QQQ", TODO, Conventions(), ModelParams(), threads=1))
    keep = [k for k in range(len(TODO)) if k % 5 != 2]
    got = _rows(compute.compute_sessions(SyntheticMarket(5), "QQQ", [TODO[k] for k in keep], Conventions(),
                                         ModelParams(), threads=2))
    assert got == [full[k] for k in keep]


def test_real_sources_and_several_jobs_stay_in_one_process(monkeypatch):
    monkeypatch.setattr(backfill, "MIN_PART_SESSIONS", 10)
    monkeypatch.setenv("GEXHISTORY_PROCESSES", "2")

    class Real(SyntheticMarket):
        is_synthetic = False

    assert len(backfill.split(TODO, SyntheticMarket(5), jobs=1)) == 2
    assert backfill.split(TODO, SyntheticMarket(5), jobs=2) == [TODO]
    assert backfill.split(TODO, Real(5), jobs=1) == [TODO]
    assert backfill.split(TODO[:15], SyntheticMarket(5), jobs=1) == [TODO[:15]]


def test_an_error_in_a_worker_part_fails_the_run_and_keeps_whole_sessions(tmp_path, monkeypatch):
    late = TODO[100].date

    def failing_minutes(self, symbol, sessions, _real=SyntheticMarket.minute_bars):
        if sessions[-1].date > late:  # only the later part asks for these
            raise WorkFailed("synthetic: no minutes this late (test)")
        return _real(self, symbol, sessions)

    monkeypatch.setattr(SyntheticMarket, "minute_bars", failing_minutes)
    db = str(tmp_path / "x.db")
    with pytest.raises(WorkFailed, match="no minutes this late"):
        _backfill(db, monkeypatch, 2)
    assert session_problems(db) == []


def _die(*args):
    os._exit(9)  # killed mid-part, without a word


def test_a_worker_that_dies_is_a_failure_not_a_short_window(tmp_path, monkeypatch):
    monkeypatch.setattr(backfill, "backfill_task", _die)
    with pytest.raises(WorkerDied, match="ended unexpectedly"):
        _backfill(str(tmp_path / "x.db"), monkeypatch, 2)


def test_a_worker_that_finishes_first_is_not_waited_for_again(tmp_path, monkeypatch):
    # A small last part is done (and its end read) while this process still writes its own part.
    real = backfill.split
    monkeypatch.setattr(backfill, "split", lambda todo, *a: [todo[:-3], todo[-3:]] if len(real(todo, *a)) > 1 else [todo])
    one = str(tmp_path / "one.db")
    _backfill(one, monkeypatch, 1)
    db = str(tmp_path / "two.db")
    result = _backfill(db, monkeypatch, 2)
    assert result.symbols[0].sessions_written == len(TODO)
    assert content_digest(db) == content_digest(one)
