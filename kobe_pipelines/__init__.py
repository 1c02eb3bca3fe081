"""KOBE pipelines: daily-bar US-equities data lake, models and trading loop.

Domain packages (`data`, `lake`, `risk`, `execution`, `ml`, `alerts`, `strategies`) import no
Dagster; the orchestration layer lives in `kobe_pipelines.defs`.
"""

__version__ = "0.1.0"
