"""Quarry's benchmark suite: ingest, density and queries, side by side with DuckDB and chDB."""
