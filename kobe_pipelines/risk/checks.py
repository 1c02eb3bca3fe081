"""The policy gate's checks, one function each; every one returns a `CheckResult` and never raises
on bad values. A check that cannot be evaluated (a field it needs is invalid) fails: the gate
fails closed. Money in USD, prices in USD per share, fractions of equity (0.10 = 10 %).
"""

from __future__ import annotations

from typing import Collection

from kobe_pipelines.errors import StateFileError
from kobe_pipelines.orders import OrderType, Side
from kobe_pipelines.orders.validation import ParsedIntent, bracket_problems, tick_problems
from kobe_pipelines.risk.approvals import Approval
from kobe_pipelines.risk.drawdown import HighWaterMarkStore
from kobe_pipelines.risk.exposure import BookExposure
from kobe_pipelines.risk.heat import CAP_TOLERANCE, order_risk, within_cap
from kobe_pipelines.risk.kill_switch import HaltStatus
from kobe_pipelines.risk.types import CheckResult

_LIMIT = 1 + CAP_TOLERANCE

# Passing results whose text never varies are shared: building a frozen dataclass costs ~1 us.
_HALT_CLEAR = CheckResult("halted", True, "kill switch not engaged")
_DRAWDOWN_EXEMPT = CheckResult("drawdown", True, "reducing order: exempt")
_NO_HWM = CheckResult("drawdown", True, "no high-water mark recorded yet")
_HEAT_EXEMPT = CheckResult("heat", True, "reducing order adds no heat")
_SIZE_EXEMPT = CheckResult("position_size", True, "reducing order shrinks the position")
_NO_LEGS = CheckResult("bracket", True, "no bracket legs")
_FIELDS_OK = CheckResult("fields", True, "all fields valid")
_TICKS_OK = CheckResult("tick_size", True, "prices on the tick grid")
_ANY_SYMBOL = CheckResult("universe", True, "no universe restriction configured")
_NEW_ID = CheckResult("duplicate_id", True, "client order id not used before")
_BP_EXEMPT = CheckResult("buying_power", True, "reducing order: exempt")


def _pass(name: str, reason: str) -> CheckResult:
    return CheckResult(name, True, reason)


def _fail(name: str, reason: str) -> CheckResult:
    return CheckResult(name, False, reason)


def _unevaluated(name: str, p: ParsedIntent, needed: tuple[str, ...]) -> CheckResult | None:
    if not p.problems:
        return None
    if "intent" in p.problems:
        return _fail(name, "not evaluated: the intent is not an OrderIntent")
    bad = [f for f in needed if f in p.problems]
    if bad:
        return _fail(name, f"not evaluated: field(s) {', '.join(repr(f) for f in bad)} invalid")
    return None


def order_added_risk(p: ParsedIntent, mark: float | None) -> float | None:
    """Risk the order would add (USD) at the worse of entry and mark; None if not computable."""
    if p.side is None or p.qty is None or p.entry is None or mark is None or "stop" in p.problems:
        return None
    return order_risk(p.side.sign, p.qty, p.entry, p.stop, mark)


def halted(status: HaltStatus, reducing: bool, symbol: str | None, pos_qty: int, sign: int, qty: int | None) -> CheckResult:
    if not status.halted:
        return _HALT_CLEAR
    if reducing:
        return _pass("halted", f"halted ({status.reason}); allowed: only reduces {symbol} {pos_qty:+d} -> {pos_qty + sign * qty:+d} sh")
    return _fail("halted", f"trading halted: {status.reason}")


def drawdown(store: HighWaterMarkStore, equity: float | None, limit: float, reducing: bool) -> CheckResult:
    if reducing:
        return _DRAWDOWN_EXEMPT
    try:
        mark = store.read()
    except StateFileError as exc:
        return _fail("drawdown", f"high-water mark unusable, treated as halted: {exc}")
    if equity is None:
        return _fail("drawdown", "book.equity is not a finite amount")
    if mark is None:
        return _NO_HWM
    dd = mark.drawdown(equity)
    peak = max(mark.high_water_mark, equity)
    if dd >= limit - 1e-12:
        return _fail("drawdown", f"drawdown {dd:.2%} from high-water mark {peak:,.2f} USD reaches the {limit:.0%} limit")
    return _pass("drawdown", f"drawdown {dd:.2%} (limit {limit:.0%})")


