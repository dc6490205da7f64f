"""Contracts stored one packed row per chain (store/packed.py): what goes in comes out, any Arrow reader
opens it, bad values are refused before anything is written, and a database written with a row per
contract (by an earlier version) is converted by `gexhistory init` without losing a contract."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import text

from gexhistory.errors import NonFiniteValue
from gexhistory.store.packed import CONTRACT_COLUMNS, COMPRESS_FROM, pack_chains, rows_of, unpack, unpack_many
from helpers import contract_rows, engine_for, rows, run_cli


def _columns(expiry, strike, is_call, oi=None, iv=None, gamma=None):
    n = len(strike)
    nan = np.full(n, np.nan)
    return {"expiration": np.array(expiry, dtype="datetime64[D]"), "strike": np.array(strike, dtype=float),
            "is_call": np.array(is_call, dtype=bool),
            "open_interest": np.arange(1.0, n + 1) if oi is None else np.array(oi, dtype=float),
            "iv": np.full(n, 0.2) if iv is None else np.array(iv, dtype=float),
            "iv_source": np.array(["f"] * n), "gamma": nan if gamma is None else np.array(gamma, dtype=float),
            "expires_at_open": np.zeros(n, dtype=bool), "open_interest_at_open": nan, "iv_at_open": nan}


def test_a_chain_comes_back_sorted_and_opens_in_any_arrow_reader():
    cols = _columns(["2025-07-18", "2025-06-20", "2025-06-20", "2025-06-20"], [100, 105, 100, 100],
                    [True, False, False, True], oi=[10, 20, 30, 40], gamma=[np.nan, 0.01, np.nan, 0.02])
    [(n, blob)] = pack_chains(np.zeros(4, dtype=int), cols, 1)
    assert n == 4
    table = ipc.open_stream(pa.py_buffer(blob)).read_all()  # what docs/tables.md tells a user to call
    assert table.column_names == list(CONTRACT_COLUMNS)
    # Sorted by expiration, strike, right (puts first), by hand:
    assert table.column("expiration").to_pylist() == [dt.date(2025, 6, 20)] * 3 + [dt.date(2025, 7, 18)]
    assert table.column("strike").to_pylist() == [100.0, 100.0, 105.0, 100.0]
    assert table.column("right").to_pylist() == ["P", "C", "P", "C"]
    assert table.column("open_interest").to_pylist() == [30.0, 40.0, 20.0, 10.0]
    assert table.column("gamma").to_pylist() == [None, 0.02, 0.01, None]  # NaN (no vendor gamma) is null
    assert rows_of(blob)[1] == ("2025-06-20", 100.0, "C", 40.0, 0.2, "f", 0.02, False, None, None)
    back = unpack(blob)
    assert back["is_call"].tolist() == [False, True, False, True]
    assert np.isnan(back["gamma"][0]) and back["gamma"][1] == 0.02


def test_large_chains_are_compressed_small_ones_are_not():
    big_n, small_n = 40 * COMPRESS_FROM, COMPRESS_FROM - 1
    n = big_n + small_n
    cols = _columns(["2025-06-20"] * n, np.arange(n) * 1.0, np.ones(n, bool))
    chain = np.r_[np.zeros(big_n, int), np.ones(small_n, int)]
    (got_big, big), (got_small, small) = pack_chains(chain, cols, 2)
    assert (got_big, got_small) == (big_n, small_n)
    plain = pa.BufferOutputStream()
    with ipc.new_stream(plain, pa.schema(ipc.open_stream(big).schema)) as writer:
        writer.write_table(ipc.open_stream(big).read_all())
    assert len(big) < len(plain.getvalue()) / 2  # LZ4 on a regular strike grid: less than half the plain stream
    assert ipc.open_stream(pa.py_buffer(big)).read_all().num_rows == big_n
    assert len(small) > small_n * 8 * 3  # plain: at least the strike, OI and IV columns as they are


def test_each_chain_is_the_stream_a_writer_of_its_own_would_write():
    """Chains are packed by one writer and cut apart: each must be byte for byte the stream Arrow's
    writer makes for that chain alone, and an empty chain an empty stream."""
    sizes = [3, 0, COMPRESS_FROM + 7, 1, 2 * COMPRESS_FROM]
    chain = np.repeat(np.arange(len(sizes)), sizes)
    n = chain.size
    cols = _columns(["2025-06-20"] * n, np.arange(n) * 2.5, np.arange(n) % 2 == 0, gamma=np.where(
        np.arange(n) % 3 == 0, np.nan, 0.01))
    packed = pack_chains(chain, cols, len(sizes))
    assert [k for k, _ in packed] == sizes
    for (k, blob), lo in zip(packed, np.r_[0, np.cumsum(sizes)[:-1]]):
        table = ipc.open_stream(pa.py_buffer(blob)).read_all()
        assert table.num_rows == k
        sink = pa.BufferOutputStream()
        options = ipc.IpcWriteOptions(compression="lz4" if k >= COMPRESS_FROM else None, use_threads=False)
        with ipc.new_stream(sink, table.schema, options=options) as writer:
            if k:
                writer.write_table(table)
        assert blob == sink.getvalue().to_pybytes()
        assert table.column("strike").to_pylist() == (np.arange(lo, lo + k) * 2.5).tolist()


@pytest.mark.parametrize("field", ["strike", "open_interest", "iv"])
def test_a_non_finite_required_value_is_refused(field):
    cols = _columns(["2025-06-20"] * 2, [100, 105], [True, True])
    cols[field] = cols[field].copy()
    cols[field][1] = np.nan
    with pytest.raises(NonFiniteValue, match=f"option_chain_contracts.{field}"):
        pack_chains(np.zeros(2, dtype=int), cols, 1)


def test_two_contracts_with_one_key_are_refused():
    cols = _columns(["2025-06-20"] * 2, [100, 100], [True, True])
    with pytest.raises(ValueError, match="two contracts with one key"):
        pack_chains(np.zeros(2, dtype=int), cols, 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(1, 400), st.booleans(),
                          st.floats(0, 1e6, allow_nan=False)), min_size=1, max_size=80,
                unique_by=lambda t: t[:4]))
def test_every_contract_comes_back_in_its_chain(contracts):
    chain = np.array([c[0] for c in contracts])
    expiry = np.datetime64("2025-06-20") + np.array([c[1] for c in contracts])
    cols = _columns(expiry, [c[2] / 4 for c in contracts], [c[3] for c in contracts], oi=[c[4] for c in contracts])
    packed = pack_chains(chain, cols, 4)
    assert [n for n, _ in packed] == np.bincount(chain, minlength=4).tolist()
    for k, (_n, blob) in enumerate(packed):
        want = sorted((str(expiry[i]), cols["strike"][i], "C" if cols["is_call"][i] else "A",
                       cols["open_interest"][i]) for i in np.flatnonzero(chain == k))  # 'A' sorts puts first
        got = [(e, s, "C" if r == "C" else "A", oi) for e, s, r, oi in (r[:4] for r in rows_of(blob))]
        assert got == want  # each chain's own contracts, in key order
        back = unpack(blob)  # the engine's arrays: the same contracts as Arrow's own rows
        assert [(str(e), k, bool(c)) for e, k, c in zip(back["expiration"], back["strike"], back["is_call"])] == [
            (e, k, r == "C") for e, k, r in (r[:3] for r in rows_of(blob))]
    # Many streams read together give each stream's arrays.
    for one, many in zip([unpack(b) for _, b in packed], unpack_many([b for _, b in packed])):
        assert one.keys() == many.keys()
        for name in one:
            np.testing.assert_array_equal(one[name], many[name])
    # Given already in key order (as the importer builds chains), the same streams.
    by_key = sorted(range(len(contracts)), key=lambda i: (chain[i], expiry[i], cols["strike"][i], cols["is_call"][i]))
    again = pack_chains(chain[by_key], {k: v[by_key] for k, v in cols.items()}, 4)
    assert again == packed
    # Chains one after another, each in the given order (only the chains out of order are sorted): the same.
    by_chain = np.argsort(chain, kind="stable")
    assert pack_chains(chain[by_chain], {k: v[by_chain] for k, v in cols.items()}, 4) == packed


# ---- a database written with a row per contract -----------------------------------------------------

_OLD_DDL = """CREATE TABLE option_chain_contracts (
    underlying VARCHAR(16) NOT NULL, as_of VARCHAR(10) NOT NULL, expiration VARCHAR(10) NOT NULL,
    strike FLOAT NOT NULL, "right" VARCHAR(1) NOT NULL, chain_source VARCHAR(64) NOT NULL,
    open_interest FLOAT NOT NULL, iv FLOAT NOT NULL, iv_source VARCHAR(1) NOT NULL, gamma FLOAT,
    expires_at_open BOOLEAN, open_interest_at_open FLOAT, iv_at_open FLOAT,
    PRIMARY KEY (underlying, as_of, expiration, strike, "right", chain_source))"""
_OLD_ROWS = [  # (underlying, as_of, expiration, strike, right, chain_source, oi, iv, iv_source, gamma, at_open, oi_am, iv_am)
    ("SPX", "2025-06-02", "2025-06-20", 5900.0, "C", "cboe_datashop:a.csv", 1000.0, 0.15, "f", None, False, 700.0, 0.16),
    ("SPX", "2025-06-02", "2025-06-20", 5900.0, "P", "cboe_datashop:a.csv", 1200.0, 0.17, "p", None, False, None, None),
    ("SPX", "2025-06-02", "2025-06-06", 5950.0, "C", "cboe_datashop:a.csv", 300.0, 0.12, "f", None, None, None, None),
    ("SPY", "2025-06-02", "2025-06-06", 590.0, "P", "orats:b.csv", 50.0, 0.2, "i", 0.031, False, None, None),
    ("SPY", "2025-06-03", "2025-06-06", 590.0, "C", "orats:b.csv", 60.0, 0.21, "f", 0.029, False, None, None),
]


def _old_database(db_url, other_tables: bool = False) -> None:
    """A database as an earlier version left it: option_chain_contracts with a row per contract."""
    from gexhistory.store.schema import metadata

    eng = engine_for(db_url)
    with eng.begin() as conn:
        if other_tables:
            metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t.name != "option_chain_contracts"])
        conn.execute(text(_OLD_DDL))
        conn.execute(text("INSERT INTO option_chain_contracts VALUES (:u, :a, :e, :k, :r, :s, :oi, :iv, :ivs, :g, "
                          ":ao, :oio, :ivo)"),
                     [dict(zip(("u", "a", "e", "k", "r", "s", "oi", "iv", "ivs", "g", "ao", "oio", "ivo"), r))
                      for r in _OLD_ROWS])
    eng.dispose()


def test_init_converts_a_row_per_contract_table_without_losing_a_contract(db_url, tmp_path):
    _old_database(db_url)
    done = run_cli(["init", "--db", db_url], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "option_chain_contracts (packed, 3 chains moved)" in done.stdout
    assert rows(db_url, "SELECT underlying, as_of, chain_source, contract_count FROM option_chain_contracts "
                        "ORDER BY underlying, as_of") == [("SPX", "2025-06-02", "cboe_datashop:a.csv", 3),
                                                          ("SPY", "2025-06-02", "orats:b.csv", 1),
                                                          ("SPY", "2025-06-03", "orats:b.csv", 1)]
    got = contract_rows(db_url, "SELECT underlying, as_of, expiration, strike, \"right\", chain_source, open_interest, "
                                "iv, iv_source, gamma, expires_at_open, open_interest_at_open, iv_at_open "
                                "FROM option_chain_contracts")
    # A NULL expires_at_open (rows imported before that column) is a PM contract: false.
    want = [r[:10] + (bool(r[10]),) + r[11:] for r in _OLD_ROWS]
    assert sorted(got) == sorted(want)
    again = run_cli(["init", "--db", db_url], tmp_path)  # nothing left to convert
    assert again.returncode == 0, again.stderr
    assert rows(db_url, "SELECT COUNT(*) FROM option_chain_contracts") == [(3,)]


def test_a_read_only_server_reads_an_unconverted_database_as_init_would_leave_it(db_url, tmp_path):
    """`serve` never writes, so it may meet an earlier version's row-per-contract table: a stored chain
    reads the same before and after `init` converts it, in the packed order (puts before calls)."""
    from gexhistory.store.chains import chain_contracts
    from gexhistory.store.readonly import open_readonly

    _old_database(db_url)
    key = ("SPX", dt.date(2025, 6, 2), "cboe_datashop:a.csv")

    def read():
        eng = open_readonly(db_url)
        try:
            with eng.connect() as conn:
                return chain_contracts(conn, *key)
        finally:
            eng.dispose()

    before = read()
    # By hand from _OLD_ROWS: 06-06 5950 C, then 06-20 5900 P and C; a NULL expires_at_open is false.
    assert before["expiration"].astype(str).tolist() == ["2025-06-06", "2025-06-20", "2025-06-20"]
    assert before["strike"].tolist() == [5950.0, 5900.0, 5900.0]
    assert before["is_call"].tolist() == [True, False, True]
    assert before["open_interest"].tolist() == [300.0, 1200.0, 1000.0]
    assert before["iv_source"].tolist() == ["f", "p", "f"]
    assert before["at_open"].tolist() == [False, False, False]
    np.testing.assert_array_equal(before["oi_at_open"], [np.nan, np.nan, 700.0])
    assert run_cli(["init", "--db", db_url], tmp_path).returncode == 0
    after = read()
    assert set(after) == set(before)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)


def test_export_of_an_unconverted_table_says_to_run_init(db_url, tmp_path):
    _old_database(db_url, other_tables=True)
    out = run_cli(["export", "--table", "option_chain_contracts", "--out", str(tmp_path / "c.csv"), "--db", db_url],
                  tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: option_chain_contracts is stored as an earlier gexhistory wrote it (a row per contract): run "
        "`gexhistory init` on this database once to convert it, then export"]
    assert not (tmp_path / "c.csv").exists()


@pytest.mark.postgres
def test_postgresql_stores_the_streams_without_compressing_them_again(pg_database_url, tmp_path):
    """Packed streams are LZ4-compressed already where it pays: PostgreSQL's own pglz on every value
    would only slow imports. A new database gets EXTERNAL storage, an existing one on its next init."""
    def storage():
        return rows(pg_database_url, "SELECT attstorage FROM pg_attribute WHERE attrelid = "
                                     "'option_chain_contracts'::regclass AND attname = 'contracts'")[0][0]

    assert run_cli(["init", "--db", pg_database_url], tmp_path).returncode == 0
    assert storage() == "e"
    eng = engine_for(pg_database_url)
    with eng.begin() as conn:  # as a database made by an earlier version has it
        conn.execute(text("ALTER TABLE option_chain_contracts ALTER COLUMN contracts SET STORAGE EXTENDED"))
    eng.dispose()
    assert storage() == "x"
    again = run_cli(["init", "--db", pg_database_url], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "option_chain_contracts.contracts (storage external)" in again.stdout
    assert storage() == "e"
    third = run_cli(["init", "--db", pg_database_url], tmp_path)  # nothing left to change
    assert "storage" not in third.stdout
