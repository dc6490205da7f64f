"""Writes the Cboe delayed-quotes ("quotedata") samples beside it: run once, kept for the record.

Shaped like Cboe's downloads (the Last: and Date: lines, the 22-column header, OSI symbols, quotes
on Cboe's ticks) with the quirks real downloads have: IV 0 where Cboe's engine found none (some with
a bid/ask, some without), a blank IV, gammas written as -0.0 or a tiny negative, rows with zero OI.
Prices are Black-Scholes at r = 0.04, q = 0.013 from each expiry's close (an SPX root's: its open).
"""

import datetime as dt
import math
from pathlib import Path
from zoneinfo import ZoneInfo

from scipy.stats import norm

NY = ZoneInfo("America/New_York")
R, Q = 0.04, 0.013
HERE = Path(__file__).parent
HEADER = ("Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,Puts,Last Sale,"
          "Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest")


def bs(s, k, t, v, call):
    d1 = (math.log(s / k) + (R - Q + v * v / 2) * t) / (v * math.sqrt(t))
    d2 = d1 - v * math.sqrt(t)
    if call:
        price = s * math.exp(-Q * t) * norm.cdf(d1) - k * math.exp(-R * t) * norm.cdf(d2)
        delta = math.exp(-Q * t) * norm.cdf(d1)
    else:
        price = k * math.exp(-R * t) * norm.cdf(-d2) - s * math.exp(-Q * t) * norm.cdf(-d1)
        delta = -math.exp(-Q * t) * norm.cdf(-d1)
    gamma = math.exp(-Q * t) * norm.pdf(d1) / (s * v * math.sqrt(t))
    return price, delta, gamma


def tick(x, step):
    return max(0.0, round(round(x / step) * step, 2))


def side(root, exp, k, right, s, t, iv, oi, quirk, step):
    sym = f"{root}{exp:%y%m%d}{right}{int(round(k * 1000)):08d}"
    if t <= 0:  # expired at this session's close: Cboe still lists the day's contracts
        intrinsic = max(0.0, (s - k) if right == "C" else (k - s))
        return [sym, f"{intrinsic:.2f}", "0.0", "0.0", "0.0", "0", "0.0", "0.0", "0.0", str(oi)]
    price, delta, gamma = bs(s, k, t, iv, right == "C")
    bid, ask = tick(price * 0.985 - step / 2, step), tick(price * 1.015 + step / 2, step)
    iv_txt, gamma_txt = f"{iv:.4f}", f"{gamma:.4f}"
    if quirk == "iv0":  # Cboe found no IV; the quote is there
        iv_txt = "0.0"
    elif quirk == "blank":
        iv_txt = ""
    elif quirk == "dead":  # no IV and no market: nothing to take an IV from
        iv_txt, bid, ask = "0.0", 0.0, 0.0
    if quirk == "neg":  # ORATS-style rounding noise for a deep in-the-money strike
        gamma_txt = "-1.29661e-14"
    elif gamma < 2e-4:
        gamma_txt = "-0.0"
    return [sym, f"{price:.2f}", "0.0", f"{bid:.2f}", f"{ask:.2f}", "12", iv_txt, f"{delta:.4f}", gamma_txt, str(oi)]


def rows(underlying_s, session_close, expiries, strikes, iv_at, oi_at, quirks, step):
    out = []
    for exp, root, settle in expiries:
        end = dt.datetime.combine(exp, settle, tzinfo=NY)
        t = (end - session_close).total_seconds() / (365 * 86400)
        for k in strikes:
            iv = iv_at(k, t)
            c_oi, p_oi = oi_at(exp, root, k)
            q = quirks.get((exp, root, k), ("", ""))
            call = side(root, exp, k, "C", underlying_s, t, iv, c_oi, q[0], step)
            put = side(root, exp, k, "P", underlying_s, t, iv + 0.01, p_oi, q[1], step)
            out.append([f"{exp:%a %b %d %Y}", *call, f"{k:.1f}", *put])
    return out


def write(path, lead, name_line, date_line, body):
    lines = ([""] if lead else []) + [name_line, date_line, HEADER]
    lines += [",".join(r[:11] + [r[11]] + r[12:]) for r in body]
    path.write_text("\n".join(lines) + "\n")


