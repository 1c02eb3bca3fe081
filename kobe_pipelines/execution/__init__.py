"""execution domain package (no Dagster import)."""
