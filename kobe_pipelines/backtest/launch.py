"""A backtest from its settings: its own lake (or a given one), the market, the strategy and its
signals, the run, and every output file. The CLI (`kobe backtest`) and the Dagster asset
(`backtest_report`) both call `run_settings`.

Layout of `out`:
    lake/      the lake version the backtest reads (unless an existing lake was given)
    state/     the trading loop's state: paper broker, ledger, audit log, slippage, high-water mark,
               kill switch and halt log (never the live state/)
    mlflow/    MLflow store of the walk-forward models (unless a tracking URI was given)
    equity.csv, orders.csv, fills.csv, halts.csv, cap_excesses.csv, alerts.jsonl,
    report.html, *.png, manifest.json

Risk limits: the live limits (`RiskLimits.load()`: `KOBE_RISK_CONFIG`, `KOBE_RISK_*`), then a
strategy preset, then `--limit NAME=VALUE`. `buy_and_hold` holds the whole universe with stops
half the price away, far beyond a trading book's caps, so its preset widens the heat and
position caps to 100 % of equity and the order notional cap to the starting cash; the gate still
judges every order. The preset is printed and recorded in `manifest.json`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kobe_pipelines import market_calendar
from kobe_pipelines.backtest.market import PointInTimeMarket
from kobe_pipelines.backtest.model_log import RetrainLog
from kobe_pipelines.backtest.outputs import write_outputs
from kobe_pipelines.backtest.runner import STATE_FOLDER, BacktestConfig, BacktestRun, run_backtest
from kobe_pipelines.backtest.settings import DEFAULT_SYMBOLS, BacktestSettings, parse_assignments
from kobe_pipelines.backtest.signals import ScoredSignals, SignalSource, UniverseSignals
from kobe_pipelines.backtest.stats import Summary
from kobe_pipelines.backtest.walk_forward import TABULAR_MEMBERS, WalkForwardConfig, WalkForwardSignals
from kobe_pipelines.data.providers.base import MarketDataProvider, bar_batches_for_freeze
from kobe_pipelines.data.providers.factory import build_provider
from kobe_pipelines.errors import ConfigError
from kobe_pipelines.execution.corporate_actions import actions_from_tables
from kobe_pipelines.lake import Lake
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.settings import MarketDataSettings
from kobe_pipelines.strategies import RankedLong, RankedLongConfig, RiskBudget, StrategyRegistry
from kobe_pipelines.strategies import buy_and_hold, ranked_long
from kobe_pipelines.strategies.buy_and_hold import BuyAndHold, BuyAndHoldConfig

BUILTIN_CONFIGS = {"ranked_long": RankedLongConfig, "buy_and_hold": BuyAndHoldConfig}


@dataclass(frozen=True)
class BacktestOutcome:
    out: Path
    summary: Summary
    run: BacktestRun
    notes: tuple[str, ...]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> dict[str, Path]:
        names = ("report.html", "tear_sheet.png", "equity.csv", "orders.csv", "fills.csv", "manifest.json")
        return {name: self.out / name for name in names}


def open_lake(settings: BacktestSettings) -> tuple[Lake, str]:
    """The lake and version the backtest reads: the given lake, or a new one under `out/lake`
    frozen from the provider over [history start, end]."""
    if settings.lake is not None:
        lake = Lake(settings.lake)
        return lake, lake.version(settings.lake_version).version_id if settings.lake_version else lake.current_version().version_id
    provider = market_data(settings)
    first, last = settings.first_history_session, settings.end
    lake = Lake(settings.out / "lake")
    result = lake.freeze(bar_batches_for_freeze(provider, first, last), provider.splits(first, last),
                         provider.dividends(first, last),
                         provider=settings.provider, dividend_convention=settings.dividend_convention,
                         notes={"backtest": str(settings.out)})
    return lake, result.version.version_id


def market_data(settings: BacktestSettings) -> MarketDataProvider:
    """The provider a backtest freezes its own lake from, built as `kobe lake freeze` and the assets
    build theirs (`KOBE_*` market-data settings, e.g. POLYGON_API_KEY), with the backtest's own
    choices on top: the provider, the source folder, and for the simulated market its seed, its
    number of symbols and its sessions (the backtest's history start to its end)."""
    base = MarketDataSettings.from_env()
    if settings.provider == "files":
        return build_provider(base.replace(provider="files", files_dir=str(settings.source)))
    if settings.provider == "polygon":
        return build_provider(base.replace(provider="polygon"))
    return build_provider(base.replace(provider="simulated", sim_seed=settings.seed,
                                       sim_symbols=settings.symbols or DEFAULT_SYMBOLS,
                                       history_start=settings.first_history_session, sim_end=settings.end))


def universe(lake: Lake, version_id: str, settings: BacktestSettings) -> list[str] | None:
    """The first `symbols` symbols of the version (A-Z); None: all (and always all when simulated)."""
    if settings.symbols is None or (settings.provider == "simulated" and settings.lake is None):
        return None
    found = lake.query("SELECT DISTINCT symbol FROM bars ORDER BY symbol", version_id)["symbol"].tolist()
    return [str(s) for s in found[: settings.symbols]]


def first_trading_date(market: PointInTimeMarket, start: str) -> str:
    first = market.sessions[market.sessions >= pd.Timestamp(start)]
    if len(first) == 0:
        raise ConfigError("start", f"no session of the lake version on or after {start}", start)
    return str(market_calendar.xnys().next_session(first[0]).date())


def strategy_setup(settings: BacktestSettings, market: PointInTimeMarket,
                   base: RiskLimits) -> tuple[StrategyRegistry, bool, RiskLimits, list[str]]:
    """The registry (built-ins configured by `--param`, plus the user's folder), whether every
    position must carry a stop, the limits after the preset and `--limit`, and the notes to show."""
    name, notes = settings.strategy, []
    params = {}
    if name in BUILTIN_CONFIGS:
        params = parse_assignments(settings.params, BUILTIN_CONFIGS[name], "param")
    elif settings.params:
        raise ConfigError("param", f"only the built-in strategies take parameters ({', '.join(BUILTIN_CONFIGS)}); "
                                   f"{name!r} reads its own", settings.params[0])
    require_stops = True
    limits = base
    bh_config = BuyAndHoldConfig(**{"entry_date": first_trading_date(market, settings.start),
                                    **(params if name == "buy_and_hold" else {})})
    if name == "buy_and_hold":
        require_stops = bh_config.stop_fraction is not None
        limits = dataclasses.replace(limits, max_heat=1.0, max_position_fraction=1.0,
                                     max_order_notional=max(limits.max_order_notional, settings.starting_cash))
        notes.append(f"buy_and_hold preset: heat and position caps 100% of equity, order notional cap "
                     f"{limits.max_order_notional:,.0f} USD (its stops are {bh_config.stop_fraction or 0:.0%} away)")
    overrides = parse_assignments(settings.limits, RiskLimits, "limit")
    if overrides:
        limits = RiskLimits.from_mapping({**dataclasses.asdict(limits), **overrides}, source="--limit")
        notes.append("limits set by --limit: " + ", ".join(f"{k}={v}" for k, v in overrides.items()))
    rl_config = RankedLongConfig(**(params if name == "ranked_long" else {}))
    builtins = {
        "ranked_long": (lambda: RankedLong(rl_config), Path(ranked_long.__file__)),
        "buy_and_hold": (lambda: BuyAndHold(bh_config), Path(buy_and_hold.__file__)),
    }
    registry = StrategyRegistry(settings.strategy_dir, builtins=builtins, keep_dir=settings.out / STATE_FOLDER / "strategies")
    if name not in registry.names():
        raise ConfigError("strategy", f"is unknown (known: {', '.join(registry.names())})", name)
    return registry, require_stops, limits, notes


def signal_source(settings: BacktestSettings, market: PointInTimeMarket, lake: Lake, version_id: str,
                  symbols: list[str] | None, sessions: pd.DatetimeIndex) -> SignalSource:
    if settings.signals_file is not None:
        path = Path(settings.signals_file)
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        return ScoredSignals(frame, model_name=f"file:{path.name}")
    if settings.strategy == "buy_and_hold":
        return UniverseSignals(market)
    from kobe_pipelines.ml.features import features_from_lake

    features = features_from_lake(lake, version_id, symbols=symbols)
    members = ("lstm", *TABULAR_MEMBERS) if settings.with_lstm else TABULAR_MEMBERS
    config = WalkForwardConfig(retrain_every=settings.retrain_every, members=members, seed=settings.seed)
    tracking = settings.mlflow_uri or f"sqlite:///{(settings.out / 'mlflow' / 'mlflow.db').resolve()}"
    log = RetrainLog(tracking, config, features, backtest_id=settings.out.resolve().name, experiment=settings.experiment)
    return WalkForwardSignals(features, sessions, config, on_retrain=log)


def run_settings(settings: BacktestSettings, progress: Callable[[int, int, pd.Timestamp], Any] | None = None,
                 stage: Callable[[str], Any] | None = None) -> BacktestOutcome:
    """Build, run and write a backtest (module docstring). `stage(text)` is told what starts."""
    say = stage or (lambda text: None)
    out = settings.out
    if (out / STATE_FOLDER).exists() and any((out / STATE_FOLDER).iterdir()):
        raise ConfigError("out", f"{out} already holds a backtest; choose a new --out folder", str(out))
    out.mkdir(parents=True, exist_ok=True)
    say("lake: freezing the market data" if settings.lake is None else "lake: opening the given version")
    lake, version_id = open_lake(settings)
    symbols = universe(lake, version_id, settings)
    market = PointInTimeMarket.from_lake(lake, version_id, symbols=symbols)
    registry, require_stops, limits, notes = strategy_setup(settings, market, RiskLimits.load())
    sessions = market.sessions[(market.sessions >= pd.Timestamp(settings.start)) & (market.sessions <= pd.Timestamp(settings.end))]
    say("signals: features and walk-forward models" if settings.strategy != "buy_and_hold" else "signals: the universe")
    source = signal_source(settings, market, lake, version_id, symbols, sessions)
    config = BacktestConfig(start=settings.start, end=settings.end, strategy=settings.strategy,
                            starting_cash=settings.starting_cash, slippage_bps=settings.slippage_bps, limits=limits,
                            budget=RiskBudget.from_env(), require_stops=require_stops,
                            delisted_after=settings.delisted_after)
    actions = actions_from_tables(lake.derived_table("splits", version_id), lake.derived_table("dividends", version_id),
                                  symbols=[str(s) for s in market.symbols], start=settings.start, end=settings.end)
    say(f"sessions: {settings.start}..{settings.end}")
    run = run_backtest(market, source, config, out, registry, actions=actions, progress=progress)
    manifest = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(settings).items()},
        "lake_version_id": market.version_id, "lake_content_hash": market.content_hash,
        "symbols": len(market.symbols), "limits": dataclasses.asdict(limits), "notes": notes,
        "strategy_versions": sorted({i.strategy_version for r in run.sessions for i in (e.intent for e in r.run.executions)}),
        "models": [{"version": m.version, "run_id": m.run_id, "train": [str(d.date()) for d in m.train_dates]}
                   for m in (source.models if isinstance(source, WalkForwardSignals) else [])],
    }
    say("report: equity, orders, fills, tear sheet")
    title = f"{settings.strategy} on {settings.provider} data, {len(market.symbols)} symbols, {settings.start}..{settings.end}"
    summary = write_outputs(run, out, title=title, manifest=manifest)
    return BacktestOutcome(out, summary, run, tuple(notes), manifest)
