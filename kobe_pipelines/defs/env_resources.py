"""Resources whose settings are environment variables parsed by the domain code.

Each field mirrors one variable (see `ENV`). `build_resources` feeds a field with `dg.EnvVar`
when its variable is set, so the Dagster UI shows where it came from and secrets stay out of run
config; `environ()` hands the resolved values, under their variable names, to the domain's own
`from_env` parser, so every setting is parsed and validated in exactly one place.
"""

from __future__ import annotations

from typing import ClassVar

import dagster as dg

from kobe_pipelines import paths


class EnvBackedResource(dg.ConfigurableResource):
    ENV: ClassVar[dict[str, str]] = {}  # field -> environment variable

    state_dir: str | None = None

    def environ(self) -> dict[str, str]:
        values = {var: getattr(self, f) for f, var in self.ENV.items()}
        return {var: str(v) for var, v in values.items() if v not in (None, "")}

    def state(self):
        return paths.state_dir(self.state_dir or None)


class AlertsResource(EnvBackedResource):
    """Alerts: log and `state/alerts.jsonl`, plus e-mail over SMTP when `KOBE_SMTP_HOST` is set."""

    ENV: ClassVar[dict[str, str]] = {
        "smtp_host": "KOBE_SMTP_HOST", "smtp_port": "KOBE_SMTP_PORT", "smtp_user": "KOBE_SMTP_USER",
        "smtp_password": "KOBE_SMTP_PASSWORD", "smtp_starttls": "KOBE_SMTP_STARTTLS",
        "smtp_timeout": "KOBE_SMTP_TIMEOUT", "smtp_cafile": "KOBE_SMTP_CAFILE", "alert_from": "KOBE_ALERT_FROM",
        "alert_to": "KOBE_ALERT_TO", "group_seconds": "KOBE_ALERT_GROUP_SECONDS",
    }
    smtp_host: str | None = None
    smtp_port: str | None = None
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: str | None = None
    smtp_timeout: str | None = None
    smtp_cafile: str | None = None
    alert_from: str | None = None
    alert_to: str | None = None
    group_seconds: str | None = None

    def alerter(self):
        from kobe_pipelines.alerts import build_alerter

        return build_alerter(state_dir=self.state(), environ=self.environ())


class RiskResource(EnvBackedResource):
    """The policy gate's limits (`KOBE_RISK_CONFIG` file, `KOBE_RISK_*` overrides) and state."""

    ENV: ClassVar[dict[str, str]] = {
        "config_file": "KOBE_RISK_CONFIG", "max_drawdown": "KOBE_RISK_MAX_DRAWDOWN", "max_heat": "KOBE_RISK_MAX_HEAT",
        "max_position_fraction": "KOBE_RISK_MAX_POSITION_FRACTION",
        "max_order_notional": "KOBE_RISK_MAX_ORDER_NOTIONAL", "price_collar": "KOBE_RISK_PRICE_COLLAR",
        "max_orders_per_minute": "KOBE_RISK_MAX_ORDERS_PER_MINUTE",
    }
    config_file: str | None = None
    max_drawdown: str | None = None
    max_heat: str | None = None
    max_position_fraction: str | None = None
    max_order_notional: str | None = None
    price_collar: str | None = None
    max_orders_per_minute: str | None = None

    def limits(self):
        from kobe_pipelines.risk.limits import RiskLimits

        return RiskLimits.load(self.environ())

    def gate(self, universe=None):
        from kobe_pipelines.risk.gate import PolicyGate

        return PolicyGate(self.limits(), self.state(), universe=universe)

    def drawdown_monitor(self, alert=None):
        from kobe_pipelines.risk.drawdown import DrawdownMonitor

        return DrawdownMonitor(self.state(), max_drawdown=self.limits().max_drawdown, alert=alert)

    def kill_switch(self):
        from kobe_pipelines.risk.kill_switch import KillSwitch

        return KillSwitch(self.state())


