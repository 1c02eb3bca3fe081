from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.ml.ensemble import EnsembleSpec, blend, fit_weights, score_frame
from kobe_pipelines.ml.errors import FeatureValueError
from kobe_pipelines.ml.tabular import linear_model, LinearConfig

DAYS = pd.bdate_range("2024-01-01", periods=2)


def _validation() -> pd.DataFrame:
    # two dates, four symbols, labels increasing with the symbol index
    return pd.DataFrame({"date": np.repeat(DAYS, 4), "label": [0.01, 0.02, 0.03, 0.04] * 2})


def _spec(**over) -> EnsembleSpec:
    base = dict(members=("a", "b"), weights={"a": 0.75, "b": 0.25}, centers={"a": 1.0, "b": 0.0},
                scales={"a": 2.0, "b": 0.5}, validation_rank_ic={"a": 0.3, "b": 0.1}, fallback_equal_weights=False,
                feature_names=("x",), window=1, horizon=5)
    return EnsembleSpec(**{**base, **over})


def test_fit_weights_when_rank_ics_are_1_half_and_negative_then_weights_two_thirds_one_third_zero():
    # a ranks perfectly on both dates: rank IC 1. b swaps the top two on date 1 (ranks 1,2,4,3 vs 1,2,3,4):
    # Spearman 1 - 6 * (0+0+1+1) / (4 * 15) = 0.8, and is perfect on date 2: mean 0.9.
    # c ranks backwards (-1) and gets 0. Weights: 1 / 1.9 and 0.9 / 1.9.
    preds = {"a": np.array([1, 2, 3, 4, 1, 2, 3, 4.0]), "b": np.array([1, 2, 4, 3, 1, 2, 3, 4.0]),
             "c": np.array([4, 3, 2, 1, 4, 3, 2, 1.0])}
    spec = fit_weights(_validation(), preds, label="label", feature_names=("x",), window=1, horizon=5)
    assert spec.validation_rank_ic == pytest.approx({"a": 1.0, "b": 0.9, "c": -1.0})
    assert spec.weights == pytest.approx({"a": 1 / 1.9, "b": 0.9 / 1.9, "c": 0.0})
    assert spec.centers["a"] == pytest.approx(2.5) and spec.scales["a"] == pytest.approx(np.std([1, 2, 3, 4]))
    assert not spec.fallback_equal_weights


def test_fit_weights_when_every_member_ranks_backwards_then_equal_weights_and_fallback_flag():
    preds = {"a": np.array([4, 3, 2, 1, 4, 3, 2, 1.0]), "b": np.array([4, 3, 2, 1, 4, 3, 2, 1.0])}
    spec = fit_weights(_validation(), preds, label="label", feature_names=("x",), window=1, horizon=5)
    assert spec.weights == {"a": 0.5, "b": 0.5} and spec.fallback_equal_weights


def test_blend_when_spec_known_then_weighted_standardised_sum():
    # a: (3 - 1) / 2 = 1 -> 0.75 * 1; b: (1 - 0) / 0.5 = 2 -> 0.25 * 2; total 1.25
    assert blend(_spec(), {"a": np.array([3.0]), "b": np.array([1.0])}) == pytest.approx([1.25])


def test_spec_when_round_tripped_through_json_then_equal():
    spec = _spec()
    assert EnsembleSpec.from_json(spec.to_json()) == spec


def test_score_frame_when_a_feature_is_nan_then_error_names_symbol_date_and_feature():
    model = linear_model(LinearConfig(), ("x",)).fit(pd.DataFrame({"x": [0.0, 1.0, 2.0]}), np.array([0.0, 1.0, 2.0]))
    spec = _spec(members=("a",), weights={"a": 1.0}, centers={"a": 0.0}, scales={"a": 1.0})
    frame = pd.DataFrame({"symbol": ["AAA", "BBB"], "date": DAYS, "x": [1.0, np.nan]})
    with pytest.raises(FeatureValueError, match=r"BBB 2024-01-02: field 'x'"):
        score_frame(spec, {"a": model}, frame)
