"""Real chain files' quirks (issue 16 §3) and hostile chain-file input (issue 18), as tables of cases.

Quirks a real file has are not errors: a tiny negative vendor gamma, a blank or zero IV. What no
market has is one `error: FILE[:LINE]: ...` line, exit 2, and no database written: names that cannot
be tickers, dates with trailing text, numbers that are not finite or out of any market's range, a
chain with no open interest at all."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from helpers import contract_rows, run_cli

NY = ZoneInfo("America/New_York")
R, Q = 0.04, 0.013
GENERIC = "date,underlying,expiration,strike,right,oi,iv,spot"
GOOD = "2025-06-02,SPY,2025-06-13,590,C,1000,0.15,600"
QD_HEADER = ("Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,Puts,"
             "Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest")
QD_ROW = ("Fri Jun 13 2025,SPY250613C00590000,12.0,0.0,11.9,12.1,5,{iv},0.7,0.02,{oi},590.0,"
          "SPY250613P00590000,2.0,0.0,1.9,2.1,5,{iv},-0.3,0.02,{oi}")


def _quotedata(last="600.10", date="June 2, 2025, 4:30 PM EDT", rows_=None) -> str:
    body = rows_ if rows_ is not None else [QD_ROW.format(iv="0.15", oi="1000")]
    return "\n".join(["", f"SPY (SPDR S&P 500),Last: {last},Change: 1.0", f'"Date: {date}",Bid: 600,Ask: 600.2',
                      QD_HEADER, *body]) + "\n"


def _generic(*lines: str) -> str:
    return "\n".join([GENERIC, *lines]) + "\n"


CBOE_26 = ("underlying_symbol,quote_date,root,expiration,strike,option_type,open,high,low,close,trade_volume,"
           "bid_size_1545,bid_1545,ask_size_1545,ask_1545,underlying_bid_1545,underlying_ask_1545,bid_size_eod,"
           "bid_eod,ask_size_eod,ask_eod,underlying_bid_eod,underlying_ask_eod,vwap,open_interest,delivery_code")
CBOE_34 = CBOE_26.replace("underlying_ask_1545,", "underlying_ask_1545,implied_underlying_price_1545,"
                          "active_underlying_price_1545,implied_volatility_1545,delta_1545,gamma_1545,theta_1545,"
                          "vega_1545,rho_1545,")
ORATS = ("ticker,tradeDate,expirDate,strike,stockPrice,callOpenInterest,putOpenInterest,callMidIv,putMidIv,smvVol,"
         "gamma")
DATASHOP = "SPY,2025-06-02,SPY,2025-06-13,590.000,C,0,0,0,0,5,1,0,1,0,0,0,10,{bid},10,{ask},599.99,{uask},0,1000,"
ORATS_ROW = "SPY,2025-06-02,2025-06-13,590,{spot},1000,900,0.2,0.2,0.2,0.01"


ROCKET = "\U0001F680"
BAD = [  # (id, file content, extra arguments, what the one line must say, the line it must name or None)
    ("underlying-emoji", _generic(GOOD.replace("SPY", ROCKET, 1)), [], "does not look like a listed ticker", 2),
    ("underlying-quotes", _generic(GOOD.replace("SPY", "'SPY'", 1)), [], "does not look like a listed ticker", 2),
    ("underlying-40-chars", _generic(GOOD, GOOD.replace("SPY", "A" * 40, 1)), [], "does not look like a listed", 3),
    ("underlying-option-bad", _quotedata(), ["--underlying", "SP Y"], "--underlying 'SP Y' does not look like", None),
    ("underlying-option-long", _quotedata(), ["--underlying", "X" * 40], "does not look like a listed ticker", None),
    ("date-trailing-text", _generic(GOOD.replace("2025-06-02", "2025-06-02junk", 1)), [], "is not a date", 2),
    ("expiry-trailing-text", _generic(GOOD, GOOD.replace("2025-06-13", "2025-06-13x")), [], "is not a date", 3),
    ("expiry-year-9999", _generic(GOOD.replace("2025-06-13", "9999-06-13")), [], "more than 12 years after", 2),
    ("expiry-year-0001", _generic(GOOD.replace("2025-06-13", "0001-06-13")), [], "is before the chain's date", 2),
    ("date-year-0001", _generic(GOOD.replace("2025-06-02", "0001-06-02")), [], "before the NYSE calendar's start", 2),
    ("expiry-year-2200", _generic(GOOD.replace("2025-06-13", "2200-06-13")), [], "more than 12 years after", 2),
    ("strike-huge", _generic(GOOD.replace(",590,", ",1e300,")), [], "strike 1e+300 is out of range", 2),
    ("strike-inf", _generic(GOOD.replace(",590,", ",inf,")), [], "strike 'inf' is not a number", 2),
    ("strike-nan", _generic(GOOD.replace(",590,", ",nan,")), [], "strike 'nan' is not a number", 2),
    ("oi-huge", _generic(GOOD, GOOD.replace(",1000,", ",1e12,").replace(",590,", ",595,")), [],
     "open interest 1e+12 is out of range", 3),
    ("iv-infinite", _generic(GOOD.replace(",0.15,", ",-inf,")), [], "iv '-inf' is not a number", 2),
    ("spot-huge", _generic(GOOD.replace(",600", ",6e9")), [], "underlying price 6e+09 is out of range", 2),
    ("every-oi-zero", _generic(GOOD.replace(",1000,", ",0,")), [], "every contract's open interest is zero", None),
    ("datashop-price-huge", CBOE_26 + "\n" + DATASHOP.format(bid="1e300", ask="1e300", uask="600.01") + "\n", [],
     "option price 1e+300 is out of range", 2),
    ("datashop-underlying-huge", CBOE_26 + "\n" + DATASHOP.format(bid="1", ask="1.1", uask="1e12") + "\n", [],
     "underlying price 5e+11", None),
    ("orats-spot-huge", ORATS + "\n" + ORATS_ROW.format(spot="1e9") + "\n", [], "underlying price 1e+09", 2),
    ("orats-spot-inf", ORATS + "\n" + ORATS_ROW.format(spot="inf") + "\n", [], "stockprice 'inf' is not a number", 2),
    ("quotedata-last-huge", _quotedata(last="1e308"), [], "Last: '1e308' is not an underlying price", 2),
    ("quotedata-last-words", _quotedata(last="N/A"), [], "Last: 'N/A' is not an underlying price", 2),
    ("quotedata-date-unreadable", _quotedata(date="sometime in June"), [], "is not like 'June 11, 2022", 3),
    ("quotedata-date-future", _quotedata(date="June 2, 2999, 4:30 PM EDT"), [], "is in the future", 3),
    ("quotedata-expiry-year", _quotedata(rows_=[QD_ROW.format(iv="0.15", oi="1000").replace("2025", "20255", 1)]),
     [], "is not a date like 'Fri Jun 10 2022'", 5),
    ("quotedata-bad-symbol", _quotedata(rows_=[QD_ROW.format(iv="0.15", oi="1000").replace("SPY250613C", "SPY2506C")]),
     [], "Calls 'SPY2506C00590000' is not an option symbol", 5),
    ("quotedata-negative-iv", _quotedata(rows_=[QD_ROW.format(iv="-0.2", oi="1000")]), [],
     "call iv '-0.2' must not be negative", 5),
    ("quotedata-long-row", _quotedata(rows_=[QD_ROW.format(iv="0.15", oi="1000")] * 2
                                      + [QD_ROW.format(iv="0.15", oi="1000") + ",1,2"]), [],
     "wrong number of fields", 7),
    ("quotedata-oi-huge", _quotedata(rows_=[QD_ROW.format(iv="0.15", oi="1e15")]), [], "open interest 1e+15", 5),
    ("quotedata-no-usable-contract", _quotedata(rows_=[QD_ROW.format(iv="0.0", oi="0")]), [],
     "no contract with open interest and an IV", None),
    ("quotedata-short-row", _quotedata(rows_=[QD_ROW.format(iv="0.15", oi="1000") + ",7"]), [],
     "has more than the header's 22 fields", 5),
]


def _file(tmp_path, content) -> str:
    path = tmp_path / "chain.csv"
    path.write_text(content, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("content,extra,needle,line", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_chain_input_is_one_message_naming_file_and_line(tmp_path, content, extra, needle, line):
    from gexhistory.errors import BadInput
    from gexhistory.pipeline.import_chains import parse_files

    path = _file(tmp_path, content)
    with pytest.raises(BadInput) as err:  # anything else would be a traceback at the CLI
        parse_files([path], underlying=extra[1] if extra else None)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg and "np.str_" not in msg, msg
    if line is not None:
        assert msg.startswith(f"{path}:{line}: "), msg


CLI_SAMPLE = ["underlying-emoji", "underlying-option-bad", "expiry-year-9999", "strike-huge", "every-oi-zero",
              "quotedata-date-unreadable"]


@pytest.mark.parametrize("case", [c for c in BAD if c[0] in CLI_SAMPLE], ids=lambda c: c[0])
def test_bad_chain_input_through_the_cli_writes_nothing(tmp_path, case):
    _, content, extra, needle, line = case
    path = _file(tmp_path, content)
    db = tmp_path / "g.db"
    res = run_cli(["import-chains", path, "--db", str(db), *extra], tmp_path)
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(err) == 1, res.stderr
    assert err[0].startswith("error: ") and needle in err[0], err[0]
    assert not db.exists()


def test_table_covers_each_class():
    ids = " ".join(c[0] for c in BAD)
    for word in ("underlying", "date", "expiry", "strike", "oi", "iv", "spot", "last", "every-oi-zero"):
        assert word in ids


def test_malformed_row_count_is_every_bad_row(tmp_path):
    from gexhistory.errors import BadInput
    from gexhistory.pipeline.import_chains import parse_files

    bad = [GOOD.replace(",590,", f",{590 + i},").replace(",1000,", ",x,") for i in range(1012)]
    path = tmp_path / "many.csv"
    path.write_text(_generic(GOOD.replace(",590,", ",589,"), *bad))
    with pytest.raises(BadInput) as err:
        parse_files([str(path)])
    assert str(err.value) == f"{path}:3: oi 'x' is not a number (1,011 more malformed rows)"


def test_values_in_messages_are_plain(tmp_path):
    from gexhistory.errors import BadInput
    from gexhistory.pipeline.import_chains import parse_files

    path = tmp_path / "weekend.csv"
    path.write_text(_generic(GOOD.replace("2025-06-02", "2025-06-07", 1)))
    with pytest.raises(BadInput) as err:
        parse_files([str(path)])
    assert str(err.value) == f"{path}:2: date '2025-06-07' is not an NYSE session"




@pytest.mark.parametrize("gamma,stored", [("-1.29661e-14", 0.0), ("-0.0", 0.0), ("", None), ("0.0125", 0.0125),
                                          ("-0.3", None)])
def test_vendor_gamma_quirks(db_url, tmp_path, gamma, stored):
    """A tiny negative vendor gamma is zero; a clearly negative one is no gamma (noted); neither rejects the
    file, used or not."""
    from gexhistory.engine.params import Conventions
    from gexhistory.pipeline.import_chains import import_chains

    lines = [ORATS, f"SPY,2025-06-02,2025-06-13,560,600,10,1500,0.3,0.3,0.3,{gamma}",
             "SPY,2025-06-02,2025-06-13,600,600,900,800,0.2,0.2,0.2,0.0125"]
    path = tmp_path / "orats.csv"
    path.write_text("\n".join(lines) + "\n")
    res = import_chains([str(path)], db=db_url)
    got = contract_rows(db_url, "SELECT gamma FROM option_chain_contracts WHERE strike = 560")
    assert [g[0] for g in got] == [stored, stored]
    assert any("negative vendor gamma" in n for n in res.files[0]["notes"]) == (gamma == "-0.3")
    vendor = import_chains([str(path)], db=db_url, conv=Conventions(gamma_source="vendor"))
    if stored is not None:  # the vendor's gammas: GEX = gamma x OI x 100 x S^2 x 0.01, puts negative
        want = (stored * (10 - 1500) + 0.0125 * (900 - 800)) * 100 * 600**2 * 0.01
        assert vendor.sessions[0]["net_gex"] == pytest.approx(want, rel=1e-12)
    else:  # no usable vendor gamma on that contract: Black-Scholes' for it, never a NaN session
        assert vendor.sessions[0]["net_gex"] is not None and math.isfinite(vendor.sessions[0]["net_gex"])


def test_blank_and_zero_iv_left_out_and_counted(tmp_path):
    from gexhistory.pipeline.import_chains import parse_files

    path = tmp_path / "ivs.csv"
    path.write_text(_generic(GOOD, GOOD.replace(",590,", ",595,").replace(",0.15,", ",,"),
                             GOOD.replace(",590,", ",600,").replace(",0.15,", ",0,")))
    item = parse_files([str(path)])[0]
    assert len(item.chain) == 1 and "2 contracts with a blank or zero IV left out" in item.notes


def test_profile_that_underflows_to_zero_has_no_flip():
    """Every gamma underflows to 0.0 over the +-20% search (strikes far out, one day left): net GEX is 0.0
    and -0.0 along the whole grid, which is no change of sign."""
    from gexhistory.engine.chain import OptionChain
    from gexhistory.engine.exposure import compute_gex_one

    at = dt.datetime(2025, 6, 2, 16, tzinfo=NY)
    close = dt.datetime(2025, 6, 3, 16, tzinfo=NY).timestamp()
    chain = OptionChain("SPY", at.date(), np.array(["2025-06-03"] * 2, dtype="datetime64[D]"), np.array([close] * 2),
                        np.array([150.0, 50.0]), np.array([True, False]), np.array([1000.0, 1000.0]),
                        np.array([0.05, 0.05]), "test")
    snap = compute_gex_one(chain, 100.0, at)
    assert snap.net_gex == 0.0 and snap.flip_point is None and not snap.flip_found


# ---- VIX options: priced off the futures, not the cash index ---------------------------------------

def _black76(f, k, t, v, call):
    from scipy.stats import norm

    d1 = (math.log(f / k) + v * v / 2 * t) / (v * math.sqrt(t))
    d2 = d1 - v * math.sqrt(t)
    c = math.exp(-R * t) * (f * norm.cdf(d1) - k * norm.cdf(d2))
    return c if call else c - math.exp(-R * t) * (f - k)


def _vix_files(tmp_path):
    """One session's VIX options as the 26- and the 34-column DataShop files: cash VIX 18, futures 19.6
    and 21.4 for the two (AM-settled, Wednesday) expirations, a vol smile rising to the right."""
    day = dt.date(2025, 6, 2)
    close = dt.datetime(2025, 6, 2, 16, tzinfo=NY)
    futures = {dt.date(2025, 6, 18): 19.6, dt.date(2025, 7, 16): 21.4}
    lines26, lines34 = [], []
    for exp, fut in futures.items():
        t = (dt.datetime.combine(exp, dt.time(9, 30), tzinfo=NY) - close).total_seconds() / (365 * 86400)
        for k in range(12, 36):
            vol = 0.75 + 0.9 * math.log(k / fut) ** 2 + 0.35 * math.log(k / fut)
            for right in ("C", "P"):
                p = _black76(fut, k, t, vol, right == "C")
                if p < 0.01:
                    continue
                if right == "C":  # calls bought for protection, far above; puts sold near the lows
                    oi = int(30000 * math.exp(-((k - 24) / 5) ** 2))
                else:
                    oi = int(20000 * math.exp(-((k - 15) / 2) ** 2))
                bid, ask = p * 0.995, p * 1.005
                head = f"^VIX,{day},VIX,{exp},{k:.3f},{right},0,0,0,0,10,1,0,1,0,0,0"
                tail = f"10,{bid:.6f},10,{ask:.6f},0,0,0,{oi},"
                lines26.append(f"{head},{tail}")
                lines34.append(f"{head},0,0,{vol:.6f},0,0,0,0,0,{tail}")
    p26 = tmp_path / "UnderlyingOptionsEODQuotes_2025-06-02.csv"
    p34 = tmp_path / "UnderlyingOptionsEODCalcs_2025-06-02.csv"
    p26.write_text(CBOE_26 + "\n" + "\n".join(lines26) + "\n")
    p34.write_text(CBOE_34 + "\n" + "\n".join(lines34) + "\n")
    return str(p26), str(p34)


def test_vix_26_and_34_column_files_agree(tmp_path):
    """The 26-column file has no IVs: they come from the mids, at each expiry's forward (the future), so
    its GEX is the 34-column file's (Cboe's IVs) within rounding; at the cash index it was 56% apart."""
    from gexhistory.pipeline.import_chains import import_chains

    p26, p34 = _vix_files(tmp_path)
    a = import_chains([p26], db=str(tmp_path / "a.db"))
    b = import_chains([p34], db=str(tmp_path / "b.db"))
    ga, gb = a.sessions[0]["net_gex"], b.sessions[0]["net_gex"]
    assert a.sessions[0]["symbol"] == "VIX" and gb != 0
    assert abs(ga - gb) <= 0.25 * abs(gb)
    assert ga == pytest.approx(gb, rel=0.01)  # the IVs recovered, to the quotes' rounding
    ivs = contract_rows(str(tmp_path / "a.db"), "SELECT iv FROM option_chain_contracts ORDER BY expiration, strike, \"right\"")
    want = contract_rows(str(tmp_path / "b.db"), "SELECT iv FROM option_chain_contracts ORDER BY expiration, strike, \"right\"")
    assert np.allclose([v[0] for v in ivs], [v[0] for v in want], rtol=1e-3)


def _forward_by_hand(rows, r, q, t):
    """The parity spot of one expiry from its quotes [(strike, is_call, mid)], written from the
    definition one pair at a time: mean mid per strike and side, the five pairs of smallest |C - P|
    (ties by strike), F = K + e^{rT} (C - P), their median, S = F e^{-(r-q)T}."""
    sides: dict[tuple[float, bool], list[float]] = {}
    for k, call, m in rows:
        if m == m and m > 0:
            sides.setdefault((k, call), []).append(m)
    pairs = []
    for k in sorted({k for k, _ in sides}):
        if (k, True) in sides and (k, False) in sides:
            c = sum(sides[(k, True)]) / len(sides[(k, True)])
            p = sum(sides[(k, False)]) / len(sides[(k, False)])
            pairs.append((abs(c - p), k, c - p))
    if not pairs:
        return math.nan
    near = sorted(pairs, key=lambda x: x[0])[:5]  # sorted() is stable: ties stay in strike order
    fwds = sorted(k + math.exp(r * t) * d for _, k, d in near)
    n = len(fwds)
    return (fwds[(n - 1) // 2] + fwds[n // 2]) / 2 * math.exp(-(r - q) * t)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_parity_forwards_match_a_pair_by_pair_computation(seed):
    from gexhistory.engine.params import Conventions
    from gexhistory.pipeline.chain_prep import expiry_close_ts, forward_spots, session_close_ts

    rng = np.random.default_rng(seed)
    n = 3000
    codes = rng.integers(0, 6, n)
    as_of = np.full(n, np.datetime64("2025-06-02"), dtype="datetime64[D]")
    expiry = np.datetime64("2025-06-06") + rng.integers(0, 5, n).astype("timedelta64[D]") * 7
    strike = np.round(rng.uniform(90, 110, n))  # about 20 strikes: sides quoted twice (two roots) happen
    is_call = rng.random(n) < 0.5
    mid = np.abs(np.where(is_call, 100.5 - strike, strike - 100.5)) + rng.random(n) * 4
    mid[rng.random(n) < 0.15] = np.nan  # no quote
    mid[rng.random(n) < 0.05] = 0.0  # a zero bid and ask
    ec = expiry_close_ts(expiry)
    got = forward_spots(as_of, strike, is_call, mid, ec, codes)
    conv = Conventions()
    t_all = (ec - session_close_ts(as_of)) / (365.0 * 86400)
    for code in range(6):
        for e in np.unique(expiry):
            sel = (codes == code) & (expiry == e)
            if not sel.any():
                continue
            want = _forward_by_hand(list(zip(strike[sel], is_call[sel], mid[sel])), conv.r, conv.q, t_all[sel][0])
            np.testing.assert_allclose(got[sel], want, rtol=1e-12)
