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
    """Everything that changes a GEX number; recorded with every run.

    Attributes
    ----------
    r, q : float
        Risk-free rate and dividend yield (annual, continuous).
    dte_window : int
        Contracts expiring within this many calendar days count.
    time_convention : str
        How time to expiry is measured (calendar seconds to the expiry session's close / 365 days).
    gamma_source : str
        "black_scholes", or "vendor" to use a chain file's own gamma.
    flip_search : float
        The flip point is searched within +-this fraction of spot.
    neutral_band : float
        |net| below this fraction of gross GEX is NEUTRAL.
    """

    r: float = 0.04
    q: float = 0.013
    # Contracts expiring within this many calendar days count. The published GEX (SqueezeMetrics) counts
    # every SPX expiry; 120 days takes in the next four monthlies and the nearest quarterly, where nearly
    # all the gamma near spot sits (a contract's gamma falls as 1/sqrt(T)), and it is what the modelled
    # chain holds (ModelParams.dte_window): one window for modelled and imported chains alike.
    dte_window: int = 120
    time_convention: str = "calendar_seconds_to_expiry_close_over_365d"
    gamma_source: str = "black_scholes"  # or 'vendor' to use a file's own gamma
    flip_search: float = FLIP_SEARCH
    neutral_band: float = NEUTRAL_BAND

    def as_dict(self) -> dict:
        """The conventions as recorded in backfill_runs.parameters."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class ModelParams:
    """Free parameters of the chain model; recorded with every run (backfill_runs.parameters).

    The fourteen marked [fitted] were calibrated by benchmarks/calibrate_chain_model.py on the
    reference GEX series (SqueezeMetrics, SPX) from 2011-05 to chain_model.CALIBRATED_UNTIL
    (2022-12-31; logs: benchmarks/results/calibration_2011_2022.log for the two search stages,
    calibration_2011_2022_edges.log for stage 3, strikes_added_within); flow_scale [level] was then
    set from the same sessions. benchmarks/crossvalidate_chain_model.py refits them with two years held out
    at a time and scores the held-out years (benchmarks/results/crossvalidation.log). The others are
    set from market facts, not fitted. The expiry calendar is not a parameter but a market fact, in
    chain_model.py: among its eras, standard monthlies expiring before 2015-02-20 live to the Saturday
    after the third Friday (OCC's expiration date until it moved standard expirations to the Friday
    with the February 2015 expiry), so they still count at that Friday's close. What each fitted value
    says about dealer positioning, and why it is plausible (the era each one belongs to is in
    chain_model.py's module docstring):
    """

    step_fraction: float = 0.0085  # strike step ~0.85% of spot: SPX 25-pt at 2000-3000, SPY $1-2.5
    # [fitted] 1.2% of OI closes each session (an e-folding of ~83 sessions): index option positions
    # are held for weeks to months (SPX OI, 15-21 million contracts in 2013-2018 per Cboe, is ~15
    # sessions of volume); OI therefore remembers where the price was while each expiry was listed.
    oi_turnover: float = 0.012
    # [fitted] option volume ~ (realised vol / 18%) ** 0.83: about proportional to turbulence.
    activity_elasticity: float = 0.8295
    # [fitted] new contracts spread over the listed expiries with an e-folding of ~80 days of DTE
    # until the product had mid-week expiries (SPX: March 2016), ~51 days since: the share of
    # short-dated flow grew once there were three, then five expiries a week.
    dte_decay_days: float = 80.31
    dte_decay_days_midweek: float = 50.5319
    # [fitted] a standard monthly (third Friday, where SPX's institutional hedges and overwrites sit)
    # draws 4.4 times a weekly's share of the flow; quarterlies 2.6 and dailies 0.7 (KIND_WEIGHT).
    monthly_weight: float = 4.3548
    # [fitted] dealer-facing put flow per call contract, 0.81 in a calm market (realised vol at the
    # long-run 18%) and rising with volatility as (rv / 18%) ** 0.17 (0.91 at 36%): customers buy
    # more protection in turbulent markets. Gross SPX put/call volume is ~1.5-2, but customers also
    # sell puts (put-writes, collars' short legs), so the net that dealers are short is smaller.
    put_call_volume: float = 0.8058
    put_call_vol_elasticity: float = 0.1663
    # [fitted] calls are written ~1.07 sigma*sqrt(T) above spot (overwriting), puts bought ~2.12
    # below (tail protection), over ~0.67 and ~0.71 sigma: OI builds where the price traded.
    call_center_sd: float = 1.0732
    put_center_sd: float = -2.1206
    call_width_sd: float = 0.6667
    put_width_sd: float = 0.7065
    round_strike_boost: float = 1.6  # multiples of twice the step (SPX 50s, SPY 5s) draw 1.6x the OI
    # [fitted] ATM implied vol = 1.35 x 20-session realised vol: index implied vol usually exceeds
    # realised by a third to a half (the variance risk premium), more after a quiet month.
    iv_premium: float = 1.3453
    iv_long_run: float = 0.18  # long-run S&P implied vol level the term structure reverts to
    iv_term_days: float = 60.0  # half-way to the long-run level by ~40 days
    # [fitted] IV rises by 33% of ATM vol per standardised unit of moneyness below spot (the steep
    # S&P put skew), plus a small smile curvature.
    skew_slope: float = -0.3334
    skew_curve: float = 0.02
    # [level] every product's contract count (chain_model.PRODUCT_CONTRACTS, an order of magnitude
    # of its volume) is multiplied by this, set so that the modelled SPX GEX has the reference's
    # median |GEX| over 2011-2022. GEX is proportional to OI, so it moves no rank and no sign; see
    # benchmarks/results/LEVEL.md for why this is a scale and not a unit convention.
    flow_scale: float = 0.06
    # The chain holds expiries up to 120 calendar days, the window the GEX counts (Conventions.dte_window).
    # The published GEX counts every expiry; 120 came from an in-sample scan (60 before), and at the
    # same parameters it raised 2011-2022's sign agreement from 0.942 to 0.950 and negative precision
    # from 0.67 to 0.71 (benchmarks/calibrate_chain_model.py).
    dte_window: int = 120
    # [fitted, stage 3] An expiry's strike grid is drawn at listing (+-50% of the listing price,
    # chain_model); Cboe adds strikes past its highest (lowest) one as the index comes near it ("new
    # series are generally added when the underlying trades through the highest or lowest strike price
    # available", its index option specifications; in practice they are listed ahead of the index).
    # From the first close within this distance (in log) of an edge, or past it, the new contracts past
    # that edge land on such added strikes, which the modelled grid does not hold: they are left out of
    # the chain instead of being piled on the edge strikes (before that, flow beyond the edge goes to the
    # farthest listed strike). Negative: never. 0.12 (about 12%) was chosen from 0-0.15 after the search
    # stages, with the other values fixed (stage 3 of benchmarks/calibrate_chain_model.py): in sample it
    # raised 2011-2022's Spearman from 0.889 to 0.897 and 2021's from 0.680 to 0.738; out of fold, with
    # each fold choosing its own, the pooled Spearman from 0.864 to 0.874 at the same sign agreement.
    strikes_added_within: float = 0.12

    def as_dict(self) -> dict:
        return asdict(self)
