"""alerts domain package (no Dagster import)."""
