"""Alpaca's JSON answers read into the broker records, and its errors into `BrokerError`s.

The client runs with `raw_data=True`: an answer we cannot map to alpaca-py's models (a new
status, a missing optional field) must not turn an accepted order into an exception after
the fact, so only the fields used here are read, each with a clear error when absent.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from kobe_pipelines.execution.broker import Account, LegRecord, LegRole, OrderClass, OrderRecord, OrderStatus
from kobe_pipelines.execution.errors import (
    AccountRestrictedError,
    AuthenticationError,
    BrokerError,
    BrokerUnavailableError,
    InsufficientBuyingPowerError,
    InsufficientQuantityError,
    InvalidOrderError,
    MarketClosedError,
    PatternDayTradingError,
    RateLimitedError,
    ShortSaleNotAllowedError,
    UnknownSymbolError,
    WashTradeError,
)
from kobe_pipelines.orders import OrderType
from kobe_pipelines.risk.types import Position, Side

_STATUS = {
    "new": OrderStatus.NEW, "accepted": OrderStatus.NEW, "pending_new": OrderStatus.NEW,
    "accepted_for_bidding": OrderStatus.NEW, "pending_replace": OrderStatus.NEW, "pending_cancel": OrderStatus.NEW,
    "calculated": OrderStatus.NEW, "stopped": OrderStatus.NEW, "done_for_day": OrderStatus.NEW,
    "pending_review": OrderStatus.NEW, "held": OrderStatus.HELD, "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED, "canceled": OrderStatus.CANCELED, "replaced": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED, "suspended": OrderStatus.REJECTED,
}


class WireError(BrokerError):
    """An Alpaca answer without a field we need."""


def status_of(raw: Any) -> OrderStatus:
    """Alpaca's status; one we do not know counts as PENDING (still open: fail closed)."""
    return _STATUS.get(str(raw or "").lower(), OrderStatus.PENDING)


def _decimal(raw: Mapping[str, Any], key: str, what: str) -> Decimal | None:
    value = raw.get(key)
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise WireError(f"Alpaca {what}: field '{key}' is not a number (got {value!r})") from None


def _shares(raw: Mapping[str, Any], key: str, what: str) -> int:
    value = _decimal(raw, key, what) or Decimal(0)
    if value != value.to_integral_value():
        raise WireError(f"Alpaca {what}: field '{key}' is a fractional share count ({value}); KOBE trades whole shares")
    return int(value)


def _time(raw: Mapping[str, Any], key: str) -> dt.datetime | None:
    value = raw.get(key)
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _leg(raw: Mapping[str, Any], role: LegRole, what: str) -> LegRecord:
    stop_order = role is LegRole.STOP_LOSS or str(raw.get("type") or raw.get("order_type") or "").lower() == "stop"
    price_key = "stop_price" if stop_order else "limit_price"
    filled = _shares(raw, "filled_qty", what)
    return LegRecord(role, Side(str(raw.get("side", "")).lower()), _float(_decimal(raw, price_key, what)),
                     status_of(raw.get("status")), filled, _float(_decimal(raw, "filled_avg_price", what)) if filled else None,
                     _time(raw, "filled_at"), str(raw.get("id") or "") or None)


def order_record(raw: Any) -> OrderRecord:
    """An Alpaca order (nested: exit legs under `legs`) as an `OrderRecord`."""
    if not isinstance(raw, Mapping) or not raw.get("id") or not raw.get("client_order_id"):
        raise WireError(f"Alpaca order answer without 'id' or 'client_order_id': {str(raw)[:200]}")
    what = f"order {raw['client_order_id']}"
    try:
        side = Side(str(raw.get("side", "")).lower())
    except ValueError:
        raise WireError(f"Alpaca {what}: field 'side' is {raw.get('side')!r}") from None
    legs = [_leg(raw, LegRole.ENTRY, what)]
    for child in raw.get("legs") or []:
        kind = str(child.get("type") or child.get("order_type") or "").lower()
        legs.append(_leg(child, LegRole.STOP_LOSS if kind.startswith("stop") else LegRole.TAKE_PROFIT, what))
    try:
        order_class = OrderClass(str(raw.get("order_class") or "simple").lower())
    except ValueError:
        raise WireError(f"Alpaca {what}: unsupported order_class {raw.get('order_class')!r}") from None
    submitted = _time(raw, "submitted_at") or _time(raw, "created_at") or dt.datetime.now(dt.timezone.utc)
    kind = str(raw.get("type") or raw.get("order_type") or "limit").lower()
    order_type = OrderType(kind) if kind in ("limit", "market", "stop") else OrderType.LIMIT
    return OrderRecord(str(raw["client_order_id"]), str(raw["id"]), str(raw.get("symbol") or ""), side,
                       _shares(raw, "qty", what), order_class, submitted, tuple(legs), order_type=order_type)


