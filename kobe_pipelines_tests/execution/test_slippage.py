import datetime as dt
import math

import pytest

from kobe_pipelines.errors import RecordError, StateFileError
from kobe_pipelines.execution.broker import Fill, LegRole
from kobe_pipelines.execution.slippage import SLIPPAGE_NAME, SlippageTracker, measure
from kobe_pipelines.risk.types import Side

WHEN = dt.datetime(2024, 3, 4, 21, tzinfo=dt.timezone.utc)


def fill(fill_id="f1", symbol="AAA", side=Side.BUY, qty=10, price=100.10, expected=100.0, session="2024-03-04") -> Fill:
    return Fill(fill_id, "ord-1", LegRole.ENTRY, symbol, side, qty, price, expected, WHEN, session, "paper")


@pytest.mark.parametrize(("side", "price", "expected", "qty", "bps", "usd"), [
    (Side.BUY, 100.10, 100.0, 10, 10.0, 1.0),  # paid 0.10 more: +0.10/100 x 1e4 = +10 bps, +1.00 USD (a cost)
    (Side.BUY, 99.95, 100.0, 10, -5.0, -0.5),  # paid 0.05 less: an improvement
    (Side.SELL, 49.95, 50.0, 20, 10.0, 1.0),  # sold 0.05 lower: -(-0.05)/50 x 1e4 = +10 bps, +1.00 USD (a cost)
    (Side.SELL, 50.10, 50.0, 20, -20.0, -2.0),  # sold higher: an improvement
])
def test_measure_when_buy_or_sell_then_positive_is_always_a_cost(side, price, expected, qty, bps, usd):
    m = measure(fill(side=side, price=price, expected=expected, qty=qty))
    assert m.slippage_bps == pytest.approx(bps, abs=1e-9) and m.slippage_usd == pytest.approx(usd, abs=1e-9)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"expected": 0.0}, "expected_price"), ({"expected": -1.0}, "expected_price"),
    ({"expected": math.nan}, "expected_price"), ({"price": math.nan}, "price"), ({"qty": 0}, "qty"),
    ({"side": "hold"}, "side"),
])
def test_measure_when_input_bad_then_raises_naming_the_field(kwargs, field):
    with pytest.raises(RecordError, match=f"fill f1: field '{field}'"):
        measure(fill(**kwargs))


FILLS = [
    fill("f1", "AAA", Side.BUY, 10, 100.10, 100.0, "2024-03-04"),  # +10 bps, +1.00
    fill("f2", "AAA", Side.SELL, 20, 49.95, 50.0, "2024-03-05"),  # +10 bps, +1.00
    fill("f3", "BBB", Side.BUY, 100, 20.04, 20.0, "2024-03-04"),  # +20 bps, +4.00
    fill("f4", "BBB", Side.SELL, 50, 20.02, 20.0, "2024-03-05"),  # -10 bps, -1.00
]


def test_overall_when_four_fills_then_matches_hand_computed_summary(tmp_path):
    tracker = SlippageTracker(tmp_path)
    tracker.record_many(FILLS)
    s = tracker.overall()
    # bps [10, 10, 20, -10]: mean 7.5, median 10, p95 (linear, rank 0.95 x 3 = 2.85) 10 + 0.85 x 10 = 18.5; USD 5.00
    assert (s.fills, s.mean_bps, s.median_bps) == (4, pytest.approx(7.5), pytest.approx(10.0))
    assert (s.p95_bps, s.total_usd) == (pytest.approx(18.5), pytest.approx(5.0))


def test_by_symbol_when_four_fills_then_matches_hand_computed_rows(tmp_path):
    tracker = SlippageTracker(tmp_path)
    tracker.record_many(FILLS)
    rows = tracker.by_symbol().set_index("symbol")
    # AAA [10, 10]: 10/10/10, 2.00 USD; BBB [20, -10]: mean 5, median 5, p95 -10 + 0.95 x 30 = 18.5, 3.00 USD
    assert rows.loc["AAA"].tolist() == pytest.approx([2, 10.0, 10.0, 10.0, 2.0])
    assert rows.loc["BBB"].tolist() == pytest.approx([2, 5.0, 5.0, 18.5, 3.0])


def test_by_day_when_four_fills_then_matches_hand_computed_rows(tmp_path):
    tracker = SlippageTracker(tmp_path)
    tracker.record_many(FILLS)
    rows = tracker.by_day().set_index("session")
    # 03-04 [10, 20]: mean 15, median 15, p95 10 + 0.95 x 10 = 19.5, 5.00; 03-05 [10, -10]: 0, 0, 9.0, 0.00
    assert rows.loc["2024-03-04"].tolist() == pytest.approx([2, 15.0, 15.0, 19.5, 5.0])
    assert rows.loc["2024-03-05"].tolist() == pytest.approx([2, 0.0, 0.0, 9.0, 0.0])


def test_overall_when_nothing_recorded_then_zero_fills_and_nan_statistics(tmp_path):
    s = SlippageTracker(tmp_path).overall()
    assert s.fills == 0 and math.isnan(s.mean_bps) and s.total_usd == 0.0


def test_record_when_same_fill_twice_then_stored_once(tmp_path):
    tracker = SlippageTracker(tmp_path)
    tracker.record(FILLS[0])
    tracker.record(FILLS[0])
    assert len(tracker.records()) == 1


def test_record_many_when_one_fill_bad_then_none_is_stored(tmp_path):
    tracker = SlippageTracker(tmp_path)
    with pytest.raises(RecordError, match="expected_price"):
        tracker.record_many([FILLS[0], fill("bad", expected=0.0)])
    assert tracker.records().empty


def test_records_when_a_new_tracker_opens_the_folder_then_they_persist(tmp_path):
    SlippageTracker(tmp_path).record_many(FILLS)
    # all four carry the same filled_at: ordered by fill_id then
    assert SlippageTracker(tmp_path).records()["fill_id"].tolist() == ["f1", "f2", "f3", "f4"]


def test_tracker_when_file_is_not_a_database_then_state_file_error(tmp_path):
    (tmp_path / SLIPPAGE_NAME).write_text("not sqlite")
    with pytest.raises(StateFileError, match=SLIPPAGE_NAME):
        SlippageTracker(tmp_path)


def test_plot_png_when_records_then_returns_a_png_image(tmp_path):
    from kobe_pipelines.execution.slippage import plot_png

    tracker = SlippageTracker(tmp_path)
    tracker.record_many(FILLS)
    assert plot_png(tracker.records()).startswith(b"\x89PNG\r\n\x1a\n")
    assert plot_png(SlippageTracker(tmp_path / "empty").records()).startswith(b"\x89PNG")
