from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from kobe_pipelines.errors import ConfigError, RecordError
from kobe_pipelines.risk.types import OrderType, Side
from kobe_pipelines.orders import client_order_id
from kobe_pipelines.strategies import RankedLong, RankedLongConfig, RiskBudget, validate_intents
from kobe_pipelines.strategies.ranked_long import bracket_prices, position_size
from kobe_pipelines_tests.strategies.conftest import AAA, FLAT, TRADING_DATE, bar_frame, book

CONFIG = RankedLongConfig(top_n=3, entry_threshold=0.5, atr_period=3, stop_atr=2.0, target_atr=2.2)
BUDGET = RiskBudget(risk_per_trade=0.01, max_position_fraction=0.20)
SCORES = {"CCC": 0.9, "AAA": 0.8, "BBB": 0.7, "DDD": 0.6, "EEE": 0.4}


def test_generate_when_top_candidates_then_brackets_and_sizes_match_hand_computation(make_ctx):
    # Ranked: CCC 0.9 (held: skipped, not replaced), AAA 0.8, BBB 0.7 | DDD 0.6 is 4th (top_n = 3),
    # EEE 0.4 is not above 0.5. Equity $100,000; risk 1% = $1,000; position cap 20% = $20,000;
    # buying power $25,000.
    #
    # AAA: ATR(3) = (1.2 + 1.2 + 1.82) / 3 = 1.406667 (see test_indicators).
    #   entry = 51.237 DOWN -> 51.23 (nearest would be 51.24);
    #   stop = 51.23 - 2 x 1.406667 = 48.416667 DOWN -> 48.41 (nearest would be 48.42);
    #   take-profit = 51.23 + 2.2 x 1.406667 = 54.324667 UP -> 54.33 (nearest would be 54.32).
    #   qty = min(floor(1000 / 2.82) = 354, floor(20000 / 51.23) = 390, floor(25000 / 51.23) = 488) = 354.
    #   Buying power left: 25,000 - 354 x 51.23 = 25,000 - 18,135.42 = 6,864.58.
    # BBB (sub-dollar): true ranges .06, .06, .06 -> ATR .06.
    #   entry = 0.87654 DOWN on the $0.0001 grid -> 0.8765; stop = 0.8765 - 0.12 = 0.7565;
    #   take-profit = 0.8765 + 0.132 = 1.0085, at/above $1 so the cent grid, UP -> 1.01.
    #   qty = min(floor(1000 / 0.12) = 8,333, floor(20000 / 0.8765) = 22,818, floor(6864.58 / 0.8765) = 7,831) = 7,831.
    ctx = make_ctx(SCORES, account=book(100_000.0, buying_power=25_000.0, positions={"CCC": 100}), budget=BUDGET, version="v1")
    intents = RankedLong(CONFIG).generate(ctx)
    got = [(i.symbol, i.side, i.qty, i.entry, i.stop, i.take_profit, i.order_type) for i in intents]
    assert got == [
        ("AAA", Side.BUY, 354, 51.23, 48.41, 54.33, OrderType.LIMIT),
        ("BBB", Side.BUY, 7831, 0.8765, 0.7565, 1.01, OrderType.LIMIT),
    ]


def test_generate_when_run_then_intents_carry_name_version_date_and_deterministic_ids(make_ctx):
    ctx = make_ctx(SCORES, budget=BUDGET, version="0123456789ab")
    strategy = RankedLong(CONFIG, name="my_ranked")
    first, second = strategy.generate(ctx), strategy.generate(ctx)
    assert first == second
    for intent in first:
        assert (intent.strategy, intent.strategy_version, intent.trading_date) == ("my_ranked", "0123456789ab", TRADING_DATE)
        assert intent.client_order_id == client_order_id("my_ranked", intent.symbol, TRADING_DATE, Side.BUY)
    good, rejected = validate_intents(first, ctx, strategy="my_ranked")
    assert rejected == [] and len(good) == 3  # AAA, BBB, CCC (not held here)


def test_generate_when_scores_tie_then_symbol_order_breaks_the_tie(make_ctx):
    # CCC, DDD and EEE share one score and identical flat bars; top_n = 2 keeps CCC and DDD.
    ctx = make_ctx({"EEE": 0.7, "DDD": 0.7, "CCC": 0.7}, budget=BUDGET, version="v1")
    intents = RankedLong(RankedLongConfig(top_n=2, atr_period=3)).generate(ctx)
    assert [i.symbol for i in intents] == ["CCC", "DDD"]


def test_generate_when_score_not_strictly_above_threshold_then_no_entry(make_ctx):
    ctx = make_ctx({"AAA": 0.5, "BBB": float("nan")}, version="v1")
    assert RankedLong(CONFIG).generate(ctx) == []


