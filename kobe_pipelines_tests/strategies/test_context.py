from __future__ import annotations

import pandas as pd
import pytest

from kobe_pipelines.errors import ConfigError, RecordError
from kobe_pipelines.strategies import RiskBudget, StrategyContext
from kobe_pipelines_tests.strategies.conftest import AAA, TRADING_DATE, bar_frame, book, signal_frame


def _ctx(**overrides):
    parts = dict(signals=signal_frame({"AAA": 1.0}), bars=bar_frame({"AAA": AAA}), book=book(), trading_date=TRADING_DATE)
    parts.update(overrides)
    return StrategyContext(**parts)


def test_context_when_inputs_well_formed_then_lists_symbols_with_bars():
    assert _ctx().symbols == frozenset({"AAA"})


def test_context_when_bars_reach_the_trading_date_then_rejects_as_look_ahead():
    bars = pd.concat([bar_frame({"AAA": AAA}), bar_frame({"AAA": [(52, 51, 51.5)]}, days=[TRADING_DATE])])
    with pytest.raises(RecordError) as err:
        _ctx(bars=bars)
    assert err.value.field == "bars"
    assert "look-ahead" in str(err.value)


def test_context_when_signals_dated_on_the_trading_date_then_rejects_naming_signals():
    with pytest.raises(RecordError) as err:
        _ctx(signals=signal_frame({"AAA": 1.0}, day=TRADING_DATE))
    assert err.value.field == "signals"


@pytest.mark.parametrize("day", ["2024-06-08", "2024-07-04"])  # a Saturday; Independence Day
def test_context_when_trading_date_not_an_xnys_session_then_rejects_naming_trading_date(day):
    with pytest.raises(RecordError) as err:
        _ctx(trading_date=day)
    assert err.value.field == "trading_date"
    assert "session" in str(err.value)


@pytest.mark.parametrize("day", ["2024-6-10", "10/06/2024", 20240610])
def test_context_when_trading_date_not_iso_then_rejects_naming_trading_date(day):
    with pytest.raises(RecordError) as err:
        _ctx(trading_date=day)
    assert err.value.field == "trading_date"


def test_context_when_signals_lack_score_then_rejects_naming_signals():
    with pytest.raises(RecordError) as err:
        _ctx(signals=signal_frame({"AAA": 1.0}).drop(columns=["score"]))
    assert err.value.field == "signals"
    assert "score" in str(err.value)


def test_with_version_when_called_then_only_the_version_changes():
    ctx = _ctx()
    versioned = ctx.with_version("abc123")
    assert versioned.strategy_version == "abc123"
    assert versioned.trading_date == ctx.trading_date and versioned.bars is ctx.bars and ctx.strategy_version == ""


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"risk_per_trade": 0.0}, "risk_per_trade"),
        ({"risk_per_trade": 1.5}, "risk_per_trade"),
        ({"max_position_fraction": float("nan")}, "max_position_fraction"),
        ({"max_position_fraction": True}, "max_position_fraction"),
    ],
)
def test_risk_budget_when_value_outside_zero_to_one_then_config_error_names_it(kwargs, setting):
    with pytest.raises(ConfigError) as err:
        RiskBudget(**kwargs)
    assert err.value.setting == setting


def test_risk_budget_from_env_when_set_then_reads_fractions_and_keeps_other_defaults():
    budget = RiskBudget.from_env({"KOBE_RISK_PER_TRADE": "0.005"})
    assert budget == RiskBudget(risk_per_trade=0.005, max_position_fraction=0.10)


@pytest.mark.parametrize(
    ("env", "setting"),
    [({"KOBE_RISK_PER_TRADE": "1%"}, "KOBE_RISK_PER_TRADE"), ({"KOBE_MAX_POSITION_FRACTION": "20"}, "KOBE_MAX_POSITION_FRACTION")],
)
def test_risk_budget_from_env_when_invalid_then_config_error_names_the_variable(env, setting):
    with pytest.raises(ConfigError) as err:
        RiskBudget.from_env(env)
    assert err.value.setting == setting


def test_risk_budget_from_env_when_called_then_reads_the_environment_at_call_time(monkeypatch):
    monkeypatch.setenv("KOBE_MAX_POSITION_FRACTION", "0.05")
    assert RiskBudget.from_env().max_position_fraction == 0.05
