"""`kobe orders` tables and formats, and the trading summary `kobe demo` prints, on the hand-worked
book of `support/traded_book.py` (A took profit, B stopped out through a gap, C expired, D open
short, E stopped out after a 2-for-1 split, F rejected by the gate)."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from kobe_pipelines.cli.order_cmds import orders
from kobe_pipelines.cli.order_tables import trading_summary
from kobe_pipelines_tests.support.readable import assert_readable
from kobe_pipelines_tests.support.traded_book import traded_state


@pytest.fixture
def state(tmp_path):
    return traded_state(tmp_path / "state")  # the root conftest points KOBE_STATE_DIR here


def run(*args: str) -> str:
    result = CliRunner().invoke(orders, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def row_of(output: str, symbol: str, status: str) -> list[str]:
    [line] = [line for line in output.splitlines() if line.startswith(f"{symbol} ") and status in line]
    return line.split()


def test_orders_when_orders_were_traded_then_one_row_each_with_prices_outcome_fills_pnl_and_slippage(state):
    output = run()
    assert_readable(output)
    header = output.splitlines()[0].split()
    assert header == ["symbol", "side", "qty", "entry", "stop", "target", "status", "fill", "in", "fill", "out", "P&L",
                      "USD", "slip", "bps"]
    assert row_of(output, "AAA", "took profit") == ["AAA", "buy", "100", "50.00", "48.00", "54.00", "took", "profit",
                                                    "50.00", "54.00", "400.00", "0.00"]
    assert row_of(output, "BBB", "stopped out") == ["BBB", "buy", "50", "20.00", "19.00", "23.00", "stopped", "out",
                                                    "19.91", "18.4907", "-70.97", "5.03"]
    assert row_of(output, "CCC", "expired") == ["CCC", "buy", "10", "30.00", "28.00", "33.00", "expired"]
    assert row_of(output, "DDD", "open") == ["DDD", "sell", "20", "40.00", "42.00", "36.00", "open", "40.1799", "5.00"]
    assert row_of(output, "EEE", "stopped out")[-3:] == ["47.4762", "-50.48", "2.44"]
    assert row_of(output, "AAA", "rejected") == ["AAA", "buy", "10", "50.00", "51.00", "54.00", "rejected"]


def test_orders_when_an_order_exited_then_its_session_id_and_exit_reason_are_under_its_row(state):
    lines = run().splitlines()
    b = next(i for i, line in enumerate(lines) if line.startswith("BBB "))
    under = " ".join(line.strip() for line in lines[b + 1:b + 3])
    assert under.startswith("2024-03-04 ord-B stop-loss 19.00 hit: 50 sh at 18.4907, the session opened through "
                            "the stop at 18.50")
    assert "2024-03-04 ord-C day order: not filled on its session" in " ".join(lines)


def test_orders_when_printed_then_the_slippage_reference_and_sign_convention_are_stated(state):
    text = " ".join(run().split())
    assert ("slip bps: the cost of the order's fills, each against its arrival price (the session's open for a fill "
            "at the open, else the order's own limit or stop); positive = cost.") in text


def test_orders_sent_when_format_csv_then_every_column_with_numbers_and_empty_missing_values(state):
    frame = pd.read_csv(io.StringIO(run("--sent", "--format", "csv")), keep_default_na=False, na_values=[""])
    assert frame["client_order_id"].tolist() == ["ord-A", "ord-B", "ord-C", "ord-D", "ord-E"]
    b = frame.set_index("client_order_id").loc["ord-B"]
    assert (b["entry"], b["stop"], b["take_profit"], b["entry_fill"], b["exit_fill"]) == (20.0, 19.0, 23.0, 19.91, 18.4907)
    assert b["realized_pnl"] == pytest.approx(-70.965) and b["slippage_bps"] == pytest.approx(5.026042, abs=1e-6)
    assert frame.set_index("client_order_id")["realized_pnl"].isna().tolist() == [False, False, True, True, False]


def test_orders_when_format_json_then_records_with_numbers_and_null_for_missing(state):
    records = {r["client_order_id"]: r for r in json.loads(run("--format", "json"))}
    assert set(records) == {"ord-A", "ord-B", "ord-C", "ord-D", "ord-E", "ord-F"}
    assert records["ord-A"]["realized_pnl"] == 400.0 and records["ord-A"]["filled_qty"] == 100
    assert records["ord-C"]["entry_fill"] is None and records["ord-C"]["status"] == "expired"
    assert records["ord-F"]["status"] == "rejected" and records["ord-F"]["exit_reason"].startswith("rejected by the gate")


def test_orders_events_when_format_csv_or_table_then_one_line_per_event(state):
    frame = pd.read_csv(io.StringIO(run("--order", "ord-B", "--format", "csv")))
    assert frame["event"].tolist() == ["intent", "decision", "submitted", "ack", "fill", "status", "fill", "status"]
    assert frame.loc[frame["event"] == "fill", "price"].tolist() == [19.91, 18.4907]
    table = run("--order", "ord-B")
    assert_readable(table)
    assert table.count("ord-B") == 8  # each event's client order id under its row


def test_trading_summary_when_orders_were_traded_then_table_realized_pnl_and_slippage_with_its_convention(state):
    text = trading_summary(state)
    assert_readable(text)
    assert text.splitlines()[0] == "orders sent (5): kobe orders --sent"
    assert "took profit" in text and "stopped out" in text and "expired" in text
    # realized: 400.00 - 70.965 - 50.476 = 278.559 over A, B and E; D is still open
    assert "realized P&L: 278.56 USD over 3 closed orders; 1 still open" in text
    # 7 fills: A 0, 0; B 0.01/19.90 and 0.0093/18.50; D 0.0201/40.20; E 0, 0.0238/47.50 (x 1e4 bps):
    # mean (5.0251 + 5.0270 + 5.0000 + 5.0105) / 7 = 2.87; p95 5.0251 + 0.7 x (5.0270 - 5.0251) = 5.03;
    # total 0.50 + 0.465 + 0.402 + 0.476 = 1.843 USD
    assert ("slippage: 7 fills, mean 2.87 bps, p95 5.03 bps, total 1.84 USD, each fill against its arrival price "
            "(the session's open for a fill at the open, else the order's own limit or stop); positive = cost") \
        in " ".join(text.split())


def test_trading_summary_when_nothing_was_sent_then_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    assert trading_summary(tmp_path / "empty") == "no order was sent"
