"""The read-only pages and JSON API of `gexhistory serve`, reading through store/ queries."""
