"""The tear sheet's plots, drawn with matplotlib (Agg) from the backtest's frames; each returns PNG bytes.

Every plot takes the frames described in `stats` and the halt events (date, event, reason);
halts are drawn as red vertical lines wherever time is the x axis.
"""

from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
import pandas as pd

from kobe_pipelines.backtest import stats

ROLLING_SESSIONS = 126  # the rolling Sharpe window: half a year of sessions
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig, dpi: int = 90) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _dates(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=2, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _mark_halts(ax, halts: pd.DataFrame) -> None:
    _dates(ax)
    for day in pd.to_datetime(halts["date"]) if not halts.empty else ():
        ax.axvline(day, color="tab:red", linewidth=1.2, linestyle="--", alpha=0.8)


def draw_equity(ax, equity: pd.DataFrame, fills: pd.DataFrame, halts: pd.DataFrame) -> None:
    when = pd.to_datetime(equity["date"])
    ax.plot(when, equity["equity"], color="tab:blue", label="equity, net of costs")
    ax.plot(when, stats.gross_equity(equity, fills).to_numpy(), color="tab:gray", linewidth=0.8, label="before costs")
    _mark_halts(ax, halts)
    ax.set_ylabel("USD")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Equity")


def draw_drawdown(ax, equity: pd.DataFrame, halts: pd.DataFrame) -> None:
    when = pd.to_datetime(equity["date"])
    ax.fill_between(when, -100 * equity["drawdown"].astype("float64"), 0, color="tab:red", alpha=0.35, step="post")
    _mark_halts(ax, halts)
    ax.set_ylabel("drawdown, %")
    ax.set_title("Drawdown from the high-water mark" + (f" ({len(halts)} halt events, dashed)" if len(halts) else ""))


def draw_monthly(ax, equity: pd.DataFrame, starting_equity: float) -> None:
    table = stats.monthly_returns(equity, starting_equity) * 100
    values = table.to_numpy(dtype="float64")
    bound = max(1.0, float(np.nanmax(np.abs(values)))) if np.isfinite(values).any() else 1.0
    ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(12), MONTHS, fontsize=7)
    ax.set_yticks(range(len(table.index)), [str(y) for y in table.index], fontsize=7)
    for (row, col), value in np.ndenumerate(values):
        if math.isfinite(value):
            ax.text(col, row, f"{value:.1f}", ha="center", va="center", fontsize=6)
    ax.set_title("Monthly returns, %")


def draw_exposure(ax, equity: pd.DataFrame, fills: pd.DataFrame) -> None:
    when = pd.to_datetime(equity["date"])
    values = equity["equity"].astype("float64").to_numpy()
    ax.plot(when, 100 * equity["positions_value"].astype("float64") / values, color="tab:green", label="exposure, % of equity")
    ax.plot(when, 100 * equity["heat"].astype("float64"), color="tab:orange", linewidth=0.8, label="heat, % of equity")
    turnover = stats.traded_notional(fills).reindex(when, fill_value=0.0).to_numpy() / values
    ax.bar(when, 100 * turnover, color="tab:purple", alpha=0.5, width=1.5, label="traded, % of equity")
    _dates(ax)
    ax.set_ylabel("%")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Exposure, heat and turnover")


def draw_costs(ax, equity: pd.DataFrame, fills: pd.DataFrame) -> None:
    when = pd.to_datetime(equity["date"])
    costs = stats.session_costs(fills).reindex(when, fill_value=0.0)
    slippage = float(stats.session_costs(fills, "slippage_usd").sum())
    ax.plot(when, costs.cumsum().to_numpy(), color="tab:red", label="cumulative cost: fills vs the bar's price")
    _dates(ax)
    ax.set_ylabel("USD (positive = cost)")
    ax.set_title(f"Costs {costs.sum():,.0f} USD over {len(fills)} fills; slippage vs the orders' prices {slippage:,.0f} USD",
                 fontsize=9)
    if not fills.empty and "slippage_bps" in fills:
        inset = ax.inset_axes((0.62, 0.12, 0.35, 0.4))
        inset.hist(fills["slippage_bps"].astype("float64"), bins=30, color="tab:gray", alpha=0.6)
        inset.set_xlabel("slippage vs order price, bps per fill", fontsize=6)
        inset.tick_params(labelsize=6)
    ax.legend(loc="upper left", fontsize=7)


