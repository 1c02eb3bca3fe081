"""The bars a nightly scoring reads: the sessions the model looks back over, not the history."""

from __future__ import annotations

import pandas as pd

from kobe_pipelines import market_calendar
from kobe_pipelines.lake import Lake
from kobe_pipelines.ml.scoring import SESSION_MARGIN, scoring_bars

NO_SPLITS = pd.DataFrame(columns=["symbol", "execution_date", "split_from", "split_to"])
NO_DIVIDENDS = pd.DataFrame(columns=["symbol", "ex_dividend_date", "cash_amount"])


def _bars(symbol: str, days) -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, "date": days, "open": 10.0, "high": 10.5, "low": 9.5, "close": 10.0, "volume": 1e5})


def test_scoring_bars_when_symbols_trade_every_session_then_only_the_last_needed_sessions_are_read(tmp_path):
    days = market_calendar.sessions("2023-01-03", "2023-12-29")  # 250 sessions
    lake = Lake(tmp_path / "lake")
    version = lake.freeze(pd.concat([_bars("AAA", days), _bars("BBB", days)]), NO_SPLITS, NO_DIVIDENDS, provider="files").version
    read = scoring_bars(lake, version.version_id, history_rows=30)
    assert read.rows_read == 2 * (30 + SESSION_MARGIN)  # of 500 stored
    assert read.bars.groupby("symbol")["date"].min().tolist() == [days[-(30 + SESSION_MARGIN)]] * 2
    assert read.expected == ("AAA", "BBB") and read.latest == days[-1]


def test_scoring_bars_when_a_symbol_missed_recent_sessions_then_only_it_is_read_further_back(tmp_path):
    days = market_calendar.sessions("2023-01-03", "2023-12-29")
    halted = days[:-20].append(days[-3:])  # CCC did not trade on 17 of the last 20 sessions
    young = days[-12:]  # DDD listed 12 sessions ago: not enough rows to be scored at all
    lake = Lake(tmp_path / "lake")
    bars = pd.concat([_bars("AAA", days), _bars("CCC", halted), _bars("DDD", young)])
    version = lake.freeze(bars, NO_SPLITS, NO_DIVIDENDS, provider="files").version
    read = scoring_bars(lake, version.version_id, history_rows=30)
    per_symbol = read.bars.groupby("symbol")["date"].count().to_dict()
    assert per_symbol == {"AAA": 35, "CCC": len(halted), "DDD": 12}
    # the first read (35 sessions: AAA 35, CCC 18, DDD 12), then CCC's and DDD's whole histories again
    assert read.rows_read == 35 + 18 + 12 + len(halted) + 12
    assert read.expected == ("AAA", "CCC")
