"""Chain import speed and memory: `gexhistory import-chains` of one Cboe DataShop 34-column file, beside
the bare read of the same file with pyarrow.csv.

    python benchmarks/import_chains.py [--rows 1000000] [--underlyings 3000] [--repeat 1] [--seed 7]
                                       [--out FILE [--reuse]] [--pg-url postgresql://...] [--files N]

With --files N (N > 1) it generates N such files for N consecutive sessions (seeds seed..seed+N-1) and
imports them in one command twice: with the default budget of held contracts, past which the chains
wait in a temporary file (pipeline/chain_spill.py), and with every chain held in memory
(GEXHISTORY_IMPORT_HOLD_CONTRACTS set past the total), printing each one's time and peak memory.

The file is generated (seeded) in the layout Cboe's "Option EOD Summary" with the 15:45 calculations
publishes: one session, ~U underlyings of very unequal chain sizes, SPX listed under the roots SPX and
SPXW with the monthly expirations under both (the overlap that merges contracts), index underlyings
with zero underlying quotes (spot from put-call parity), ~2% of contracts with IV 0 but a bid/ask (IV
from the mid) and ~15% with zero OI. Each figure is one process (interpreter start-up included): wall
seconds, rows per second, CPU seconds (user + system, all threads) and its peak resident memory
(getrusage(RUSAGE_CHILDREN) of a wrapper that ran it alone). `import-chains` writes into a fresh
SQLite database each time (and PostgreSQL with --pg-url). Not a timed test: figures on a shared
machine move by tens of percent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

AS_OF = dt.date(2025, 6, 2)  # a Monday session
COLUMNS = (
    "underlying_symbol,quote_date,root,expiration,strike,option_type,open,high,low,close,trade_volume,"
    "bid_size_1545,bid_1545,ask_size_1545,ask_1545,underlying_bid_1545,underlying_ask_1545,"
    "implied_underlying_price_1545,active_underlying_price_1545,implied_volatility_1545,delta_1545,gamma_1545,"
    "theta_1545,vega_1545,rho_1545,bid_size_eod,bid_eod,ask_size_eod,ask_eod,underlying_bid_eod,"
    "underlying_ask_eod,vwap,open_interest,delivery_code").split(",")
INDICES = ("SPX", "NDX", "RUT", "VIX")  # quoted with a caret and without an underlying bid/ask, as Cboe does

_WRAPPER = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": p.returncode, "wall": time.perf_counter() - t0, "stdout": p.stdout,
                  "stderr": p.stderr[-2000:], "maxrss_kb": use.ru_maxrss, "cpu": use.ru_utime + use.ru_stime}))
"""

_BARE_READ = """
import sys, time
import pyarrow.csv as pc
t0 = time.perf_counter()
t = pc.read_csv(sys.argv[1])
print(t.num_rows, time.perf_counter() - t0)
"""


