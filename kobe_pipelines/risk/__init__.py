"""risk domain package (no Dagster import)."""
