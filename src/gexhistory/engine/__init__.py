"""Pure computation, no I/O: greeks, chain model, exposure, flip, walls, regimes."""
