"""The tear sheet: `report.html` and the same plots as PNG files, from a backtest's frames.

`write_report(out, equity, orders, fills, halts, starting_equity, title)` writes into `out`:
- `equity_drawdown.png`, `monthly_returns.png`, `exposure_turnover.png`, `slippage_costs.png`,
  `hit_rate.png`, `sharpe.png`, and `tear_sheet.png` (all of them on one page);
- `report.html`: the summary table, every plot (embedded, so the page can be moved on its own),
  the monthly returns, the halt events, slippage per month and the formulas (`stats`).

Frames as described in `stats`; `orders` (one row per intent the gate judged, `approved`) only
feeds the counts; `halts` has `date`, `event` and `reason`. Each file is written atomically.
"""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path

import pandas as pd

from kobe_pipelines.backtest import plots, stats
from kobe_pipelines.fsutil import atomic_write_bytes, atomic_write_text

PLOT_FILES = ("equity_drawdown.png", "monthly_returns.png", "exposure_turnover.png", "slippage_costs.png",
              "hit_rate.png", "sharpe.png")
TEAR_SHEET_PNG = "tear_sheet.png"
REPORT_HTML = "report.html"
HALT_COLUMNS = ("date", "event", "reason")

_FORMULAS = """Daily return r_t = equity_t / equity_{t-1} - 1 (the first against the starting cash). Sharpe ratio
(risk-free rate 0) = mean(r) / std(r) x sqrt(252). Its standard error (Mertens 2002): sqrt((1 + SR^2/2 - g3 SR +
(g4 - 3)/4 SR^2) / T) x sqrt(252), SR the daily ratio, g3 the skewness and g4 the kurtosis of the daily returns,
T their number; the rolling band uses Lo's (2002) iid form sqrt((1 + SR^2/2) / T). Net of costs: the equity
itself (fills at slipped prices); before costs: with each session's costs added back, a fill's cost being its
price against the bar's price when it filled (the open for a fill at the open, else the order's limit or stop).
Slippage vs the orders' prices is the slippage tracker's measure (a limit that fills better than its price
counts as negative). Drawdown: from the
running peak. Exposure: positions at raw closes / equity. Annual turnover: traded notional / 2 / mean equity /
years. Hit rate: closing fills with a positive realized P&L."""


