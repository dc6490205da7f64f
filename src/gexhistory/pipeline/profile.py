"""GEX by strike of a stored snapshot, and the GEX of a user's own chain, for the Python API.

`strike_profile` finds a stored gex_history row, rebuilds the chain it was computed from exactly as the
run that wrote it did (the chain model over the same daily prices, with the run's recorded model
parameters: stored price_bars for a real source, the synthetic market regenerated from the run's seed
for the synthetic one; or the imported chain as stored), and computes engine.profile.gex_profile at the
row's spot and time with the run's conventions. Its net GEX at spot is the stored one
(tests/test_profile.py). `profile_frame` gives it as a DataFrame, `compute_gex_frame` does the
computation for a chain the caller brings.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gexhistory.calendar import ET
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.chain_model import warmup_start
from gexhistory.engine.exposure import GEX_UNIT, GexSnapshot, compute_gex_one
from gexhistory.engine.params import Conventions, ModelParams
from gexhistory.engine.profile import BUCKETS, GexProfile, gex_profile
from gexhistory.errors import BadInput, WorkFailed
from gexhistory.pipeline.chain_prep import expiry_close_ts
from gexhistory.pipeline.chain_store import stored_chain
from gexhistory.pipeline.model_chains import chain_model
from gexhistory.pipeline.runs import is_synthetic_label
from gexhistory.sources.synthetic import SyntheticMarket
from gexhistory.store import bars as store_bars
from gexhistory.store import profile as store_profile
from gexhistory.store.readonly import open_readonly
from gexhistory.words import plural

IV_MAX = 10.0  # 1000%: a larger "IV" is a unit mistake (percent given for a decimal)
_SNAPSHOT_FIELDS = ("spot", "net_gex", "call_gex", "put_gex", "flip_point", "flip_found", "call_wall", "put_wall",
                    "atm_iv", "put_call_ratio", "zero_dte_gamma", "gamma_expiring_this_week",
                    "gamma_expiring_next_week", "max_pain", "regime", "mm_state")


@dataclass
class StoredProfile:
    """The profile of one stored snapshot, and what it was rebuilt from."""

    symbol: str
    timestamp: str  # as stored: 'YYYY-MM-DD HH:MM:SS', ET wall clock
    at: dt.datetime  # the same moment, tz-aware (ET)
    data_source: str
    chain_source: str  # 'modelled' or the imported file's label
    run_id: int | None
    stored_net_gex: float | None
    conventions: Conventions
    profile: GexProfile
    notes: list[str] = field(default_factory=list)


def strike_profile(symbol: str, at=None, db: str | None = None) -> StoredProfile:
    """The strike profile of the stored snapshot of `symbol` at `at`.

    Parameters
    ----------
    symbol : str
        The underlying, as stored (e.g. 'SPY').
    at : datetime, date or str, optional
        A tz-aware datetime or 'YYYY-MM-DD HH:MM[:SS]' (ET): the snapshot at that minute; a date or
        'YYYY-MM-DD': that session's last snapshot; None (default): the latest snapshot.
    db : str, optional
        SQLite path or PostgreSQL URL (default: the configured database).

    Returns
    -------
    StoredProfile

    Raises
    ------
    BadInput
        `at` is malformed, the database does not exist, or no such snapshot is stored.
    WorkFailed
        What the snapshot was computed from can no longer be rebuilt (bars or chain gone, or the run's
        recorded parameters are not this version's).
    """
    symbol = str(symbol).upper()
    when = _parse_at(at) if at is not None else None
    engine = open_readonly(db)
    if engine is None:
        raise BadInput(f"no database at {db}: backfill first")
    try:
        with engine.connect() as conn:
            row = store_profile.snapshot_row(conn, symbol, timestamp=_ts(when) if isinstance(when, dt.datetime) else None,
                                             day=when if isinstance(when, dt.date) and not isinstance(when, dt.datetime) else None)
            if row is None:
                what = f" at {at}" if at is not None else ""
                raise BadInput(f"no stored snapshot of {symbol}{what}")
            params = store_profile.run_parameters(conn, row["run_id"])
            # A live snapshot belongs to no run and was computed with the default conventions.
            notes = [] if params or row["run_id"] is None else [
                f"run {row['run_id']} recorded no parameters: default conventions used"]
            conv = _recorded(Conventions, (params or {}).get("conventions"), row["run_id"])
            stamp = dt.datetime.fromisoformat(row["timestamp"]).replace(tzinfo=ET)
            if row["chain_source"] == "modelled":
                chain = _modelled_chain(engine, symbol, stamp.date(), row, params or {})
            else:
                header = store_profile.chain_header(conn, symbol, stamp.date(), row["chain_source"])
                if header is None:
                    raise WorkFailed(f"the imported chain {row['chain_source']} of {symbol} on {stamp.date()} is no "
                                     "longer stored")
                chain = stored_chain(conn, header)
    finally:
        engine.dispose()
    prof = gex_profile(chain, float(row["spot_price"]), stamp, conv)
    return StoredProfile(symbol, row["timestamp"], stamp, row["data_source"], row["chain_source"], row["run_id"],
                         row["net_gex"], conv, prof, notes)


def profile_frame(symbol: str, at=None, db: str | None = None) -> pd.DataFrame:
    """GEX by strike of a stored snapshot, one row per strike.

    Parameters
    ----------
    symbol, at, db
        As for `strike_profile`: the snapshot at `at` (default: the latest).

    Returns
    -------
    pandas.DataFrame
        Columns strike, call_gex, put_gex, net_gex (dollars per 1% move; calls +, puts -) and, per expiry
        bucket, gex_0dte, gex_this_week, gex_monthly, gex_other (net GEX of that bucket's expiries);
        strikes without gamma (expired, beyond the DTE window, no OI) are left out. ``df.attrs`` holds the
        snapshot: symbol, timestamp (tz-aware ET), spot, net_gex (recomputed), stored_net_gex, call_gex,
        put_gex, flip_point, call_wall, put_wall, regime, mm_state, gex_unit, data_source, chain_source,
        run_id, conventions, notes, and curve: {'spot': [...], 'net_gex': [...]}, net GEX at hypothetical
        spots within the flip search range, its zero crossing nearest spot flip_point
        (``pd.DataFrame(df.attrs['curve'])`` makes it a frame; attrs hold only plain values, so that
        merge and concat can compare them).

    Raises
    ------
    BadInput, WorkFailed
        As `strike_profile`.
    """
    sp = strike_profile(symbol, at, db)
    p = sp.profile
    df = _by_strike(p.strikes, p.call_gex, p.put_gex, {f"gex_{b}": p.bucket_gex[b] for b in BUCKETS})
    df.attrs.update(_snapshot_attrs(p.snapshot))
    df.attrs.update({
        "symbol": sp.symbol, "timestamp": pd.Timestamp(sp.at), "stored_net_gex": sp.stored_net_gex,
        "data_source": sp.data_source, "chain_source": sp.chain_source, "run_id": sp.run_id,
        "conventions": sp.conventions.as_dict(), "notes": list(sp.notes),
        "curve": {"spot": p.curve_spot.tolist(), "net_gex": p.curve_net_gex.tolist()},
    })
    return df


def compute_gex_frame(chain_df: pd.DataFrame, spot: float, at, conventions: Conventions | None = None, *,
                      by_strike: bool = False) -> pd.Series | pd.DataFrame:
    """GEX of a chain you bring, at a spot and time, by the same engine as the stored history.

    Parameters
    ----------
    chain_df : pandas.DataFrame
        One row per contract. Columns (any case): expiration (date, or 'YYYY-MM-DD'), strike (> 0),
        right ('C'/'P' or 'call'/'put'), open_interest (>= 0), iv (decimal, > 0: 0.25 for 25%), and
        optionally gamma (the vendor's, used only with ``conventions.gamma_source='vendor'``).
    spot : float
        The underlying's price at `at`.
    at : datetime or str
        A tz-aware datetime, or 'YYYY-MM-DD HH:MM' in ET. Time to expiry runs from it to each expiry's
        close (that session's close; 16:00 ET beyond the known calendar).
    conventions : Conventions, optional
        r, q, DTE window, gamma source, flip search range, neutral band (default Conventions()).
    by_strike : bool, keyword-only
        Return the GEX by strike instead of the snapshot's figures.

    Returns
    -------
    pandas.Series or pandas.DataFrame
        The snapshot: spot, net_gex, call_gex, put_gex, flip_point, flip_found, call_wall, put_wall,
        atm_iv, put_call_ratio, zero_dte_gamma, gamma_expiring_this_week, gamma_expiring_next_week,
        max_pain, regime, mm_state, distance_to_flip_pct, gex_unit (dollars per 1% move; calls +,
        puts -). With `by_strike`: one row per strike with gamma, columns strike, call_gex, put_gex,
        net_gex, and the snapshot's figures in ``attrs``.

    Raises
    ------
    BadInput
        A missing column, a bad value (naming its column and row), a bad spot or time.
    """
    conv = conventions or Conventions()
    if not isinstance(conv, Conventions):
        raise BadInput(f"conventions must be a gexhistory Conventions, not {type(conv).__name__}")
    when = _parse_at(at, date_ok=False)
    try:
        s = float(spot)
    except (TypeError, ValueError):
        raise BadInput(f"spot must be a positive number, got {spot!r}") from None
    if not (np.isfinite(s) and s > 0):
        raise BadInput(f"spot must be a positive number, got {spot!r}")
    chain = _user_chain(chain_df, when)
    snap = compute_gex_one(chain, s, when, conv)
    figures = {**_snapshot_attrs(snap), "distance_to_flip_pct": snap.distance_to_flip_pct}
    if not by_strike:
        return pd.Series(figures, dtype=object)
    df = _by_strike(snap.strikes, snap.call_gex_by_strike, snap.put_gex_by_strike, {})
    df.attrs.update(figures)
    return df


def _snapshot_attrs(snap: GexSnapshot) -> dict:
    return {**{f: getattr(snap, f) for f in _SNAPSHOT_FIELDS}, "gex_unit": GEX_UNIT}


def _by_strike(strikes, call, put, extra: dict) -> pd.DataFrame:
    df = pd.DataFrame({"strike": strikes, "call_gex": call, "put_gex": put, "net_gex": call + put, **extra})
    return df[(df["call_gex"] != 0) | (df["put_gex"] != 0)].reset_index(drop=True)


def _parse_at(at, date_ok: bool = True):
    """A tz-aware datetime (converted to ET), or a date when `date_ok` and a date was given."""
    if isinstance(at, dt.datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise BadInput(f"at {at} has no time zone: give a tz-aware datetime or 'YYYY-MM-DD HH:MM' (ET)")
        return at.astimezone(ET)
    if isinstance(at, dt.date) and date_ok:
        return at
    text = str(at).strip()
    try:
        if date_ok and len(text) == 10:
            return dt.date.fromisoformat(text)
        if len(text) in (16, 19):
            return dt.datetime.fromisoformat(text).replace(tzinfo=ET)
    except ValueError:
        pass
    want = "'YYYY-MM-DD HH:MM' (ET), a date " if date_ok else "'YYYY-MM-DD HH:MM' (ET) "
    raise BadInput(f"at {at!r} is not {want}or a tz-aware datetime")


def _ts(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


def _recorded(cls, values: dict | None, run_id):
    """A Conventions or ModelParams from a run's record; WorkFailed when the record is another version's."""
    if not values:
        return cls()
    known = {f.name for f in dataclasses.fields(cls)}
    if set(values) - known:
        raise WorkFailed(f"run {run_id} recorded {cls.__name__} fields this version does not have "
                         f"({', '.join(sorted(set(values) - known))}): its snapshot cannot be rebuilt")
    return cls(**values)


def _modelled_chain(engine, symbol: str, day: dt.date, row: dict, params: dict) -> OptionChain:
    """The modelled chain of `day` as the run computed it: the chain model over the daily closes from
    warmup_start(day) (a chain depends on nothing earlier, nor on anything after its date)."""
    model = _recorded(ModelParams, params.get("chain_model"), row["run_id"])
    start = warmup_start(day)
    if is_synthetic_label(row["data_source"]):
        if params.get("seed") is None:
            raise WorkFailed(f"run {row['run_id']} recorded no seed: its synthetic prices cannot be regenerated")
        bars = SyntheticMarket(int(params["seed"])).daily_bars(symbol, start, day)
        dates, close = list(bars.dates), np.asarray(bars.close, dtype=float)
    else:
        stored = store_bars.read_bars(engine, symbol, "1d", row["data_source"], f"{start} 00:00:00", f"{day} 23:59:59")
        dates = [dt.date.fromisoformat(r[0][:10]) for r in stored]
        close = np.array([r[4] for r in stored], dtype=float)
    if not dates or dates[-1] != day:
        raise WorkFailed(f"the daily bars of {symbol} ({row['data_source']}) are not stored through {day}: "
                         "its modelled chain cannot be rebuilt")
    return chain_model(symbol, dates, close, None, model).chain_for(len(dates) - 1)


_COLUMNS = ("expiration", "strike", "right", "open_interest", "iv")


def _user_chain(chain_df, at: dt.datetime) -> OptionChain:
    """The caller's DataFrame as an OptionChain, every value checked (BadInput naming column and row)."""
    if not isinstance(chain_df, pd.DataFrame):
        raise BadInput(f"chain_df must be a pandas DataFrame, not {type(chain_df).__name__}")
    cols = {str(c).strip().lower(): c for c in chain_df.columns}
    missing = [c for c in _COLUMNS if c not in cols]
    if missing:
        raise BadInput(f"chain_df has no column {', '.join(missing)} (needs {', '.join(_COLUMNS)}; gamma optional)")
    if len(chain_df) == 0:
        raise BadInput("chain_df has no rows")
    col = {c: chain_df[cols[c]] for c in (*_COLUMNS, "gamma") if c in cols}
    problems: list[tuple[np.ndarray, str, str]] = []  # (rows, column, what is wrong), in the order checked

    def check(bad, name: str, what: str) -> None:
        problems.append((np.asarray(bad, dtype=bool), name, what))

    def numbers(name: str) -> np.ndarray:
        v = pd.to_numeric(col[name], errors="coerce").to_numpy(dtype=float)
        check(~np.isfinite(v) & col[name].notna().to_numpy(), name, "is not a number")
        return v

    expiry = pd.to_datetime(col["expiration"], errors="coerce").to_numpy().astype("datetime64[D]")
    check(np.isnat(expiry), "expiration", "is not a date")
    check(expiry < np.datetime64(at.date(), "D"), "expiration", f"is before {at.date()}, the day of `at`")
    strike, oi, iv = numbers("strike"), numbers("open_interest"), numbers("iv")
    check(~(strike > 0), "strike", "must be a positive number")
    check(~(oi >= 0), "open_interest", "must be a number >= 0")
    check(~(iv > 0), "iv", "must be a positive number")
    check(iv > IV_MAX, "iv", f"is above {IV_MAX:g}: IVs are decimals (0.25 for 25%)")
    right = col["right"].astype(str).str.strip().str.upper().to_numpy()
    check(~np.isin(right, ["C", "P", "CALL", "PUT"]), "right", "is not C, P, call or put")
    gamma = numbers("gamma") if "gamma" in col else None
    if gamma is not None:
        check(gamma < 0, "gamma", "must not be negative")
    bad = np.logical_or.reduce([rows for rows, _, _ in problems])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        _, name, what = next(p for p in problems if p[0][i])
        n_more = int(bad.sum()) - 1
        more = f" ({plural(n_more, 'more row')} {'is' if n_more == 1 else 'are'} malformed)" if n_more else ""
        value = col[name].iloc[i]
        value = value.item() if isinstance(value, np.generic) else value  # 25.0, not np.float64(25.0)
        raise BadInput(f"chain_df row {chain_df.index[i]!r} (position {i}): {name} {value!r} {what}{more}")
    return OptionChain("USER", at.date(), expiry, expiry_close_ts(expiry), strike, np.isin(right, ["C", "CALL"]), oi,
                       iv, "user", gamma=gamma)
