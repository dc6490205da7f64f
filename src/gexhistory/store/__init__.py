"""Schema, connections, writes and queries: the only package that speaks SQL."""
