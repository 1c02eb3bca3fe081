"""ml domain package (no Dagster import)."""
