from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.errors import RecordError
from kobe_pipelines.lake import LakeVersionNotFound
from kobe_pipelines.ml.errors import FeatureValueError
from kobe_pipelines.ml.features import FEATURE_NAMES, WARMUP_ROWS, check_finite, compute_features, features_from_lake

from .conftest import ramp_bars


def _geometric_bars(n: int = 70) -> pd.DataFrame:
    """AAA grows exactly 1% a day from 100; BBB stays at 50. Volume constant, high/low +-2%."""
    days = pd.bdate_range("2023-01-02", periods=n)
    aaa = 100.0 * 1.01 ** np.arange(n)
    bbb = np.full(n, 50.0)
    frames = [pd.DataFrame({"symbol": s, "date": days, "open": c, "high": c * 1.02, "low": c * 0.98, "close": c, "volume": 1000.0})
              for s, c in (("AAA", aaa), ("BBB", bbb))]
    return pd.concat(frames, ignore_index=True)


def test_compute_features_when_closes_grow_one_percent_a_day_then_values_match_hand_computation():
    fs = compute_features(_geometric_bars(), version_id="v1", content_hash="h1")
    aaa = fs.frame.loc[fs.frame["symbol"] == "AAA"].reset_index(drop=True)
    # 70 rows, the first 63 are warm-up: rows 63..69 remain, the last 5 of them without a label.
    assert len(aaa) == 70 - WARMUP_ROWS == 7
    row = aaa.iloc[0]
    assert row["ret_1"] == pytest.approx(0.01)
    assert row["ret_5"] == pytest.approx(1.01**5 - 1)
    assert row["ret_63"] == pytest.approx(1.01**63 - 1)
    assert row["vol_21"] == pytest.approx(0.0, abs=1e-12)  # constant log returns
    # close_t / mean(close_{t-9..t}) - 1 = 1.01^9 / (sum_{j=0..9} 1.01^j / 10) - 1
    assert row["ma_dist_10"] == pytest.approx(1.01**9 / (sum(1.01**j for j in range(10)) / 10) - 1)
    assert row["volume_z_21"] == 0.0  # a volume that never varies carries no surprise
    assert row["range_5"] == pytest.approx(0.04)
    # BBB's ret_5 is 0, so AAA's excess over the two-symbol mean is half its own ret_5
    assert row["ret_5_rel"] == pytest.approx((1.01**5 - 1) / 2)
    assert row["fwd_ret_5"] == pytest.approx(1.01**5 - 1)
    assert aaa["fwd_ret_5"].isna().tolist() == [False, False, True, True, True, True, True]


def test_compute_features_when_built_then_records_version_hash_names_and_horizon():
    fs = compute_features(_geometric_bars(), version_id="v42", content_hash="abc", horizon=3)
    assert (fs.version_id, fs.content_hash, fs.horizon, fs.label) == ("v42", "abc", 3, "fwd_ret_3")
    assert fs.feature_names == FEATURE_NAMES
    assert list(fs.frame.columns) == ["symbol", "date", *FEATURE_NAMES, "fwd_ret_3"]


@pytest.mark.parametrize("cut", [70, 90, 117])
def test_compute_features_when_data_after_t_changes_then_no_feature_at_or_before_t_changes(cut):
    bars = ramp_bars(120, symbols=("AAA", "BBB", "CCC", "DDD"), seed=1)
    t = pd.bdate_range("2023-01-02", periods=120)[cut]
    changed = bars.copy()
    after = changed["date"] > t
    rng = np.random.default_rng(99)
    for col in ("open", "high", "low", "close"):
        changed.loc[after, col] *= np.exp(rng.normal(0, 0.2, after.sum()))
    changed.loc[after, "volume"] *= 7.0
    shortened = bars.loc[~after]
    base = compute_features(bars, version_id="a", content_hash="a").frame
    for other in (changed, shortened):
        alt = compute_features(other, version_id="b", content_hash="b").frame
        left = base.loc[base["date"] <= t, ["symbol", "date", *FEATURE_NAMES]].reset_index(drop=True)
        right = alt.loc[alt["date"] <= t, ["symbol", "date", *FEATURE_NAMES]].reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right)


def test_compute_features_when_a_close_is_nan_then_record_error_names_symbol_date_and_field():
    bars = ramp_bars(80)
    bars.loc[(bars["symbol"] == "BBB") & (bars["date"] == "2023-02-01"), "close"] = np.nan
    with pytest.raises(RecordError, match=r"BBB 2023-02-01: field 'close'"):
        compute_features(bars, version_id="v", content_hash="h")


def test_compute_features_when_a_bar_is_duplicated_then_record_error():
    bars = ramp_bars(80)
    with pytest.raises(RecordError, match=r"AAA 2023-01-02: field 'date' appears more than once"):
        compute_features(pd.concat([bars, bars.iloc[[0]]]), version_id="v", content_hash="h")


def test_check_finite_when_a_feature_is_infinite_then_names_the_row_and_feature():
    frame = pd.DataFrame({"symbol": ["AAA", "BBB"], "date": pd.to_datetime(["2024-01-02", "2024-01-03"]),
                          "ret_1": [0.01, np.inf]})
    with pytest.raises(FeatureValueError, match=r"BBB 2024-01-03: field 'ret_1'"):
        check_finite(frame, ["ret_1"], where="test")


def test_features_from_lake_when_version_is_pinned_then_uses_that_version_and_its_hash(small_lake):
    manifest = small_lake.lake.version(small_lake.version_id)
    fs = features_from_lake(small_lake.lake, small_lake.version_id)
    assert (fs.version_id, fs.content_hash) == (manifest.version_id, manifest.content_hash)
    assert fs.frame["date"].max() == pd.Timestamp(manifest.end_date)


def test_features_from_lake_when_version_does_not_exist_then_lake_version_not_found(small_lake):
    with pytest.raises(LakeVersionNotFound, match="no-such-version"):
        features_from_lake(small_lake.lake, "no-such-version")
