"""Properties of the gate over random books and order sequences (hypothesis)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kobe_pipelines.risk import Book, KillSwitch, OrderIntent, PolicyGate, Position, RiskLimits, Side
from kobe_pipelines.risk.heat import portfolio_heat

SYMBOLS = ("A", "B", "C", "D")
EQUITY = 100_000.0
CAP = 0.10
# Only heat (and the sanity checks) should bind: the other limits are opened wide.
LIMITS = RiskLimits(max_heat=CAP, max_position_fraction=1.0, max_order_notional=1e12, price_collar=0.15,
                    max_orders_per_minute=10_000)

marks = st.fixed_dictionaries({s: st.integers(1_000, 50_000).map(lambda c: c / 100) for s in SYMBOLS})


@st.composite
def position_for(draw, symbol: str, mark: float) -> Position:
    qty = draw(st.integers(1, 60)) * draw(st.sampled_from((1, -1)))
    if draw(st.booleans()):
        return Position(symbol, qty, mark)  # no stop
    stop_cents = round(mark * 100) + draw(st.integers(1, 1_000)) * (-1 if qty > 0 else 1)
    return Position(symbol, qty, mark, max(stop_cents, 1) / 100)


@st.composite
def order_for(draw, index: int, mark_by_symbol: dict[str, float]) -> OrderIntent:
    symbol = draw(st.sampled_from(SYMBOLS))
    mark = mark_by_symbol[symbol]
    side = draw(st.sampled_from((Side.BUY, Side.SELL)))
    entry_cents = round(mark * 100 * (1 + draw(st.integers(-12, 12)) / 100))
    stop = None
    if draw(st.integers(0, 3)):  # mostly with a stop, usually on the protective side
        away = draw(st.integers(1, 2_000)) * (-1 if side is Side.BUY else 1) * draw(st.sampled_from((1, 1, 1, -1)))
        stop = max(entry_cents + away, 1) / 100
    return OrderIntent(f"p-{index}", symbol, side, draw(st.integers(1, 120)), entry_cents / 100, stop)


@st.composite
def scenarios(draw):
    mark_by_symbol = draw(marks)
    held = draw(st.lists(st.sampled_from(SYMBOLS), unique=True, max_size=3))
    positions = [draw(position_for(s, mark_by_symbol[s])) for s in held]
    orders = [draw(order_for(i, mark_by_symbol)) for i in range(draw(st.integers(1, 25)))]
    return mark_by_symbol, positions, orders


def book_of(positions: dict[str, Position], mark_by_symbol: dict[str, float]) -> Book:
    return Book(EQUITY, EQUITY, 1e12, positions, mark_by_symbol)


def effective_stop(qty: int, stop: float | None, mark: float) -> float:
    """A stop equal in risk to 'no stop' at this mark: 0 for a long (risk = value), 2 x mark for a short."""
    if stop is not None:
        return stop
    return 0.0 if qty > 0 else 2 * mark


def apply_fill(positions: dict[str, Position], intent: OrderIntent, mark: float) -> dict[str, Position]:
    """The book after `intent` fills. Adding to a position merges the stops as a qty-weighted average of
    effective stops; by convexity of max(0, .) that never shows more risk than the two lots apart."""
    out = dict(positions)
    old = out.get(intent.symbol)
    old_qty = old.qty if old else 0
    signed = intent.side.sign * intent.qty
    new_qty = old_qty + signed
    if new_qty == 0:
        out.pop(intent.symbol, None)
    elif old_qty and (old_qty > 0) == (new_qty > 0) and abs(new_qty) < abs(old_qty):
        out[intent.symbol] = Position(intent.symbol, new_qty, old.avg_entry, old.stop)  # reduced
    elif old_qty and (old_qty > 0) != (new_qty > 0):
        out[intent.symbol] = Position(intent.symbol, new_qty, intent.entry, intent.stop)  # flipped
    else:
        if old is None or (old.stop is None and intent.stop is None):
            stop = intent.stop if old is None else None
        else:
            stop = (abs(old_qty) * effective_stop(old_qty, old.stop, mark)
                    + intent.qty * effective_stop(signed, intent.stop, mark)) / abs(new_qty)
        out[intent.symbol] = Position(intent.symbol, new_qty, intent.entry, stop)
    return out


class _Run:
    """One gate over one state folder for all examples of a test: temporary folders per example
    cost ~20 ms each on this disk. Each example gets fresh Book objects (so nothing pending carries
    over), fresh client order ids, and a clock 61 s later (so the rate limit starts empty)."""

    def __init__(self, state: Path):
        self.now = dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc)
        self.gate = PolicyGate(LIMITS, state, clock=lambda: self.now, audit_fsync=False)
        self.examples = 0

    def next_example(self, orders: list[OrderIntent]) -> list[OrderIntent]:
        self.examples += 1
        self.now += dt.timedelta(seconds=61)
        return [dataclasses.replace(o, client_order_id=f"{self.examples}-{o.client_order_id}") for o in orders]


@pytest.fixture(scope="module")
def heat_run(tmp_path_factory):
    run = _Run(tmp_path_factory.mktemp("heat-state"))
    yield run
    run.gate.close()


@pytest.fixture(scope="module")
def halted_run(tmp_path_factory):
    state = tmp_path_factory.mktemp("halted-state")
    KillSwitch(state).engage("property test halt", "hypothesis")
    run = _Run(state)
    yield run
    run.gate.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(scenario=scenarios())
def test_decide_when_any_sequence_of_orders_is_approved_and_filled_then_heat_never_exceeds_the_cap(heat_run, scenario):
    mark_by_symbol, start, orders = scenario
    positions = {p.symbol: p for p in start}
    if portfolio_heat(book_of(positions, mark_by_symbol)).heat > CAP:
        positions = {}  # the property is about staying under the cap from under it
    approved = 0
    for intent in heat_run.next_example(orders):
        book = book_of(positions, mark_by_symbol)
        if heat_run.gate.decide(intent, book).approved:
            approved += 1
            positions = apply_fill(positions, intent, mark_by_symbol[intent.symbol])
            heat = portfolio_heat(book_of(positions, mark_by_symbol)).heat
            assert heat <= CAP * (1 + 1e-9), f"heat {heat:.6f} after approving {intent}"
    event(f"approved {min(approved, 5)}+" if approved >= 5 else f"approved {approved}")


@st.composite
def halted_scenarios(draw):
    mark_by_symbol = draw(marks)
    held = draw(st.lists(st.sampled_from(SYMBOLS), unique=True, min_size=1, max_size=4))
    positions = [draw(position_for(s, mark_by_symbol[s])) for s in held]
    orders = [draw(order_for(i, mark_by_symbol)) for i in range(draw(st.integers(1, 25)))]
    return mark_by_symbol, positions, orders


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(scenario=halted_scenarios())
def test_decide_when_halted_then_only_orders_that_reduce_exposure_are_approved(halted_run, scenario):
    mark_by_symbol, start, orders = scenario
    positions = {p.symbol: p for p in start}
    assert halted_run.gate.kill_switch.status().halted
    for intent in halted_run.next_example(orders):
        held = positions[intent.symbol].qty if intent.symbol in positions else 0
        decision = halted_run.gate.decide(intent, book_of(positions, mark_by_symbol))
        reduces = held != 0 and (held > 0) != (intent.side is Side.BUY) and intent.qty <= abs(held)
        if decision.approved:
            assert reduces, f"halted gate approved {intent} against a position of {held}"
            positions = apply_fill(positions, intent, mark_by_symbol[intent.symbol])
            event("approved a reducing order")
        elif reduces:
            event("rejected a reducing order (a sanity check)")
