"""The chain-file reader's fast path (Arrow) against its reference (pandas), and a market-wide file:
whatever Arrow reads must come out as pandas' reading of the same file would, contracts, notes and
error messages alike; many chains in one file must each match an independent computation."""

from __future__ import annotations

import datetime as dt
import gzip
import tempfile
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gexhistory.calendar import ET
from gexhistory.errors import BadInput
from gexhistory.pipeline.chain_prep import read_chain_file
from gexhistory.pipeline.import_chains import import_chains
from gexhistory.sources.chains import reader
from helpers import contract_rows, rows
from test_chain_import import AS_OF, CBOE_26, CBOE_34, EXPIRIES, _net, _price, _t

HEADER = "date,underlying,expiration,strike,right,oi,iv,spot"
GOOD = [("2025-06-02", "SPY", "2025-06-13", "590", "C", "1000", "0.15", "600"),
        ("2025-06-02", "SPY", "2025-06-13", "580", "P", "2500", "0.19", "600"),
        ("2025-06-02", "SPY", "2025-06-20", "620", "C", "1800", "0.14", "600"),
        ("2025-06-02", "QQQ", "2025-06-20", "520", "P", "900", "0.22", "530")]


def _outcome(path: str):
    """What an import learns from the file: its chains' contracts and notes, or the one error line."""
    try:
        return [(c.chain.underlying, c.chain.as_of, c.chain.strike.tolist(), c.chain.is_call.tolist(),
                 c.chain.open_interest.tolist(), c.chain.iv.tolist(), [str(s) for s in c.iv_source], c.notes,
                 c.file_spot) for c in read_chain_file(path)]
    except BadInput as exc:
        return f"error: {exc}"


def _by_pandas(path: str):
    with mock.patch.object(reader, "_read_arrow", lambda *_: None):
        return _outcome(path)


FIELD_EDITS = st.sampled_from(["", " ", "  ", "\t"])
BAD_VALUES = st.sampled_from(["abc", "", "-5", "X", "13/06/2025", "nan", "+7", "1e3", "19", " 42 "])


@st.composite
def chain_files(draw):
    """A small generic chain file written the ways real exports differ: padded or quoted fields,
    CRLF, a byte-order mark, blank lines and comma-only lines, a missing final newline, and now and
    then a malformed value or a row with a field too many or too few."""
    lines = [HEADER]
    for row in draw(st.lists(st.sampled_from(GOOD), min_size=1, max_size=6, unique=True)):
        fields = list(row)
        if draw(st.integers(0, 5)) == 0:
            fields[draw(st.integers(3, 6))] = draw(BAD_VALUES)
        pad = draw(FIELD_EDITS)
        quote = draw(st.booleans())
        fields = [f'"{f}"' if quote else f"{pad}{f}{pad if pad != ' ' else ''}" for f in fields]
        shape = draw(st.integers(0, 12))
        if shape == 0:
            fields = fields[:-1]
        elif shape == 1:
            fields.append("x")
        lines.append(",".join(fields))
        extra = draw(st.integers(0, 8))
        if extra == 0:
            lines.append("")
        elif extra == 1:
            lines.append("," * 7)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    return ("\ufeff" if draw(st.booleans()) else "") + text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chain_files())
def test_arrow_reads_every_file_as_pandas_does(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "chain.csv")
        Path(path).write_bytes(text.encode("utf-8"))
        assert _outcome(path) == _by_pandas(path)


# DataShop rows (34 columns): the reader converts their numbers and codes their symbols and dates itself.
DATASHOP_GOOD = [("SPY", "SPY", "2025-06-13", "590", "C", "1000", "0.15", "12.4", "599.9", "600.1"),
                 ("SPY", "SPY", "2025-06-13", "580", "P", "2500", "0", "3.1", "599.9", "600.1"),
                 ("SPY", "SPY", "2025-06-20", "620", "C", "1800", "0.14", "1.2", "599.9", "600.1"),
                 ("^SPX", "SPXW", "2025-06-20", "5900", "P", "700", "0.2", "41.5", "0", "0"),
                 ("^SPX", "SPXW", "2025-06-20", "5900", "C", "650", "0.17", "98.5", "0", "0")]
DATASHOP_BAD = st.sampled_from(["abc", "", "-5", "nan", "inf", "-inf", "1e3", " 42 ", "0x10", "1,5", "NaN"])


