"""Performance statistics of a backtest from its plain frames (pure functions, no I/O).

Inputs (the files a backtest writes; `frames` reads them):
- equity: one row per session, `date`, `equity`, `cash`, `positions_value` (signed, at raw
  closes), `drawdown` (fraction of the high-water mark), `heat` (fraction of equity), USD;
- fills: `session`, `symbol`, `side`, `qty`, `price`, `cost_usd` (the execution's cost: the fill
  against the price the bar offered when it filled, the open for a fill at the open, else the
  order's own price; positive = cost), `slippage_usd` and `slippage_bps` (against the order's price,
  as the slippage tracker measures it, positive = cost), `realized_pnl` (USD, set on fills that
  reduce a position).

Conventions:
- daily return r_t = equity_t / equity_{t-1} - 1; the first session's return is against
  `starting_equity` when given (the cash the account started with), else it is left out;
- Sharpe ratio (risk-free rate 0): SR = mean(r) / std(r, ddof=1), annualised x sqrt(252);
- its standard error, Mertens (2002) (Opdyke 2007), which allows for skewed and fat-tailed
  returns: SE(SR) = sqrt((1 + SR^2 / 2 - g3 SR + (g4 - 3) / 4 SR^2) / T), SR the daily ratio,
  g3 the skewness and g4 the kurtosis (3 for a normal) of the daily returns, T their number;
  annualised x sqrt(252). With g3 = 0 and g4 = 3 it is Lo's (2002) iid-normal sqrt((1 + SR^2/2) / T);
- net of costs: the equity curve itself (fills at slipped prices). Gross: the same curve with
  every session's `cost_usd` added back (commissions are 0 at the paper broker);
- drawdown: (running peak - equity) / running peak;
- exposure: positions_value / equity (net; long-only books: the invested fraction);
- turnover: the notional traded in a session (sum of qty x price over its fills) / equity;
  annual turnover = sum of notional / 2 / mean equity / years (one-way: a round trip counts once);
- hit rate: the share of closing fills (realized_pnl set) with realized_pnl > 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

SESSIONS_PER_YEAR = 252


@dataclass(frozen=True)
class SharpeEstimate:
    sharpe: float  # annualised
    se: float  # annualised standard error (Mertens 2002)
    n: int  # daily returns

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        return self.sharpe - z * self.se, self.sharpe + z * self.se


@dataclass(frozen=True)
class Summary:
    start: str
    end: str
    sessions: int
    starting_equity: float
    final_equity: float
    total_return: float
    cagr: float
    volatility: float  # annualised std of daily returns
    sharpe: float
    sharpe_se: float
    sharpe_gross: float
    max_drawdown: float
    max_drawdown_date: str
    mean_exposure: float
    annual_turnover: float
    fills: int
    closed_trades: int
    hit_rate: float
    costs_usd: float
    costs_bps_of_traded: float
    slippage_usd: float  # against the orders' prices (the slippage tracker's measure)
    halts: int
    orders_judged: int = 0
    orders_rejected: int = 0
    rejections: str = ""  # the gate's most frequent failed checks, "name n, name n"

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def daily_returns(equity: pd.DataFrame, starting_equity: float | None = None) -> pd.Series:
    """Daily returns indexed by date (see the module docstring)."""
    values = equity.set_index(pd.to_datetime(equity["date"]))["equity"].astype("float64")
    previous = values.shift(1)
    if starting_equity is not None and len(values):
        previous.iloc[0] = float(starting_equity)
    return (values / previous - 1.0).dropna().rename("return")


def sharpe_estimate(returns: pd.Series) -> SharpeEstimate:
    """Annualised Sharpe ratio and its Mertens (2002) standard error (module docstring)."""
    r = returns.dropna().to_numpy(dtype="float64")
    n = len(r)
    if n < 3:
        return SharpeEstimate(math.nan, math.nan, n)
    sd = r.std(ddof=1)
    if not sd > 0:
        return SharpeEstimate(math.nan, math.nan, n)
    sr = r.mean() / sd
    centred = r - r.mean()
    m2 = np.mean(centred**2)
    skew = np.mean(centred**3) / m2**1.5
    kurt = np.mean(centred**4) / m2**2
    var = (1 + sr**2 / 2 - skew * sr + (kurt - 3) / 4 * sr**2) / n
    scale = math.sqrt(SESSIONS_PER_YEAR)
    return SharpeEstimate(float(sr * scale), float(math.sqrt(max(var, 0.0)) * scale), n)


def drawdown(equity: pd.Series) -> pd.Series:
    """(running peak - equity) / running peak, a fraction per row."""
    peak = equity.cummax()
    return ((peak - equity) / peak).where(peak > 0, 0.0)


def monthly_returns(equity: pd.DataFrame, starting_equity: float | None = None) -> pd.DataFrame:
    """Returns per calendar month: a table indexed by year with columns 1..12 (NaN where the
    backtest did not run), each month from the previous month's last equity (or the start)."""
    values = equity.set_index(pd.to_datetime(equity["date"]))["equity"].astype("float64")
    month_end = values.groupby(values.index.to_period("M")).last()
    base = month_end.shift(1)
    base.iloc[0] = float(starting_equity) if starting_equity is not None else float(values.iloc[0])
    monthly = month_end / base - 1.0
    table = pd.DataFrame({"year": monthly.index.year, "month": monthly.index.month, "return": monthly.to_numpy()})
    return table.pivot(index="year", columns="month", values="return").reindex(columns=range(1, 13))


