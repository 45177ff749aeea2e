"""Gap detection: session minutes from the calendar, REST windows, verified-empty minutes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from live.market.stream.gaps import (
    GapTracker,
    Window,
    due_minutes,
    runs,
    session_minutes,
    unaccounted,
    windows,
)

SESSION = date(2026, 3, 10)  # a Tuesday, New York on daylight time: 13:30-20:00 UTC
OPEN = datetime(2026, 3, 10, 13, 30, tzinfo=UTC)
M = timedelta(minutes=1)


def at(minute: int) -> datetime:
    return OPEN + minute * M


def test_session_minutes_full_half_and_closed_days() -> None:
    full = session_minutes(SESSION)
    assert len(full) == 390 and full[0] == OPEN and full[-1] == at(389)
    half = session_minutes(date(2026, 11, 27))  # day after Thanksgiving: 13:00 close (EST)
    assert len(half) == 210
    assert half[0] == datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
    assert half[-1] == datetime(2026, 11, 27, 17, 59, tzinfo=UTC)
    assert session_minutes(date(2026, 3, 14)) == []  # Saturday
    assert session_minutes(date(2026, 12, 25)) == []  # Christmas


def test_due_minutes_wait_for_close_plus_settle() -> None:
    settle = timedelta(seconds=15)
    assert due_minutes(SESSION, at(0), settle) == []
    assert due_minutes(SESSION, at(1) + timedelta(seconds=14), settle) == []
    assert due_minutes(SESSION, at(1) + settle, settle) == [at(0)]
    assert len(due_minutes(SESSION, datetime(2026, 3, 11, tzinfo=UTC), settle)) == 390


def test_runs_and_windows_merge_near_holes_per_symbol() -> None:
    assert runs([at(3), at(1), at(2), at(7)]) == [(at(1), at(4)), (at(7), at(8))]
    ws = windows({"AAPL": [at(1), at(2)], "MSFT": [at(4)], "SPY": [at(30)]}, join=5 * M)
    assert ws == [Window(at(1), at(5), ("AAPL", "MSFT")), Window(at(30), at(31), ("SPY",))]
    assert ws[0].minutes() == [at(1), at(2), at(3), at(4)]
    assert windows({}) == []


def test_window_runs_from_last_bar_before_the_drop_to_first_bar_after() -> None:
    tracker = GapTracker(settle=timedelta(seconds=5))
    received = {"AAPL": {at(m) for m in range(0, 10)} | {at(m) for m in range(14, 16)}}
    ws = tracker.find(SESSION, received, now=at(16) + timedelta(seconds=5))
    assert ws == [Window(at(10), at(14), ("AAPL",))]
    assert tracker.stats.found == 4
    # REST has bars for 10, 11, 13; minute 12 had no trades: empty, never asked again
    tracker.record(ws[0], {"AAPL": [at(10), at(11), at(13)]})
    assert tracker.stats.filled == 3 and tracker.stats.empty == 1
    received["AAPL"] |= {at(10), at(11), at(13)}
    assert tracker.find(SESSION, received, now=at(16) + timedelta(seconds=5)) == []
    assert tracker.empty_minutes("AAPL", at(20)) == {at(12)}


def test_stream_started_mid_session_backfills_from_the_open() -> None:
    tracker = GapTracker(settle=timedelta(seconds=5))
    ws = tracker.find(SESSION, {"AAPL": {at(60)}}, now=at(61) + timedelta(seconds=5))
    assert ws == [Window(at(0), at(60), ("AAPL",))]


def test_provisional_empties_are_asked_again_after_they_expire() -> None:
    tracker = GapTracker(settle=timedelta(seconds=5))
    w = Window(at(0), at(2), ("AAPL",))
    tracker.record(w, {"AAPL": [at(0)]}, provisional_until=at(20))
    received = {"AAPL": {at(m) for m in range(60) if m != 1}}
    assert tracker.find(SESSION, received, now=at(10)) == []
    assert tracker.find(SESSION, received, now=at(20)) == [Window(at(1), at(2), ("AAPL",))]
    tracker.record(Window(at(1), at(2), ("AAPL",)), {})  # final answer: empty for good
    assert tracker.find(SESSION, received, now=at(40)) == []


def test_forget_session() -> None:
    tracker = GapTracker()
    tracker.record(Window(at(0), at(2), ("AAPL",)), {})
    tracker.forget_session(SESSION)
    assert tracker.empty_minutes("AAPL", at(5)) == set()


minute_sets = st.sets(st.integers(0, 389), max_size=60)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["AAPL", "MSFT", "SPY"]), minute_sets, min_size=1),
    st.data(),
    st.integers(1, 400),
)
def test_one_backfill_pass_leaves_no_minute_unaccounted(
    received_idx: dict[str, set[int]], data: st.DataObject, now_idx: int
) -> None:
    """Any received minutes + any REST answer (bars for some asked minutes) => nothing left."""
    received = {s: {at(i) for i in idx} for s, idx in received_idx.items()}
    now = at(now_idx)
    tracker = GapTracker(settle=timedelta(0), join=timedelta(minutes=data.draw(st.integers(0, 30))))
    for w in tracker.find(SESSION, received, now):
        answer = {s: data.draw(st.sets(st.sampled_from(w.minutes()))) for s in w.symbols}
        tracker.record(w, answer)
        for s, got in answer.items():
            received[s] |= got
    assert tracker.find(SESSION, received, now) == []
    for s, got in received.items():
        due = due_minutes(SESSION, now, timedelta(0))
        assert unaccounted(due, got, tracker.empty_minutes(s, now)) == []
    st_ = tracker.stats
    assert st_.found == st_.filled + st_.empty  # every minute found was filled or verified empty
