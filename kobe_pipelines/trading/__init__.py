"""The trading run: domain glue from signals to orders (no Dagster)."""
