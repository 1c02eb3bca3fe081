"""Errors of the model layer. Each names the symbol, date, feature, model or version concerned."""

from __future__ import annotations

from kobe_pipelines.errors import KobeError, RecordError


class ModelError(KobeError):
    """Base class of model-layer errors."""


class FeatureValueError(RecordError):
    """A feature (or label) value is NaN or infinite where a finite number is required.

    `record` is "<symbol> <date>", `field` the feature column.
    """

    def __init__(self, record: str, field: str, value: object, where: str):
        super().__init__("feature row", record, field, f"is not a finite number ({where})", value)


class InsufficientHistoryError(ModelError, ValueError):
    """Too few dates or rows for a sequence window, a walk-forward split or a feature lookback."""


class RegistryError(ModelError):
    """A registry operation was refused or failed (unknown model or version, no production alias,
    nothing to roll back to). The registry is left as it was."""
