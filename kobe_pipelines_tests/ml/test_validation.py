from __future__ import annotations

import pandas as pd
import pytest

from kobe_pipelines.ml.errors import InsufficientHistoryError
from kobe_pipelines.ml.validation import holdout_split, walk_forward_splits

DAYS = pd.bdate_range("2024-01-01", periods=30)


def test_walk_forward_splits_when_horizon_3_embargo_2_then_gap_of_5_dates_before_each_block():
    splits = walk_forward_splits(DAYS, n_folds=2, test_size=5, horizon=3, embargo=2)
    # 30 dates, two blocks of 5: tests are indices 20-24 and 25-29. Gap = 3 (purge) + 2 (embargo):
    # fold 0 trains on indices 0-14, fold 1 on indices 0-19.
    assert [list(s.test) for s in splits] == [list(DAYS[20:25]), list(DAYS[25:30])]
    assert [list(s.train) for s in splits] == [list(DAYS[:15]), list(DAYS[:20])]


def test_walk_forward_splits_when_built_then_no_training_label_window_reaches_a_test_date():
    horizon = 4
    for split in walk_forward_splits(DAYS, n_folds=3, test_size=4, horizon=horizon):
        last_train = DAYS.get_loc(split.train[-1])
        first_test = DAYS.get_loc(split.test[0])
        # the label of the last training date ends at index last_train + horizon
        assert last_train + horizon < first_test
        assert set(split.train).isdisjoint(split.test)


def test_walk_forward_splits_when_embargo_omitted_then_it_equals_the_horizon():
    split = holdout_split(DAYS, 5, horizon=2)
    # test = indices 25-29, gap = 2 + 2, so training ends at index 20 (exclusive 21)
    assert split.train[-1] == DAYS[20]


def test_walk_forward_splits_when_too_few_dates_then_insufficient_history_error():
    with pytest.raises(InsufficientHistoryError, match="needs at least 41 dates"):
        walk_forward_splits(DAYS, n_folds=2, test_size=10, horizon=5, embargo=5, min_train=11)
