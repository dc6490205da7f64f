"""One SQLAlchemy Core schema for SQLite and PostgreSQL, with AlphaGEX table and column names.

Timestamps are 'YYYY-MM-DD HH:MM:SS' strings in America/New_York and dates 'YYYY-MM-DD', as the
AlphaGEX pages read them; string order is time order, so range queries use the indexes.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

TS = String(19)
DAY = String(10)


def _id() -> Column:
    return Column("id", Integer, primary_key=True, autoincrement=True)


def _provenance() -> list[Column]:
    # data_source: where prices came from (synthetic, polygon, csv:<file>);
    # chain_source: where the option chain came from (modelled, or the imported file's source).
    return [
        Column("data_source", String(64), nullable=False),
        Column("chain_source", String(64), nullable=False),
        Column("run_id", Integer),
    ]


gex_history = Table(
    "gex_history",
    metadata,
    _id(),
    Column("timestamp", TS, nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("net_gex", Float),
    Column("flip_point", Float),
    Column("call_wall", Float),
    Column("put_wall", Float),
    Column("spot_price", Float),
    Column("mm_state", String(16)),
    Column("regime", String(16)),
    Column("call_gex", Float),
    Column("put_gex", Float),
    Column("gex_unit", String(24)),
    Column("flip_found", Boolean),
    Column("timezone", String(32)),
    *_provenance(),
    UniqueConstraint("symbol", "timestamp", name="uq_gex_history_symbol_ts"),
)

gamma_history = Table(
    "gamma_history",
    metadata,
    _id(),
    Column("symbol", String(16), nullable=False),
    Column("timestamp", TS, nullable=False),
    Column("date", DAY, nullable=False),
    Column("time_of_day", String(8)),
    Column("spot_price", Float, nullable=False),
    Column("net_gex", Float),
    Column("flip_point", Float),
    Column("call_wall", Float),
    Column("put_wall", Float),
    Column("implied_volatility", Float),
    Column("put_call_ratio", Float),
    Column("distance_to_flip_pct", Float),
    Column("regime", String(16)),
    Column("zero_dte_gamma", Float),
    Column("gamma_expiring_this_week", Float),
    Column("gamma_expiring_next_week", Float),
    Column("max_pain", Float),
    Column("flip_found", Boolean),
    Column("timezone", String(32)),
    *_provenance(),
    UniqueConstraint("symbol", "timestamp", name="uq_gamma_history_symbol_ts"),
)

gamma_daily_summary = Table(
    "gamma_daily_summary",
    metadata,
    _id(),
    Column("symbol", String(16), nullable=False),
    Column("date", DAY, nullable=False),
    Column("open_gex", Float),
    Column("close_gex", Float),
    Column("high_gex", Float),
    Column("low_gex", Float),
    Column("gex_change", Float),
    Column("gex_change_pct", Float),
    Column("open_flip", Float),
    Column("close_flip", Float),
    Column("flip_change", Float),
    Column("flip_change_pct", Float),
    Column("open_price", Float),
    Column("close_price", Float),
    Column("price_change_pct", Float),
    Column("avg_iv", Float),
    Column("snapshots_count", Integer),
    Column("price_gex_corr_20d", Float),
    *_provenance(),
    UniqueConstraint("symbol", "date", name="uq_gamma_daily_summary_symbol_date"),
)

regime_signals = Table(
    "regime_signals",
    metadata,
    _id(),
    Column("symbol", String(16), nullable=False),
    Column("timestamp", TS, nullable=False),
    Column("spy_price", Float),
    Column("vix_current", Float),
    Column("vix_previous", Float),
    Column("vix_change_pct", Float),
    Column("vix_spike", Boolean),
    Column("vix_source", String(32)),
    Column("primary_regime_type", String(40), nullable=False),
    Column("secondary_regime_type", String(40)),
    Column("confidence_score", Float),
    Column("trade_direction", String(16)),
    Column("risk_level", String(16)),
    Column("description", Text),
    Column("detailed_explanation", Text),
    Column("psychology_trap", Text),
    Column("rsi_5m", Float),
    Column("rsi_15m", Float),
    Column("rsi_1h", Float),
    Column("rsi_4h", Float),
    Column("rsi_1d", Float),
    Column("rsi_score", Float),
    Column("rsi_aligned_overbought", Integer),
    Column("rsi_aligned_oversold", Integer),
    Column("rsi_coiling", Integer),
    Column("nearest_call_wall", Float),
    Column("call_wall_distance_pct", Float),
    Column("call_wall_strength", Float),
    Column("call_wall_dealer_position", String(16)),
    Column("nearest_put_wall", Float),
    Column("put_wall_distance_pct", Float),
    Column("put_wall_strength", Float),
    Column("put_wall_dealer_position", String(16)),
    Column("net_gamma", Float),
    Column("net_gamma_regime", String(16)),
    Column("zero_dte_gamma", Float),
    Column("gamma_expiring_this_week", Float),
    Column("gamma_expiring_next_week", Float),
    Column("gamma_persistence_ratio", Float),
    Column("liberation_setup_detected", Integer),
    Column("liberation_target_strike", Float),
    Column("liberation_expiry_date", DAY),
    Column("false_floor_detected", Integer),
    Column("false_floor_strike", Float),
    Column("false_floor_expiry_date", DAY),
    Column("monthly_magnet_above", Float),
    Column("monthly_magnet_above_strength", Float),
    Column("monthly_magnet_below", Float),
    Column("monthly_magnet_below_strength", Float),
    Column("path_of_least_resistance", String(16)),
    Column("polr_confidence", Float),
    Column("volume_ratio", Float),
    Column("target_price_near", Float),
    Column("target_price_far", Float),
    Column("target_timeline_days", Integer),
    Column("price_change_1d", Float),
    Column("price_change_5d", Float),
    Column("price_change_10d", Float),
    Column("signal_correct", Integer),
    Column("zero_gamma_level", Float),
    Column("volatility_regime", String(32)),  # AlphaGEX names such as EXPLOSIVE_VOLATILITY
    Column("at_flip_point", Integer),
    Column("created_at", TS),
    *_provenance(),
    UniqueConstraint("symbol", "timestamp", "primary_regime_type", name="uq_regime_signals_key"),
)

price_bars = Table(
    "price_bars",
    metadata,
    _id(),
    Column("symbol", String(16), nullable=False),
    Column("timeframe", String(8), nullable=False),  # '1d' or '1m'
    Column("timestamp", TS, nullable=False),  # bar start, ET
    Column("open", Float),
    Column("high", Float),
    Column("low", Float),
    Column("close", Float, nullable=False),
    Column("volume", Float),
    Column("vwap", Float),
    Column("trades", Integer),
    Column("close_only", Boolean),
    Column("data_source", String(64), nullable=False),
    UniqueConstraint("symbol", "timeframe", "timestamp", "data_source", name="uq_price_bars_key"),
)

backfill_runs = Table(
    "backfill_runs",
    metadata,
    _id(),
    Column("command", String(32), nullable=False),
    Column("symbols", Text, nullable=False),
    Column("start_date", DAY),
    Column("end_date", DAY),
    Column("data_source", String(64)),
    Column("parameters", Text),  # JSON: conventions (DTE window, r, q, time convention, model params)
    Column("versions", Text),  # JSON: package versions
    Column("counts", Text),  # JSON: inserted/skipped/replaced per table
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS),
    Column("status", String(16), nullable=False),  # running, ok, failed, interrupted
    Column("message", Text),
    # Who runs it: a 'running' row whose process is gone on this host was killed (see writes.start_run).
    Column("pid", Integer),
    Column("host", String(255)),
)

Index("ix_gex_history_ts", gex_history.c.timestamp)
Index("ix_gamma_history_symbol_date", gamma_history.c.symbol, gamma_history.c.date)
Index("ix_regime_signals_ts", regime_signals.c.timestamp)
Index("ix_regime_signals_type", regime_signals.c.primary_regime_type)

SNAPSHOT_TABLES = (gex_history, gamma_history)
SESSION_TABLES = (gex_history, gamma_history, gamma_daily_summary, regime_signals)

# Imported option chains (gexhistory import-chains): one header row per (underlying, as_of, chain_source) and its
# contracts, so a later backfill reuses the real chain instead of the modelled one.
option_chains = Table(
    "option_chains",
    metadata,
    _id(),
    Column("underlying", String(16), nullable=False),
    Column("as_of", DAY, nullable=False),  # the session whose GEX this chain's OI applies to
    Column("chain_source", String(64), nullable=False),
    Column("format", String(32), nullable=False),
    Column("file", Text, nullable=False),
    Column("file_spot", Float),  # the underlying price the file carries (or implies), if any
    Column("file_spot_kind", String(48)),  # which column or method gave file_spot
    Column("contracts", Integer, nullable=False),
    Column("notes", Text),  # JSON list: interpolated IVs, dropped contracts, merged roots ...
    Column("imported_at", TS, nullable=False),
    UniqueConstraint("underlying", "as_of", "chain_source", name="uq_option_chains_key"),
)

option_chain_contracts = Table(
    "option_chain_contracts",
    metadata,
    Column("underlying", String(16), primary_key=True),
    Column("as_of", DAY, primary_key=True),
    Column("chain_source", String(64), primary_key=True),
    Column("contract_count", Integer, nullable=False),
    # The chain's contracts, one Arrow IPC stream (store/packed.py: its columns, and why not one row each).
    Column("contracts", LargeBinary, nullable=False),
)
# PostgreSQL's column storage where its default (EXTENDED: pglz on every value over ~2 kB) costs more than
# it saves: packed streams are LZ4-compressed already from COMPRESS_FROM contracts, and pglz on the small
# ones tripled the insert time of a market-wide import (0.11 -> 0.45 s for 3,000 chains) to halve 23 MiB.
PG_STORAGE = {("option_chain_contracts", "contracts"): "EXTERNAL"}
