"""Where bars and chains come from. Every source yields the records of `sources.base`."""
