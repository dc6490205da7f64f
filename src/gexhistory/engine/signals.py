"""The thirteen psychology-trap patterns (docs/computation.md), in order, first match wins; NEUTRAL is not a signal.

Inputs are one session's computed values at its close snapshot (`SignalInputs`); `detect` returns the
matching pattern (or None) and `signal_row` the regime_signals columns, with texts written from the
values. The conditions are written once, over arrays (`pattern_hits` on `SignalColumns`: many sessions
at a time, as the backfill evaluates them); `conditions` and `detect` are its one-session view.
Nothing here is random and nothing is invented: a value that could not be computed is None and the
conditions that need it are false.

Pattern 3 compares like with like: the NET gamma that expires by this Friday against |net gamma|
("more than half of the dealers' net position expires this week"). Read literally with the gross
gamma expiring this week, the test holds whenever short-dated expiries carry most of the chain's
gamma, which in the daily/weekly-expiry era is nearly always (80% of the modelled SPY closes of
2016-2025 against 34% for the net reading, with the chain model of before the 2011-2022 calibration),
so it would shadow every later pattern.

Gamma thresholds. The pattern rules give them in SPY dollars (1e9, 5e8): figures from a feed in
which SPY's typical |net GEX| is a couple of billion. They are applied as multiples of a typical |GEX|:
threshold x scale, where scale = the symbol's typical |net GEX| (the median |close net GEX| of the
previous SCALE_WINDOW sessions, computed by the same engine) / GEX_REFERENCE. GEX_REFERENCE is the
median |GEX| of the SqueezeMetrics S&P 500 series over all the reference data held
(tests/data/spx_gex_2011_2022.csv, 2011-05..2022-12: $2.23B per 1% move; $2.10B over its 2011-2018
part, the value used until the calibration moved to 2011-2022), the real-world scale on which such
thresholds were written. It is the same span and the same median the chain model's level
(ModelParams.flow_scale) was calibrated to, so a modelled S&P 500 chain at the reference's typical
level gets a scale of 1 and uses the rules' dollars as written, as a real chain with a typical
$2.23B does; a symbol whose |GEX| is typically twice that needs twice the dollars.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, fields

import numpy as np

GEX_REFERENCE = 2.23e9  # median |GEX|, SqueezeMetrics SPX 2011-05..2022-12 (2.2336e9)
SCALE_WINDOW = 250
SQUEEZE_GAMMA = 0.0  # pattern 1: net gamma < 0
OPEX_GAMMA = 1e9  # pattern 3: |net gamma| > $1B
SHORT_GAMMA = 5e8  # pattern 13: net gamma < -$0.5B
FLIP_CRITICAL_PCT = 0.5
VIX_SPIKE_PCT = 20.0

BULLISH, BEARISH, NEUTRAL, VOLATILE = "BULLISH", "BEARISH", "NEUTRAL", "VOLATILE"

PATTERNS = (
    "GAMMA_SQUEEZE_CASCADE", "FLIP_POINT_CRITICAL", "POST_OPEX_REGIME_FLIP", "LIBERATION_TRADE",
    "FALSE_FLOOR", "ZERO_DTE_PIN", "DESTINATION_TRADE", "PIN_AT_CALL_WALL", "EXPLOSIVE_CONTINUATION",
    "PIN_AT_PUT_WALL", "CAPITULATION_CASCADE", "MEAN_REVERSION_ZONE", "SHORT_GAMMA_MOMENTUM",
)


@dataclass
class SignalInputs:
    symbol: str
    spot: float
    net_gamma: float
    flip: float | None
    rsi: dict[str, float | None]  # per timeframe, None where the bars do not allow it
    rsi_score: float | None
    overbought: int
    oversold: int
    coiling: bool
    volume_ratio: float | None
    vix: float | None
    vix_previous: float | None
    vix_source: str | None
    gamma_this_week: float  # gross (|calls| + |puts|) expiring by this Friday, as gamma_history stores it
    net_gamma_this_week: float  # signed: the part of net gamma that expires by this Friday
    gamma_next_week: float
    zero_dte_gamma: float  # at the last pre-close snapshot: at the close the day's expiry is gone
    pin_next_week: float  # next week's gamma at that same pre-close snapshot (pattern 6 compares them)
    call_wall: float | None  # nearest significant call strike above spot
    call_wall_gamma: float
    put_wall: float | None  # nearest significant put strike below spot
    put_wall_gamma: float
    call_wall_any: float | None  # nearest significant call strike on either side (pattern 9)
    put_wall_any: float | None  # nearest significant put strike on either side (pattern 11)
    call_soon_ratio: float  # share of the call wall's gamma expiring within 5 days
    call_first_expiry: dt.date | None
    call_first_dte: int | None
    put_soon_ratio: float
    put_next_ratio: float  # share of the put wall's gamma in 6-14 DTE
    put_first_expiry: dt.date | None
    put_first_dte: int | None
    magnet_above: float | None
    magnet_above_strength: float | None
    magnet_below: float | None
    magnet_below_strength: float | None
    magnet_expiry: dt.date | None
    scale: float = 1.0  # typical |GEX| / GEX_REFERENCE
    session_date: dt.date | None = None

    @property
    def vix_change_pct(self) -> float | None:
        if self.vix is None or not self.vix_previous:
            return None
        return (self.vix / self.vix_previous - 1.0) * 100.0

    @property
    def vix_spike(self) -> bool:
        c = self.vix_change_pct
        return c is not None and c > VIX_SPIKE_PCT

    @property
    def flip_distance_pct(self) -> float | None:
        return None if self.flip is None else abs(self.spot - self.flip) / self.spot * 100.0

    @property
    def call_distance_pct(self) -> float | None:
        return None if self.call_wall is None else (self.call_wall - self.spot) / self.spot * 100.0

    @property
    def put_distance_pct(self) -> float | None:
        return None if self.put_wall is None else (self.spot - self.put_wall) / self.spot * 100.0

    @property
    def through_call_pct(self) -> float | None:
        """How far price is above the nearest call wall (positive once through it)."""
        return None if self.call_wall_any is None else (self.spot - self.call_wall_any) / self.spot * 100.0

    @property
    def through_put_pct(self) -> float | None:
        return None if self.put_wall_any is None else (self.put_wall_any - self.spot) / self.spot * 100.0


def _lt(a, b) -> bool:
    return a is not None and b is not None and a < b


@dataclass
class SignalColumns:
    """What the pattern conditions read, for many sessions at once: per SignalInputs field an array
    with one value per session, NaN where SignalInputs has None (coiling: 1.0 / 0.0)."""

    spot: np.ndarray
    net_gamma: np.ndarray
    flip: np.ndarray
    rsi_score: np.ndarray
    overbought: np.ndarray
    oversold: np.ndarray
    coiling: np.ndarray
    volume_ratio: np.ndarray
    vix: np.ndarray
    vix_previous: np.ndarray
    net_gamma_this_week: np.ndarray
    zero_dte_gamma: np.ndarray
    pin_next_week: np.ndarray
    call_wall: np.ndarray
    put_wall: np.ndarray
    call_wall_any: np.ndarray
    put_wall_any: np.ndarray
    call_soon_ratio: np.ndarray
    put_soon_ratio: np.ndarray
    put_next_ratio: np.ndarray
    magnet_above_strength: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, xs: list[SignalInputs]) -> "SignalColumns":
        def column(name):
            return np.array([np.nan if getattr(x, name) is None else getattr(x, name) for x in xs], dtype=float)

        return cls(**{f.name: column(f.name) for f in fields(cls)})


def pattern_hits(c: SignalColumns) -> np.ndarray:
    """(13, sessions) bool: every pattern's condition, rows in PATTERNS order. A NaN input makes the
    comparisons that read it false, as a None input does for one session. The derived percentages are
    SignalInputs' properties, written with the same operations so they round the same."""
    score, ob, os_, vr, net = c.rsi_score, c.overbought, c.oversold, c.volume_ratio, c.net_gamma
    with np.errstate(invalid="ignore", divide="ignore"):
        vix_change = np.where(c.vix_previous != 0, (c.vix / c.vix_previous - 1.0) * 100.0, np.nan)
        flip_distance = np.abs(c.spot - c.flip) / c.spot * 100.0
        cd = (c.call_wall - c.spot) / c.spot * 100.0
        pd = (c.spot - c.put_wall) / c.spot * 100.0
        through_call = (c.spot - c.call_wall_any) / c.spot * 100.0
        through_put = (c.put_wall_any - c.spot) / c.spot * 100.0
    coiling = c.coiling != 0
    hits = (
        (net < SQUEEZE_GAMMA) & (vix_change > VIX_SPIKE_PCT) & (vr > 2.0) & (np.abs(score) < 50),
        flip_distance < FLIP_CRITICAL_PCT,
        (np.abs(c.net_gamma_this_week) > 0.5 * np.abs(net)) & (np.abs(net) > OPEX_GAMMA * c.scale),
        (0 < cd) & (cd < 3) & (c.call_soon_ratio > 0.7) & (ob >= 3) & coiling,
        (0 < pd) & (pd < 5) & (c.put_soon_ratio > 0.6) & (c.put_next_ratio < 0.3) & (os_ < 2),
        (c.zero_dte_gamma > 0.5 * c.pin_next_week) & coiling,
        (c.magnet_above_strength > 50) & (ob >= 3) & (cd < 3),
        (score > 50) & (ob >= 3) & (cd < 2) & (net < 0),
        (through_call > 0.5) & (ob >= 3) & (vr > 1.2) & (net < 0),
        (score < -50) & (os_ >= 3) & (pd < 2) & (net < 0),
        (through_put > 0.5) & (os_ >= 3) & (vr > 2.0),
        (np.abs(score) > 60) & (net > 0),
        (net < -SHORT_GAMMA * c.scale) & (np.abs(score) < 50),
    )
    return np.array(hits).reshape(len(PATTERNS), -1)


