from __future__ import annotations

import numpy as np
import pandas as pd

from kobe_pipelines.backtest import report


def _frames(sessions: int = 300):
    rng = np.random.default_rng(5)
    days = pd.bdate_range("2022-01-03", periods=sessions)
    equity = 100_000 * np.cumprod(1 + rng.normal(0.0004, 0.01, sessions))
    peak = np.maximum.accumulate(equity)
    frame = pd.DataFrame({"date": days, "equity": equity, "cash": 0.1 * equity, "positions_value": 0.9 * equity,
                          "drawdown": (peak - equity) / peak, "heat": 0.05})
    fills = pd.DataFrame({"session": days[::10], "symbol": "AAA", "side": "buy", "qty": 10, "price": 50.0,
                          "cost_usd": 0.25, "slippage_usd": -0.5, "slippage_bps": -10.0,
                          "realized_pnl": [None if i % 2 else float(i - 10) for i in range(len(days[::10]))]})
    orders = pd.DataFrame({"client_order_id": [f"o{i}" for i in range(len(fills))], "approved": True, "reason": ""})
    halts = pd.DataFrame({"date": [days[sessions * 2 // 3]], "event": ["engage"], "reason": ["drawdown halt: 15.2% below the peak"]})
    return frame, orders, fills, halts


def test_write_report_when_frames_given_then_every_png_and_an_html_with_the_figures_and_halts(tmp_path):
    equity, orders, fills, halts = _frames()
    summary = report.write_report(tmp_path, equity, orders, fills, halts, starting_equity=100_000.0, title="test run")
    for name in (*report.PLOT_FILES, report.TEAR_SHEET_PNG):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    page = (tmp_path / report.REPORT_HTML).read_text()
    assert page.count("data:image/png;base64,") == len(report.PLOT_FILES)
    assert "drawdown halt: 15.2% below the peak" in page and "test run" in page
    assert f"{summary.sharpe:.2f} +/- {summary.sharpe_se:.2f}" in page
    assert summary.halts == 1 and summary.fills == len(fills)
    assert (tmp_path / report.TEAR_SHEET_PNG).stat().st_size < 300_000


def test_write_report_when_no_fills_and_no_halts_then_it_still_writes_the_sheet(tmp_path):
    equity, orders, _fills, _halts = _frames(40)
    empty = pd.DataFrame(columns=["session", "symbol", "side", "qty", "price", "cost_usd", "slippage_usd", "slippage_bps", "realized_pnl"])
    summary = report.write_report(tmp_path, equity, orders.iloc[:0], empty, pd.DataFrame(), starting_equity=100_000.0, title="idle")
    assert summary.fills == 0 and summary.costs_usd == 0.0
    assert "<h2>Halt events</h2><p>none</p>" in (tmp_path / report.REPORT_HTML).read_text()