def traded_notional(fills: pd.DataFrame) -> pd.Series:
    """USD traded per session (sum of qty x price), indexed by session date."""
    if fills.empty:
        return pd.Series(dtype="float64", name="notional")
    notional = fills["qty"].astype("float64") * fills["price"].astype("float64")
    return notional.groupby(pd.to_datetime(fills["session"])).sum().rename("notional")


def session_costs(fills: pd.DataFrame, column: str = "cost_usd") -> pd.Series:
    """Costs in USD per session (positive = cost), indexed by session date: `cost_usd`, or
    `slippage_usd` for the slippage against the orders' prices."""
    if fills.empty:
        return pd.Series(dtype="float64", name=column)
    return fills[column].astype("float64").groupby(pd.to_datetime(fills["session"])).sum().rename(column)


def gross_equity(equity: pd.DataFrame, fills: pd.DataFrame) -> pd.Series:
    """The equity curve with every session's costs (`cost_usd`) added back (cumulatively), by date."""
    values = equity.set_index(pd.to_datetime(equity["date"]))["equity"].astype("float64")
    costs = session_costs(fills).reindex(values.index, fill_value=0.0)
    return values + costs.cumsum()


def hit_rate(fills: pd.DataFrame) -> tuple[float, int]:
    """Share of closing fills with a positive realized P&L, and their number."""
    if fills.empty or "realized_pnl" not in fills:
        return math.nan, 0
    closed = pd.to_numeric(fills["realized_pnl"], errors="coerce").dropna()
    return (float((closed > 0).mean()) if len(closed) else math.nan), int(len(closed))


def rejection_counts(orders: pd.DataFrame) -> pd.Series:
    """How often each gate check failed, most frequent first (from `orders.reason`: "check: why; check: why")."""
    if orders.empty or "approved" not in orders:
        return pd.Series(dtype="int64")
    reasons = orders.loc[~orders["approved"].astype(bool), "reason"].fillna("").astype(str)
    names = reasons.str.split("; ").explode().str.extract(r"^([a-z_]+):", expand=False).dropna()
    return names.value_counts()


def summarize(equity: pd.DataFrame, fills: pd.DataFrame, *, starting_equity: float, halts: int = 0,
              orders: pd.DataFrame | None = None) -> Summary:
    """Every headline figure of the tear sheet (conventions in the module docstring)."""
    values = equity.set_index(pd.to_datetime(equity["date"]))["equity"].astype("float64")
    returns = daily_returns(equity, starting_equity)
    net = sharpe_estimate(returns)
    gross_curve = gross_equity(equity, fills)
    gross = sharpe_estimate(daily_returns(pd.DataFrame({"date": gross_curve.index, "equity": gross_curve.to_numpy()}),
                                          starting_equity))
    dd = drawdown(pd.concat([pd.Series([starting_equity]), values.reset_index(drop=True)], ignore_index=True))
    worst = int(dd.to_numpy().argmax())
    years = len(values) / SESSIONS_PER_YEAR
    final = float(values.iloc[-1])
    notional = traded_notional(fills)
    costs = float(session_costs(fills).sum())
    hits, closed = hit_rate(fills)
    exposure = (equity["positions_value"].astype("float64") / equity["equity"].astype("float64")).mean()
    return Summary(
        start=str(values.index[0].date()),
        end=str(values.index[-1].date()),
        sessions=int(len(values)),
        starting_equity=float(starting_equity),
        final_equity=final,
        total_return=final / starting_equity - 1.0,
        cagr=(final / starting_equity) ** (1.0 / years) - 1.0 if years > 0 and final > 0 else math.nan,
        volatility=float(returns.std(ddof=1) * math.sqrt(SESSIONS_PER_YEAR)) if len(returns) > 1 else math.nan,
        sharpe=net.sharpe,
        sharpe_se=net.se,
        sharpe_gross=gross.sharpe,
        max_drawdown=float(dd.max()),
        max_drawdown_date=str(values.index[worst - 1].date()) if worst > 0 else str(values.index[0].date()),
        mean_exposure=float(exposure),
        annual_turnover=float(notional.sum() / 2 / values.mean() / years) if years > 0 else math.nan,
        fills=int(len(fills)),
        closed_trades=closed,
        hit_rate=hits,
        costs_usd=costs,
        costs_bps_of_traded=float(costs / notional.sum() * 10_000) if notional.sum() > 0 else math.nan,
        slippage_usd=float(session_costs(fills, "slippage_usd").sum()),
        halts=int(halts),
        orders_judged=0 if orders is None else int(len(orders)),
        orders_rejected=0 if orders is None else int((~orders["approved"].astype(bool)).sum()),
        rejections=", ".join(f"{name} {count}" for name, count in rejection_counts(
            orders if orders is not None else pd.DataFrame()).head(3).items()),
    )
