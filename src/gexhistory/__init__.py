"""gexhistory: years of gamma-exposure history on day one."""

__version__ = "0.1.0"
