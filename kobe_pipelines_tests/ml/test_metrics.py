from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kobe_pipelines.ml.metrics import block_mean_se, compare_to_oracle, daily_ic, hit_rate, long_short_returns, signal_metrics


def _frame(score_by_date: dict[str, list[float]], label_by_date: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for day, scores in score_by_date.items():
        for i, (s, y) in enumerate(zip(scores, label_by_date[day])):
            rows.append({"symbol": f"S{i}", "date": pd.Timestamp(day), "score": s, "label": y})
    return pd.DataFrame(rows)


def test_daily_ic_when_score_ranks_perfectly_then_rank_ic_is_one_and_reversed_is_minus_one():
    frame = _frame({"2024-01-02": [1, 2, 3, 4], "2024-01-03": [4, 3, 2, 1]},
                   {"2024-01-02": [0.01, 0.05, 0.2, 0.9], "2024-01-03": [0.01, 0.05, 0.2, 0.9]})
    ric = daily_ic(frame, method="spearman")
    assert ric.tolist() == pytest.approx([1.0, -1.0])


def test_daily_ic_when_linear_relation_then_pearson_matches_hand_value():
    # scores 1,2,3 vs labels 1,2,4: mean 2 and 7/3; sxy = (-1)(-4/3) + 0 + (1)(5/3) = 3;
    # sxx = 2; syy = 16/9 + 1/9 + 25/9 = 42/9 -> r = 3 / sqrt(2 * 42/9) = 0.98198
    frame = _frame({"2024-01-02": [1, 2, 3]}, {"2024-01-02": [1, 2, 4]})
    assert daily_ic(frame).iloc[0] == pytest.approx(3 / np.sqrt(2 * 42 / 9))


def test_daily_ic_when_fewer_than_three_symbols_or_constant_score_then_date_skipped():
    frame = _frame({"2024-01-02": [1, 2], "2024-01-03": [5, 5, 5]}, {"2024-01-02": [1, 2], "2024-01-03": [1, 2, 3]})
    assert daily_ic(frame).empty


def test_hit_rate_when_three_of_four_signs_agree_then_three_quarters():
    # demeaned scores -1.5,-0.5,0.5,1.5 vs demeaned labels -1.5,0.5,-0.5,1.5: signs agree on 1st and 4th,
    # disagree on 2nd and 3rd -> 0.5 on this date; second date all agree -> 4/4. Pooled: 6/8 = 0.75
    frame = _frame({"2024-01-02": [1, 2, 3, 4], "2024-01-03": [1, 2, 3, 4]},
                   {"2024-01-02": [1, 3, 2, 4], "2024-01-03": [1, 2, 3, 4]})
    assert hit_rate(frame) == pytest.approx(0.75)


def test_long_short_returns_when_four_symbols_then_rank_weights_sum_to_one_per_side():
    # ranks 1..4 -> centred -1.5,-0.5,0.5,1.5; sum|.| = 4 -> weights -0.75,-0.25,0.25,0.75
    # labels 0.0, 0.01, 0.02, 0.04 -> return = -0.25*0.01 + 0.25*0.02 + 0.75*0.04 = 0.0325
    frame = _frame({"2024-01-02": [1, 2, 3, 4]}, {"2024-01-02": [0.0, 0.01, 0.02, 0.04]})
    assert long_short_returns(frame, horizon=1).iloc[0] == pytest.approx(0.0325)


def test_long_short_returns_when_horizon_5_then_only_every_fifth_date_is_traded():
    days = pd.bdate_range("2024-01-01", periods=12)
    frame = _frame({str(d.date()): [1, 2, 3] for d in days}, {str(d.date()): [0.0, 0.0, 0.01] for d in days})
    assert list(long_short_returns(frame, horizon=5).index) == [days[0], days[5], days[10]]


def test_block_mean_se_when_blocks_known_then_hand_value():
    # blocks of 2: means 1, 2, 3 -> mean 2, sd 1, se = 1/sqrt(3)
    series = pd.Series([0.5, 1.5, 2.0, 2.0, 3.5, 2.5], index=pd.bdate_range("2024-01-01", periods=6))
    mean, se = block_mean_se(series, 2)
    assert (mean, se) == pytest.approx((2.0, 1 / np.sqrt(3)))


def test_signal_metrics_when_score_equals_label_then_ic_one_and_hit_rate_one():
    rng = np.random.default_rng(0)
    days = pd.bdate_range("2024-01-01", periods=20)
    labels = rng.normal(0, 0.02, (20, 10))
    frame = pd.DataFrame({"date": np.repeat(days, 10), "symbol": np.tile([f"S{i}" for i in range(10)], 20),
                          "label": labels.ravel(), "score": labels.ravel()})
    m = signal_metrics(frame, horizon=5)
    assert (m.ic, m.rank_ic, m.hit_rate, m.n_dates, m.n_rows) == pytest.approx((1.0, 1.0, 1.0, 20, 200))
    assert m.long_short_sharpe > 0


def test_compare_to_oracle_when_daily_rank_ics_known_then_share_difference_and_block_se_by_hand():
    # Four dates, three symbols, label ranks 1,2,3. The oracle ranks perfectly on every date (rank IC 1);
    # the score ranks perfectly on dates 1 and 3 (IC 1) and as 1,3,2 on dates 2 and 4 (IC 0.5).
    # Differences 0, -0.5, 0, -0.5; blocks of 2: means -0.25, -0.25 -> mean -0.25, se 0.
    days = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    frame = _frame({d: ([1, 2, 3] if i % 2 == 0 else [1, 3, 2]) for i, d in enumerate(days)},
                   {d: [0.01, 0.02, 0.03] for d in days})
    frame["oracle"] = np.tile([1.0, 2.0, 3.0], 4)
    versus = compare_to_oracle(frame, horizon=2)
    assert (versus.rank_ic, versus.oracle_rank_ic, versus.difference, versus.difference_se, versus.n_dates) == pytest.approx(
        (0.75, 1.0, -0.25, 0.0, 4))
    assert versus.share == pytest.approx(0.75)
    assert versus.judge(0.6) is None
    assert "need 80%" in versus.judge(0.8)


def test_compare_to_oracle_when_score_beats_the_oracle_by_more_than_two_se_then_judged_a_leak():
    # The score ranks perfectly, the oracle as 1,3,2 on every date: difference +0.5 with se 0.
    days = pd.bdate_range("2024-01-01", periods=4)
    frame = _frame({str(d.date()): [1, 2, 3] for d in days}, {str(d.date()): [0.01, 0.02, 0.03] for d in days})
    frame["oracle"] = np.tile([1.0, 3.0, 2.0], 4)
    verdict = compare_to_oracle(frame, horizon=2).judge(0.6)
    assert verdict is not None and "leak" in verdict
