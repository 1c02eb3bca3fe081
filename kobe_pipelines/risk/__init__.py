"""risk domain package (no Dagster import): kill switch, drawdown auto-halt, portfolio heat,
the policy gate every order passes, and its audit log."""

from kobe_pipelines.risk.audit import AUDIT_LOG_NAME, AuditLog, duckdb_source, read_audit_log
from kobe_pipelines.risk.drawdown import (
    EQUITY_LOG_NAME,
    HWM_NAME,
    DrawdownMonitor,
    DrawdownStatus,
    HighWaterMark,
    HighWaterMarkStore,
    read_equity_log,
)
from kobe_pipelines.risk.gate import CHECK_NAMES, PolicyGate
from kobe_pipelines.risk.heat import HeatReport, book_open_risk, is_reducing, order_risk, portfolio_heat, position_risk
from kobe_pipelines.risk.kill_switch import HALT_LOG_NAME, KILL_SWITCH_NAME, HaltStatus, KillSwitch
from kobe_pipelines.risk.limits import RiskLimits
from kobe_pipelines.risk.types import (
    Book,
    CheckResult,
    Decision,
    OrderIntent,
    OrderType,
    Position,
    Side,
    UnapprovedOrderError,
    require_decision,
)

__all__ = [
    "AUDIT_LOG_NAME", "AuditLog", "EQUITY_LOG_NAME", "Book", "CHECK_NAMES", "CheckResult", "Decision", "DrawdownMonitor", "DrawdownStatus",
    "HALT_LOG_NAME", "HWM_NAME", "HaltStatus", "HeatReport", "HighWaterMark", "HighWaterMarkStore", "KILL_SWITCH_NAME",
    "KillSwitch", "OrderIntent", "OrderType", "PolicyGate", "Position", "RiskLimits", "Side", "UnapprovedOrderError",
    "book_open_risk", "duckdb_source", "is_reducing", "order_risk", "portfolio_heat", "position_risk", "read_audit_log", "read_equity_log",
    "require_decision",
]
