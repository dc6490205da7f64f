"""`gexhistory export` / `gx.export`: every table, both formats, read back and compared with direct SQL
reads on SQLite and PostgreSQL; filters, chunked writing, no half files, one error line for bad input."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import gexhistory as gx
from api_data import CSV_SYMBOL, py
from gexhistory.pipeline import columnar
from gexhistory.pipeline.export import export_table
from gexhistory.store import frames
from helpers import engine_for, rows, run_cli

CHAIN_DAY = dt.date(2025, 6, 2)
EXPIRIES = (dt.date(2025, 6, 6), dt.date(2025, 6, 13), dt.date(2025, 6, 20), dt.date(2025, 7, 18))


@pytest.fixture(scope="module")
def db(stored_db, tmp_path_factory):
    """The stored database plus one imported IWM chain, so the option tables have rows too."""
    url, _ = stored_db
    lines = ["date,underlying,expiration,strike,right,oi,iv"]
    for j, e in enumerate(EXPIRIES):
        for k in range(180, 225, 5):
            lines.append(f"{CHAIN_DAY},IWM,{e},{k},C,{1000 + 40 * k % 300 + j},{0.2 + 0.01 * j}")
            lines.append(f"{CHAIN_DAY},IWM,{e},{k},P,{1500 - 30 * k % 400 + j},{0.23 + 0.01 * j}")
    chain = tmp_path_factory.mktemp("chain") / "iwm_chain.csv"
    chain.write_text("\n".join(lines) + "\n")
    result = gx.import_chains(chain, db=url)
    assert isinstance(result, gx.ImportResult) and result.sessions[0]["date"] == CHAIN_DAY.isoformat()
    return url


def _key_sql(table: str) -> str:
    e = frames.EXPORTABLE[table]
    cols = ", ".join(f'"{c.name}"' for c in e.table.columns)
    order = ", ".join(f'"{k}"' for k in e.order)  # "right" is a keyword in PostgreSQL
    return f"SELECT {cols} FROM {table} ORDER BY {order}"


def _expected(db, table: str) -> list[tuple]:
    """The table's rows by direct SQL, in key order; for option_chain_contracts, the contracts each
    stored chain's Arrow stream holds, opened with pyarrow alone, with the chain's key on every row."""
    if not frames.EXPORTABLE[table].packed:
        return [tuple(py(v) for v in r) for r in rows(db, _key_sql(table))]
    out = []
    for u, a, src, blob in rows(db, "SELECT underlying, as_of, chain_source, contracts FROM option_chain_contracts "
                                    "ORDER BY underlying, as_of, chain_source"):
        for c in ipc.open_stream(pa.py_buffer(bytes(blob))).read_all().to_pylist():
            out.append(tuple(py(v) for v in (u, a, c["expiration"].isoformat(), c["strike"], c["right"], src,
                                              c["open_interest"], c["iv"], c["iv_source"], c["gamma"],
                                              c["expires_at_open"], c["open_interest_at_open"], c["iv_at_open"])))
    return out


def _parquet_rows(path) -> list[tuple]:
    return [tuple(py(v) for v in r.values()) for r in pq.read_table(path).to_pylist()]


def _csv_value(text: str, kind: str):
    if text == "":
        return None
    return {"float": float, "int": int, "bool": lambda t: {"true": 1, "false": 0}[t]}.get(kind, str)(text)


def _csv_rows(path, table: str) -> tuple[list[str], list[tuple]]:
    kinds = [c.kind for c in frames.export_columns(table)]
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, [tuple(_csv_value(t, k) for t, k in zip(r, kinds)) for r in reader]


def _no_empty_text(r: tuple) -> tuple:
    return tuple(None if v == "" else v for v in r)  # CSV writes NULL and '' alike


@pytest.mark.parametrize("table", list(frames.EXPORTABLE))
def test_every_table_round_trips_as_parquet_and_csv(db, tmp_path, table):
    expected = _expected(db, table)
    assert expected, f"the fixture stores no {table} rows"
    names = [c.name for c in frames.export_columns(table)]

    res = gx.export(table, tmp_path / f"{table}.parquet", db=db)
    assert res.rows == len(expected) and res.format == "parquet" and res.columns == names
    assert pq.read_schema(res.path).names == names and _parquet_rows(res.path) == expected
    assert pq.read_schema(res.path) == columnar.schema(frames.export_columns(table))

    res = gx.export(table, str(tmp_path / f"{table}.csv"), db=db)
    header, got = _csv_rows(res.path, table)
    assert header == names and res.rows == len(got) == len(expected)
    assert got == [_no_empty_text(r) for r in expected]


def test_parquet_types_read_back_as_analysts_expect(db, tmp_path):
    gx.export("gex_history", tmp_path / "g.parquet", symbols="SPY", db=db)
    df = pq.read_table(tmp_path / "g.parquet").to_pandas()
    assert str(df["timestamp"].dt.tz) == "America/New_York" and df["net_gex"].dtype == "float64"
    assert df["flip_found"].dtype == "bool" and df["symbol"].unique().tolist() == ["SPY"]
    first = rows(db, "SELECT timestamp, net_gex FROM gex_history WHERE symbol = 'SPY' ORDER BY timestamp LIMIT 1")[0]
    assert df["timestamp"].iloc[0].strftime("%Y-%m-%d %H:%M:%S") == first[0] and df["net_gex"].iloc[0] == first[1]


@pytest.mark.parametrize("table, where", [
    ("gex_history", "symbol IN ('SPY', 'IWM') AND timestamp >= '2025-06-02 00:00:00' AND timestamp <= '2025-06-06 23:59:59'"),
    ("gamma_daily_summary", "symbol IN ('SPY', 'IWM') AND date >= '2025-06-02' AND date <= '2025-06-06'"),
    ("price_bars", "symbol IN ('SPY', 'IWM') AND timestamp >= '2025-06-02 00:00:00' AND timestamp <= '2025-06-06 23:59:59'"),
])
def test_symbol_and_date_filters_match_sql(db, tmp_path, table, where):
    e = frames.EXPORTABLE[table]
    n = rows(db, f"SELECT COUNT(*) FROM {table} WHERE {where}")[0][0]
    assert n > 0
    out = run_cli(["export", "--table", table, "--symbols", "spy,IWM", "--start", "2025-06-02", "--end", "2025-06-06",
                   "--out", "f.csv", "--json", "--db", db], tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["rows"] == n and summary["symbols"] == ["SPY", "IWM"] and summary["format"] == "csv"
    _, got = _csv_rows(tmp_path / "f.csv", table)
    keys = [[c.name for c in e.table.columns].index(k) for k in e.order]
    assert [tuple(r[k] for k in keys) for r in got] == sorted(tuple(r[k] for k in keys) for r in got)


def test_runs_are_exported_for_the_symbols_they_list(db, tmp_path):
    res = gx.export("backfill_runs", tmp_path / "runs.parquet", symbols=["QQQ"], db=db)
    listed = [r for r in rows(db, "SELECT id, symbols FROM backfill_runs") if "QQQ" in r[1].split(",")]
    assert res.rows == len(listed) > 0
    assert sorted(r[0] for r in _parquet_rows(res.path)) == sorted(r[0] for r in listed)


def test_chunks_are_written_one_after_another(db, tmp_path):
    n = rows(db, "SELECT COUNT(*) FROM gamma_history")[0][0]
    whole = export_table("gamma_history", tmp_path / "whole.parquet", db=db)
    chunked = export_table("gamma_history", tmp_path / "chunked.parquet", db=db, chunk_rows=100, row_group_rows=250)
    assert whole.rows == chunked.rows == n
    meta = pq.ParquetFile(chunked.path).metadata  # chunks of 100 rows gathered into row groups of 300
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [300] * (n // 300) + [n % 300]
    assert pq.ParquetFile(whole.path).metadata.num_row_groups == 1
    assert pq.read_table(chunked.path).equals(pq.read_table(whole.path))


# SQLite's cursor steps through the result by nature: only PostgreSQL's cursor is the question here.
@pytest.mark.parametrize("stored_db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_postgres_rows_come_from_a_server_side_cursor(db):
    engine = frames.open_reader(db)
    chunks = frames.stream(engine, frames.export_select("gamma_history", None, None, None), 50)
    try:
        assert len(next(chunks)) == 50
        watcher = engine_for(db)
        with watcher.connect() as conn:
            # this test's database only: other test processes share the server and stream their own exports
            queries = [q for (q,) in conn.exec_driver_sql("SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                                                          "AND datname = current_database()")]
        watcher.dispose()
        fetches = [q.split()[2] for q in queries if q.upper().startswith("FETCH FORWARD ")]
        assert fetches and all(int(n) <= 50 for n in fetches), queries  # a named cursor, read 50 rows at a time
    finally:
        chunks.close()
        engine.dispose()


def test_a_failed_export_leaves_no_file_and_the_old_one_intact(db, tmp_path, monkeypatch):
    out = tmp_path / "keep.parquet"
    out.write_bytes(b"an earlier export")
    real = columnar.batch
    calls = {"n": 0}

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if Ctrl-C came in the middle
        return real(*args)

    monkeypatch.setattr(columnar, "batch", failing)
    with pytest.raises(KeyboardInterrupt):
        export_table("gex_history", out, db=db, force=True, chunk_rows=100)
    assert out.read_bytes() == b"an earlier export" and sorted(p.name for p in tmp_path.iterdir()) == ["keep.parquet"]
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        export_table("gex_history", tmp_path / "new.csv", db=db, chunk_rows=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.parquet"]


def test_an_empty_selection_is_a_typed_empty_file(db, tmp_path):
    res = gx.export("regime_signals", tmp_path / "none.parquet", start="2030-01-01", db=db)
    table = pq.read_table(res.path)
    assert res.rows == table.num_rows == 0 and table.schema == columnar.schema(frames.export_columns("regime_signals"))


@pytest.mark.parametrize("args, message", [
    (["--table", "gex", "--out", "x.csv"], "unknown table 'gex': choose one of gex_history, "),
    (["--table", "gex_history", "--out", "x.xlsx"], "cannot tell the format from 'x.xlsx': give --format parquet or csv"),
    (["--table", "gex_history", "--format", "feather", "--out", "x.csv"], "unknown format 'feather'"),
    (["--table", "gex_history", "--out", "exists.csv"], "exists.csv already exists: give --force to replace it"),
    (["--table", "gex_history", "--out", "no/such/x.csv"], "folder "),
    (["--table", "gex_history", "--out", "."], "is a directory"),
    (["--table", "gex_history", "--out", "x.csv", "--symbol", "DIA"], "no stored history for DIA: the database holds IWM, QQQ, SPY"),
    (["--table", "gex_history", "--out", "x.csv", "--symbol", "SPY", "--symbols", "QQQ"], "either --symbol or --symbols"),
    (["--table", "gex_history", "--out", "x.csv", "--start", "2025-13-01"], "--start '2025-13-01' is not a date"),
    (["--table", "gex_history", "--out", "x.csv", "--start", "2025-06-10", "--end", "2025-06-01"],
     "--end 2025-06-01 is before --start 2025-06-10"),
    (["--table", "gex_history", "--out", "x.csv", "--db", "missing.db"], "no database at "),
    (["--table", "gex_history"], "Missing option '--out'"),
])
def test_bad_input_is_one_error_line_and_exit_2(db, tmp_path, args, message):
    (tmp_path / "exists.csv").write_text("mine")
    before = sorted(p.name for p in tmp_path.iterdir())
    out = run_cli(["export", *args] + ([] if "--db" in args else ["--db", db]), tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == before and (tmp_path / "exists.csv").read_text() == "mine"


def test_cli_replaces_with_force_and_says_what_it_wrote(db, tmp_path):
    (tmp_path / "s.parquet").write_text("old")
    out = run_cli(["export", "--table", "gamma_daily_summary", "--symbol", CSV_SYMBOL, "--out", "s.parquet", "--force",
                   "--db", db], tmp_path)
    assert out.returncode == 0, out.stderr
    n = rows(db, "SELECT COUNT(*) FROM gamma_daily_summary WHERE symbol = :s", s=CSV_SYMBOL)[0][0]
    assert out.stdout.startswith(f"exported {n:,} rows of gamma_daily_summary ({CSV_SYMBOL}) to {tmp_path / 's.parquet'}")
    assert pq.read_table(tmp_path / "s.parquet").num_rows == n