class BrokerResource(EnvBackedResource):
    """The broker (`KOBE_BROKER`: paper, the default, or alpaca), its ledger and slippage tracker."""

    ENV: ClassVar[dict[str, str]] = {
        "alpaca_api_key": "ALPACA_API_KEY", "alpaca_secret_key": "ALPACA_SECRET_KEY",
        "alpaca_paper": "KOBE_ALPACA_PAPER", "live_trading": "KOBE_LIVE_TRADING", "alpaca_base_url": "KOBE_ALPACA_BASE_URL",
        "alpaca_timeout_s": "KOBE_ALPACA_TIMEOUT_S", "alpaca_retry_attempts": "KOBE_ALPACA_RETRY_ATTEMPTS",
        "alpaca_retry_wait_s": "KOBE_ALPACA_RETRY_WAIT_S", "alpaca_reconcile_attempts": "KOBE_ALPACA_RECONCILE_ATTEMPTS",
        "alpaca_reconcile_wait_s": "KOBE_ALPACA_RECONCILE_WAIT_S", "alpaca_time_in_force": "KOBE_ALPACA_TIME_IN_FORCE",
    }
    broker: str = "paper"
    paper_slippage_bps: float = 5.0
    paper_starting_cash: float = 100_000.0
    delisted_after_sessions: int = 5  # a held symbol without a bar this many sessions is delisted
    alpaca_api_key: str | None = None
    alpaca_secret_key: str | None = None
    alpaca_paper: str | None = None
    live_trading: str | None = None
    alpaca_base_url: str | None = None
    alpaca_timeout_s: str | None = None
    alpaca_retry_attempts: str | None = None
    alpaca_retry_wait_s: str | None = None
    alpaca_reconcile_attempts: str | None = None
    alpaca_reconcile_wait_s: str | None = None
    alpaca_time_in_force: str | None = None

    def build(self, universe=None):
        if self.broker == "paper":
            from kobe_pipelines.execution.paper import PaperBroker

            return PaperBroker(self.state(), self.paper_slippage_bps, self.paper_starting_cash, symbols=universe,
                               delisted_after=self.delisted_after_sessions)
        if self.broker == "alpaca":
            from kobe_pipelines.execution.alpaca import AlpacaBroker
            from kobe_pipelines.execution.alpaca_settings import AlpacaSettings

            return AlpacaBroker(AlpacaSettings.from_env(self.environ()))
        from kobe_pipelines.errors import ConfigError

        raise ConfigError("KOBE_BROKER", "must be paper or alpaca", self.broker)

    def ledger(self):
        from kobe_pipelines.execution.ledger import OrderLedger

        return OrderLedger(self.state())

    def slippage(self):
        from kobe_pipelines.execution.slippage import SlippageTracker

        return SlippageTracker(self.state())


class MlflowResource(EnvBackedResource):
    """MLflow: `MLFLOW_TRACKING_URI`, else SQLite under `state/mlflow/`."""

    tracking_uri: str | None = None

    def registry(self):
        from kobe_pipelines.ml.registry import ModelRegistry

        if self.tracking_uri:
            return ModelRegistry(self.tracking_uri)
        return ModelRegistry(f"sqlite:///{self.state() / 'mlflow' / 'mlflow.db'}")


class StrategyResource(EnvBackedResource):
    """Which strategy trades (`KOBE_STRATEGY`), the users' folder (`KOBE_STRATEGY_DIR`), the risk budget."""

    ENV: ClassVar[dict[str, str]] = {
        "risk_per_trade": "KOBE_RISK_PER_TRADE", "max_position_fraction": "KOBE_MAX_POSITION_FRACTION",
    }
    strategy: str = "ranked_long"
    strategy_dir: str | None = None
    risk_per_trade: str | None = None
    max_position_fraction: str | None = None

    def budget(self):
        from kobe_pipelines.strategies import RiskBudget

        return RiskBudget.from_env(self.environ())

    def registry(self, alert=None):
        from pathlib import Path

        from kobe_pipelines.strategies import StrategyRegistry

        folder = Path(self.strategy_dir) if self.strategy_dir else None
        return StrategyRegistry(folder, alert, keep_dir=self.state() / "strategies")
