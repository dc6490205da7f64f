"""A long synthetic window computed in several processes gives the rows one process gives.

compute_in_parts cuts the sessions into contiguous parts, computes the first in this process and the others
in forked workers, each warming up on its own context; engine chunks and threads cut the work again. None of
that may change a value: the rows must be equal to the last bit, whatever the cut.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest

from gexhistory import compute, parts
from gexhistory.calendar import sessions_between
from gexhistory.engine.chain_model import ModelParams
from gexhistory.engine.exposure import Conventions
from gexhistory.sources.synthetic import SyntheticMarket

TODO = sessions_between(dt.date(2023, 3, 1), dt.date(2023, 9, 29))


def _rows(bundles) -> list:
    out = []
    for b in bundles:
        b.pop("snapshots", None)
        for r in b["regime_signals"]:
            r.pop("created_at")  # the moment of computation, not a computed value
        out.append(b)
    return out


@pytest.fixture(scope="module")
def one_process():
    return _rows(compute.compute_sessions(SyntheticMarket(5), "QQQ", TODO, Conventions(), ModelParams(), threads=1))


@pytest.mark.parametrize("processes,threads", [(2, 1), (3, 2)])
def test_parts_equal_one_process(one_process, monkeypatch, processes, threads):
    monkeypatch.setattr(parts, "MIN_PART_SESSIONS", 40)
    monkeypatch.setenv("GEXHISTORY_PROCESSES", str(processes))
    monkeypatch.setenv("GEXHISTORY_ENGINE_THREADS", str(threads))
    got = _rows(parts.compute_in_parts(SyntheticMarket(5), "QQQ", TODO, Conventions(), ModelParams()))
    assert len(got) == len(one_process) == len(TODO)
    assert got == one_process
    assert sum(len(b["regime_signals"]) for b in got) > 0


def test_a_window_with_gaps_is_split_the_same(monkeypatch):
    todo = [s for k, s in enumerate(TODO) if k % 7 != 3]  # sessions already stored are not recomputed
    want = _rows(compute.compute_sessions(SyntheticMarket(5), "QQQ", todo, Conventions(), ModelParams(), threads=2))
    monkeypatch.setattr(parts, "MIN_PART_SESSIONS", 30)
    monkeypatch.setenv("GEXHISTORY_PROCESSES", "2")
    assert _rows(parts.compute_in_parts(SyntheticMarket(5), "QQQ", todo, Conventions(), ModelParams())) == want


def test_real_sources_and_several_jobs_stay_in_one_process(monkeypatch):
    calls = []
    monkeypatch.setattr(parts, "MIN_PART_SESSIONS", 10)
    monkeypatch.setattr(parts, "compute_sessions", lambda *a, **k: calls.append(a) or iter(()))
    list(parts.compute_in_parts(SyntheticMarket(5), "QQQ", TODO, Conventions(), ModelParams(), jobs=2))

    class Real(SyntheticMarket):
        is_synthetic = False

    list(parts.compute_in_parts(Real(5), "QQQ", TODO, Conventions(), ModelParams()))
    assert [len(a[2]) for a in calls] == [len(TODO), len(TODO)]  # one call each: the whole window, here


def test_a_session_rows_do_not_depend_on_the_gaps_of_the_window(one_process):
    # Sessions already stored are not recomputed, but the ones around them read the same bars (minute
    # RSI, close GEX history): the rows of every session computed are those of the full window.
    keep = [k for k in range(len(TODO)) if k % 5 != 2]
    got = _rows(compute.compute_sessions(SyntheticMarket(5), "QQQ", [TODO[k] for k in keep], Conventions(),
                                         ModelParams(), threads=1))
    assert got == [one_process[k] for k in keep]


def test_an_error_in_a_worker_part_is_raised_here(monkeypatch):
    from gexhistory.errors import WorkFailed

    class Failing(SyntheticMarket):
        def minute_bars(self, symbol, sessions):
            if sessions[-1].date > TODO[60].date:  # only the later part asks for these
                raise WorkFailed("synthetic: no minutes this late (test)")
            return super().minute_bars(symbol, sessions)

    monkeypatch.setattr(parts, "MIN_PART_SESSIONS", 40)
    monkeypatch.setenv("GEXHISTORY_PROCESSES", "2")
    got = []
    with pytest.raises(WorkFailed, match="no minutes this late"):
        for b in parts.compute_in_parts(Failing(5), "QQQ", TODO[:100], Conventions(), ModelParams()):
            got.append(b)
    assert len(got) == round(100 * parts.FIRST_SHARE)  # this process's part was delivered in full first


def test_a_worker_that_dies_is_a_failure_not_a_short_window(monkeypatch):
    from gexhistory.errors import WorkFailed

    def die(send, *args):
        os._exit(9)  # killed mid-part, without a word

    monkeypatch.setattr(parts, "_worker", die)
    monkeypatch.setattr(parts, "MIN_PART_SESSIONS", 40)
    monkeypatch.setenv("GEXHISTORY_PROCESSES", "2")
    with pytest.raises(WorkFailed, match="ended unexpectedly"):
        list(parts.compute_in_parts(SyntheticMarket(5), "QQQ", TODO[:100], Conventions(), ModelParams()))