def heat(p: ParsedIntent, exposure: BookExposure, added: float | None, mark: float | None, cap: float,
         reducing: bool) -> CheckResult:
    if reducing:
        return _HEAT_EXEMPT
    equity = exposure.equity
    if equity is None or equity <= 0:
        return _fail("heat", f"equity {exposure.book.equity!r} USD is not positive: no new risk")
    if exposure.problems:
        more = f" (+{len(exposure.problems) - 3} more)" if len(exposure.problems) > 3 else ""
        return _fail("heat", "book heat cannot be measured: " + "; ".join(exposure.problems[:3]) + more)
    missing = _unevaluated("heat", p, ("side", "qty", "entry", "stop"))
    if missing:
        return missing
    if mark is None:
        return _fail("heat", f"no usable last price for {p.symbol} in book.last_prices")
    before = exposure.open_risk + exposure.pending_risk
    after = before + (added or 0.0)
    text = f"heat {before / equity:.2%} -> {after / equity:.2%} (cap {cap:.0%}; order adds {added:,.2f} USD)"
    stale = exposure.book.stale_marks
    if stale:
        names = ", ".join(f"{symbol} (last bar {day})" for symbol, day in sorted(stale.items())[:5])
        text += f"; valued at stale marks: {names}" + (f" +{len(stale) - 5} more" if len(stale) > 5 else "")
    return CheckResult("heat", within_cap(after, equity, cap), text)


def position_size(p: ParsedIntent, equity: float | None, pos_qty: int, cap: float, reducing: bool) -> CheckResult:
    if reducing:
        return _SIZE_EXEMPT
    missing = _unevaluated("position_size", p, ("side", "qty", "entry"))
    if missing:
        return missing
    if equity is None or equity <= 0:
        return _fail("position_size", "equity is not positive: no new position")
    new_qty = pos_qty + p.side.sign * p.qty
    fraction = abs(new_qty) * p.entry / equity
    text = f"{p.symbol} {new_qty:+d} sh x {p.entry:.2f} = {fraction:.2%} of equity (max {cap:.0%})"
    return CheckResult("position_size", fraction <= cap * _LIMIT, text)


def order_notional(p: ParsedIntent, cap: float) -> CheckResult:
    missing = _unevaluated("order_notional", p, ("qty", "entry"))
    if missing:
        return missing
    notional = p.qty * p.entry
    return CheckResult("order_notional", notional <= cap * _LIMIT, f"notional {notional:,.2f} USD (max {cap:,.2f})")


def price_collar(p: ParsedIntent, mark: float | None, band: float) -> CheckResult:
    """A limit or market entry within `band` of the last price; a stop order on the protective
    side of it (a sell stop below, a buy stop above: one on the other side would trigger at once)."""
    missing = _unevaluated("price_collar", p, ("entry",))
    if missing:
        return missing
    if mark is None:
        return _fail("price_collar", f"no usable last price for {p.symbol} in book.last_prices")
    if p.order_type is OrderType.STOP and p.side is not None:
        below = p.side is Side.SELL
        ok = p.entry < mark if below else p.entry > mark
        text = (f"stop {p.entry:.4f} is {'below' if p.entry < mark else 'above'} the last price {mark:.4f} "
                f"(a {p.side.value} stop must be {'below' if below else 'above'} it)")
        return CheckResult("price_collar", ok, text)
    deviation = abs(p.entry / mark - 1.0)
    text = f"entry {p.entry:.4f} is {deviation:.2%} from last {mark:.4f} (band {band:.0%})"
    return CheckResult("price_collar", deviation <= band + 1e-12, text)


