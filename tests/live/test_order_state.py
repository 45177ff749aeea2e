"""Property 5: the order state machine under duplicated, reordered and illegal event streams."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from live.orders.reports import OrderStatus as S
from live.orders.state import OrderEvent, OrderState, legal

QTY = 10.0


@st.composite
def lifecycles(draw: st.DrawFn) -> list[OrderEvent]:
    """A legal Alpaca lifecycle: pending_new -> accepted -> new -> partial fills -> an end."""
    events = [OrderEvent(S.PENDING_NEW, 0.0), OrderEvent(S.ACCEPTED, 0.0), OrderEvent(S.NEW, 0.0)]
    cum = 0.0
    for step in draw(st.lists(st.integers(1, 3), max_size=4)):
        if cum + step >= QTY:
            break
        cum += step
        events.append(OrderEvent(S.PARTIALLY_FILLED, cum, 100.0 + cum))
    end = draw(
        st.sampled_from(["filled", "canceled", "expired", "replaced", "open", "done_for_day"])
    )
    if end == "filled":
        events.append(OrderEvent(S.FILLED, QTY, 101.0))
    elif end == "done_for_day":
        events.append(OrderEvent(S.DONE_FOR_DAY, cum))
    elif end != "open":
        events.append(OrderEvent(S(end), cum))
    return events


def deliver(draw: st.DrawFn, events: list[OrderEvent]) -> list[OrderEvent]:
    """The same events, shuffled, with random duplicates."""
    dupes = draw(st.lists(st.sampled_from(events), max_size=6))
    return draw(st.permutations(events + dupes))


def check_invariants(before: OrderState, after: OrderState, prev_status: S) -> None:
    assert after.filled_qty >= before.filled_qty - 1e-12
    assert after.filled_qty <= QTY + 1e-9
    if prev_status.terminal:
        assert after.status is prev_status
    if after.status is S.FILLED:
        assert abs(after.filled_qty - QTY) < 1e-9
    if after.status is S.REJECTED:
        assert after.filled_qty == 0


@settings(max_examples=300, deadline=None)
@given(data=st.data(), true=lifecycles())
def test_any_delivery_order_reaches_the_true_final_state(
    data: st.DataObject, true: list[OrderEvent]
) -> None:
    """Model: the final state of the true history. Any shuffle with duplicates reaches it, and
    every intermediate state obeys the invariants."""
    model_status, model_filled = true[-1].status, max(e.filled_qty or 0 for e in true)
    state = OrderState("cid", QTY, S.SUBMITTING)
    booked = 0.0
    for event in deliver(data.draw, true):
        before = OrderState("cid", QTY, state.status, state.filled_qty, state.filled_avg_price)
        applied = state.apply(event)
        booked += applied.fill_qty
        check_invariants(before, state, before.status)
    assert state.status is model_status
    assert abs(state.filled_qty - model_filled) < 1e-9
    assert abs(booked - model_filled) < 1e-9  # fill deltas add up exactly, none twice


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    fills=st.lists(st.tuples(st.integers(1, 4), st.floats(1, 200)), min_size=1, max_size=6),
)
def test_fills_are_deduplicated_by_execution_id(
    data: st.DataObject, fills: list[tuple[int, float]]
) -> None:
    events = [OrderEvent(None, None, None, f"exec-{k}", q, px) for k, (q, px) in enumerate(fills)]
    state = OrderState("cid", QTY, S.NEW)
    booked = 0.0
    for event in deliver(data.draw, events):
        booked += state.apply(event).fill_qty
    unique: float = 0.0
    for q, _ in fills:  # the model: unique executions in order, refusing any beyond qty
        unique = unique + q if unique + q <= QTY else unique
    assert state.filled_qty <= QTY
    assert abs(booked - state.filled_qty) < 1e-9
    assert state.exec_ids == {e.exec_id for e in events}
    if sum(q for q, _ in fills) <= QTY:
        assert abs(state.filled_qty - unique) < 1e-9


@settings(max_examples=200, deadline=None)
@given(
    status=st.sampled_from(list(S)),
    new=st.sampled_from(list(S)),
    filled=st.sampled_from([0.0, 3.0, QTY]),
)
def test_terminal_states_absorb_everything(status: S, new: S, filled: float) -> None:
    if status.terminal:
        state = OrderState("cid", QTY, status, filled)
        assert not state.apply(OrderEvent(new, filled)).status_changed
        assert state.status is status


def test_illegal_transitions_are_refused_not_raised() -> None:
    state = OrderState("cid", QTY, S.NEW)
    assert state.apply(OrderEvent(S.FILLED, 4.0)).note.startswith("filled with only")
    assert state.status is S.PARTIALLY_FILLED or state.status is S.NEW
    state = OrderState("cid", QTY, S.PARTIALLY_FILLED, 4.0)
    assert not state.apply(OrderEvent(S.REJECTED, 4.0)).status_changed
    assert "refused" in state.apply(OrderEvent(S.PARTIALLY_FILLED, QTY + 1)).note
    assert state.filled_qty == 4.0
    assert not state.apply(OrderEvent(S.NEW, 4.0)).status_changed  # stale
    assert legal(S.PENDING_SUBMIT, S.RISK_REJECTED, 0, QTY) is None
    assert legal(S.NEW, S.RISK_REJECTED, 0, QTY) is not None  # local-only states
    assert legal(S.DONE_FOR_DAY, S.NEW, 0, QTY) is not None  # ambiguous: treated as stale


def test_fill_price_of_each_delta_comes_from_the_average() -> None:
    state = OrderState("cid", QTY, S.NEW)
    first = state.apply(OrderEvent(S.PARTIALLY_FILLED, 4.0, 100.0))
    second = state.apply(OrderEvent(S.FILLED, QTY, 103.0))
    assert (first.fill_qty, first.fill_price) == (4.0, 100.0)
    assert second.fill_qty == 6.0 and abs(second.fill_price - 105.0) < 1e-9
    assert state.status is S.FILLED
