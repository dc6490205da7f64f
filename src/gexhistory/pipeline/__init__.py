"""The only modules that join sources, engine and store: backfill, chain import, snapshot, validate,
export, health, and the executor that runs their tasks in parallel."""