def draw_hits(ax, fills: pd.DataFrame) -> None:
    rate, closed = stats.hit_rate(fills)
    pnl = pd.to_numeric(fills["realized_pnl"], errors="coerce").dropna() if "realized_pnl" in fills else pd.Series(dtype=float)
    if closed:
        ax.hist(pnl[pnl > 0], bins=30, color="tab:green", alpha=0.6, label="winners")
        ax.hist(pnl[pnl <= 0], bins=30, color="tab:red", alpha=0.6, label="losers")
        ax.legend(fontsize=8)
    ax.set_xlabel("realized P&L per closing fill, USD")
    ax.set_title(f"Hit rate {rate:.1%} of {closed} closed trades" if closed else "Hit rate: no closed trades")


def draw_sharpe(ax, equity: pd.DataFrame, fills: pd.DataFrame, starting_equity: float) -> None:
    net = stats.daily_returns(equity, starting_equity)
    gross_curve = stats.gross_equity(equity, fills)
    gross = stats.daily_returns(pd.DataFrame({"date": gross_curve.index, "equity": gross_curve.to_numpy()}), starting_equity)
    scale = math.sqrt(stats.SESSIONS_PER_YEAR)
    window = min(ROLLING_SESSIONS, max(3, len(net) // 2))
    rolling = net.rolling(window).mean() / net.rolling(window).std() * scale
    rolling_gross = gross.rolling(window).mean() / gross.rolling(window).std() * scale
    daily = rolling / scale
    se = np.sqrt((1 + daily**2 / 2) / window) * scale  # Lo (2002) band of the rolling estimate
    ax.plot(rolling.index, rolling, color="tab:blue", label=f"{window}-session Sharpe, net")
    ax.fill_between(rolling.index, rolling - 2 * se, rolling + 2 * se, color="tab:blue", alpha=0.15, label="+/- 2 SE")
    ax.plot(rolling_gross.index, rolling_gross, color="tab:gray", linewidth=0.8, label="before costs")
    whole = stats.sharpe_estimate(net)
    ax.axhline(0, color="black", linewidth=0.6)
    _dates(ax)
    ax.set_title(f"Sharpe net of costs {whole.sharpe:.2f} +/- {whole.se:.2f} (SE, Mertens 2002)")
    ax.legend(loc="upper left", fontsize=8)


def figure(draw: Callable, size: tuple[float, float] = (9, 3.4)) -> bytes:
    """One plot as PNG bytes: `draw(ax)` fills the axes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=size)
    draw(ax)
    return _png(fig)


def equity_drawdown_png(equity: pd.DataFrame, fills: pd.DataFrame, halts: pd.DataFrame) -> bytes:
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True, gridspec_kw={"height_ratios": (2, 1)})
    draw_equity(top, equity, fills, halts)
    draw_drawdown(bottom, equity, halts)
    return _png(fig)


def tear_sheet_png(equity: pd.DataFrame, fills: pd.DataFrame, halts: pd.DataFrame, starting_equity: float,
                   title: str) -> bytes:
    """All plots on one page (the picture for a README): a small PNG."""
    plt = _pyplot()
    fig, axes = plt.subplots(3, 2, figsize=(12, 10.5))
    draw_equity(axes[0, 0], equity, fills, halts)
    draw_drawdown(axes[0, 1], equity, halts)
    draw_monthly(axes[1, 0], equity, starting_equity)
    draw_exposure(axes[1, 1], equity, fills)
    draw_sharpe(axes[2, 0], equity, fills, starting_equity)
    draw_costs(axes[2, 1], equity, fills)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return _png(fig, dpi=72)
