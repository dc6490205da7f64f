"""The guide's entry point: `python backfill_historical_data.py --days 365 [--symbol QQQ] [--force]`."""

from gexhistory.cli import backfill_script_main

if __name__ == "__main__":
    backfill_script_main()
