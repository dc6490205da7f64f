"""gexhistory: years of gamma-exposure (GEX) history on day one.

``import gexhistory as gx`` gives the Python API (:mod:`gexhistory.api`): ``gx.backfill``,
``gx.import_chains``, ``gx.import_open_interest``, ``gx.history``, ``gx.daily``, ``gx.signals``, ``gx.symbols``, ``gx.profile``,
``gx.compute_gex``, ``gx.export``, the result and option classes, and the exception family of
:mod:`gexhistory.errors`.

Importing the package is cheap: every ``gexhistory`` command runs it, and a rerun with nothing to do
must not pay for pandas, numpy or SQLAlchemy. The public names are loaded on first use (PEP 562):
the exceptions from ``gexhistory.errors`` alone, everything else with ``gexhistory.api``.
"""

from importlib import import_module as _import_module

from gexhistory.version import __version__

_ERRORS = ("GexHistoryError", "BadInput", "BadFile", "BadDatabase", "WorkFailed", "ProviderError",
           "DatabaseError", "WorkerDied")
_API = ("backfill", "import_chains", "import_open_interest", "history", "daily", "signals", "symbols", "profile", "compute_gex", "export")
# Where each class the API takes or returns is defined; gexhistory.api imports them all.
_CLASSES = {"BackfillOptions": "gexhistory.pipeline.runs", "BackfillResult": "gexhistory.pipeline.runs",
            "ImportResult": "gexhistory.pipeline.import_chains", "ExportResult": "gexhistory.pipeline.export",
            "Conventions": "gexhistory.engine.params"}
_HOME = {**{n: "gexhistory.errors" for n in _ERRORS}, **{n: "gexhistory.api" for n in _API}, **_CLASSES}

__all__ = ["__version__", *_API, *_CLASSES, *_ERRORS]


def __getattr__(name: str):
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'gexhistory' has no attribute {name!r}")
    # lazy: the API's modules import pandas and SQLAlchemy; only a caller who asks for them pays
    value = getattr(_import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | {n for n in globals() if n.startswith("__")})
