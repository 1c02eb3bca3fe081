from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.ml.errors import FeatureValueError, InsufficientHistoryError
from kobe_pipelines.ml.features import features_from_lake
from kobe_pipelines.ml.metrics import compare_to_oracle, signal_metrics
from kobe_pipelines.ml.training import score_latest, train_from_lake, train_on_features

from .conftest import MARKET_CONFIG, SMALL_CONFIG, freeze_sim, oracle_frame

# Stated criteria of the signal tests (see the closing notes of the models and backtest issues):
ORACLE_SHARE = 0.6  # out-of-sample ensemble rank IC >= 60% of the oracle's on the same rows
ORACLE_SE_ABOVE = 2.0  # and not above the oracle's by more than 2 standard errors (that would be a leak)
MIN_T = 3.0  # and its t statistic (block standard error, `metrics`) above 3
NULL_SE = 2.0  # with the component off: |mean rank IC| < 2 standard errors


@pytest.mark.slow
def test_train_when_market_has_planted_mean_reversion_then_oos_ic_near_the_exact_oracle_and_not_above_it(signal_result, signal_lake):
    oos = signal_result.oos.rename(columns={"ensemble": "ens"})
    judged = oracle_frame(signal_lake.sim, oos)
    assert len(judged) == len(oos)  # the oracle scores every out-of-sample row
    ours = signal_metrics(oos, 5, score="ens")
    versus = compare_to_oracle(judged, 5, score="ens")
    assert ours.n_dates == 3 * 63
    assert ours.rank_ic_t > MIN_T, ours
    assert versus.judge(ORACLE_SHARE, ORACLE_SE_ABOVE) is None, versus
    assert signal_result.metrics["oos_ensemble_rank_ic"] == pytest.approx(ours.rank_ic)


@pytest.mark.slow
def test_train_when_a_modest_leak_of_the_label_is_added_then_the_oracle_yardstick_flags_it(signal_result, signal_lake):
    """The upper bound bites: the ensemble plus 10 % of the label (both standardised per date) reaches a
    rank IC more than two standard errors above the exact expectation's, which only a look at the future
    can do (5 % stays within the noise of this 189-date window: +1.4 standard errors). The old yardstick
    (at least 60 % of the 1-session planted signal, no upper bound) passed it."""
    oos = oracle_frame(signal_lake.sim, signal_result.oos)
    by_date = oos.groupby("date")
    z = {c: (oos[c] - by_date[c].transform("mean")) / by_date[c].transform("std") for c in ("ensemble", "label")}
    oos["leaky"] = z["ensemble"] + 0.10 * z["label"]
    versus = compare_to_oracle(oos, 5, score="leaky")
    assert versus.difference > ORACLE_SE_ABOVE * versus.difference_se, versus
    assert "leak" in versus.judge(ORACLE_SHARE, ORACLE_SE_ABOVE)
    planted = oos.merge(signal_lake.sim.planted_signal(oos["date"].min(), oos["date"].max()), on=["symbol", "date"])
    assert signal_metrics(planted, 5, score="leaky").rank_ic >= ORACLE_SHARE * signal_metrics(planted, 5).rank_ic


@pytest.mark.slow
def test_train_when_planted_component_is_off_then_oos_ic_indistinguishable_from_zero(null_lake):
    result = train_from_lake(null_lake.lake, null_lake.version_id, MARKET_CONFIG)
    m = signal_metrics(result.oos, 5, score="ensemble")
    assert abs(m.rank_ic) < NULL_SE * m.rank_ic_se, m


def test_train_when_same_lake_version_and_seed_then_same_metrics(small_lake, small_result):
    again = train_from_lake(small_lake.lake, small_lake.version_id, SMALL_CONFIG)
    assert again.metrics == small_result.metrics
    pd.testing.assert_frame_equal(again.oos, small_result.oos)


def test_train_when_result_built_then_it_records_the_lake_version_and_window(small_lake, small_result):
    manifest = small_lake.lake.version(small_lake.version_id)
    assert (small_result.version_id, small_result.content_hash) == (manifest.version_id, manifest.content_hash)
    start, end = small_result.eval_window
    assert small_result.oos["date"].min() == start and small_result.oos["date"].max() == end


def test_train_when_a_feature_is_nan_then_error_names_the_row(small_result):
    fs = small_result.features
    frame = fs.frame.copy()
    frame.loc[10, "vol_21"] = np.nan
    bad = dataclasses.replace(fs, frame=frame)
    row = frame.loc[10]
    with pytest.raises(FeatureValueError, match=rf"{row['symbol']} {row['date'].date()}: field 'vol_21'"):
        train_on_features(bad, SMALL_CONFIG)


def test_train_when_history_too_short_for_walk_forward_then_insufficient_history_error(tmp_path):
    from kobe_pipelines.data.providers.simulated import SimConfig

    short = freeze_sim(tmp_path / "lake", SimConfig(seed=1, n_symbols=8, start="2021-01-04", end="2021-09-30"))
    with pytest.raises(InsufficientHistoryError, match="walk-forward needs at least"):
        train_from_lake(short.lake, short.version_id, SMALL_CONFIG)


def test_score_latest_when_every_symbol_has_history_then_one_finite_score_per_symbol(small_result):
    scores = score_latest(small_result.signal(), small_result.features)
    latest = small_result.features.frame["date"].max()
    expected = set(small_result.features.frame.loc[small_result.features.frame["date"] == latest, "symbol"])
    assert set(scores["symbol"]) == expected and len(scores) == len(expected)
    assert (scores["date"] == latest).all() and np.isfinite(scores["score"]).all()


def test_score_latest_when_a_new_listing_lacks_history_then_error_names_it_unless_not_strict(small_lake, small_result):
    bars = small_lake.lake.read_bars(small_lake.version_id)
    last_days = np.sort(bars["date"].unique())[-30:]
    newco = pd.DataFrame({"symbol": "NEWCO", "date": last_days, "open": 10.0, "high": 10.5, "low": 9.5,
                          "close": 10.0 + np.arange(30) * 0.01, "volume": 1e5})
    mixed = pd.concat([bars, newco], ignore_index=True)
    m = small_lake.lake.version(small_lake.version_id)
    with pytest.raises(InsufficientHistoryError, match="NEWCO"):
        score_latest(small_result.signal(), mixed, version_id=m.version_id, content_hash=m.content_hash)
    scores = score_latest(small_result.signal(), mixed, version_id=m.version_id, content_hash=m.content_hash, strict=False)
    assert "NEWCO" not in set(scores["symbol"]) and len(scores) == bars.loc[bars["date"] == last_days[-1], "symbol"].nunique()


def test_features_of_a_pinned_version_when_lake_moves_on_then_unchanged(tmp_path):
    from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider
    from kobe_pipelines.lake import Lake

    sim = SimulatedProvider(SimConfig(seed=2, n_symbols=6, start="2021-01-04", end="2021-12-31"))
    lake = Lake(tmp_path / "lake")
    first = lake.freeze(sim.daily_bars("2021-01-04", "2021-09-30"), sim.splits("2021-01-04", "2021-09-30"),
                        sim.dividends("2021-01-04", "2021-09-30"), provider="simulated").version.version_id
    before = features_from_lake(lake, first).frame
    lake.freeze(sim.daily_bars("2021-01-04", "2021-12-31"), sim.splits("2021-01-04", "2021-12-31"),
                sim.dividends("2021-01-04", "2021-12-31"), provider="simulated")
    assert lake.current_version_id() != first
    pd.testing.assert_frame_equal(features_from_lake(lake, first).frame, before)