@st.composite
def datashop_files(draw):
    """A small Cboe DataShop file with padded or quoted fields, blanks, stray NaN/inf text, malformed
    values in the columns the reader converts (numbers) or codes (symbols, dates, rights), blank and
    comma-only lines."""
    lines = [CBOE_34]
    for row in draw(st.lists(st.sampled_from(DATASHOP_GOOD), min_size=1, max_size=5, unique=True)):
        und, root, e, k, right, oi, iv, price, ub, ua = row
        fields = _cboe34_line(und, root, e, k, right, oi, iv, float(price), ub, ua).split(",")
        if draw(st.integers(0, 3)) == 0:  # strike, OI, IV, bid, underlying bid, symbol, date, right
            at = draw(st.sampled_from([4, 32, 19, 26, 29, 0, 1, 5]))
            fields[at] = draw(DATASHOP_BAD if at in (4, 32, 19, 26, 29) else st.sampled_from(["", " SPY", "X", "2025-13-01"]))
        pad = draw(st.sampled_from(["", " "]))
        quote = draw(st.booleans())
        fields = [f'"{f}"' if quote else f"{pad}{f}{pad}" for f in fields]
        lines.append(",".join(fields))
        if draw(st.integers(0, 6)) == 0:
            lines.append(draw(st.sampled_from(["", "," * (len(fields) - 1)])))
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datashop_files())
def test_datashop_numbers_and_codes_read_by_arrow_come_out_as_pandas_text_does(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "datashop.csv")
        Path(path).write_text(text)
        assert _outcome(path) == _by_pandas(path)


def test_a_clean_datashop_file_is_read_with_its_numbers_converted_and_a_bad_value_still_named(tmp_path):
    body = [_cboe34_line(*r[:7], float(r[7]), *r[8:]) for r in DATASHOP_GOOD]
    path = tmp_path / "datashop.csv"
    path.write_text("\n".join([CBOE_34, body[0], "", *body[1:]]) + "\n")
    from gexhistory.sources.chains import columns_read

    table = reader.read_table(str(path), keep=columns_read)
    kinds = {name: str(col.type) for name, col in table._cols.items()}
    assert kinds["strike"] == kinds["open_interest"] == "double"
    assert kinds["underlying_symbol"].startswith("dictionary") and kinds["quote_date"].startswith("dictionary")
    assert table.lines.tolist() == [2, 4, 5, 6, 7]
    assert table.distinct("underlying_symbol")[0].tolist() == ["SPY", "^SPX"]
    # A negative OI is a number: read as one, and the message still shows it as the file wrote it.
    path.write_text("\n".join([CBOE_34, body[0], "", body[1].replace(",2500,", ",-25.50,"), *body[2:]]) + "\n")
    assert _outcome(str(path)) == f"error: {path}:4: open_interest '-25.50' must not be negative"


def test_odd_but_valid_files_take_the_fast_path_and_keep_their_line_numbers(tmp_path):
    body = [",".join(r) for r in GOOD]
    variants = {
        "crlf.csv": ("\r\n".join([HEADER, *body]) + "\r\n").encode(),
        "bom.csv": ("\ufeff" + "\n".join([HEADER, *body])).encode(),
        "padded.csv": "\n".join([HEADER, *[",".join(f"  {f}\t" for f in r) for r in GOOD]]).encode(),
        "quoted.csv": "\n".join([HEADER, *[",".join(f'"{f}"' for f in r) for r in GOOD]]).encode(),
        "blank.csv": "\n".join([HEADER, body[0], "", ",,,,,,,", *body[1:]]).encode(),
    }
    for name, data in variants.items():
        (tmp_path / name).write_bytes(data)
    with gzip.open(tmp_path / "chain.csv.gz", "wb") as fh:
        fh.write(variants["crlf.csv"])
    with zipfile.ZipFile(tmp_path / "chain.zip", "w") as zf:
        zf.writestr("chain.csv", variants["crlf.csv"])
    for f in [*variants, "chain.csv.gz", "chain.zip"]:
        path = str(tmp_path / f)
        table = reader._read_arrow(Path(path), path)
        assert table is not None, f
        assert len(table) == 4
        assert table.lines.tolist() == ([2, 5, 6, 7] if f == "blank.csv" else [2, 3, 4, 5])
        assert _outcome(path) == _by_pandas(path)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([HEADER, body[0], "", ",,,,,,,", body[1], body[2].replace(",620,", ",6x0,")]) + "\n")
    assert _outcome(str(bad)) == f"error: {bad}:6: strike '6x0' is not a number"



