"""The exactly-once dispatcher: claim due outbox rows, send them within the rate limits, record.

One asyncio loop. Each turn it (1) records finished sends in one transaction, (2) resolves
in-flight rows left by a crash or an ambiguous failure through ``Sender.probe`` (never a blind
resend), (3) claims due rows (``pending``, ``next_attempt_at <= now``, never before
``not_before``) and commits the claim *before* anything is sent, and (4) schedules each claimed
message at the earliest time its rate-limit lanes (:mod:`signals.lanes`) allow.

Failures, from the sender's :class:`~signals.interfaces.DeliveryError`:

- ``retry_after``: the row is due again after it and the message's lanes pause for everyone;
- ``blocked``: dead-lettered, ``chat_state.blocked_at`` set (no further DMs to that chat);
- ``migrated_to``: the row (and every pending row to the old chat) is re-addressed, due at once;
- ``permanent``: dead-lettered with the platform's words in ``last_error``;
- anything else may have reached the platform: the row stays ``inflight`` and, after an
  exponential backoff with jitter, the probe decides: delivered -> ``sent``; not delivered ->
  ``pending`` again, or ``dead`` after ``max_attempts``.

Exactly once: a row is sent only while ``inflight`` under this worker's claim, and it leaves
``inflight`` only by a recorded send, a classified failure the platform answered, or a probe.
SQLite homes run one dispatcher (a file lock beside the database); on Postgres any number run,
the claim's ``FOR UPDATE SKIP LOCKED`` keeping them apart, and a row claimed longer than
``lease`` seconds ago (its dispatcher died) is probed by whoever sees it first.

``ALPACA_IMPROVED_SIGNALS_KILL_AT=after_claim|after_send|after_record[:N]`` SIGKILLs the process
the N-th time it passes that point (the crash tests; never set in production).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy.engine import Engine

from signals import outbox as ob
from signals.dispatch_support import (
    KILL_ENV,
    Clock,
    KillPoints,
    SystemClock,
    message_hash,
    sqlite_dispatcher_lock,
)
from signals.interfaces import Delivered, DeliveryError, OutboundMessage, Sender
from signals.lanes import LaneBook
from signals.model import Channel, SignalEvent

__all__ = ["KILL_ENV", "Clock", "Dispatcher", "SystemClock", "message_hash"]

log = logging.getLogger(__name__)
Renderer = Callable[[SignalEvent, ob.Row], OutboundMessage]


def _default_renderer() -> Renderer:
    from signals.render import outbound

    return outbound


class Dispatcher:
    """Deliver the outbox exactly once (module docstring).

    Args:
        engine: The signals database (:func:`signals.db.make_engine`).
        senders: One :class:`~signals.interfaces.Sender` per channel.
        clock: Time source (default: the system clock).
        renderer: ``(event, row) -> OutboundMessage`` (default :func:`signals.render.outbound`).
        worker_id: This dispatcher's name in ``claimed_by``.
        batch: Rows per claim; lease: seconds after which another worker probes a claim;
        max_attempts: Failed deliveries before dead-lettering; backoff: (base, cap) seconds.
        horizon: Claimed rows whose lane slot is further away are handed back.
        max_concurrency: Claimed rows held at once; max_sends: sends on the wire at once.
    """

    def __init__(
        self, engine: Engine, senders: Mapping[Channel, Sender] | Iterable[Sender], *,
        clock: Clock | None = None, renderer: Renderer | None = None,
        worker_id: str | None = None, batch: int = 128, lease: float = 300.0,
        max_attempts: int = 8, backoff: tuple[float, float] = (2.0, 600.0),
        horizon: float = 2.0, max_concurrency: int = 512, max_sends: int = 32,
        poll: float = 0.25,
        environ: Mapping[str, str] | None = None, rng: random.Random | None = None,
    ) -> None:  # fmt: skip
        self.engine = engine
        items = senders.values() if isinstance(senders, Mapping) else senders
        self.senders: dict[Channel, Sender] = {s.channel: s for s in items}
        self.clock: Clock = clock or SystemClock()
        self.render = renderer or _default_renderer()
        self.worker = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.batch, self.lease, self.max_attempts = batch, lease, max_attempts
        self.backoff, self.horizon, self.poll = backoff, horizon, poll
        self.max_concurrency = max_concurrency
        self.kill = KillPoints(environ)
        self.rng = rng or random.Random()
        self.lanes = LaneBook()
        self.stats = {"sent": 0, "failed": 0, "probed": 0, "released": 0, "dead": 0}
        self._active: dict[int, tuple[ob.Row, OutboundMessage]] = {}
        self._done: list[tuple[ob.Row, OutboundMessage, Delivered | BaseException | float]] = []
        self._events: dict[str, SignalEvent] = {}
        self._wake = asyncio.Event()
        self._chats: dict[tuple[Channel, str], asyncio.Lock] = {}
        # sends on the wire at once: enough for the lanes' rates at any sane latency; more
        # only queue inside the HTTP client's pool (httpcore's queue is quadratic in length)
        self.max_sends = max_sends
        self._sends = asyncio.Semaphore(max_sends)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_fd: int | None = None
        self._started = False
        self._last_recover = -1e18
        self._backlog_until = 0.0
        self._careful = False  # a 429 came back: probe the limit with one message first

    # -- lifecycle -------------------------------------------------------------------------
    def _start(self) -> None:
        if self._started:
            return
        if self.engine.dialect.name == "sqlite":
            self._lock_fd = sqlite_dispatcher_lock(self.engine)
        self._started = True

    def close(self) -> None:
        """Release the SQLite file lock (the process exit releases it too)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _bind_loop(self) -> None:
        """asyncio primitives belong to one event loop: new ones for a new loop."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._wake = asyncio.Event()
            self._sends = asyncio.Semaphore(self.max_sends)
            self._chats = {}

    async def run_until_idle(self, settle: float = 0.0) -> None:
        """Deliver until nothing is due within ``settle`` seconds and nothing is in flight."""
        self._start()
        self._bind_loop()
        while True:
            progressed = await self._turn(startup=self._last_recover < -1e17)
            if self._active or self._done:
                await self._wait(self.poll)
                continue
            if progressed:
                continue
            nxt = self._next_due()
            now = self.clock.now()
            if nxt is None or (nxt - now).total_seconds() > settle:
                return
            # due now yet nothing moved (a claim held back, a probe to retry): poll, never spin
            await self.clock.sleep(max((nxt - now).total_seconds(), self.poll))

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then finish what is on the wire and record it."""
        self._start()
        self._bind_loop()
        while not stop.is_set():
            progressed = await self._turn(startup=self._last_recover < -1e17)
            if not progressed:
                await self._wait(self.poll)
            else:  # a turn that awaited nothing must still let the loop run (tailer, stop)
                await asyncio.sleep(0)
        while self._active:
            await self._wait(self.poll)
        self._flush()

    async def _wait(self, timeout: float) -> None:
        self._wake.clear()
        if self._done:
            await asyncio.sleep(0)  # yield even when there is work: never starve the loop
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _next_due(self) -> dt.datetime | None:
        with self.engine.connect() as conn:
            return ob.due_summary(conn, self.worker, self.clock.now())

    # -- one turn ----------------------------------------------------------------------------
    async def _turn(self, startup: bool = False) -> bool:
        """Record, recover, claim and schedule once; True when anything happened."""
        flushed = self._flush()
        mono = time.monotonic()
        probed = 0
        if startup or mono - self._last_recover >= 1.0 or not self._active:
            self._last_recover = mono
            probed = await self._recover(startup)
        claimed = self._claim_and_schedule()
        return bool(flushed or probed or claimed)

    def _claim_and_schedule(self) -> int:
        now = self.clock.now()
        now_ts = now.timestamp()
        room = self.max_concurrency - len(self._active)
        if not self._active:
            self._backlog_until = 0.0  # nothing scheduled: nothing ahead of the clock
        if self._careful:  # after a 429: one message at a time until one gets through
            room = 0 if self._active else 1
        if room <= 0 or self._backlog_until > now_ts + self.horizon / 2:
            return 0
        with self.engine.begin() as conn:
            rows = ob.claim(conn, now, self.worker, min(self.batch, room))
            lapsed = ob.drop_lapsed(conn, self.worker, rows, now)
            rows = [r for r in rows if r.id not in lapsed]
            missing = {r.event_id for r in rows} - self._events.keys()
            self._events.update(ob.load_events(conn, missing))
        if not rows:
            return 0
        self.kill.hit("after_claim")
        released: list[tuple[ob.Row, dt.datetime]] = []
        for row in rows:
            sender = self.senders.get(row.channel)
            event = self._events.get(row.event_id)
            if sender is None or event is None:  # no sender configured: leave it for later
                released.append((row, now + dt.timedelta(seconds=60)))
                continue
            msg = self.render(event, row)
            lanes = sender.lanes(msg)
            at = self.lanes.slot(lanes, now_ts)
            if at > now_ts + self.horizon:
                released.append((row, dt.datetime.fromtimestamp(at, dt.UTC)))
                continue
            self.lanes.reserve(lanes, at)
            self._backlog_until = max(self._backlog_until, at)
            self._active[row.id] = (row, msg)
            asyncio.get_running_loop().create_task(self._deliver(sender, row, msg, at))
        if released:
            self.stats["released"] += len(released)
            with self.engine.begin() as conn:
                ob.release(conn, self.worker, released)
        return len(rows)

    async def _deliver(self, sender: Sender, row: ob.Row, msg: OutboundMessage, at: float) -> None:
        outcome: Delivered | BaseException | float
        try:
            wait = at - self.clock.now().timestamp()
            if wait > 0:
                await self.clock.sleep(wait)
            async with self._sends, self._chat_lock(row):  # one on the wire per chat (probe)
                lanes = sender.lanes(msg)
                while (late := self.lanes.admit(lanes, self.clock.now().timestamp())) > 0:
                    await self.clock.sleep(late)
                paused = self.lanes.paused_until(lanes)
                if paused > self.clock.now().timestamp():
                    outcome = paused  # a 429 paused the lane meanwhile: hand the row back
                else:
                    self.lanes.start(lanes, self.clock.now().timestamp())
                    outcome = await sender.send(msg)
                    self.kill.hit("after_send")
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - classified in _flush
            outcome = exc
            if isinstance(exc, DeliveryError) and exc.retry_after is not None:
                until = self.clock.now().timestamp() + float(exc.retry_after)
                self.lanes.pause(sender.lanes(msg), until)  # at once: no send starts meanwhile
                self._careful = True
        else:
            if isinstance(outcome, Delivered):
                self._careful = False
        self._done.append((row, msg, outcome))
        self._wake.set()

    def _chat_lock(self, row: ob.Row) -> asyncio.Lock:
        key = (row.channel, row.target)
        lock = self._chats.get(key)
        if lock is None:
            lock = self._chats[key] = asyncio.Lock()
        return lock

    # -- recording -------------------------------------------------------------------------
    def _flush(self) -> int:
        """Record every finished delivery in one transaction; returns how many."""
        if not self._done:
            return 0
        done, self._done = self._done, []
        now = self.clock.now()
        sent = [(r, d.message_id, message_hash(m)) for r, m, d in done if isinstance(d, Delivered)]
        with self.engine.begin() as conn:
            ob.record_sent(conn, self.worker, sent, now)
            for row, msg, outcome in done:
                if isinstance(outcome, float):
                    ob.release(
                        conn, self.worker, [(row, dt.datetime.fromtimestamp(outcome, dt.UTC))]
                    )
                elif not isinstance(outcome, Delivered):
                    self._failed(conn, row, msg, outcome, now)
        for row, _, _ in done:
            self._active.pop(row.id, None)
        self.stats["sent"] += len(sent)
        self.kill.hit("after_record")
        return len(done)

    def _failed(
        self, conn: Any, row: ob.Row, msg: OutboundMessage, exc: BaseException, now: dt.datetime
    ) -> None:
        self.stats["failed"] += 1
        err = (
            exc if isinstance(exc, DeliveryError) else DeliveryError(f"{type(exc).__name__}: {exc}")
        )
        text = str(err)[:300]
        if err.retry_after is not None:
            until = now + dt.timedelta(seconds=float(err.retry_after))
            self.lanes.pause(self.senders[row.channel].lanes(msg), until.timestamp())
            ob.reschedule(conn, self.worker, row, until, error=text)
        elif err.blocked:
            self.stats["dead"] += 1
            ob.dead_letter(conn, self.worker, row, f"blocked: {text}", blocked_at=now)
        elif err.migrated_to:
            ob.migrate(conn, self.worker, row, str(err.migrated_to))
            ob.reschedule(conn, self.worker, row, now)
        elif err.permanent:
            self.stats["dead"] += 1
            ob.dead_letter(conn, self.worker, row, f"permanent: {text}")
        else:  # may have reached the platform: the probe decides after the backoff
            delay = self._backoff(row.attempts + 1)
            ob.reschedule(
                conn, self.worker, row, now + dt.timedelta(seconds=delay),
                status=ob.INFLIGHT, error=f"transient: {text}", attempt=True,
            )  # fmt: skip
            log.warning("delivery of %s failed (attempt %d): %s", row.idem_key, row.attempts + 1,
                        text)  # fmt: skip

    def _backoff(self, attempt: int) -> float:
        base, cap = self.backoff
        return min(cap, base * 2 ** (attempt - 1)) * (0.5 + self.rng.random() / 2)

    # -- in-flight recovery --------------------------------------------------------------------
    async def _recover(self, startup: bool) -> int:
        """Probe in-flight rows nobody is sending (module docstring); returns how many."""
        now = self.clock.now()
        sqlite_start = startup and self.engine.dialect.name == "sqlite"
        with self.engine.begin() as conn:  # SQLite: the file lock makes every inflight row ours
            rows = ob.probe_candidates(
                conn, self.worker, now, 0.0 if sqlite_start else self.lease, self._active
            )
            self._events.update(
                ob.load_events(conn, {r.event_id for r in rows} - self._events.keys())
            )
            last = {(r.channel, r.target): ob.last_message_id(conn, r.channel.value, r.target)
                    for r in rows}  # fmt: skip
        for row in rows:  # outbox order per chat, each found id known before the next probe
            key = (row.channel, row.target)
            found = await self._probe(row, last[key])
            if found is not None:
                last[key] = ob.later_id(last[key], found)
        return len(rows)

    async def _probe(self, row: ob.Row, last_id: str | None) -> str | None:
        """Resolve one in-flight row; returns the message id when the platform has it."""
        sender, event = self.senders.get(row.channel), self._events.get(row.event_id)
        now = self.clock.now()
        if sender is None or event is None:
            with self.engine.begin() as conn:
                ob.reschedule(conn, self.worker, row, now + dt.timedelta(seconds=60),
                              status=ob.INFLIGHT)  # fmt: skip
            return None
        msg = self.render(event, row)
        self.stats["probed"] += 1
        try:
            found = await sender.probe(msg, last_id)
        except Exception as exc:  # noqa: BLE001 - the platform cannot say now: ask again later
            if isinstance(exc, DeliveryError) and exc.permanent:
                with self.engine.begin() as conn:  # it can never tell: an operator decides
                    self.stats["dead"] += 1
                    ob.dead_letter(conn, self.worker, row, f"probe: {exc}"[:500])
                return None
            with self.engine.begin() as conn:
                ob.reschedule(
                    conn, self.worker, row, now + dt.timedelta(seconds=self._backoff(2)),
                    status=ob.INFLIGHT, error=f"probe: {type(exc).__name__}: {exc}"[:300],
                )  # fmt: skip
            return None
        with self.engine.begin() as conn:
            if found is not None:
                ob.record_sent(conn, self.worker, [(row, found.message_id, message_hash(msg))], now)
            elif row.attempts >= self.max_attempts:
                self.stats["dead"] += 1
                ob.dead_letter(conn, self.worker, row, f"retries exhausted ({row.attempts})")
            else:
                ob.reschedule(conn, self.worker, row, now)
        return None if found is None else found.message_id
