"""lake domain package (no Dagster import)."""