def write_report(out: str | os.PathLike[str], equity: pd.DataFrame, orders: pd.DataFrame, fills: pd.DataFrame,
                 halts: pd.DataFrame, *, starting_equity: float, title: str) -> stats.Summary:
    """Write the PNGs and report.html into `out` (created if needed); return the summary."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    halts = halts if not halts.empty else pd.DataFrame(columns=list(HALT_COLUMNS))
    summary = stats.summarize(equity, fills, starting_equity=starting_equity, halts=len(halts), orders=orders)
    images = {
        "equity_drawdown.png": plots.equity_drawdown_png(equity, fills, halts),
        "monthly_returns.png": plots.figure(lambda ax: plots.draw_monthly(ax, equity, starting_equity),
                                            size=(9, 1.2 + 0.35 * _years(equity))),
        "exposure_turnover.png": plots.figure(lambda ax: plots.draw_exposure(ax, equity, fills)),
        "slippage_costs.png": plots.figure(lambda ax: plots.draw_costs(ax, equity, fills)),
        "hit_rate.png": plots.figure(lambda ax: plots.draw_hits(ax, fills)),
        "sharpe.png": plots.figure(lambda ax: plots.draw_sharpe(ax, equity, fills, starting_equity)),
    }
    for name, data in images.items():
        atomic_write_bytes(folder / name, data)
    atomic_write_bytes(folder / TEAR_SHEET_PNG, plots.tear_sheet_png(equity, fills, halts, starting_equity, title))
    atomic_write_text(folder / REPORT_HTML, render_html(summary, images, equity, orders, fills, halts, starting_equity, title))
    return summary


def summary_rows(summary: stats.Summary) -> list[tuple[str, str]]:
    """The headline figures as (label, formatted value), in the order the report and the CLI show them."""
    s = summary
    return [
        ("period", f"{s.start} .. {s.end} ({s.sessions} sessions)"),
        ("equity", f"{s.starting_equity:,.2f} -> {s.final_equity:,.2f} USD"),
        ("total return", _pct(s.total_return)),
        ("CAGR", _pct(s.cagr)),
        ("volatility (annual)", _pct(s.volatility)),
        ("Sharpe, net of costs", f"{s.sharpe:.2f} +/- {s.sharpe_se:.2f} (SE)"),
        ("Sharpe, before costs", f"{s.sharpe_gross:.2f}"),
        ("max drawdown", f"{_pct(s.max_drawdown)} on {s.max_drawdown_date}"),
        ("mean exposure", _pct(s.mean_exposure)),
        ("annual turnover", f"{s.annual_turnover:.2f}x"),
        ("fills / closed trades", f"{s.fills} / {s.closed_trades}"),
        ("hit rate", _pct(s.hit_rate)),
        ("costs (fills vs the bar's price)", f"{s.costs_usd:,.2f} USD ({s.costs_bps_of_traded:.2f} bps of traded)"),
        ("slippage vs the orders' prices", f"{s.slippage_usd:,.2f} USD"),
        ("orders judged / rejected by the gate", f"{s.orders_judged} / {s.orders_rejected}"
                                                   + (f" ({s.rejections})" if s.rejections else "")),
        ("halt events", str(s.halts)),
    ]


def render_html(summary: stats.Summary, images: dict[str, bytes], equity: pd.DataFrame, orders: pd.DataFrame,
                fills: pd.DataFrame, halts: pd.DataFrame, starting_equity: float, title: str) -> str:
    esc = html.escape
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in summary_rows(summary))
    figures = "".join(
        f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{base64.b64encode(data).decode()}"></figure>'
        for name, data in images.items())
    monthly = (stats.monthly_returns(equity, starting_equity) * 100).round(2)
    monthly.columns = list(plots.MONTHS)
    halt_table = halts.loc[:, list(HALT_COLUMNS)].to_html(index=False, border=0) if not halts.empty else "<p>none</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}table{{border-collapse:collapse;
margin:1em 0}}th,td{{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}}th{{text-align:left}}
img{{max-width:100%}}figure{{margin:1em 0}}.note{{font-size:85%;color:#555;white-space:pre-wrap}}</style></head>
<body><h1>{esc(title)}</h1>
<table>{rows}</table>
{figures}
<h2>Monthly returns, %</h2>{monthly.to_html(border=0, na_rep="")}
<h2>Halt events</h2>{halt_table}
<h2>Costs and slippage per month</h2>{_monthly_costs(fills).to_html(border=0, index=False)}
<h2>Definitions</h2><p class="note">{esc(_FORMULAS)}</p>
</body></html>
"""


def _monthly_costs(fills: pd.DataFrame) -> pd.DataFrame:
    columns = ["month", "fills", "cost_usd", "slippage_usd", "mean_slippage_bps"]
    if fills.empty:
        return pd.DataFrame(columns=columns)
    month = pd.to_datetime(fills["session"]).dt.strftime("%Y-%m")
    grouped = fills.assign(month=month).groupby("month")
    return pd.DataFrame({"fills": grouped.size(), "cost_usd": grouped["cost_usd"].sum().round(2),
                         "slippage_usd": grouped["slippage_usd"].sum().round(2),
                         "mean_slippage_bps": grouped["slippage_bps"].mean().round(2)}).reset_index().loc[:, columns]


def _years(equity: pd.DataFrame) -> int:
    dates = pd.to_datetime(equity["date"])
    return int(dates.dt.year.nunique()) if len(dates) else 1


def _pct(value: float) -> str:
    return f"{value:.2%}" if isinstance(value, float) and math.isfinite(value) else "n/a"
