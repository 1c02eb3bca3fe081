"""Trading cycle benchmark: a year of sessions driven day by day through the paper broker.

    python benchmarks/bench_trading_cycle.py                # 252 sessions, 24 simulated symbols
    python benchmarks/bench_trading_cycle.py --sessions 60  # a quick run

What a backtest does: for each session, `run_trading_cycle` with that session's signals (the
simulated market's planted oracle score, so no model is trained), its total-return bars, the raw
bars and the corporate actions (the simulated market splits and pays dividends). The strategy is
`ranked_long`; the gate logs without fsync (a simulation). Two modes side by side, each on its
own state folder:
- cached: the paper broker parses its state file only when it changed (the shipped behaviour);
- re-read: the state file parsed on every read, as before.
Printed: milliseconds per session over the first and the last 21 sessions, the ratio last/first
(how the cost grows with a year of history), and cached vs re-read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from kobe_pipelines import market_calendar  # noqa: E402
from kobe_pipelines.data.adjustments import apply_factors, compute_factors  # noqa: E402
from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider  # noqa: E402
from kobe_pipelines.execution.corporate_actions import actions_from_tables  # noqa: E402
from kobe_pipelines.execution.ledger import OrderLedger  # noqa: E402
from kobe_pipelines.execution.paper import PaperBroker  # noqa: E402
from kobe_pipelines.execution.slippage import SlippageTracker  # noqa: E402
from kobe_pipelines.risk.drawdown import DrawdownMonitor  # noqa: E402
from kobe_pipelines.risk.gate import PolicyGate  # noqa: E402
from kobe_pipelines.risk.limits import RiskLimits  # noqa: E402
from kobe_pipelines.strategies import StrategyRegistry  # noqa: E402
from kobe_pipelines.trading.cycle import run_trading_cycle  # noqa: E402
from kobe_pipelines.trading.lineage import stamp_signals  # noqa: E402

HISTORY_DAYS = 120


class RereadingPaperBroker(PaperBroker):
    """The paper broker parsing its state file on every read (the behaviour before the cache)."""

    def _load(self):
        self._cached = None
        return super()._load()


def market(sessions: int):
    days = market_calendar.sessions("2022-01-03", "2025-12-31")
    start, end = days[0], days[min(len(days) - 1, 150 + sessions)]
    provider = SimulatedProvider(SimConfig(n_symbols=24, start=str(start.date()), end=str(end.date())))
    raw = provider.daily_bars(start, end)
    splits, dividends = provider.splits(start, end), provider.dividends(start, end)
    total = apply_factors(raw, compute_factors(raw, splits, dividends).factors, "total")
    signal = provider.planted_signal(start, end)
    return days[150:150 + sessions], raw, total, signal, actions_from_tables(splits, dividends)


def drive(broker_class: type, state: Path, data) -> list[float]:
    days, raw, total, signal, actions = data
    state.mkdir(parents=True)
    broker = broker_class(state, slippage_bps=5.0)
    ledger, slippage, drawdown = OrderLedger(state), SlippageTracker(state), DrawdownMonitor(state)
    registry = StrategyRegistry()
    costs = []
    with PolicyGate(RiskLimits(max_orders_per_minute=100_000), state, audit_fsync=False) as gate:
        for day in days:
            scores = signal.loc[signal["date"] == day, ["symbol", "date", "score"]]
            signals = stamp_signals(scores, model="oracle", model_version="0", lake_version="sim", lake_hash="sim")
            bars = total.loc[(total["date"] <= day) & (total["date"] > day - pd.Timedelta(days=HISTORY_DAYS))]
            raw_bars = raw.loc[(raw["date"] <= day) & (raw["date"] > day - pd.Timedelta(days=10))]
            started = time.perf_counter()
            run_trading_cycle(signals=signals, bars=bars, raw_bars=raw_bars, broker=broker, gate=gate, ledger=ledger,
                              slippage=slippage, registry=registry, strategy_name="ranked_long", drawdown=drawdown,
                              actions=actions, send_alert=lambda alert: None)
            costs.append((time.perf_counter() - started) * 1000)
    registry.close()
    return costs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=252)
    args = parser.parse_args()
    data = market(args.sessions)
    root = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
    warm_days, *rest = data
    drive(PaperBroker, root / "warm-up", (warm_days[:3], *rest))  # imports, calendars, the strategy's first load
    results = {}
    for name, cls in (("cached", PaperBroker), ("re-read", RereadingPaperBroker)):
        results[name] = drive(cls, root / name, data)
    window = min(21, args.sessions // 2)
    print(f"{args.sessions} sessions, 24 symbols, ranked_long through the paper broker (ms per session)")
    for name, costs in results.items():
        first, last = statistics.median(costs[:window]), statistics.median(costs[-window:])
        size = (root / name / "paper_broker.json").stat().st_size
        print(f"  {name:8} first {window}: {first:7.1f}  last {window}: {last:7.1f}  last/first {last / first:4.2f}  "
              f"total {sum(costs) / 1000:6.1f} s  state file {size / 1024:,.0f} KiB")
    ratio = sum(results["re-read"]) / sum(results["cached"])
    print(f"  re-read / cached, whole run: {ratio:.2f}")


if __name__ == "__main__":
    main()
