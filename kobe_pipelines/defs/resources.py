"""Resources: every outside system and setting, fed from environment variables.

This is the one module where the environment is switched: `build_resources()` maps each
variable to its resource field with `dg.EnvVar` when the variable is set (so the Dagster UI
shows where a value came from and secrets never land in run config), and to the embedded,
offline default when it is not.
"""

from __future__ import annotations

import os
from typing import Mapping

import dagster as dg
from pydantic import Field

from kobe_pipelines.data.providers.base import MarketDataProvider
from kobe_pipelines.defs.env_resources import (
    AlertsResource, BrokerResource, MlflowResource, RiskResource, StrategyResource,
)
from kobe_pipelines.defs.backtest.resources import BacktestResource
from kobe_pipelines.defs.partitions import HISTORY_START
from kobe_pipelines.errors import ConfigError
from kobe_pipelines.lake import Lake

MARKET_DATA_PROVIDERS = ("simulated", "polygon", "files")


class LakeResource(dg.ConfigurableResource):
    """The versioned data lake (`KOBE_LAKE_DIR`, default `data_lake/`)."""

    lake_dir: str | None = Field(default=None, description="Lake folder; empty means ./data_lake")
    retention: int = Field(default=10, description="Lake versions kept (pinned versions are kept too)")
    dividend_convention: str = Field(default="crsp", description="crsp (1 - D/close_prev) or quandl (close/(close + D))")

    def open(self) -> Lake:
        return Lake(self.lake_dir or None, retention=self.retention)


class MarketDataResource(dg.ConfigurableResource):
    """Where raw bars and corporate actions come from (`KOBE_MARKET_DATA`)."""

    provider: str = Field(default="simulated", description="simulated | polygon | files")
    history_start: str = Field(default=HISTORY_START, description="First session ingested when the lake is empty")
    sim_seed: int = 7
    sim_symbols: int = 24
    sim_signal_strength: float = 0.05
    sim_end: str | None = Field(default=None, description="Last simulated session; empty means the last completed one")
    polygon_api_key: str | None = None
    polygon_base_url: str | None = None
    files_dir: str | None = None

    def build(self) -> MarketDataProvider:
        if self.provider == "simulated":
            from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider

            return SimulatedProvider(
                SimConfig(
                    seed=self.sim_seed,
                    n_symbols=self.sim_symbols,
                    start=self.history_start,
                    end=self.sim_end or None,
                    signal_strength=self.sim_signal_strength,
                )
            )
        if self.provider == "polygon":
            from kobe_pipelines.data.providers.polygon import PolygonProvider

            return PolygonProvider(api_key=self.polygon_api_key, base_url=self.polygon_base_url or None)
        if self.provider == "files":
            from kobe_pipelines.data.providers.files import FilesProvider

            if not self.files_dir:
                raise dg.DagsterInvalidConfigError("KOBE_FILES_DIR must name a folder when KOBE_MARKET_DATA=files", [], None)
            return FilesProvider(self.files_dir)
        raise ValueError(f"KOBE_MARKET_DATA must be one of {MARKET_DATA_PROVIDERS} (got {self.provider!r})")


# variable -> (resource key, field, type); the defaults are the fields' own.
ENV_FIELDS: dict[str, tuple[str, str, type]] = {
    "KOBE_LAKE_DIR": ("lake", "lake_dir", str),
    "KOBE_LAKE_RETENTION": ("lake", "retention", int),
    "KOBE_DIVIDEND_CONVENTION": ("lake", "dividend_convention", str),
    "KOBE_MARKET_DATA": ("market_data", "provider", str),
    "KOBE_HISTORY_START": ("market_data", "history_start", str),
    "KOBE_SIM_SEED": ("market_data", "sim_seed", int),
    "KOBE_SIM_SYMBOLS": ("market_data", "sim_symbols", int),
    "KOBE_SIM_SIGNAL_STRENGTH": ("market_data", "sim_signal_strength", float),
    "KOBE_SIM_END": ("market_data", "sim_end", str),
    "POLYGON_API_KEY": ("market_data", "polygon_api_key", str),
    "KOBE_POLYGON_BASE_URL": ("market_data", "polygon_base_url", str),
    "KOBE_FILES_DIR": ("market_data", "files_dir", str),
    "KOBE_BROKER": ("broker", "broker", str),
    "KOBE_PAPER_SLIPPAGE_BPS": ("broker", "paper_slippage_bps", float),
    "KOBE_PAPER_STARTING_CASH": ("broker", "paper_starting_cash", float),
    "KOBE_DELISTED_AFTER_SESSIONS": ("broker", "delisted_after_sessions", int),
    "MLFLOW_TRACKING_URI": ("mlflow", "tracking_uri", str),
    "KOBE_STRATEGY": ("strategy", "strategy", str),
    "KOBE_STRATEGY_DIR": ("strategy", "strategy_dir", str),
    "KOBE_BACKTEST_DIR": ("backtest", "backtest_dir", str),
}
# the env-backed resources: each field named in their ENV, plus the shared state folder
for _key, _cls in (("alerts", AlertsResource), ("risk", RiskResource), ("broker", BrokerResource),
                   ("mlflow", MlflowResource), ("strategy", StrategyResource)):
    ENV_FIELDS["KOBE_STATE_DIR:" + _key] = (_key, "state_dir", str)
    for _field, _var in _cls.ENV.items():
        ENV_FIELDS[_var + ":" + _key] = (_key, _field, str)

RESOURCE_CLASSES: dict[str, type[dg.ConfigurableResource]] = {
    "lake": LakeResource,
    "market_data": MarketDataResource,
    "alerts": AlertsResource,
    "risk": RiskResource,
    "broker": BrokerResource,
    "mlflow": MlflowResource,
    "strategy": StrategyResource,
    "backtest": BacktestResource,
}


def _env_value(name: str, kind: type, env: Mapping[str, str]) -> object:
    if kind is int:
        return dg.EnvVar.int(name)
    if kind is float:  # EnvVar has no float form; these are plain numbers, never secrets
        try:
            return float(env[name])
        except ValueError:
            raise ConfigError(name, "must be a number", env[name]) from None
    return dg.EnvVar(name)


def build_resources(environ: Mapping[str, str] | None = None) -> dict[str, dg.ConfigurableResource]:
    """Resources for the `Definitions`: EnvVar where the variable is set, else the default."""
    env = os.environ if environ is None else environ
    fields: dict[str, dict[str, object]] = {key: {} for key in RESOURCE_CLASSES}
    for entry, (key, field, kind) in ENV_FIELDS.items():
        name = entry.split(":")[0]  # "VAR:resource" when one variable feeds several resources
        if env.get(name, "") != "":
            fields[key][field] = _env_value(name, kind, env)
    return {key: cls(**fields[key]) for key, cls in RESOURCE_CLASSES.items()}