def _names(n: int) -> list[str]:
    """n distinct ticker-like names (letters only), the indices first."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = list(INDICES)
    size = 1
    while len(out) < n:
        size += 1
        for k in range(26 ** size):
            name = "".join(letters[(k // 26 ** j) % 26] for j in range(size))
            if name not in out:
                out.append(name)
            if len(out) == n:
                break
    return out[:n]


def _expirations(as_of: dt.date = AS_OF) -> np.ndarray:
    """Fridays after `as_of` for a year (weeklies), as datetime64[D]; the third Fridays are monthlies."""
    first = as_of + dt.timedelta(days=(4 - as_of.weekday()) % 7)
    days = [first + dt.timedelta(weeks=w) for w in range(52)]
    days = [d if d != dt.date(2025, 7, 4) else dt.date(2025, 7, 3) for d in days]  # Independence Day
    return np.array(days, dtype="datetime64[D]")


def _norm_cdf(x):
    from scipy.special import ndtr  # lazy: only generation prices options

    return ndtr(x)


def generate(path: Path, rows: int, underlyings: int, seed: int, as_of: dt.date = AS_OF) -> int:
    """Write the benchmark file of the session `as_of`; returns its number of contract rows."""
    import pyarrow as pa
    import pyarrow.csv as pc

    rng = np.random.default_rng(seed)
    names = _names(underlyings)
    # Chain sizes as in a real universe: a few huge (SPX, SPY, QQQ), most a few hundred contracts or less.
    weight = 1.0 / np.arange(1, underlyings + 1) ** 0.9
    weight[0] *= 3  # SPX
    spare = max(0, rows // 2 - 2 * underlyings)  # every chain has at least two strikes' call and put
    pairs = 2 + np.floor(weight / weight.sum() * spare).astype(np.int64)
    exps = _expirations(as_of)
    monthly = np.array([15 <= d.day <= 21 for d in exps.astype(dt.date)])
    target = pairs[0]
    for _ in range(3):  # SPX's monthlies are listed twice: leave room for them so the file ends at --rows
        n_e = min(max(1, int(pairs[0]) // 40), exps.size)
        pairs[0] = round(target / (1 + monthly[:n_e].mean()))
    dup_spx = int(monthly[np.arange(pairs[0]) % min(max(1, int(pairs[0]) // 40), exps.size)].sum())
    pairs[1] += max(0, -(-rows // 2) - int(pairs.sum()) - dup_spx)  # the rounding's shortfall, to SPY
    owner = np.repeat(np.arange(underlyings), pairs)
    i = np.arange(owner.size) - np.repeat(np.cumsum(pairs) - pairs, pairs)  # pair index within its chain
    n_exp = np.minimum(np.maximum(1, pairs // 40), exps.size)
    spot_u = np.round(np.exp(rng.normal(4.5, 1.0, underlyings)), 2)
    spot_u[0] = 5935.94
    exp_idx = i % n_exp[owner]
    k_idx = i // n_exp[owner]
    n_k = -(-pairs // n_exp)  # strikes per chain
    step_u = np.select([spot_u < 25, spot_u < 200, spot_u < 1000], [0.5, 1.0, 5.0], 10.0)
    low_u = np.maximum(step_u, np.round(spot_u * 0.97 / step_u - n_k / 2) * step_u)
    strike = low_u[owner] + k_idx * step_u[owner]
    expiry = exps[exp_idx]
    third_friday = monthly[exp_idx]
    # SPX: weeklies under SPXW, monthlies under both roots (the same expiration and strike twice).
    spx = owner == 0
    dup = np.flatnonzero(spx & third_friday)
    order = np.sort(np.concatenate([np.arange(owner.size), dup]))
    second = np.zeros(order.size, bool)
    second[1:] = order[1:] == order[:-1]
    owner, expiry, strike = owner[order], expiry[order], strike[order]
    spx_root = np.where(second, "SPX", "SPXW")
    names_arr = np.array(names, dtype=object)
    index = np.isin(names_arr, INDICES)
    und = np.where(index, "^" + names_arr.astype(str), names_arr.astype(str)).astype(object)[owner]
    root = np.where(owner == 0, spx_root, names_arr[owner].astype(str)).astype(object)
    # Two rows (call, put) per pair; cut to the requested size (only the last chain loses pairs).
    n = min(rows, 2 * owner.size)
    rep = lambda a: np.repeat(a, 2)[:n]  # noqa: E731
    owner, und, root, expiry, strike = rep(owner), rep(und), rep(root), rep(expiry), rep(strike)
    is_call = np.tile([True, False], owner.size)[:n]
    s = spot_u[owner]
    t = ((expiry - np.datetime64(as_of, "D")).astype(float) + 0.25) / 365.0
    m = np.log(strike / s)
    iv = np.clip(0.18 + rng.normal(0, 0.03, underlyings)[owner] - 0.35 * m + 0.6 * m * m, 0.05, 3.0)
    r, q = 0.04, 0.013
    sq = iv * np.sqrt(t)
    d1 = (-m + (r - q + 0.5 * iv * iv) * t) / sq
    call = s * np.exp(-q * t) * _norm_cdf(d1) - strike * np.exp(-r * t) * _norm_cdf(d1 - sq)
    price = np.where(is_call, call, call - s * np.exp(-q * t) + strike * np.exp(-r * t))
    price = np.maximum(np.round(price, 2), 0.05)
    bid = np.round(price * 0.97, 2)
    ask = np.round(price * 1.03 + 0.05, 2)
    gamma = np.exp(-q * t) * np.exp(-0.5 * d1 * d1) / np.sqrt(2 * np.pi) / (s * sq)
    oi = np.where(rng.random(n) < 0.15, 0, rng.geometric(0.002, n))
    no_iv = rng.random(n) < 0.02  # Cboe writes 0 where its engine found no IV
    file_iv = np.where(no_iv, 0.0, np.round(iv, 4))
    under_bid = np.where(index[owner], 0.0, s - 0.01)
    under_ask = np.where(index[owner], 0.0, s + 0.01)
    zeros = np.zeros(n)
    vol = rng.integers(0, 500, n)
    cols = {
        "underlying_symbol": und, "quote_date": np.full(n, np.datetime64(as_of, "D")), "root": root,
        "expiration": expiry, "strike": np.round(strike, 3), "option_type": np.where(is_call, "C", "P"),
        "open": price, "high": price, "low": price, "close": price, "trade_volume": vol,
        "bid_size_1545": vol, "bid_1545": bid, "ask_size_1545": vol, "ask_1545": ask,
        "underlying_bid_1545": under_bid, "underlying_ask_1545": under_ask,
        "implied_underlying_price_1545": np.round(s, 2), "active_underlying_price_1545": np.round(s, 2),
        "implied_volatility_1545": file_iv, "delta_1545": zeros, "gamma_1545": np.where(no_iv, 0, np.round(gamma, 6)),
        "theta_1545": zeros, "vega_1545": zeros, "rho_1545": zeros, "bid_size_eod": vol, "bid_eod": bid,
        "ask_size_eod": vol, "ask_eod": ask, "underlying_bid_eod": under_bid, "underlying_ask_eod": under_ask,
        "vwap": price, "open_interest": oi, "delivery_code": np.full(n, "", dtype=object),
    }
    table = pa.table({c: pa.array(cols[c]) for c in COLUMNS})
    with open(path, "wb") as fh:  # Cboe's header is not quoted; pyarrow would quote it
        fh.write((",".join(COLUMNS) + "\n").encode())
        pc.write_csv(table, fh, pc.WriteOptions(include_header=False, quoting_style="none"))
    return n


def measure(args: list[str], cwd: str, extra_env: dict | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(extra_env or {})}
    for var in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABASE_URL", "DATABASE_PATH"):
        env.pop(var, None)
    out = subprocess.run([sys.executable, "-c", _WRAPPER, sys.executable, *args], cwd=cwd, env=env,
                         capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    if got["rc"] != 0:
        raise SystemExit(f"{' '.join(args[:4])} failed (exit {got['rc']}): {got['stderr']}")
    return got


@contextmanager
def _pg_database(admin_url: str):
    """A fresh PostgreSQL database on the server of `admin_url`, dropped afterwards."""
    import psycopg

    name = f"gexh_bench_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--underlyings", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=1, help="processes per figure; the best wall time is shown")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", help="write the generated file here (kept) instead of a temporary directory")
    ap.add_argument("--reuse", action="store_true", help="with --out: use the file already there")
    ap.add_argument("--pg-url", help="also import into a fresh PostgreSQL database made on this server "
                                     "(e.g. postgresql://postgres@127.0.0.1:5432/test)")
    ap.add_argument("--files", type=int, default=1, help="N > 1: N files of consecutive sessions in one import, "
                                                         "spilled past the default budget and held in memory")
    args = ap.parse_args()
    if args.files > 1:
        many_files(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.out) if args.out else Path(tmp) / "UnderlyingOptionsEODCalcs_2025-06-02.csv"
        t0 = time.perf_counter()
        if not (args.reuse and path.is_file()):
            generate(path, args.rows, args.underlyings, args.seed)
        with open(path, "rb") as fh:
            n = sum(1 for _ in fh) - 1
        print(f"file: {path.name}, {n:,} rows, {path.stat().st_size / 2**20:.0f} MiB, {args.underlyings:,} underlyings "
              f"(generated in {time.perf_counter() - t0:.1f} s)")
        bare, imp, pg = [], [], []
        for k in range(args.repeat):
            bare.append(measure(["-c", _BARE_READ, str(path)], tmp))
            db = Path(tmp) / f"bench{k}.db"
            imp.append(measure(["-m", "gexhistory", "import-chains", str(path), "--db", str(db), "--json"], tmp))
            db.unlink()
            if args.pg_url:
                with _pg_database(args.pg_url) as url:
                    pg.append(measure(["-m", "gexhistory", "import-chains", str(path), "--db", url, "--json"], tmp))
        res = json.loads(min(imp, key=lambda g: g["wall"])["stdout"])
        sessions = len(res["sessions"])
        print(f"{'':<28} {'wall s':>8} {'rows/s':>11} {'CPU s':>7} {'peak RSS MiB':>13}")
        figures = [("pyarrow.csv.read_csv", bare), ("import-chains (SQLite)", imp)]
        for label, runs in figures + ([("import-chains (PostgreSQL)", pg)] if pg else []):
            best = min(runs, key=lambda g: g["wall"])
            peak = max(g["maxrss_kb"] for g in runs) / 1024
            cpu = min(g["cpu"] for g in runs)  # user + system: what load on a shared machine moves least
            print(f"{label:<28} {best['wall']:>8.2f} {n / best['wall']:>11,.0f} {cpu:>7.2f} {peak:>13,.0f}")
        read_only = min(float(g["stdout"].split()[1]) for g in bare)
        print(f"(read_csv alone, without start-up: {read_only:.2f} s; import wrote {sessions:,} sessions, "
              f"{sum(f['contracts'] for f in res['files']):,} contracts)")


def many_files(args) -> None:
    """--files N: one import of N market-wide files, spilled (the default budget) and held in memory."""
    from gexhistory.calendar import sessions_between

    days = [s.date for s in sessions_between(AS_OF, AS_OF + dt.timedelta(days=4 * args.files))][:args.files]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.out) if args.out else Path(tmp) / "UnderlyingOptionsEODCalcs.csv"
        paths = [base.with_name(f"{base.stem}_{d.isoformat()}{base.suffix}") for d in days]
        base.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        for k, (path, day) in enumerate(zip(paths, days)):
            if not (args.reuse and path.is_file()):
                generate(path, args.rows, args.underlyings, args.seed + k, day)
        print(f"{len(paths)} files of {args.rows:,} rows, {args.underlyings:,} underlyings, {days[0]}..{days[-1]} "
              f"(generated in {time.perf_counter() - t0:.1f} s)")
        print(f"{'':<44} {'wall s':>8} {'CPU s':>7} {'peak RSS MiB':>13}")
        held_all = str(10 * args.rows * args.files)
        contracts = 0
        for label, env in (("import-chains, default budget", {}),
                           ("import-chains, every chain held in memory", {"GEXHISTORY_IMPORT_HOLD_CONTRACTS": held_all})):
            runs = []
            for k in range(args.repeat):
                db = Path(tmp) / f"many{k}.db"
                runs.append(measure(["-m", "gexhistory", "import-chains", *map(str, paths), "--db", str(db), "--json"],
                                    tmp, env))
                db.unlink()
            best = min(runs, key=lambda g: g["wall"])
            contracts = sum(f["contracts"] for f in json.loads(best["stdout"])["files"])
            print(f"{label:<44} {best['wall']:>8.2f} {min(g['cpu'] for g in runs):>7.2f} "
                  f"{max(g['maxrss_kb'] for g in runs) / 1024:>13,.0f}")
        from gexhistory.pipeline.chain_spill import HOLD_CONTRACTS

        print(f"({contracts:,} contracts kept in all: the default budget of {HOLD_CONTRACTS:,} "
              f"{'was passed, so the import spilled' if contracts > HOLD_CONTRACTS else 'was not passed'})")


if __name__ == "__main__":
    main()