@pytest.mark.parametrize("at", [0, (1 << 24) - 2, (1 << 24) - 1, 1 << 24, (1 << 24) + 5])
def test_a_quote_after_a_space_is_found_in_a_mapped_file_wherever_it_sits(tmp_path, at):
    """The scan that sends such a file to pandas (a quote after a space or tab): searched in 16 MiB
    pieces of the mapped file, so a pair across two pieces must be found too, as by the stream's scan."""
    size = (1 << 24) + 64
    for pair in (b' "', b'\t"'):
        data = bytearray(b"x" * size)
        data[at:at + 2] = pair
        f = tmp_path / "spaced.csv"
        f.write_bytes(bytes(data))
        with open(f, "rb") as raw:
            assert reader._spaced_quote_mapped(raw) is True
        with open(f, "rb") as raw:
            assert reader._spaced_quote(raw) is True
    data = bytearray(b"x" * size)
    data[at] = ord('"')  # a quote, but after no space: Arrow reads it as pandas does
    f.write_bytes(bytes(data))
    with open(f, "rb") as raw:
        assert reader._spaced_quote_mapped(raw) is False
    f.write_bytes(b"")
    with open(f, "rb") as raw:
        assert reader._spaced_quote_mapped(raw) is False

def _cboe34_line(und, root, e, k, right, oi, iv, price, under_bid, under_ask):
    return (f"{und},{AS_OF},{root},{e},{k},{right},0,0,0,0,5,1,0,1,0,0,0,0,0,{iv},0.5,0.001,0,0,0,10,"
            f"{price * 0.98:.12g},10,{price * 1.02:.12g},{under_bid},{under_ask},0,{oi},")


