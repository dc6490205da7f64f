"""The option chain record every chain source (modelled or imported) yields."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np


@dataclass
class OptionChain:
    """One underlying's listed contracts as known on `as_of` (OI published that morning).

    Arrays are per contract. `expiry_close` is the expiry session's close in POSIX seconds, so time to
    expiry is measured to the close in calendar time. `gamma` is the vendor's value when a file
    supplied one (used only when asked: the engine recomputes gamma by default).
    """

    underlying: str
    as_of: dt.date
    expiry: np.ndarray  # datetime64[D]
    expiry_close: np.ndarray  # float POSIX seconds
    strike: np.ndarray
    is_call: np.ndarray  # bool
    open_interest: np.ndarray
    iv: np.ndarray
    source: str  # 'modelled' or the imported file's source label
    gamma: np.ndarray | None = None
    multiplier: float = 100.0

    def __len__(self) -> int:
        return int(self.strike.size)

    def take(self, keep: np.ndarray) -> "OptionChain":
        """The contracts where `keep` (a boolean mask or indices), as a chain of their own."""
        return OptionChain(self.underlying, self.as_of, self.expiry[keep], self.expiry_close[keep], self.strike[keep],
                           self.is_call[keep], self.open_interest[keep], self.iv[keep], self.source,
                           None if self.gamma is None else self.gamma[keep], self.multiplier)
