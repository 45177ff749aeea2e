# ruff: noqa: F811  (the fixture imported below is redefined as a test parameter, as pytest wants)
"""The Discord endpoint in front of the real services: ``signals.console.OperatorConsole`` (the
real halt through ``live.runner.control``, the real audit chain) and
``signals.subscriptions.SubscriptionService`` with the embedded local payment provider, on a
temporary SQLite data root. Signed interactions come from the fake's InteractionSender.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from contracts import paths
from live.journal.store import Journal
from live.runner import control
from signals.console import OperatorConsole
from signals.db import audit_log, make_engine, subscribers
from signals.local.discord_server import DiscordApiServer
from signals.payments.local import LocalProvider
from signals.subscriptions import SubscriptionService, default_plans
from tests.signals.discord_fixtures import MEMBER, OPERATOR, fake, serving  # noqa: F401

GRANTED = "6006"


@pytest.fixture(autouse=True)
def _embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ALPACA_IMPROVED_DATABASE_URL", "ALPACA_IMPROVED_LAKE_URI"):
        monkeypatch.delenv(var, raising=False)


def test_real_console_and_subscriptions_through_discord(
    fake: DiscordApiServer, tmp_path: Path
) -> None:
    Journal(paths.journal_path(tmp_path)).close()  # a data root a live runner has used
    engine = make_engine(tmp_path, {})
    console = OperatorConsole(tmp_path, engine, environ={"DISCORD_OPERATOR_IDS": OPERATOR})
    subs = SubscriptionService(engine, LocalProvider(engine), default_plans())
    with engine.begin() as conn:  # an operator by role (granted in the database, not the env)
        row = {"subscriber_id": "op2", "created_at": datetime.now(UTC), "role": "operator"}
        conn.execute(sa.insert(subscribers).values(**row, discord_user_id=GRANTED))

    with serving(fake, console, subs) as (sender, _, _):  # operators: the console's role_of
        plans = sender.command("plans", MEMBER)
        assert plans.response is not None and "`realtime`" in plans.response["data"]["content"]
        sub = sender.command("subscribe", MEMBER, {"plan": "realtime"})
        assert sub.response is not None
        button = sub.response["data"]["components"][0]["components"][0]
        assert button["style"] == 5 and button["url"].startswith("http://127.0.0.1:8080")

        refused = sender.command("halt", MEMBER)  # a known subscriber, not an operator
        assert refused.response is not None
        assert refused.response["data"]["content"].startswith("refused")
        asked = sender.command("halt", OPERATOR)
        assert asked.response is not None and not control.halt_path(tmp_path).exists()
        confirm = asked.response["data"]["components"][0]["components"][0]["custom_id"]
        done = sender.command("status", GRANTED)  # an operator's /status is the console's
        assert done.response is not None and "subscriptions" not in done.response["data"]["content"]
        pressed = sender.component(confirm, OPERATOR, asked.original)
        assert pressed.response is not None and pressed.response["type"] in (6, 7), pressed
        assert fake.wait_for(lambda: control.halt_path(tmp_path).is_file(), timeout_s=3.0)
        deferred = pressed.response["type"] == 6  # then the answer is PATCHed onto @original

        def answered() -> bool:
            shown = pressed.original if deferred else pressed.response
            return "/halt done" in str(shown)

        assert fake.wait_for(answered, timeout_s=3.0)
        assert not sender.failures

    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_log.c.platform, audit_log.c.command, audit_log.c.allowed)
        )
        trail = [tuple(r) for r in rows]
    assert trail == [
        ("discord", "/halt", False),
        ("discord", "/halt", True),
        ("discord", "/status", True),  # GRANTED's: the console's status, not the subscriber's
        ("discord", "/halt", True),
    ]