def test_many_underlyings_in_one_file_each_match_independent_computation(db_url, tmp_path):
    """60 stock chains (more than one engine chunk) with their own spots, some IVs zero (derived from
    the mid), plus an index listed under two PM-settled roots (SPXW and SPXPM, as 2011-2017 files had
    them; an AM-settled SPX contract is another contract) whose spot comes from put-call parity."""
    lines, expected = [], {}
    for u in range(60):
        sym, spot = "S" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[u // 26] + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[u % 26], 50.0 + 10 * u
        contracts = []
        for e in EXPIRIES[:2]:
            for j in range(-2, 3):
                k = spot * (1 + 0.05 * j)
                for right in ("C", "P"):
                    iv = round(0.2 + 0.1 * abs(j) / 2 + 0.002 * u, 6)
                    oi = 100 + 37 * u + 11 * j + (5 if right == "C" else 0)
                    contracts.append((e, k, right, oi, iv))
                    zero_iv = (u + j) % 7 == 0  # Cboe's 0: the IV comes from the mid instead
                    lines.append(_cboe34_line(sym, sym, e, f"{k:.3f}", right, oi, 0 if zero_iv else iv,
                                              _price(spot, k, _t(e), iv, right == "C"), spot - 0.01, spot + 0.01))
        expected[sym] = (spot, contracts)
    index = []
    for e in EXPIRIES[:2]:
        for k in (5900.0, 6000.0, 6100.0):
            for right in ("C", "P"):
                oi = 1000 + int(k) % 700 + (300 if right == "C" else 0)
                index.append((e, k, right, oi, 0.18))
                for root, share in (("SPXPM", 0.4), ("SPXW", 0.6)):  # two PM-settled roots: one contract
                    lines.append(_cboe34_line("^SPX", root, e, k, right, oi * share, 0.18,
                                              _price(6000.0, k, _t(e), 0.18, right == "C"), 0, 0))
    path = tmp_path / "UnderlyingOptionsEODCalcs_2025-06-02.csv"
    path.write_text(CBOE_34 + "\n" + "\n".join(lines) + "\n")
    res = import_chains([str(path)], db=db_url)
    assert len(res.sessions) == 61 and res.files[0]["chains"] == 61
    got = dict(rows(db_url, "SELECT symbol, net_gex FROM gex_history"))
    spots = dict(rows(db_url, "SELECT symbol, spot_price FROM gex_history"))
    for sym, (spot, contracts) in expected.items():
        assert spots[sym] == pytest.approx(spot, abs=1e-9)
        assert got[sym] == pytest.approx(_net(contracts, spot), rel=1e-5), sym
    assert spots["SPX"] == pytest.approx(6000.0, rel=1e-9)
    assert got["SPX"] == pytest.approx(_net(index, spots["SPX"]), rel=1e-6)
    n_stored = contract_rows(db_url, "SELECT COUNT(*) FROM option_chain_contracts")[0][0]
    assert n_stored == sum(len(c) for _, c in expected.values()) + len(index)


def test_roots_merged_without_vendor_gamma_store_no_gamma(db_url, tmp_path):
    """A 26-column file has no gamma: merging two PM-settled roots (SPXW, SPXPM) must not invent one (it
    stored 0 before)."""
    lines = []
    for k in (5900.0, 6000.0, 6100.0):
        for right in ("C", "P"):
            p = _price(6000.0, k, _t(EXPIRIES[2]), 0.2, right == "C")
            for root in ("SPXPM", "SPXW"):
                lines.append(f"^SPX,{AS_OF},{root},{EXPIRIES[2]},{k},{right},0,0,0,0,5,1,0,1,0,0,0,10,"
                             f"{p * 0.99:.12g},10,{p * 1.01:.12g},0,0,0,500,")
    path = tmp_path / "UnderlyingOptionsEODQuotes_2025-06-02.csv"
    path.write_text(CBOE_26 + "\n" + "\n".join(lines) + "\n")
    import_chains([str(path)], db=db_url)
    stored = contract_rows(db_url, "SELECT open_interest, gamma FROM option_chain_contracts")
    assert len(stored) == 6 and {s[0] for s in stored} == {1000.0}
    assert {s[1] for s in stored} == {None}
    assert np.isfinite(rows(db_url, "SELECT net_gex FROM gex_history")[0][0])


PANDAS_PROBE = """import sys
from gexhistory.cli import main
try:
    main(args=sys.argv[1:], prog_name="gexhistory")
finally:
    print("PANDAS", "pandas" in sys.modules, file=sys.stderr)
"""


def test_a_datashop_import_runs_without_loading_pandas(tmp_path):
    """pandas is a sixth of a second of start-up: a DataShop file, the market-wide format, imports without
    it (the reader converts its columns; columnar.py moves them between Arrow and numpy). A file only
    pandas reads right still loads it."""
    from helpers import REPO, run_cli

    probe = tmp_path / "probe.py"
    probe.write_text(PANDAS_PROBE)
    sample = str(REPO / "tests" / "data" / "chains" / "cboe_datashop_34.csv")
    done = run_cli(["import-chains", sample, "--db", "p.db"], tmp_path, script=str(probe))
    assert done.returncode == 0, done.stderr
    assert "SPY 2025-06-02: 1 snapshot" in done.stdout
    assert done.stderr.splitlines()[-1] == "PANDAS False"
    spaced = tmp_path / "spaced.csv"  # a quote after a space: pandas' reader (skipinitialspace) takes the file
    text = Path(sample).read_text().splitlines()
    spaced.write_text("\n".join([text[0], *(line.replace(",SPY,", ', "SPY",', 1) for line in text[1:])]) + "\n")
    done = run_cli(["import-chains", str(spaced), "--db", "p.db"], tmp_path, script=str(probe))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == "PANDAS True"


ROOT_ROWS = [  # (expiration, strike, right, oi, iv, root): 06-20 is a third Friday (SPX's AM monthly)
    ("2025-06-20", "5900", "C", "1000", "0.15", "SPX"), ("2025-06-20", "5900", "C", "700", "0.16", "SPXW"),
    ("2025-06-20", "6000", "P", "400", "0.14", "spx"), ("2025-06-20", "6000", "P", "300", "0.13", "SPXW"),
    ("2025-06-27", "5950", "P", "900", "0.17", "SPXW"), ("2025-06-27", "5950", "P", "100", "0.19", "SPXQ"),
    ("2025-06-27", "6050", "C", "800", "0.12", "SPXW")]


@pytest.mark.parametrize("day", ["2025-06-18", "2025-06-20"])
def test_a_generic_file_with_roots_settles_and_merges_them_as_a_cboe_file_does(tmp_path, day):
    """The generic CSV's optional root column: SPX contracts (AM-settled) stay apart from SPXW's of the same
    date and strike, expire at the open and are gone on their expiration day; SPXW and SPXQ merge. The same
    contracts in a Cboe DataShop file give the same chain."""
    generic = tmp_path / "generic.csv"
    generic.write_text("date,underlying,expiration,strike,right,oi,iv,spot,root\n" + "".join(
        f"{day},SPX,{e},{k},{r},{oi},{iv},5950,{root}\n" for e, k, r, oi, iv, root in ROOT_ROWS))
    datashop = tmp_path / "datashop.csv"
    datashop.write_text(CBOE_34 + "\n" + "".join(
        _cboe34_line("^SPX", root.upper(), e, k, r, oi, iv, 10.0, 5949.9, 5950.1).replace(str(AS_OF), day) + "\n"
        for e, k, r, oi, iv, root in ROOT_ROWS))
    (g,), (d,) = read_chain_file(str(generic)), read_chain_file(str(datashop))
    for a in ("expiry", "expiry_close", "strike", "is_call", "open_interest", "iv"):
        assert np.array_equal(getattr(g.chain, a), getattr(d.chain, a)), a
    open_0620 = dt.datetime(2025, 6, 20, 9, 30, tzinfo=ET).timestamp()
    close_0620 = dt.datetime(2025, 6, 20, 16, 0, tzinfo=ET).timestamp()
    # By hand: SPXQ's 100 puts merge into SPXW's 900 (IV weighted by OI: 0.9 x 0.17 + 0.1 x 0.19).
    merged = (g.chain.expiry == np.datetime64("2025-06-27")) & ~g.chain.is_call
    assert g.chain.open_interest[merged].tolist() == [1000.0]
    assert g.chain.iv[merged][0] == pytest.approx(0.172)
    june_20 = g.chain.expiry == np.datetime64("2025-06-20")
    if day == "2025-06-18":  # both roots' contracts, SPX's ending at the open
        assert sorted(zip(g.chain.open_interest[june_20].tolist(), g.chain.expiry_close[june_20].tolist())) == [
            (300.0, close_0620), (400.0, open_0620), (700.0, close_0620), (1000.0, open_0620)]
    else:  # on their expiration day the AM contracts are gone before any snapshot
        assert sorted(g.chain.open_interest[june_20].tolist()) == [300.0, 700.0]
        assert "2 AM-settled contracts expired at the session's open left out" in g.notes


def test_chains_prepared_on_two_threads_come_out_as_on_one(tmp_path, monkeypatch):
    """A large file is prepared in parts of whole chains on the engine threads: the chains, their IVs
    (file, mid, interpolated), the notes counted over the whole file and the first duplicate's line
    must be what one thread gives."""
    from gexhistory.pipeline import chain_prep

    lines = []
    for u in range(30):
        sym, spot = "T" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[u % 26] + "XY"[u // 26], 40.0 + 7 * u
        roots = (sym, sym + "1") if u % 5 == 0 else (sym,)  # two roots that settle alike: merged
        for e in EXPIRIES[:3]:
            for j in range(-3, 4):
                k = spot * (1 + 0.04 * j)
                for right in ("C", "P"):
                    iv = round(0.25 + 0.05 * abs(j), 4)
                    for root in roots:
                        oi = 0 if (u + j) % 9 == 0 else 50 + 3 * u + j
                        file_iv = 0 if (u + j + len(root)) % 4 == 0 else iv  # Cboe's 0: from the mid
                        price = _price(spot, k, _t(e), iv, right == "C") if (u + j) % 11 else 0.0  # no quote
                        lines.append(_cboe34_line(sym, root, e, f"{k:.3f}", right, oi, file_iv, price,
                                                  spot - 0.01, spot + 0.01))
    path = tmp_path / "many.csv"
    path.write_text(CBOE_34 + "\n" + "\n".join(lines) + "\n")
    monkeypatch.setattr(chain_prep, "SPLIT_FROM", 0)
    monkeypatch.setenv("GEXHISTORY_ENGINE_THREADS", "1")
    one = _outcome(str(path))
    assert isinstance(one, list) and len(one) == 30
    assert any("merged" in n for n in one[0][-2]) and any("interpolated" in n or "mid" in n for n in one[0][-2])
    monkeypatch.setenv("GEXHISTORY_ENGINE_THREADS", "2")
    assert _outcome(str(path)) == one
    # The same contract twice in a late chain and in an early one: the earlier line is named either way.
    dup = lines + [lines[-3], lines[40]]
    path.write_text(CBOE_34 + "\n" + "\n".join(dup) + "\n")
    two = _outcome(str(path))
    monkeypatch.setenv("GEXHISTORY_ENGINE_THREADS", "1")
    assert two == _outcome(str(path)) == f"error: {path}:{len(lines) + 2}: duplicate contract (same as line {len(lines) - 1})"