def spx():
    s = 3900.8601
    close = dt.datetime(2022, 6, 10, 16, tzinfo=NY)
    pm, am = dt.time(16), dt.time(9, 30)
    d = dt.date
    near = [(d(2022, 6, 10), "SPXW", pm), (d(2022, 6, 13), "SPXW", pm), (d(2022, 6, 15), "SPXW", pm),
            (d(2022, 6, 17), "SPX", am), (d(2022, 6, 17), "SPXW", pm)]
    far = [(d(2022, 6, 17), "SPX", am), (d(2022, 6, 17), "SPXW", pm), (d(2022, 6, 24), "SPXW", pm),
           (d(2022, 7, 15), "SPX", am), (d(2022, 7, 15), "SPXW", pm), (d(2022, 7, 29), "SPXW", pm)]
    strikes = [3600.0 + 50 * i for i in range(13)]
    iv_at = lambda k, t: round(0.27 + 0.55 * (s - k) / s + 0.02 * min(t, 0.1), 4)  # noqa: E731

    def oi_at(exp, root, k):
        base = 3 if root == "SPX" else 1  # the monthlies hold the most
        call = int(base * 900 * math.exp(-((k - 4050) / 150) ** 2)) + (k % 100 == 0) * 400
        put = int(base * 1400 * math.exp(-((k - 3750) / 170) ** 2)) + (k % 100 == 0) * 600
        if exp.day in (13, 15) and k in (3600.0, 4200.0):
            call = put = 0  # zero-OI rows
        return call, put

    quirks = {(d(2022, 6, 13), "SPXW", 3950.0): ("iv0", ""), (d(2022, 6, 15), "SPXW", 3850.0): ("", "blank"),
              (d(2022, 6, 17), "SPXW", 4000.0): ("iv0", "iv0"), (d(2022, 6, 24), "SPXW", 3700.0): ("dead", "iv0"),
              (d(2022, 7, 29), "SPXW", 3600.0): ("neg", ""), (d(2022, 7, 15), "SPX", 4150.0): ("", "dead"),
              (d(2022, 6, 13), "SPXW", 3650.0): ("neg", "")}
    name = "SPX (S&P 500 INDEX),Last: 3900.8601,Change: -116.96"
    date = '"Date: June 11, 2022, 8:47 PM EDT",Bid: N/A,Ask: N/A,Size: N/A,"Volume: 0"'
    write(HERE / "spx_quotedata_near.csv", True, name, date, rows(s, close, near, strikes, iv_at, oi_at, quirks, 0.05))
    write(HERE / "spx_quotedata_far.csv", True, name, date, rows(s, close, far, strikes, iv_at, oi_at, quirks, 0.1))


def nvda():
    s = 490.97
    close = dt.datetime(2024, 1, 5, 16, tzinfo=NY)
    pm = dt.time(16)
    d = dt.date
    expiries = [(d(2024, 1, 12), "NVDA", pm), (d(2024, 1, 19), "NVDA", pm), (d(2024, 1, 26), "NVDA", pm),
                (d(2024, 2, 16), "NVDA", pm)]
    strikes = [440.0 + 10 * i for i in range(11)]
    iv_at = lambda k, t: round(0.42 + 0.3 * (s - k) / s + 0.05 * min(t, 0.12), 4)  # noqa: E731

    def oi_at(exp, root, k):
        call = int(5200 * math.exp(-((k - 510) / 30) ** 2)) + (k % 50 == 0) * 1500
        put = int(4100 * math.exp(-((k - 470) / 25) ** 2)) + (k % 50 == 0) * 1200
        return (0, put) if k == 540.0 and exp.day == 12 else (call, put)

    quirks = {(d(2024, 1, 12), "NVDA", 500.0): ("iv0", "blank"), (d(2024, 1, 26), "NVDA", 440.0): ("neg", "dead"),
              (d(2024, 2, 16), "NVDA", 480.0): ("", "iv0")}
    name = "NVDA (NVIDIA Corp),Last: 490.97,Change: 11.01"
    date = '"Date: January 7, 2024 at 10:52 AM EST",Bid: 490.9,Ask: 491.02,Size: 2*4,"Volume: 41,848,480"'
    write(HERE / "nvda_quotedata.csv", False, name, date, rows(s, close, expiries, strikes, iv_at, oi_at, quirks, 0.05))


if __name__ == "__main__":
    spx()
    nvda()
