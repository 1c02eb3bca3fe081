"""Errors raised by the brokers. None of them ever carries an API key or secret."""

from __future__ import annotations

from kobe_pipelines.errors import KobeError


class BrokerError(KobeError):
    """Base class: the broker refused a request or could not be reached.

    `client_order_id` names the order when there is one; `status` is the HTTP status for a
    remote broker (None for the paper broker or a network failure).
    """

    def __init__(self, message: str, client_order_id: str | None = None, status: int | None = None):
        self.client_order_id = client_order_id
        self.status = status
        super().__init__(message)


class InvalidOrderError(BrokerError):
    """The broker refused the order as malformed (bad quantity, price, symbol...): Alpaca's 422."""


class MarketClosedError(InvalidOrderError):
    """The broker refused the order because the market is closed for it (Alpaca's 422)."""


class UnknownSymbolError(InvalidOrderError):
    """The symbol is not tradable at this broker."""


class DuplicateClientOrderIdError(InvalidOrderError):
    """The client order id is already used by a different order at the broker."""


class InsufficientBuyingPowerError(BrokerError):
    """The account cannot pay for the order (Alpaca's 403 'insufficient buying power')."""


class InsufficientQuantityError(BrokerError):
    """A sell needs shares the account does not hold free (Alpaca's 403 'insufficient qty
    available for order (requested: N, available: M)'): shares held for open orders, such as a
    position's own exit legs, do not count as available. Not a buying-power problem."""


class WashTradeError(BrokerError):
    """Refused as a potential wash trade: an opposite-side order on the symbol is open (Alpaca's
    403 'potential wash trade detected. use complex orders')."""


class PatternDayTradingError(BrokerError):
    """Refused by the pattern day trader rule (Alpaca's 403 'trade denied due to pattern day
    trading protection'): the account may not open another day trade now."""


class ShortSaleNotAllowedError(BrokerError):
    """The short sale is refused: the account may not short ('account is not allowed to short')
    or the asset cannot be borrowed ('asset X cannot be sold short')."""


class AccountRestrictedError(BrokerError):
    """The keys are valid but the account may not place this order ('account is not authorized
    to trade', restricted to closing trades, blocked)."""


class AuthenticationError(BrokerError):
    """The keys were refused (401, or a 403 saying forbidden / unauthorized)."""


class RateLimitedError(BrokerError):
    """The broker kept answering 429 after every retry."""


class BrokerUnavailableError(BrokerError):
    """A timeout, a connection failure or a 5xx on a request that changes nothing."""


class OrderStatusUnknownError(BrokerError):
    """A submission timed out or got a 5xx, and looking the client order id up did not find the
    order. It may still arrive. Do not send a new order: call `submit` again with the same
    decision later (it looks the id up first, and the broker refuses a second order with the
    same client order id), or cancel by the client order id."""


class OrderNotFoundError(BrokerError):
    """No order with this client order id at the broker."""
