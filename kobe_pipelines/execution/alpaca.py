"""`AlpacaBroker`: the broker protocol on alpaca-py's `TradingClient` (settings: `alpaca_settings`).

An intent for a session before today's (America/New_York) is refused as stale. Submitting
never doubles an order:
1. the client order id (deterministic, `client_order_id`) is looked up first; an existing
   order is returned (`created=False`), unless it is a different order under the same id
   (`DuplicateClientOrderIdError`);
2. the order is sent once: LimitOrderRequest (or MarketOrderRequest, or StopOrderRequest for a
   protective stop) with order_class bracket (both legs), oto (one leg) or simple,
   take_profit.limit_price, stop_loss.stop_price and the client order id. Time in force: a
   bracket or OTO `gtc` (Alpaca gives the entry and its legs one time in force: the legs must
   outlive the entry's session; the trading run cancels an entry still unfilled after its
   session, `cancel_expired_entries`), a protective stop `gtc`, a simple order `day`;
3. a 429 is retried by alpaca-py's own retry (`retry_attempts`, `retry_wait_s`): Alpaca did
   not take the order, so sending it again is safe. Nothing else is retried by sending;
4. after a timeout, a connection failure or a 5xx, the outcome is unknown: the order is looked
   up by its client order id (`reconcile_attempts` times, `reconcile_wait_s` apart, with
   tenacity); found, it is returned (`reconciled=True`); not found, `OrderStatusUnknownError`
   (never a blind resubmission; Alpaca also refuses a second order with the same id).
Errors become `BrokerError` subclasses (see `alpaca_wire.error_for`), their text scrubbed of
the keys; the keys are never logged.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable, TypeVar
from zoneinfo import ZoneInfo

import requests
from alpaca.common.enums import BaseURL, Sort
from alpaca.common.exceptions import APIError
from alpaca.common.rest import RESTClient
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass as AlpacaOrderClass
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)
from requests.adapters import HTTPAdapter
from tenacity import RetryError, Retrying, retry_if_exception_type, retry_if_result, stop_after_attempt, wait_fixed

from kobe_pipelines.execution import alpaca_wire as wire
from kobe_pipelines.execution.alpaca_settings import AlpacaSettings
from kobe_pipelines.execution.broker import (
    Account,
    OrderAck,
    OrderClass,
    OrderRecord,
    OrderSpec,
    OrderStatus,
    require_same_order,
    protective_stop,
)
from kobe_pipelines.execution.errors import (
    BrokerError,
    BrokerUnavailableError,
    MarketClosedError,
    OrderNotFoundError,
    OrderStatusUnknownError,
)
from kobe_pipelines.market_calendar import EXCHANGE_TZ
from kobe_pipelines.risk.types import Decision, Position
from kobe_pipelines.orders import OrderType, Side

log = logging.getLogger(__name__)
T = TypeVar("T")
_LOST = (requests.Timeout, requests.ConnectionError)
_OPEN_ORDER_LIMIT = 500  # Alpaca's largest page


class _TimeoutAdapter(HTTPAdapter):
    """Gives every request of the session a timeout (requests has no session-wide default)."""

    def __init__(self, timeout_s: float):
        super().__init__(max_retries=0)
        self.timeout_s = timeout_s

    def send(self, request: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_s
        return super().send(request, **kwargs)


class _TradingClient(TradingClient):
    """alpaca-py's TradingClient with the REST retry settings its constructor does not expose
    (RESTClient takes them): retries only for 429, and raw JSON answers."""

    def __init__(self, settings: AlpacaSettings):
        RESTClient.__init__(
            self, api_key=settings.api_key, secret_key=settings.secret_key, api_version="v2",
            base_url=settings.base_url or (BaseURL.TRADING_PAPER if settings.paper else BaseURL.TRADING_LIVE),
            sandbox=settings.paper, raw_data=True, retry_attempts=settings.retry_attempts,
            retry_wait_seconds=settings.retry_wait_s, retry_exception_codes=[429],
        )
        adapter = _TimeoutAdapter(settings.timeout_s)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"<alpaca TradingClient {self._base_url}>"


class AlpacaBroker:
    """See the module docstring. `settings`: default `AlpacaSettings.from_env()`."""

    name = "alpaca"

    def __init__(self, settings: AlpacaSettings | None = None, clock: Callable[[], dt.datetime] | None = None):
        self.settings = settings or AlpacaSettings.from_env()
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._secrets = tuple(s for s in (self.settings.api_key, self.settings.secret_key) if s)
        self._client = _TradingClient(self.settings)

    def __repr__(self) -> str:
        mode = "paper" if self.settings.paper else "LIVE"
        return f"AlpacaBroker({mode}, {self._client._base_url})"

    # -- orders ----------------------------------------------------------------------------
    def submit(self, decision: Decision) -> OrderAck:
        spec = OrderSpec.from_decision(decision)  # refuses anything but an approved decision, before any request
        coid = spec.client_order_id
        self._refuse_stale(spec)
        existing = self._find(coid, "look-up before submit")
        if existing is not None:
            return self._existing(spec, existing)
        request = self._request(spec)
        log.info("alpaca: submitting %s %s %s x%d (%s)", coid, spec.side.value, spec.symbol, spec.qty, spec.order_class.value)
        try:
            raw = self._client.submit_order(request)
        except _LOST as exc:
            return self._reconcile(coid, f"no answer ({type(exc).__name__})")
        except APIError as exc:
            status = exc.status_code
            if status is not None and status >= 500:
                return self._reconcile(coid, f"HTTP {status}")
            message, _ = wire.api_error_text(self._scrub(str(exc)))
            if status == 422 and "client_order_id" in message.lower():
                found = self._find(coid, "look-up of a duplicate id")
                if found is not None:
                    return self._existing(spec, found)
            raise wire.error_for(status, message, coid, "submit") from None
        return self._ack(self._read(wire.order_record, raw), created=True, reconciled=False)

    def _existing(self, spec: OrderSpec, existing: OrderRecord) -> OrderAck:
        """The order already at Alpaca under this id, if it is this order; never a second one."""
        require_same_order(spec, existing, "Alpaca submit")
        log.info("alpaca: order %s already exists (%s); not sending it again", spec.client_order_id, existing.status.value)
        return self._ack(existing, created=False, reconciled=False)

    def _refuse_stale(self, spec: OrderSpec) -> None:
        """An intent for a session before today's (America/New_York) is a stale signal: refused."""
        if not spec.trading_date:
            return
        today = self._clock().astimezone(ZoneInfo(EXCHANGE_TZ)).date().isoformat()
        if spec.trading_date < today:
            raise MarketClosedError(f"Alpaca submit {spec.client_order_id}: field 'trading_date' {spec.trading_date} "
                                    f"is before today's session date {today} (a stale intent)", spec.client_order_id)

    def _request(self, spec: OrderSpec) -> LimitOrderRequest | MarketOrderRequest | StopOrderRequest:
        lasting = spec.order_class is not OrderClass.SIMPLE or spec.order_type is OrderType.STOP
        fields: dict[str, Any] = {
            "symbol": spec.symbol, "qty": spec.qty, "side": OrderSide.BUY if spec.side is Side.BUY else OrderSide.SELL,
            "time_in_force": TimeInForce.GTC if lasting else TimeInForce.DAY, "client_order_id": spec.client_order_id,
        }
        if spec.order_type is OrderType.STOP:
            return StopOrderRequest(stop_price=float(spec.limit_price), **fields)
        if spec.order_class is not OrderClass.SIMPLE:
            fields["order_class"] = AlpacaOrderClass(spec.order_class.value)
        if spec.take_profit is not None:
            fields["take_profit"] = TakeProfitRequest(limit_price=float(spec.take_profit))
        if spec.stop is not None:
            fields["stop_loss"] = StopLossRequest(stop_price=float(spec.stop))
        if spec.limit_price is None:
            return MarketOrderRequest(**fields)
        return LimitOrderRequest(limit_price=float(spec.limit_price), **fields)

    def _reconcile(self, coid: str, why: str) -> OrderAck:
        """The submission's answer was lost: find the order by its id instead of sending it again."""
        log.warning("alpaca: submission of %s got %s; looking it up by client order id", coid, why)
        attempts = Retrying(
            stop=stop_after_attempt(self.settings.reconcile_attempts), wait=wait_fixed(self.settings.reconcile_wait_s),
            retry=retry_if_result(lambda found: found is None) | retry_if_exception_type(BrokerUnavailableError),
            reraise=True,
        )
        try:
            found = attempts(self._find, coid, "reconciliation")
        except RetryError:
            found = None
        except BrokerError as exc:
            raise OrderStatusUnknownError(f"Alpaca submit {coid}: {why}, and the look-up failed too ({exc}); the order may "
                                          "exist: submit the same decision again later (it looks the id up first)",
                                          coid) from None
        if found is None:
            raise OrderStatusUnknownError(f"Alpaca submit {coid}: {why}, and no order with this client order id after "
                                          f"{self.settings.reconcile_attempts} look-up(s); it may still arrive", coid)
        log.info("alpaca: reconciled %s: the order exists (%s)", coid, found.status.value)
        return self._ack(found, created=True, reconciled=True)

    def _ack(self, record: OrderRecord, created: bool, reconciled: bool) -> OrderAck:
        return OrderAck(self.name, record.client_order_id, record.broker_order_id, record.status, record.order_class,
                        created, reconciled, record)

    def _find(self, coid: str, action: str) -> OrderRecord | None:
        try:
            raw = self._client.get_order_by_client_id(coid)
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise self._error(exc, coid, action) from None
        except _LOST as exc:
            raise BrokerUnavailableError(f"Alpaca {action} {coid}: {type(exc).__name__}", coid) from None
        record = self._read(wire.order_record, raw)
        if record.order_class is not OrderClass.SIMPLE and len(record.legs) == 1:  # legs not rolled up: ask nested
            raw = self._call(lambda: self._client.get_order_by_id(record.broker_order_id, GetOrderByIdRequest(nested=True)),
                             coid, "nested look-up")
            record = self._read(wire.order_record, raw)
        return record

    def get_order(self, client_order_id: str) -> OrderRecord | None:
        return self._find(client_order_id, "get order")

    def cancel(self, client_order_id: str) -> OrderRecord:
        record = self._find(client_order_id, "cancel")
        if record is None:
            raise OrderNotFoundError(f"Alpaca has no order with client order id {client_order_id!r}", client_order_id)
        # Cancelling a working parent cancels its legs; once the entry filled, the legs are cancelled one by one.
        targets = [record.broker_order_id] if record.entry.status.is_open else [
            leg.broker_order_id for leg in record.legs[1:] if leg.status.is_open and leg.broker_order_id]
        for order_id in targets:
            self._call(lambda oid=order_id: self._client.cancel_order_by_id(oid), client_order_id, "cancel")
        return self._find(client_order_id, "read after cancel") or record

    def open_orders(self) -> list[OrderRecord]:
        """Every open order, newest first, paged by submission time: Alpaca answers at most 500
        per request. `until` is exclusive, so each next page asks until just after the oldest
        order seen (orders may share a submission time) and drops the ones it has already."""
        found: dict[str, OrderRecord] = {}
        until: dt.datetime | None = None
        while True:
            request = GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True, limit=_OPEN_ORDER_LIMIT,
                                       direction=Sort.DESC, until=until)
            page = [self._read(wire.order_record, item)
                    for item in self._call(lambda: self._client.get_orders(request), None, "open orders") or []]
            new = [record for record in page if record.broker_order_id not in found]
            found.update((record.broker_order_id, record) for record in new)
            if len(page) < _OPEN_ORDER_LIMIT:
                return list(found.values())
            if not new:  # a whole page at one submission time: paging by time cannot get past it
                raise BrokerError(
                    f"alpaca: {_OPEN_ORDER_LIMIT} or more open orders share the submission time "
                    f"{page[-1].submitted_at.isoformat()}; cannot list them all")
            until = min(record.submitted_at for record in page) + dt.timedelta(microseconds=1)

    # -- account ---------------------------------------------------------------------------
    def positions(self) -> dict[str, Position]:
        raw = self._call(self._client.get_all_positions, None, "positions")
        held = [self._read(wire.position, item) for item in raw or []]
        orders = self.open_orders() if held else []
        return {p.symbol: Position(p.symbol, p.qty, p.avg_entry, protective_stop(p.symbol, p.qty, orders)) for p in held}

    def account(self) -> Account:
        return self._read(wire.account, self._call(self._client.get_account, None, "account"))

    def marks(self) -> dict[str, float]:
        """Alpaca's current price of every held symbol, USD (for the gate's book)."""
        raw = self._call(self._client.get_all_positions, None, "positions")
        return dict(self._read(wire.marks, raw or []))

    # -- plumbing --------------------------------------------------------------------------
    def _call(self, fn: Callable[[], T], coid: str | None, action: str) -> T:
        try:
            return fn()
        except APIError as exc:
            raise self._error(exc, coid, action) from None
        except _LOST as exc:
            raise BrokerUnavailableError(f"Alpaca {action}: {type(exc).__name__}", coid) from None

    def _error(self, exc: APIError, coid: str | None, action: str) -> BrokerError:
        message, _ = wire.api_error_text(self._scrub(str(exc)))
        return wire.error_for(exc.status_code, message, coid, action)

    def _read(self, parse: Callable[[Any], T], raw: Any) -> T:
        try:
            return parse(raw)
        except BrokerError as exc:
            raise type(exc)(self._scrub(str(exc)), exc.client_order_id, exc.status) from None

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


__all__ = ["AlpacaBroker", "AlpacaSettings", "OrderStatus"]
