"""The backtest group: `backtest_report`, the trading loop replayed over a range of sessions.

(No `from __future__ import annotations`: Dagster reads the run config's class from the annotation.)
"""

import base64
from pathlib import Path

import dagster as dg
from pydantic import Field

from kobe_pipelines.defs.backtest.resources import BacktestResource
from kobe_pipelines.defs.resources import BrokerResource, LakeResource, StrategyResource

GROUP = "backtest"


class BacktestRunConfig(dg.Config):
    """One backtest over the current lake version (run config in the launchpad)."""

    start: str = Field(description="First session, YYYY-MM-DD")
    end: str = Field(description="Last session, YYYY-MM-DD")
    strategy: str = Field(default="ranked_long", description="ranked_long, buy_and_hold or a strategy file's name")
    symbols: int | None = Field(default=None, description="First N symbols (A-Z) of the lake; empty means all")
    retrain_every: int = Field(default=63, description="Sessions between walk-forward retrainings")
    with_lstm: bool = Field(default=False, description="Include the LSTM member in the walk-forward ensemble")
    params: list[str] = Field(default=[], description="Strategy parameters NAME=VALUE")
    limits: list[str] = Field(default=[], description="Risk limits NAME=VALUE")
    starting_cash: float = Field(default=100_000.0, description="USD")


@dg.asset(group_name=GROUP, kinds={"python"})
def backtest_report(context: dg.AssetExecutionContext, config: BacktestRunConfig, lake: LakeResource,
                    backtest: BacktestResource, broker: BrokerResource, strategy: StrategyResource) -> dg.MaterializeResult:
    """The production trading loop (strategy, policy gate, paper broker, ledger, drawdown halt)
    replayed day by day over [start, end] on the current lake version, in its own state folder,
    with walk-forward models; its tear sheet, equity, orders and fills. From the broker and strategy
    resources it takes only the delisting rule (`KOBE_DELISTED_AFTER_SESSIONS`) and the users'
    strategy folder (`KOBE_STRATEGY_DIR`): never a state folder."""
    from kobe_pipelines.backtest.launch import run_settings
    from kobe_pipelines.backtest.report import summary_rows
    from kobe_pipelines.backtest.settings import BacktestSettings

    store = lake.open()
    out = backtest.folder(f"{config.strategy}-{config.start}-{config.end}-{context.run_id[:8]}")
    settings = BacktestSettings(
        start=config.start, end=config.end, out=out, lake=store.root, symbols=config.symbols, strategy=config.strategy,
        params=tuple(config.params), limits=tuple(config.limits), retrain_every=config.retrain_every,
        with_lstm=config.with_lstm, starting_cash=config.starting_cash, delisted_after=broker.delisted_after_sessions,
        strategy_dir=Path(strategy.strategy_dir) if strategy.strategy_dir else None,
    )
    outcome = run_settings(settings, progress=lambda done, total, day: (
        context.log.info(f"backtest: {done}/{total} sessions ({day.date()})") if done % 63 == 0 or done == total else None))
    s = outcome.summary
    sheet = base64.b64encode((out / "tear_sheet.png").read_bytes()).decode()
    return dg.MaterializeResult(metadata={
        "summary": dg.MetadataValue.md("\n".join(["| measure | value |", "|---|---|"] +
                                                 [f"| {k} | {v} |" for k, v in summary_rows(s)])),
        "tear_sheet": dg.MetadataValue.md(f"![tear sheet](data:image/png;base64,{sheet})"),
        "report": dg.MetadataValue.path(str(out / "report.html")),
        "folder": dg.MetadataValue.path(str(out)),
        "lake_version": outcome.manifest["lake_version_id"],
        "final_equity_usd": s.final_equity,
        "total_return": s.total_return,
        "sharpe": s.sharpe,
        "sharpe_se": s.sharpe_se,
        "max_drawdown": s.max_drawdown,
        "halts": s.halts,
        "fills": s.fills,
        "notes": dg.MetadataValue.json(list(outcome.notes)),
    })


backtest_assets = [backtest_report]