def first_two(hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per session the indexes into PATTERNS of the first and second true conditions (len(PATTERNS)
    where there is none)."""
    order = np.arange(len(PATTERNS))[:, None]
    first = np.where(hits, order, len(PATTERNS)).min(axis=0)
    second = np.where(hits & (order > first), order, len(PATTERNS)).min(axis=0)
    return first, second


def conditions(x: SignalInputs) -> dict[str, bool]:
    """Every pattern's condition, in PATTERNS order (the first true one is the signal)."""
    return {name: bool(ok) for name, ok in zip(PATTERNS, pattern_hits(SignalColumns.of([x]))[:, 0])}


def detect(x: SignalInputs) -> tuple[str | None, str | None]:
    """(primary, secondary): the first and second matching patterns in PATTERNS order."""
    hits = [name for name, ok in conditions(x).items() if ok]
    return (hits[0] if hits else None), (hits[1] if len(hits) > 1 else None)


def direction(x: SignalInputs, pattern: str) -> str:
    """BULLISH / BEARISH / NEUTRAL / VOLATILE; pins and regime changes are NEUTRAL or VOLATILE, scored
    by the outcomes' one rule (|5-session move| < 2%)."""
    score = x.rsi_score or 0.0
    fixed = {
        "FLIP_POINT_CRITICAL": VOLATILE, "POST_OPEX_REGIME_FLIP": VOLATILE, "LIBERATION_TRADE": BULLISH,
        "FALSE_FLOOR": BEARISH, "ZERO_DTE_PIN": VOLATILE, "DESTINATION_TRADE": BULLISH,
        "PIN_AT_CALL_WALL": NEUTRAL, "EXPLOSIVE_CONTINUATION": BULLISH, "PIN_AT_PUT_WALL": BULLISH,
        "CAPITULATION_CASCADE": VOLATILE,
    }
    if pattern in fixed:
        return fixed[pattern]
    if pattern == "GAMMA_SQUEEZE_CASCADE":
        return BULLISH if score > 0 else BEARISH if score < 0 else VOLATILE
    if pattern == "MEAN_REVERSION_ZONE":
        return BEARISH if score > 0 else BULLISH  # fade the extreme
    return BULLISH if score > 10 else BEARISH if score < -10 else VOLATILE  # SHORT_GAMMA_MOMENTUM


RISK = {
    "GAMMA_SQUEEZE_CASCADE": "extreme", "FLIP_POINT_CRITICAL": "extreme", "POST_OPEX_REGIME_FLIP": "high",
    "LIBERATION_TRADE": "medium", "FALSE_FLOOR": "high", "ZERO_DTE_PIN": "medium", "DESTINATION_TRADE": "medium",
    "PIN_AT_CALL_WALL": "high", "EXPLOSIVE_CONTINUATION": "medium", "PIN_AT_PUT_WALL": "medium",
    "CAPITULATION_CASCADE": "extreme", "MEAN_REVERSION_ZONE": "low",
}


def volatility_regime(x: SignalInputs) -> tuple[str, str]:
    """(regime, risk) from VIX (or its proxy) and the gamma sign, in AlphaGEX's vocabulary."""
    at_flip = _lt(x.flip_distance_pct, FLIP_CRITICAL_PCT)
    if x.net_gamma < 0:
        if x.vix_spike:
            return "EXPLOSIVE_VOLATILITY", "extreme"
        if at_flip:
            return "FLIP_POINT_CRITICAL", "extreme"
        return "NEGATIVE_GAMMA_RISK", "high"
    change = x.vix_change_pct
    if x.vix is not None and x.vix < 15 and change is not None and change < -5:
        return "COMPRESSION_PIN", "low"
    return "POSITIVE_GAMMA_STABLE", "medium"


def _b(v: float) -> str:
    """Dollars as $X.XB, signed."""
    return f"{'-' if v < 0 else ''}${abs(v) / 1e9:.2f}B"


def _p(v: float | None) -> str:
    return "n/a" if v is None else f"${v:,.2f}"


def _f(v: float | None, fmt: str = ".1f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def texts(x: SignalInputs, pattern: str) -> tuple[str, str, str]:
    """(description, detailed_explanation, psychology_trap) written from the session's values."""
    s, net = x.spot, x.net_gamma
    rsi_line = ", ".join(f"{tf} {_f(v, '.0f')}" for tf, v in x.rsi.items())
    common = (f"{x.symbol} {_p(s)}; net gamma {_b(net)}; RSI score {_f(x.rsi_score, '+.0f')} ({rsi_line}); "
              f"{x.overbought} timeframes overbought, {x.oversold} oversold; volume {_f(x.volume_ratio, '.2f')}x "
              f"its 20-day mean.")
    vix = f"VIX{' proxy' if x.vix_source == 'atm_iv_proxy' else ''} {_f(x.vix)} ({_f(x.vix_change_pct, '+.1f')}% on the day)"
    cd, pd = x.call_distance_pct, x.put_distance_pct
    if pattern == "GAMMA_SQUEEZE_CASCADE":
        d = f"{vix} with dealers short {_b(abs(net))} of gamma and volume {_f(x.volume_ratio, '.1f')}x: amplification"
        e = (f"{common} {vix}. Dealers short gamma must chase the move; the volatility spike forces re-hedging and "
             f"the RSI score {_f(x.rsi_score, '+.0f')} leaves room to run, so moves tend to extend for hours.")
        t = "Fading a move that looks too fast, while dealer hedging keeps feeding it."
    elif pattern == "FLIP_POINT_CRITICAL":
        d = f"Price {_p(s)} within {_f(x.flip_distance_pct, '.2f')}% of the zero-gamma level {_p(x.flip)}"
        e = (f"{common} The flip point {_p(x.flip)} is {_f(x.flip_distance_pct, '.2f')}% away: crossing it turns "
             f"dealer hedging from {'dampening to amplifying' if s >= (x.flip or s) else 'amplifying to dampening'}; "
             f"direction is open, size is not.")
        t = "Not seeing the level at all, and getting caught by the move when price crosses it."
    elif pattern == "POST_OPEX_REGIME_FLIP":
        share = abs(x.net_gamma_this_week) / abs(net) * 100 if net else float("inf")
        after = net - x.net_gamma_this_week
        d = (f"{_b(x.net_gamma_this_week)} of net gamma expires this week, {share:.0f}% of |net gamma| "
             f"{_b(abs(net))}")
        e = (f"{common} This week's expirations hold {_b(x.net_gamma_this_week)} of the net {_b(net)} "
             f"({'long' if net > 0 else 'short'} gamma; {_b(x.gamma_this_week)} gross). Once they expire the net "
             f"is about {_b(after)} ({'long' if after > 0 else 'short'} gamma): the market's character can change, "
             f"and what worked this week may not next week.")
        t = "Trading the old regime after the gamma that created it has expired."
    elif pattern == "LIBERATION_TRADE":
        d = (f"Call wall {_p(x.call_wall)} ({_f(cd, '.2f')}% above): {x.call_soon_ratio:.0%} of its gamma expires "
             f"by {x.call_first_expiry}")
        e = (f"{common} Price is pinned under {_p(x.call_wall)} with RSI coiling on {x.overbought} timeframes; "
             f"{x.call_soon_ratio:.0%} of the wall's gamma expires within {x.call_first_dte} days, after which "
             f"the lid comes off. Next monthly magnet above: {_p(x.magnet_above)}.")
        t = f"Shorting 'overbought' at {_p(x.call_wall)} without seeing that the wall expires in {x.call_first_dte} days."
    elif pattern == "FALSE_FLOOR":
        d = (f"Put wall {_p(x.put_wall)} ({_f(pd, '.2f')}% below) is {x.put_soon_ratio:.0%} temporary: expires by "
             f"{x.put_first_expiry}")
        e = (f"{common} The support at {_p(x.put_wall)} is {x.put_soon_ratio:.0%} gamma expiring within "
             f"{x.put_first_dte} days and only {x.put_next_ratio:.0%} in 6-14 days; RSI is not oversold "
             f"({x.oversold} timeframes), so the floor looks safe until it disappears.")
        t = f"Feeling safe above {_p(x.put_wall)} when most of that support expires within days."
    elif pattern == "ZERO_DTE_PIN":
        ratio = x.zero_dte_gamma / x.pin_next_week if x.pin_next_week else float("inf")
        d = f"0DTE gamma {_b(x.zero_dte_gamma)} is {ratio:.1f}x next week's: price pinned, ranges compressed"
        e = (f"{common} Same-day options held {_b(x.zero_dte_gamma)} of gamma late in the session against "
             f"{_b(x.pin_next_week)} expiring next week, with RSI coiling: the pin ends with the expiry and the "
             f"compression tends to resolve in the next sessions.")
        t = "Reading a dead market as a calm one, when the pin ends at the close."
    elif pattern == "DESTINATION_TRADE":
        d = (f"Monthly magnet {_p(x.magnet_above)} (strength {_f(x.magnet_above_strength, '.0f')}) pulls price "
             f"through the call wall {_p(x.call_wall)}")
        e = (f"{common} The {x.magnet_expiry} monthly expiry's largest gamma above spot sits at "
             f"{_p(x.magnet_above)} ({(x.magnet_above / s - 1) * 100 if x.magnet_above else 0:.1f}% away, strength "
             f"{_f(x.magnet_above_strength, '.0f')}/100); the call wall {_p(x.call_wall)} is only {_f(cd, '.2f')}% "
             f"above.")
        t = f"Shorting 'overbought' without seeing the {_p(x.magnet_above)} magnet pulling price."
    elif pattern == "PIN_AT_CALL_WALL":
        d = f"RSI score {_f(x.rsi_score, '+.0f')} at the call wall {_p(x.call_wall)} ({_f(cd, '.2f')}% above)"
        e = (f"{common} Dealers short {_b(abs(net))} of gamma buy into strength, but the call wall "
             f"{_p(x.call_wall)} holds {_b(x.call_wall_gamma)} of call gamma and acts as a magnet and a lid.")
        t = "The perfect 'overbought' short, while dealer buying holds price at the wall."
    elif pattern == "EXPLOSIVE_CONTINUATION":
        d = (f"Broke the call wall {_p(x.call_wall_any)} by {_f(x.through_call_pct, '.2f')}% on "
             f"{_f(x.volume_ratio, '.1f')}x volume")
        e = (f"{common} Price is {_f(x.through_call_pct, '.2f')}% through {_p(x.call_wall_any)} with dealers short "
             f"{_b(abs(net))} of gamma: their hedging chases the breakout.")
        t = "Shorting overbought into a breakout that dealer hedging is feeding."
    elif pattern == "PIN_AT_PUT_WALL":
        d = f"Oversold (score {_f(x.rsi_score, '+.0f')}) at the put wall {_p(x.put_wall)} ({_f(pd, '.2f')}% below)"
        e = (f"{common} The put wall {_p(x.put_wall)} holds {_b(abs(x.put_wall_gamma))} of put gamma: a trampoline "
             f"under an oversold market even with dealers short {_b(abs(net))}.")
        t = "Holding shorts for the breakdown and getting squeezed off the wall."
    elif pattern == "CAPITULATION_CASCADE":
        d = (f"Broke the put wall {_p(x.put_wall_any)} by {_f(x.through_put_pct, '.2f')}% on "
             f"{_f(x.volume_ratio, '.1f')}x volume")
        e = (f"{common} Support at {_p(x.put_wall_any)} gave way {_f(x.through_put_pct, '.2f')}% ago on heavy volume "
             f"with {x.oversold} timeframes oversold: either a cascade or a violent reversal.")
        t = "Both sides trapped: late shorts into a reversal, early buyers into a cascade."
    elif pattern == "MEAN_REVERSION_ZONE":
        side = "overbought" if (x.rsi_score or 0) > 0 else "oversold"
        d = f"Long gamma {_b(net)} with RSI score {_f(x.rsi_score, '+.0f')}: {side} extremes revert"
        e = (f"{common} Dealers long {_b(net)} of gamma sell rallies and buy dips, so a {side} reading of "
             f"{_f(x.rsi_score, '+.0f')} tends to mean-revert.")
        t = "Chasing the extreme in a market that dealers are dampening."
    else:  # SHORT_GAMMA_MOMENTUM
        bias = "upside" if (x.rsi_score or 0) > 10 else "downside" if (x.rsi_score or 0) < -10 else "no"
        d = f"Dealers short {_b(abs(net))} of gamma: amplification with {bias} bias"
        e = (f"{common} Net gamma {_b(net)} (the threshold here is {_b(-SHORT_GAMMA * x.scale)} for this symbol's "
             f"scale) and RSI {_f(x.rsi_score, '+.0f')} not yet extreme: dealer hedging follows the move.")
        t = "Fading 'overbought/oversold' while dealer hedging extends the move."
    return d, e.strip(), t


def targets(x: SignalInputs, pattern: str, trade_dir: str) -> tuple[float | None, float | None, int | None]:
    """(near, far, timeline in days): the walls and magnets the pattern points at."""
    if pattern in ("LIBERATION_TRADE", "DESTINATION_TRADE"):
        if pattern == "LIBERATION_TRADE":
            return x.call_wall, x.magnet_above, x.call_first_dte
        days = (x.magnet_expiry - x.session_date).days if x.magnet_expiry and x.session_date else None
        return x.call_wall, x.magnet_above, days
    if pattern == "FALSE_FLOOR":
        return x.put_wall, x.magnet_below, x.put_first_dte
    if pattern in ("PIN_AT_CALL_WALL",):
        return x.call_wall, x.call_wall, 1
    if pattern in ("PIN_AT_PUT_WALL",):
        return x.put_wall, x.call_wall, 5
    if pattern == "FLIP_POINT_CRITICAL":
        return x.flip, None, 1
    if trade_dir == BULLISH:
        return x.call_wall, x.magnet_above, 5
    if trade_dir == BEARISH:
        return x.put_wall, x.magnet_below, 5
    return x.put_wall, x.call_wall, 5


def path_of_least_resistance(x: SignalInputs) -> tuple[str, float | None]:
    """Compare the monthly magnets above and below: the stronger side by more than 1.5x wins."""
    a, b = x.magnet_above_strength or 0.0, x.magnet_below_strength or 0.0
    if a == 0 and b == 0:
        return "neutral", None
    if a > 1.5 * b:
        return "bullish", round(min(100.0, a / (b + 1.0) * 30.0), 2)
    if b > 1.5 * a:
        return "bearish", round(min(100.0, b / (a + 1.0) * 30.0), 2)
    return "neutral", 50.0


def _num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def signal_row(x: SignalInputs, detected: tuple[str | None, str | None] | None = None) -> dict | None:
    """The regime_signals columns of the session's signal (None on a NEUTRAL day). Outcome columns
    are left NULL: they are filled once the later sessions exist (engine/outcomes.py). `detected`:
    detect(x) when the caller already evaluated the conditions (pattern_hits over many sessions)."""
    primary, secondary = detected if detected is not None else detect(x)
    if primary is None:
        return None
    trade_dir = direction(x, primary)
    vol_regime, vol_risk = volatility_regime(x)
    risk = RISK.get(primary, vol_risk)  # SHORT_GAMMA_MOMENTUM takes the volatility regime's risk
    description, explanation, trap = texts(x, primary)
    near, far, days = targets(x, primary, trade_dir)
    polr, polr_conf = path_of_least_resistance(x)
    lib = x.call_distance_pct is not None and 0 < x.call_distance_pct < 3 and x.call_soon_ratio > 0.7
    ff = (x.put_distance_pct is not None and 0 < x.put_distance_pct < 5 and x.put_soon_ratio > 0.6
          and x.put_next_ratio < 0.3)
    net = x.net_gamma
    return {
        "symbol": x.symbol, "spy_price": x.spot,
        "vix_current": _num(x.vix), "vix_previous": _num(x.vix_previous), "vix_change_pct": _num(x.vix_change_pct),
        "vix_spike": x.vix_spike, "vix_source": x.vix_source if x.vix is not None else None,
        "primary_regime_type": primary, "secondary_regime_type": secondary,
        # The pattern's hit rate from the outcomes known at this close: filled in by the pipeline once
        # the history is stored (engine/confidence.py), not a fixed score of the pattern.
        "confidence_score": None, "trade_direction": trade_dir, "risk_level": risk,
        "description": description, "detailed_explanation": explanation, "psychology_trap": trap,
        **{f"rsi_{tf}": _num(x.rsi.get(tf)) for tf in ("5m", "15m", "1h", "4h", "1d")},
        "rsi_score": _num(x.rsi_score), "rsi_aligned_overbought": int(x.overbought),
        "rsi_aligned_oversold": int(x.oversold), "rsi_coiling": int(bool(x.coiling)),
        "nearest_call_wall": x.call_wall, "call_wall_distance_pct": _num(x.call_distance_pct),
        "call_wall_strength": abs(x.call_wall_gamma) if x.call_wall is not None else None,
        "call_wall_dealer_position": ("long_gamma" if x.call_wall_gamma >= 0 else "short_gamma") if x.call_wall else None,
        "nearest_put_wall": x.put_wall, "put_wall_distance_pct": _num(x.put_distance_pct),
        "put_wall_strength": abs(x.put_wall_gamma) if x.put_wall is not None else None,
        "put_wall_dealer_position": ("short_gamma" if x.put_wall_gamma < 0 else "long_gamma") if x.put_wall else None,
        "net_gamma": net, "net_gamma_regime": "short" if net < 0 else "long",
        "zero_dte_gamma": x.zero_dte_gamma, "gamma_expiring_this_week": x.gamma_this_week,
        "gamma_expiring_next_week": x.gamma_next_week,
        "gamma_persistence_ratio": None if x.call_wall is None else round(1.0 - x.call_soon_ratio, 6),
        "liberation_setup_detected": int(lib), "liberation_target_strike": x.call_wall if lib else None,
        "liberation_expiry_date": x.call_first_expiry.isoformat() if lib and x.call_first_expiry else None,
        "false_floor_detected": int(ff), "false_floor_strike": x.put_wall if ff else None,
        "false_floor_expiry_date": x.put_first_expiry.isoformat() if ff and x.put_first_expiry else None,
        "monthly_magnet_above": x.magnet_above, "monthly_magnet_above_strength": _num(x.magnet_above_strength),
        "monthly_magnet_below": x.magnet_below, "monthly_magnet_below_strength": _num(x.magnet_below_strength),
        "path_of_least_resistance": polr, "polr_confidence": polr_conf,
        "volume_ratio": _num(x.volume_ratio), "target_price_near": near, "target_price_far": far,
        "target_timeline_days": days,
        "price_change_1d": None, "price_change_5d": None, "price_change_10d": None, "signal_correct": None,
        "zero_gamma_level": x.flip, "volatility_regime": vol_regime,
        "at_flip_point": int(_lt(x.flip_distance_pct, FLIP_CRITICAL_PCT)),
    }