def bracket(p: ParsedIntent) -> CheckResult:
    missing = _unevaluated("bracket", p, ("side", "entry", "stop", "take_profit"))
    if missing:
        return missing
    entry, stop, target = p.entry, p.stop, p.take_profit
    if stop is None and target is None:
        return _NO_LEGS
    problems = bracket_problems(p)
    if problems:
        return _fail("bracket", "; ".join(problems.values()))
    return _pass("bracket", f"stop {stop} / entry {entry} / take_profit {target} ordered for a {p.side.value}")


def quantity(p: ParsedIntent) -> CheckResult:
    problem = p.problems.get("qty")
    if problem or p.qty is None:
        return _fail("quantity", problem or "not evaluated: no qty")
    return _pass("quantity", f"{p.qty} shares")


_OWN_CHECK = frozenset({"qty"})


def fields(p: ParsedIntent) -> CheckResult:
    problems = [text for name, text in p.problems.items() if name not in _OWN_CHECK]
    if problems:
        return _fail("fields", "; ".join(problems))
    return _FIELDS_OK


def tick_size(p: ParsedIntent) -> CheckResult:
    missing = _unevaluated("tick_size", p, ("entry", "stop", "take_profit", "order_type"))
    if missing:
        return missing
    bad = tick_problems(p)
    if bad:
        return _fail("tick_size", "; ".join(bad.values()))
    return _TICKS_OK


def universe(symbol: str | None, tradable: Collection[str] | None) -> CheckResult:
    if symbol is None:
        return _fail("universe", "not evaluated: field 'symbol' invalid")
    if tradable is None:
        return _ANY_SYMBOL
    if symbol in tradable:
        return _pass("universe", f"{symbol} is tradable")
    return _fail("universe", f"field 'symbol' {symbol!r} is not in the tradable universe")


def duplicate_id(p: ParsedIntent, earlier: Approval | None, retry_of: str | None,
                 history_problem: str | None) -> CheckResult:
    """A client order id is approved once; `retry_of` names the approval of this id that never
    reached a broker, and is accepted only for exactly the intent that approval was for."""
    if history_problem:
        return _fail("duplicate_id", history_problem)
    coid = p.client_order_id
    if coid is None:
        return _fail("duplicate_id", "not evaluated: field 'client_order_id' invalid")
    if earlier is None:
        if retry_of is not None:
            return _fail("duplicate_id", f"retry of {retry_of}: client order id {coid!r} has no earlier approval")
        return _NEW_ID
    if retry_of is None:
        return _fail("duplicate_id", f"field 'client_order_id' {coid!r} was already approved ({earlier.decision_id})")
    if retry_of != earlier.decision_id:
        return _fail("duplicate_id", f"retry of {retry_of}: the latest approval of {coid!r} is {earlier.decision_id}")
    differs = _intent_differences(p, earlier.intent)
    if differs:
        return _fail("duplicate_id", f"retry of {retry_of} is another order under the same id: {'; '.join(differs)}")
    return _pass("duplicate_id", f"retry of {retry_of}, which never reached a broker")


def _intent_differences(p: ParsedIntent, approved: dict) -> list[str]:
    mine = {"symbol": p.symbol, "side": p.side.value if p.side is not None else None, "qty": p.qty, "entry": p.entry,
            "stop": p.stop, "take_profit": p.take_profit,
            "order_type": p.order_type.value if p.order_type is not None else None}
    return [f"{name} {approved.get(name)!r} -> {value!r}" for name, value in mine.items() if approved.get(name) != value]


def rate_limit(recent: int, cap: int) -> CheckResult:
    text = f"{recent} orders approved in the last 60 s (max {cap})"
    return CheckResult("rate_limit", recent < cap, text)


def buying_power(p: ParsedIntent, available: float | None, pending: float, reducing: bool) -> CheckResult:
    if reducing:
        return _BP_EXEMPT
    missing = _unevaluated("buying_power", p, ("qty", "entry"))
    if missing:
        return missing
    if available is None:
        return _fail("buying_power", "book.buying_power is not a finite amount")
    need, left = p.qty * p.entry, available - pending
    text = f"needs {need:,.2f} USD of {left:,.2f} USD buying power"
    return CheckResult("buying_power", need <= left * _LIMIT if left > 0 else False, text)
