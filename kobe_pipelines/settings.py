"""Settings from the environment: the one place that names the variables of the market data,
the lake, MLflow and Dagster's home, gives their embedded defaults and parses them.

Read at call time, never at import time. The command line reads them with `from_env()`; the
Dagster resources (defs/resources.py) feed the same fields from `dg.EnvVar` so the UI shows where
a value came from, and hand them back here (`MarketDataResource.settings()`), so both parse and
validate every value the same way. A value that does not parse raises `ConfigError` naming the
variable. Folders: `paths.lake_dir()` and `paths.state_dir()` (`KOBE_LAKE_DIR`, `KOBE_STATE_DIR`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

from kobe_pipelines import paths
from kobe_pipelines.errors import ConfigError

DEFAULT_HISTORY_START = "2019-01-02"  # the first session an empty lake ingests
MARKET_DATA_PROVIDERS = ("simulated", "polygon", "files")
MLFLOW_TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DAGSTER_HOME_ENV = "DAGSTER_HOME"


def _parse(name: str, kind: type, raw: str) -> Any:
    if kind is str:
        return raw
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(name, f"must be a{'n integer' if kind is int else ' number'}", raw) from None


def _from_env(cls: type, environ: Mapping[str, str] | None) -> Any:
    """An instance of the settings dataclass `cls` from the variables its `ENV` names (an unset
    or empty variable keeps the field's default)."""
    env = os.environ if environ is None else environ
    values = {}
    for name, var in cls.ENV.items():
        raw = env.get(var, "").strip()
        if raw:
            values[name] = _parse(var, cls.TYPES[name], raw)
    return cls(**values)


def _check_date(var: str, value: str | None) -> None:
    if value is None:
        return
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(var, "must be a date YYYY-MM-DD", value) from None


@dataclass(frozen=True)
class MarketDataSettings:
    """Where raw bars and corporate actions come from, and the history an empty lake starts with."""

    ENV: ClassVar[dict[str, str]] = {
        "provider": "KOBE_MARKET_DATA", "history_start": "KOBE_HISTORY_START", "sim_seed": "KOBE_SIM_SEED",
        "sim_symbols": "KOBE_SIM_SYMBOLS", "sim_signal_strength": "KOBE_SIM_SIGNAL_STRENGTH", "sim_end": "KOBE_SIM_END",
        "polygon_api_key": "POLYGON_API_KEY", "polygon_base_url": "KOBE_POLYGON_BASE_URL", "files_dir": "KOBE_FILES_DIR",
    }
    TYPES: ClassVar[dict[str, type]] = {
        "provider": str, "history_start": str, "sim_seed": int, "sim_symbols": int, "sim_signal_strength": float,
        "sim_end": str, "polygon_api_key": str, "polygon_base_url": str, "files_dir": str,
    }

    provider: str = "simulated"
    history_start: str = DEFAULT_HISTORY_START
    sim_seed: int = 7
    sim_symbols: int = 24
    sim_signal_strength: float = 0.05
    sim_end: str | None = None  # the last simulated session; None: the last completed one
    polygon_api_key: str | None = field(default=None, repr=False)
    polygon_base_url: str | None = None
    files_dir: str | None = None

    def __post_init__(self) -> None:
        if self.provider not in MARKET_DATA_PROVIDERS:
            raise ConfigError("KOBE_MARKET_DATA", f"must be one of {', '.join(MARKET_DATA_PROVIDERS)}", self.provider)
        _check_date("KOBE_HISTORY_START", self.history_start)
        _check_date("KOBE_SIM_END", self.sim_end or None)
        if self.sim_symbols < 1:
            raise ConfigError("KOBE_SIM_SYMBOLS", "must be at least 1", self.sim_symbols)
        if self.sim_seed < 0:
            raise ConfigError("KOBE_SIM_SEED", "must be 0 or more", self.sim_seed)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MarketDataSettings:
        return _from_env(cls, environ)

    def replace(self, **changes: Any) -> MarketDataSettings:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class LakeSettings:
    """The lake's folder, how many versions it keeps, and how dividends adjust prices."""

    ENV: ClassVar[dict[str, str]] = {
        "lake_dir": paths.LAKE_DIR_ENV, "retention": "KOBE_LAKE_RETENTION", "dividend_convention": "KOBE_DIVIDEND_CONVENTION",
    }
    TYPES: ClassVar[dict[str, type]] = {"lake_dir": str, "retention": int, "dividend_convention": str}

    lake_dir: str | None = None  # None: ./data_lake
    retention: int = 10
    dividend_convention: str = "crsp"  # crsp | quandl (the lake checks it: data.schema.DIVIDEND_CONVENTIONS)

    def __post_init__(self) -> None:
        if self.retention < 1:
            raise ConfigError("KOBE_LAKE_RETENTION", "must keep at least 1 version", self.retention)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LakeSettings:
        return _from_env(cls, environ)


def mlflow_tracking_uri(environ: Mapping[str, str] | None = None) -> str:
    """`MLFLOW_TRACKING_URI`, else SQLite in the state folder (`state_tracking_uri`)."""
    env = os.environ if environ is None else environ
    return env.get(MLFLOW_TRACKING_URI_ENV) or state_tracking_uri(paths.state_dir())


def state_tracking_uri(state: Path) -> str:
    """The embedded MLflow store of a state folder: SQLite at `<state>/mlflow/mlflow.db`."""
    return f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"


def dagster_home(environ: Mapping[str, str] | None = None) -> Path:
    """Dagster's instance folder: `DAGSTER_HOME`, else `<state>/dagster`."""
    env = os.environ if environ is None else environ
    raw = env.get(DAGSTER_HOME_ENV)
    return Path(raw).expanduser().resolve() if raw else paths.state_dir() / "dagster"
