"""The guide's database module: `python -c "from config_and_database import init_database; init_database()"`."""

from gexhistory.config import DEFAULT_DB_FILE, database_url
from gexhistory.store.db import init_schema, open_engine

DB_PATH = DEFAULT_DB_FILE


def init_database(db: str | None = None) -> list[str]:
    """Create or migrate every gexhistory table in --db / DATABASE_URL / DATABASE_PATH / ./gex_copilot.db."""
    created = init_schema(open_engine(db))
    print(f"database ready: {database_url(db)}")
    return created
