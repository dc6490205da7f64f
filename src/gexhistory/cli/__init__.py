"""The `gexhistory` command: parsing arguments and printing, each command a thin call into pipeline/."""

from gexhistory.cli.main import backfill_script_main, main

__all__ = ["main", "backfill_script_main"]
