"""strategies domain package (no Dagster import)."""
