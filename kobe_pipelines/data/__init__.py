"""data domain package (no Dagster import)."""
