"""The parameters every GEX number depends on: the exposure conventions and the chain model's.

Both are recorded with every run (backfill_runs.parameters). They live apart from the numpy code
of engine/exposure.py and engine/chain_model.py, which re-export them under their old names, so
that a run with nothing to compute (a no-op rerun) can record them without importing numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

FLIP_SEARCH = 0.20  # flip searched within +-20% of spot
NEUTRAL_BAND = 0.05  # |net| below 5% of gross (|call| + |put|) GEX is NEUTRAL


@dataclass
class Conventions:
    """Everything that changes a GEX number; recorded with every run."""

    r: float = 0.04
    q: float = 0.013
    dte_window: int = 60  # contracts expiring within this many calendar days count
    time_convention: str = "calendar_seconds_to_expiry_close_over_365d"
    gamma_source: str = "black_scholes"  # or 'vendor' to use a file's own gamma
    flip_search: float = FLIP_SEARCH
    neutral_band: float = NEUTRAL_BAND

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ModelParams:
    """Free parameters of the chain model; recorded with every run (backfill_runs.parameters).

    The ten marked [fitted] were calibrated by benchmarks/calibrate_chain_model.py on the reference
    GEX series (SqueezeMetrics, SPX) from 2011-05 to chain_model.CALIBRATED_UNTIL only; 2015-2018
    were never seen by the search (logs: benchmarks/results/calibration_stage*.log). `gexhistory
    validate` reports the fit on those held-out years. The others are set from market facts, not fitted.
    What each fitted value says about dealer positioning, and why it is plausible:
    """

    step_fraction: float = 0.0085  # strike step ~0.85% of spot: SPX 25-pt at 2000-3000, SPY $1-2.5
    # [fitted] 3.4% of OI closes each session: positions are mostly held for weeks (index option OI
    # turns over slowly); OI therefore remembers where the price was while each expiry was listed.
    oi_turnover: float = 0.0336
    # [fitted] option volume ~ (realised vol / 18%) ** 0.37: more contracts trade in turbulent
    # markets, less than proportionally (hedges are rolled, not multiplied).
    activity_elasticity: float = 0.3656
    # [fitted] new volume spreads over expiries with an e-folding of ~100 days, weighted by kind:
    # monthlies and quarterlies (institutional hedges) hold most OI, not just the front weeklies.
    dte_decay_days: float = 101.91
    dte_decay_days_midweek: float = 101.91
    monthly_weight: float = 2.2
    # [fitted] dealer-facing put flow per call contract. Gross SPX put/call volume is ~1.5-2, but
    # customers also sell puts (put-writes, collars' short legs): the net that dealers are short is
    # smaller, about 0.8 of the calls customers overwrite.
    put_call_volume: float = 0.8183
    put_call_vol_elasticity: float = 0.0
    # [fitted] calls are written ~0.67 sigma*sqrt(T) above spot (overwriting), puts bought ~0.5
    # below (protection), both spread widely (1.5-1.6 sigma): OI builds wherever price traded.
    call_center_sd: float = 0.6718
    put_center_sd: float = -0.512
    call_width_sd: float = 1.5
    put_width_sd: float = 1.6182
    round_strike_boost: float = 1.6  # multiples of twice the step (SPX 50s, SPY 5s) draw 1.6x the OI
    # [fitted] ATM implied vol = 1.39 x 20-session realised vol: index implied vol usually exceeds
    # realised by about a third (the variance risk premium), more after a quiet month.
    iv_premium: float = 1.3929
    iv_long_run: float = 0.18  # long-run S&P implied vol level the term structure reverts to
    iv_term_days: float = 60.0  # half-way to the long-run level by ~40 days
    # [fitted] IV falls by 5.7% of ATM vol per standardised unit of moneyness (put skew), plus a
    # small smile curvature; steeper skews did not fit the in-sample years better.
    skew_slope: float = -0.0572
    skew_curve: float = 0.02
    flow_scale: float = 1.0
    dte_window: int = 60  # the chain holds expiries up to 60 calendar days (as Conventions.dte_window)

    def as_dict(self) -> dict:
        return asdict(self)
