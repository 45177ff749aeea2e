"""Exactly once under SIGKILL with the real ``TelegramSender`` (python-telegram-bot) against the
local Bot API fake: a dispatcher subprocess is killed after the claim, after a send (the message
is in the chat, the outbox does not know it) and after a record, then restarted; the restart
resolves in-flight rows with the sender's ``editMessageReplyMarkup`` probe, never a blind
resend. At the end every outbox row's message is in its chat exactly once (found by its marker
button ``sig:<idem_key[:16]>``) under the message id the outbox recorded."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import sqlalchemy as sa

from signals.db import make_engine, outbox
from signals.fanout import fan_out
from signals.local.telegram_server import TelegramBotApiServer
from tests.signals.outbox_fixtures import T0, add_plan, add_subscribers, event, realtime_plan
from tests.signals.test_outbox_crash import child, finish

TOKEN = "4242:CRASH-TEST-not-a-secret"
CHANNEL = -1009876543210
SCALE = 20.0


def marker_ids(tg: TelegramBotApiServer, chat: int) -> dict[str, list[int]]:
    """``sig:...`` marker -> ids of the chat's messages carrying it as their first button."""
    out: dict[str, list[int]] = {}
    for m in tg.messages(chat):
        rows = (m.reply_markup or {}).get("inline_keyboard", [])
        if rows and rows[0] and str(rows[0][0].get("callback_data", "")).startswith("sig:"):
            out.setdefault(rows[0][0]["callback_data"], []).append(m.message_id)
    return out


@pytest.mark.parametrize(
    ("point", "counts"),
    [("after_claim", (1,)), ("after_send", (1, 12)), ("after_record", (2,))],
)
def test_sigkill_with_the_telegram_sender(
    tmp_path: Path, point: str, counts: tuple[int, ...]
) -> None:
    engine = make_engine(tmp_path, environ={})
    add_plan(engine, realtime_plan(chat=CHANNEL))
    subs = 15
    add_subscribers(engine, "rt", subs)
    with engine.begin() as conn:
        fan_out(conn, [event(1), event(2)], T0)  # 2 x (1 channel post + 15 DMs)
    mode = f"telegram:{TOKEN}:{SCALE:g}"
    with TelegramBotApiServer(TOKEN, limits_scale=SCALE) as tg:
        for i in range(subs):
            tg.add_user(10_000 + i, f"user{i}", started=True)
        tg.add_chat(CHANNEL, "channel", "Real-time tier")
        for n in counts:
            assert finish(child(tmp_path, tg.base_url, f"{point}:{n}", mode)) == -signal.SIGKILL
        assert finish(child(tmp_path, tg.base_url, None, mode)) == 0
        with engine.connect() as conn:
            rows = list(conn.execute(sa.select(outbox)))
        assert len(rows) == 32 and {r.status for r in rows} == {"sent"}
        for r in rows:
            found = marker_ids(tg, int(r.target)).get(f"sig:{r.idem_key[:16]}", [])
            assert found == [int(r.message_id)], (r.target, r.idem_key, found)
        total = sum(len(v) for c in [CHANNEL, *range(10_000, 10_000 + subs)]
                    for v in marker_ids(tg, c).values())  # fmt: skip
        assert total == 32  # nothing else was posted either
