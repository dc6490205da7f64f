"""An import past its budget of held contracts (GEXHISTORY_IMPORT_HOLD_CONTRACTS) keeps the chains it
has parsed in a temporary file and writes a batch at a time (pipeline/chain_spill.py): it must store
exactly what the same import held in memory stores, keep "a bad file changes nothing", and refuse a bad
budget in one line."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import contract_rows, rows, run_cli

DATA = Path(__file__).parent / "data"
SPILL_ALL = {"GEXHISTORY_IMPORT_HOLD_CONTRACTS": "0"}
SESSION_TABLES = ("gex_history", "gamma_history", "gamma_daily_summary")
UNDERLYINGS = ["AAA", "BBB", "CCC", "DDD", "EEE"]
EXPIRIES = ["2025-06-06", "2025-06-13", "2025-06-20", "2025-07-18"]


def _market_file(path: Path, day: str, shift: float) -> str:
    """A small market-wide file: five underlyings, a few hundred contracts each, values varying by day."""
    lines = ["date,underlying,expiration,strike,right,oi,iv,spot"]
    for u, base in zip(UNDERLYINGS, (50.0, 120.0, 300.0, 75.0, 610.0)):
        spot = base * (1 + shift)
        for j, e in enumerate(EXPIRIES):
            for i in range(-12, 13):
                k = round(base * (1 + 0.02 * i), 2)
                iv = round(0.2 + 0.1 * abs(i) / 12 + 0.01 * j, 4)
                call_oi = round(3000 * math.exp(-((i - 3) / 5) ** 2)) + 7 * (i % 4)
                put_oi = round(4000 * math.exp(-((i + 4) / 6) ** 2)) + 5 * (i % 3)
                lines.append(f"{day},{u},{e},{k},C,{call_oi},{iv},{spot}")
                lines.append(f"{day},{u},{e},{k},P,{put_oi},{round(iv + 0.02, 4)},{spot}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _files(tmp_path: Path) -> list[str]:
    """Three market files, the DataShop sample with SPX's AM and PM roots side by side, and a quotedata
    chain split over two files (united before it may be spilled)."""
    out = [_market_file(tmp_path / f"market_{d}.csv", f"2025-06-0{d}", 0.01 * d) for d in (2, 3, 4)]
    for name in ("chains/cboe_datashop_34.csv", "quotedata/spx_quotedata_near.csv", "quotedata/spx_quotedata_far.csv"):
        out.append(str(shutil.copy(DATA / name, tmp_path / Path(name).name)))
    return out


def _stored(db: str) -> dict:
    """Everything an import stores, minus run ids and import times; contracts as a user exports them."""
    from gexhistory.store.schema import metadata

    out = {}
    for table in SESSION_TABLES:
        cols = [c.name for c in metadata.tables[table].columns if c.name not in ("id", "run_id", "created_at")]
        out[table] = rows(db, f"SELECT {', '.join(cols)} FROM {table} ORDER BY {', '.join(cols[:3])}")
    out["option_chains"] = rows(db, "SELECT underlying, as_of, chain_source, format, file, file_spot, file_spot_kind, "
                                    "contracts, notes FROM option_chains ORDER BY underlying, as_of, chain_source")
    out["contracts"] = contract_rows(db, "SELECT * FROM option_chain_contracts ORDER BY 1, 2, 3, 4, 5, 6, 7")
    return out


def _import(files, db, tmp_path, env=None, extra=()):
    res = run_cli(["import-chains", *files, "--db", db, "--json", *extra], tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_a_spilled_import_stores_what_an_import_in_memory_stores(db_url, tmp_path):
    files = _files(tmp_path)
    held_db = str(tmp_path / "held.db")
    held = _import(files, held_db, tmp_path)
    assert len(held["sessions"]) == 3 * len(UNDERLYINGS) + 2  # the market files, SPY of DataShop's, SPX united
    assert any("one chain from 2 files" in n for f in held["files"] for n in f["notes"])

    spilled = _import(files, db_url, tmp_path, env=SPILL_ALL)
    for key in ("files", "sessions", "totals"):
        assert spilled[key] == held[key], key
    expected = _stored(held_db)
    assert expected["contracts"] and _stored(db_url) == expected

    # Spilled over what is stored: every session replaced, nothing else changed; read by worker processes too.
    again = _import(files, db_url, tmp_path, env=SPILL_ALL, extra=("--jobs", "2"))
    assert again["totals"]["gex_history"] == {"inserted": 0, "replaced": held["totals"]["gex_history"]["inserted"]}
    assert again["sessions"] == held["sessions"]
    assert _stored(db_url) == expected


def test_a_spill_that_begins_mid_import_stores_the_same(tmp_path):
    """A budget of one market file: the first is held, the second spills both, the third is spilled as read."""
    files = _files(tmp_path)[:3]
    held_db, spilled_db = str(tmp_path / "held.db"), str(tmp_path / "spilled.db")
    held = _import(files, held_db, tmp_path)
    one_file = sum(1 for _ in open(files[0])) - 1
    spilled = _import(files, spilled_db, tmp_path, env={"GEXHISTORY_IMPORT_HOLD_CONTRACTS": str(one_file)})
    assert spilled["sessions"] == held["sessions"] and spilled["totals"] == held["totals"]
    assert _stored(spilled_db) == _stored(held_db)


def test_a_bad_file_after_the_spill_changes_nothing(db_url, tmp_path):
    files = _files(tmp_path)[:2]
    _import(files[:1], db_url, tmp_path)
    before = _stored(db_url)
    bad = tmp_path / "bad.csv"
    bad.write_text("date,underlying,expiration,strike,right,oi,iv,spot\n"
                   "2025-06-05,AAA,2025-06-13,50,C,10,0.2,50\n2025-06-05,AAA,2025-06-13,55,X,10,0.2,50\n")
    res = run_cli(["import-chains", *files, str(bad), "--db", db_url], tmp_path, env=SPILL_ALL)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"error: {bad}:3: right 'X' is not C or P"]
    assert _stored(db_url) == before
    assert rows(db_url, "SELECT COUNT(*) FROM backfill_runs WHERE command = 'import-chains'")[0][0] == 1


@pytest.mark.parametrize("value", ["-1", "lots", "2.5"])
def test_a_bad_budget_is_one_line_and_nothing_is_read(tmp_path, value):
    path = _market_file(tmp_path / "m.csv", "2025-06-02", 0.0)
    res = run_cli(["import-chains", path, "--db", str(tmp_path / "g.db")], tmp_path,
                  env={"GEXHISTORY_IMPORT_HOLD_CONTRACTS": value})
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"error: GEXHISTORY_IMPORT_HOLD_CONTRACTS must be a whole number of contracts (0 or more), got {value!r}"]
    assert not (tmp_path / "g.db").exists()


def test_the_budget_takes_separators(tmp_path):
    path = _market_file(tmp_path / "m.csv", "2025-06-02", 0.0)
    out = _import([path], str(tmp_path / "g.db"), tmp_path, env={"GEXHISTORY_IMPORT_HOLD_CONTRACTS": "2,000,000"})
    assert len(out["sessions"]) == len(UNDERLYINGS)
    assert dt.date.fromisoformat(out["sessions"][0]["date"]) == dt.date(2025, 6, 2)


def test_a_full_disk_while_spilling_is_one_line_and_nothing_is_written(tmp_path, monkeypatch):
    """The temporary file cannot grow (ENOSPC): bad input naming the folder, before the database is opened."""
    import errno
    import tempfile

    from gexhistory.errors import BadInput
    from gexhistory.pipeline.import_chains import import_chains

    class Full:
        def seek(self, *_):
            return 0

        def write(self, _):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            pass

    monkeypatch.setattr(tempfile, "TemporaryFile", lambda **_: Full())
    monkeypatch.setenv("GEXHISTORY_IMPORT_HOLD_CONTRACTS", "0")
    db = tmp_path / "g.db"
    with pytest.raises(BadInput) as err:
        import_chains(_files(tmp_path)[:2], db=str(db))
    assert str(err.value) == (f"could not keep the parsed chains in a temporary file in {tempfile.gettempdir()} "
                              "(No space left on device): free space there, or point TMPDIR elsewhere")
    assert not db.exists()


@given(st.lists(st.integers(min_value=1, max_value=2_000_000), max_size=1500))
@settings(max_examples=200, deadline=None)
def test_spilled_batches_cover_every_chain_once_within_both_budgets(sizes):
    """A spilled import is loaded back in batches: every chain once, in order; at most COMPUTE_BATCH chains
    and BATCH_CONTRACTS contracts a batch, unless one chain alone is larger."""
    from gexhistory.pipeline.chain_store import BATCH_CONTRACTS, COMPUTE_BATCH, _batches

    spans = _batches(sizes)
    assert [i for lo, hi in spans for i in range(lo, hi)] == list(range(len(sizes)))
    for lo, hi in spans:
        assert 0 < hi - lo <= COMPUTE_BATCH
        assert hi - lo == 1 or sum(sizes[lo:hi]) <= BATCH_CONTRACTS
