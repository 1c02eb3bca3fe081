"""Walk-forward splits over DATES with a purge and an embargo.

A label at date index i is the return from i to i + h (h = label horizon, in dates). A training
date i therefore "sees" prices up to index i + h, and must not see any test date:

- purge: the last `horizon` dates before a test block are dropped from training, so every
  training label window ends before the block starts (max train index + h < block start);
- embargo: a further `embargo` dates (default: the horizon) are dropped before that, a margin
  for serial dependence between the last training labels and the first test features. Training
  dates never follow their test block in a walk-forward, so the post-test embargo of the k-fold
  setting has nothing to remove here.

Test blocks are consecutive, non-overlapping, and together cover the last
`n_folds * test_size` dates; training is expanding (all earlier dates minus the gap).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from kobe_pipelines.ml.errors import InsufficientHistoryError


@dataclass(frozen=True, eq=False)
class Split:
    fold: int
    train: pd.DatetimeIndex
    test: pd.DatetimeIndex


def gap_dates(horizon: int, embargo: int | None) -> int:
    """Dates removed between the last training date and the first test date."""
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 date (got {horizon})")
    embargo = horizon if embargo is None else embargo
    if embargo < 0:
        raise ValueError(f"embargo must be >= 0 dates (got {embargo})")
    return horizon + embargo


def holdout_split(dates: pd.DatetimeIndex, size: int, *, horizon: int, embargo: int | None = None,
                  min_train: int = 1) -> Split:
    """The last `size` dates as the test block, everything before the purge/embargo gap as training."""
    return walk_forward_splits(dates, n_folds=1, test_size=size, horizon=horizon, embargo=embargo, min_train=min_train)[0]


def walk_forward_splits(dates: pd.DatetimeIndex, *, n_folds: int, test_size: int, horizon: int,
                        embargo: int | None = None, min_train: int = 1) -> list[Split]:
    """`n_folds` expanding-window splits, oldest test block first (see the module docstring)."""
    if n_folds < 1 or test_size < 1:
        raise ValueError(f"n_folds and test_size must be >= 1 (got {n_folds}, {test_size})")
    days = pd.DatetimeIndex(sorted(pd.DatetimeIndex(dates).unique()))
    gap = gap_dates(horizon, embargo)
    first_test = len(days) - n_folds * test_size
    if first_test - gap < min_train:
        raise InsufficientHistoryError(
            f"walk-forward needs at least {min_train + gap + n_folds * test_size} dates "
            f"({min_train} training + {gap} purge/embargo + {n_folds} x {test_size} test); got {len(days)}"
        )
    splits = []
    for fold in range(n_folds):
        start = first_test + fold * test_size
        splits.append(Split(fold, days[: start - gap], days[start : start + test_size]))
    return splits