def position(raw: Mapping[str, Any]) -> Position:
    symbol = str(raw.get("symbol") or "")
    what = f"position {symbol}"
    qty = _shares(raw, "qty", what)
    if str(raw.get("side", "")).lower() == "short" and qty > 0:
        qty = -qty
    avg = _decimal(raw, "avg_entry_price", what)
    return Position(symbol, qty, float(avg) if avg is not None else 0.0)


def marks(raw: list[Mapping[str, Any]]) -> dict[str, float]:
    """`current_price` of each position that has one, USD."""
    out = {}
    for item in raw:
        price = _decimal(item, "current_price", f"position {item.get('symbol')}")
        if price is not None:
            out[str(item.get("symbol") or "")] = float(price)
    return out


def account(raw: Mapping[str, Any]) -> Account:
    values = {}
    for key in ("equity", "cash", "buying_power"):
        value = _decimal(raw, key, "account")
        if value is None:
            raise WireError(f"Alpaca account answer without '{key}'")
        values[key] = float(value)
    return Account(**values)


def api_error_text(body: str) -> tuple[str, Any]:
    """(message, code) of an Alpaca error body `{"code": ..., "message": ...}`, or the raw text."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return str(body)[:300], None
    if isinstance(data, dict):
        return str(data.get("message", body))[:300], data.get("code")
    return str(body)[:300], None


# Alpaca's refusals of an understood order, told apart by their text (the numeric codes are
# shared: 40310000 covers buying power, quantity and wash trades alike). First match wins, so the
# narrow texts come before "buying power" and "insufficient".
_REFUSALS: tuple[tuple[tuple[str, ...], type[BrokerError], str], ...] = (
    (("insufficient qty", "qty available"), InsufficientQuantityError,
     " (shares held for open orders, such as this position's exit legs, are not available to sell)"),
    (("wash trade",), WashTradeError, " (an opposite-side order on this symbol is open)"),
    (("pattern day trad",), PatternDayTradingError, ""),
    (("not allowed to short", "cannot be sold short", "not shortable", "short selling is not allowed"),
     ShortSaleNotAllowedError, ""),
    (("buying power", "insufficient"), InsufficientBuyingPowerError, ""),
    (("authorized to trade", "allowed to trade", "restricted", "account is blocked", "trading is blocked",
      "liquidation only", "closing transactions"), AccountRestrictedError, " (the keys work; the account may not trade)"),
)
_KEYS_HINT = " (check ALPACA_API_KEY / ALPACA_SECRET_KEY)"


def error_for(status: int | None, message: str, client_order_id: str | None, action: str) -> BrokerError:
    """The `BrokerError` subclass for an HTTP error answer. `message` must already be scrubbed.

    A 403, 422 or 400 that names its reason keeps it: insufficient quantity, a wash trade, the
    pattern day trader rule, a refused short sale, buying power, a restricted account each have
    their own class; only 'forbidden' / 'unauthorized' mean the keys.
    """
    text = message.lower()
    where = f"Alpaca {action}" + (f" {client_order_id}" if client_order_id else "")
    full = f"{where}: HTTP {status}: {message}"
    if status == 401:
        return AuthenticationError(full + _KEYS_HINT, client_order_id, status)
    if status in (400, 403, 422):
        for needles, kind, hint in _REFUSALS:
            if any(needle in text for needle in needles):
                return kind(full + hint, client_order_id, status)
    if status == 403:
        if "forbidden" in text or "unauthorized" in text or "not authorized" in text:
            return AuthenticationError(full + _KEYS_HINT, client_order_id, status)
        return InvalidOrderError(full, client_order_id, status)
    if status == 422 or status == 400:
        if "market" in text and ("closed" in text or "not open" in text or "hours" in text):
            return MarketClosedError(full, client_order_id, status)
        if "asset" in text or "symbol" in text:
            return UnknownSymbolError(full, client_order_id, status)
        return InvalidOrderError(full, client_order_id, status)
    if status == 429:
        return RateLimitedError(full + " (rate limited after every retry)", client_order_id, status)
    if status is not None and status >= 500:
        return BrokerUnavailableError(full, client_order_id, status)
    return BrokerError(full, client_order_id, status)