def test_generate_when_last_bar_older_than_signal_date_then_symbol_skipped(make_ctx):
    # STALE's bars end on 06-06 while the signals are for 06-07: no fresh price to enter on.
    bars = bar_frame({"STALE": FLAT}, days=["2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06"])
    bars = pd.concat([bars, bar_frame({"AAA": AAA})], ignore_index=True)
    ctx = make_ctx({"STALE": 0.9, "AAA": 0.8}, bars=bars, version="v1")
    assert [i.symbol for i in RankedLong(CONFIG).generate(ctx)] == ["AAA"]


def test_generate_when_history_shorter_than_atr_period_plus_one_then_symbol_skipped(make_ctx):
    # AAA has 4 bars: ATR(4) needs 5.
    ctx = make_ctx({"AAA": 0.8}, version="v1")
    assert RankedLong(RankedLongConfig(atr_period=4)).generate(ctx) == []


def test_generate_when_equity_too_small_for_one_share_of_risk_then_symbol_skipped(make_ctx):
    # Equity $100: 1% = $1 of risk; AAA risks 2.82 per share -> floor(0.35) = 0 shares.
    ctx = make_ctx({"AAA": 0.8}, account=book(100.0), version="v1")
    assert RankedLong(CONFIG).generate(ctx) == []


def test_generate_when_exit_threshold_set_then_sells_only_longs_scored_below_it(make_ctx):
    # FFF long 50 scores 0.2 < 0.3: market sell 50 at its last close 20.00. GGG is short (not this
    # strategy's to manage); HHH has no score today (kept); III scores 0.35, not below 0.3.
    bars = bar_frame({"FFF": FLAT, "GGG": FLAT, "HHH": FLAT, "III": FLAT})
    account = book(positions={"FFF": 50, "GGG": -30, "HHH": 10, "III": 5})
    ctx = make_ctx({"FFF": 0.2, "GGG": 0.1, "III": 0.35}, bars=bars, account=account, version="v1")
    cfg = RankedLongConfig(entry_threshold=0.5, exit_threshold=0.3, atr_period=3)
    intents = RankedLong(cfg).generate(ctx)
    assert [(i.symbol, i.side, i.qty, i.entry, i.stop, i.take_profit, i.order_type) for i in intents] == [
        ("FFF", Side.SELL, 50, 20.0, None, None, OrderType.MARKET)
    ]
    assert validate_intents(intents, ctx, strategy="ranked_long")[1] == []


def test_generate_when_no_signals_then_no_intents(make_ctx):
    assert RankedLong(CONFIG).generate(make_ctx({}, version="v1")) == []


def test_generate_when_symbol_scored_twice_on_latest_date_then_raises_naming_symbol(make_ctx):
    ctx = make_ctx({"AAA": 0.8}, version="v1")
    ctx = dataclasses.replace(ctx, signals=pd.concat([ctx.signals, ctx.signals], ignore_index=True))
    with pytest.raises(RecordError) as err:
        RankedLong(CONFIG).generate(ctx)
    assert err.value.field == "symbol" and "AAA" in err.value.record


def test_position_size_when_each_limit_binds_then_smallest_whole_share_count():
    budget = RiskBudget(risk_per_trade=0.02, max_position_fraction=0.10)
    # Equity 50,000, entry 25.00, stop 24.00: risk 1,000 / 1.00 = 1,000 shares; cap 5,000 / 25 = 200.
    assert position_size(50_000.0, 25.0, 24.0, budget, 1e9) == 200
    # Stop 20.00: risk 1,000 / 5.00 = 200; cap 200 -> 200. Stop 19.00: 1,000 / 6 = 166.67 -> 166.
    assert position_size(50_000.0, 25.0, 19.0, budget, 1e9) == 166
    # Buying power 1,000 -> floor(1,000 / 25) = 40.
    assert position_size(50_000.0, 25.0, 24.0, budget, 1_000.0) == 40


@pytest.mark.parametrize(("equity", "entry", "stop", "bp"), [(0.0, 25.0, 24.0, 1e6), (-5.0, 25.0, 24.0, 1e6), (5e4, 25.0, 25.0, 1e6), (5e4, 25.0, 24.0, 0.0)])
def test_position_size_when_no_equity_no_buying_power_or_no_risk_gap_then_zero(equity, entry, stop, bp):
    assert position_size(equity, entry, stop, RiskBudget(), bp) == 0


def test_bracket_prices_when_stop_would_fall_to_zero_or_below_then_none():
    # 1.00 - 2 x 0.60 = -0.20.
    assert bracket_prices(1.0, 0.6, RankedLongConfig(stop_atr=2.0)) is None


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"top_n": 0}, "top_n"),
        ({"atr_period": 2.5}, "atr_period"),
        ({"stop_atr": 0.0}, "stop_atr"),
        ({"target_atr": -1.0}, "target_atr"),
        ({"entry_threshold": float("nan")}, "entry_threshold"),
        ({"entry_threshold": 0.5, "exit_threshold": 0.6}, "exit_threshold"),
    ],
)
def test_config_when_invalid_then_config_error_names_the_setting(kwargs, setting):
    with pytest.raises(ConfigError) as err:
        RankedLongConfig(**kwargs)
    assert err.value.setting == setting
