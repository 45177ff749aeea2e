"""The whole signals service end to end, offline: ``signals serve``'s wiring (signals.service)
under uvicorn, python-telegram-bot long-polling the local Bot API server, Discord interactions
signed with a real Ed25519 key, the local payment provider, a real live journal.

- ``test_demo_delivers_every_signal_once_per_tier``: what ``make demo`` shows, asserted.
- ``test_whole_lifecycle``: the issue's one lifecycle test: purchase, link granted and joined,
  a new fill reaches the subscriber in real time, payment failure, grace period, access
  removed, re-subscribe and rejoin.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from live.journal.pg import open_journal
from signals.db import outbox, signal_events, subscriptions
from signals.demo import ALICE, RT_CHAT, _buy_on_telegram, _wait, run_demo, world
from signals.service import SignalsService
from tests.signals.dashboard_fixtures import Secrets, add_fill, build_journal

pytestmark = pytest.mark.slow


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    build_journal(home, Secrets()).close()
    return home


def test_demo_delivers_every_signal_once_per_tier(tmp_path: Path) -> None:
    home = _home(tmp_path)
    said: list[str] = []
    result = run_demo(home, say=said.append, timeout_s=120)
    n = result.events
    assert n >= 5, result  # approvals, decisions, orders, fills, the risk change
    # every event posted once to each tier's channel on both platforms, whatever the members
    assert result.channel_posts == {"realtime": n, "eod": n}
    assert result.discord_posts == {"realtime": n, "eod": n}
    # the journal was read before anyone subscribed: tier channels only, no back-history DMs
    assert result.by_plan == {"realtime": {"sent": 2 * n}, "eod": {"sent": 2 * n}}
    assert result.dms == {"alice": 0, "bob": 0}
    assert result.early == 0  # nothing sent before its not_before
    assert result.pending_eod == 0  # 2024 events: every session's close has passed
    assert result.eod_examples and all(nb >= ts for ts, nb in result.eod_examples)
    # console: the operator's /status answers, a subscriber's /halt is refused, all audited
    assert "refus" in result.console[1].lower() or "not" in result.console[1].lower()
    assert result.audit.startswith("audit chain OK")
    assert any("Carol bought realtime on Discord" in s for s in said)


def test_whole_lifecycle(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with world(home) as w:
        svc = w.svc
        assert _buy_on_telegram(w, ALICE, "realtime") == "joined"
        assert w.tg.member_status(RT_CHAT, ALICE) == "member"
        _wait(lambda: _outbox_idle(svc.engine), 60, "the backlog to deliver")
        before = len(w.tg.messages(RT_CHAT))
        dm_before = len(w.tg.messages(ALICE))

        # a new fill in the runner's journal reaches the tier channel and Alice's DM in seconds
        j = open_journal(home)
        t0 = time.monotonic()
        add_fill(j, "x-live-1", 1.0, 512.25)
        j.close()
        _wait(lambda: len(w.tg.messages(RT_CHAT)) > before, 20, "the new fill's post")
        latency = time.monotonic() - t0
        post = w.tg.messages(RT_CHAT)[-1]
        assert "512.25" in (post.caption or post.text or "")
        _wait(lambda: len(w.tg.messages(ALICE)) > dm_before, 20, "the new fill's DM")
        assert latency < 10.0  # tail every 0.5 s + dispatch; generous for a loaded machine

        # payment fails: past_due, still entitled during the grace period, still a member
        ref = _ref(svc.engine)
        w_provider = svc.subscriptions.provider
        _run(svc, w_provider.fail_payment(ref))  # type: ignore[attr-defined]
        assert _status(svc.engine) == "past_due"
        _reconcile(svc)
        assert w.tg.member_status(RT_CHAT, ALICE) == "member"

        # the grace period runs out: the reconciler removes her (ban then unban: "left")
        grace = w.plans[0].grace_days
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=grace, hours=1)
        svc.reconciler.clock = lambda: later
        _reconcile(svc)
        assert w.tg.member_status(RT_CHAT, ALICE) == "left"
        svc.reconciler.clock = lambda: dt.datetime.now(dt.UTC)

        # the retries are exhausted, then she subscribes again: a new link, she rejoins
        _run(svc, w_provider.cancel(ref))  # type: ignore[attr-defined]
        assert _buy_on_telegram(w, ALICE, "realtime") == "joined"
        assert w.tg.member_status(RT_CHAT, ALICE) == "member"


def _outbox_idle(engine: sa.Engine) -> bool:
    now = dt.datetime.now(dt.UTC)
    with engine.connect() as conn:
        busy = conn.execute(
            sa.select(sa.func.count())
            .select_from(outbox)
            .where(
                (outbox.c.status == "inflight")
                | ((outbox.c.status == "pending") & (outbox.c.next_attempt_at <= now))
            )
        ).scalar_one()
        events = conn.execute(sa.select(sa.func.count()).select_from(signal_events)).scalar_one()
    return busy == 0 and events > 0


def _ref(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.select(subscriptions.c.provider_ref)).scalar_one())


def _status(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.select(subscriptions.c.status)).scalar_one())


def _run(svc: SignalsService, events: object) -> None:
    """Hand a local provider's events to the running service's handler, on its event loop."""
    svc.submit(svc.subscriptions.apply_local(events))  # type: ignore[arg-type]


def _reconcile(svc: SignalsService) -> None:
    svc.submit(svc.reconciler.reconcile_all())


def test_serve_registers_the_discord_slash_commands(tmp_path: Path) -> None:
    with world(_home(tmp_path)) as w:
        names = {c["name"] for c in w.dc.commands[w.guild]}
    assert {"plans", "subscribe", "status", "unsubscribe", "halt", "flatten"} <= names
