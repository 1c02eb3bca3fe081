"""Resources: every outside system and setting, fed from environment variables.

This is the one module where the environment is switched: `build_resources()` maps each
variable to its resource field with `dg.EnvVar` when the variable is set (so the Dagster UI
shows where a value came from and secrets never land in run config), and to the embedded,
offline default when it is not.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping

import dagster as dg
from pydantic import Field

from kobe_pipelines.defs.env_resources import (
    AlertsResource, BrokerResource, MlflowResource, RiskResource, StrategyResource,
)
from kobe_pipelines.defs.backtest.resources import BacktestResource
from kobe_pipelines.errors import ConfigError
from kobe_pipelines.settings import LakeSettings, MarketDataSettings

if TYPE_CHECKING:
    from kobe_pipelines.data.providers.base import MarketDataProvider
    from kobe_pipelines.lake import Lake

_LAKE, _MARKET = LakeSettings(), MarketDataSettings()  # the embedded defaults


class LakeResource(dg.ConfigurableResource):
    """The versioned data lake (`KOBE_LAKE_DIR`, default `data_lake/`)."""

    lake_dir: str | None = Field(default=_LAKE.lake_dir, description="Lake folder; empty means ./data_lake")
    retention: int = Field(default=_LAKE.retention, description="Lake versions kept (pinned versions are kept too)")
    dividend_convention: str = Field(default=_LAKE.dividend_convention,
                                     description="crsp (1 - D/close_prev) or quandl (close/(close + D))")

    def settings(self) -> LakeSettings:
        return LakeSettings(lake_dir=self.lake_dir or None, retention=self.retention, dividend_convention=self.dividend_convention)

    def open(self) -> Lake:
        from kobe_pipelines.lake import Lake

        return Lake(self.lake_dir or None, retention=self.settings().retention)


class MarketDataResource(dg.ConfigurableResource):
    """Where raw bars and corporate actions come from (`KOBE_MARKET_DATA`); the fields are those of
    `settings.MarketDataSettings`, which parses and checks them."""

    provider: str = Field(default=_MARKET.provider, description="simulated | polygon | files")
    history_start: str = Field(default=_MARKET.history_start, description="First session ingested when the lake is empty")
    sim_seed: int = _MARKET.sim_seed
    sim_symbols: int = _MARKET.sim_symbols
    sim_signal_strength: float = _MARKET.sim_signal_strength
    sim_end: str | None = Field(default=_MARKET.sim_end, description="Last simulated session; empty means the last completed one")
    polygon_api_key: str | None = _MARKET.polygon_api_key
    polygon_base_url: str | None = _MARKET.polygon_base_url
    files_dir: str | None = _MARKET.files_dir

    def settings(self) -> MarketDataSettings:
        return MarketDataSettings(**{name: getattr(self, name) for name in MarketDataSettings.ENV})

    def build(self) -> MarketDataProvider:
        from kobe_pipelines.data.providers.factory import build_provider

        return build_provider(self.settings())


# variable -> (resource key, field, type): the settings' own names, types and defaults.
ENV_FIELDS: dict[str, tuple[str, str, type]] = {
    **{var: ("lake", name, LakeSettings.TYPES[name]) for name, var in LakeSettings.ENV.items()},
    **{var: ("market_data", name, MarketDataSettings.TYPES[name]) for name, var in MarketDataSettings.ENV.items()},
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
