"""``alpaca-improved signals demo``: signals delivered to subscribers of two tiers, offline.

``make demo`` runs this after the live runner's sim session. Everything is real except the
platforms, which are the local fakes of :mod:`signals.local` on 127.0.0.1: the whole signals
service (:mod:`signals.service`) runs under uvicorn with python-telegram-bot long-polling the
local Bot API server and the Discord interactions endpoint receiving signed interactions; the
payment provider is the embedded local one (no keys).

The story: Alice buys the real-time plan and Bob the end-of-day plan through the Telegram bot
(``/start``, ``/subscribe``, a plan button, the checkout link, pay); each gets a single-use
invite link to the tier's channel and joins. Carol subscribes on Discord (a slash command) and
gets the tier's role. The operator asks ``/status`` on both platforms. The journal tailer turns
the runner's decisions, orders, fills and risk changes into events; the dispatcher posts each
once to each tier's channel (the end-of-day tier never before the session's close) and DMs the
real-time subscribers. Then the audit chain is verified.

The fakes run their rate limits ``LIMITS_SCALE`` times faster than Telegram's and Discord's (and
the senders' lanes match), so a few hundred signals deliver in seconds rather than minutes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import secrets
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvicorn

from signals.audit import verify
from signals.db import outbox, signal_events
from signals.local.discord_interactions import InteractionSender
from signals.local.discord_server import DiscordApiServer
from signals.local.telegram_server import TelegramBotApiServer
from signals.service import ServiceOptions, SignalsService, build_service
from signals.subscriptions import PLANS_ENV, default_plans
from signals.tiers import not_before

LIMITS_SCALE = 50.0
RT_CHAT, EOD_CHAT = -1001000000001, -1001000000002
OPERATOR, ALICE, BOB = 9001, 1001, 1002
CAROL, DISCORD_OPERATOR = "3003003003003003003", "3009009009009009009"


@dataclasses.dataclass
class DemoResult:
    """What the demo delivered (printed by the CLI, asserted by the e2e test)."""

    events: int
    by_plan: dict[str, dict[str, int]]
    channel_posts: dict[str, int]  # tier channel -> messages the fake holds
    dms: dict[str, int]
    discord_posts: dict[str, int]
    eod_examples: list[tuple[str, str]]  # (event ts, not_before) of the eod tier
    early: int  # rows sent before their not_before (must be 0)
    console: list[str]
    audit: str
    seconds: float
    pending_eod: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError(f"signals demo: timed out waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def _serving(svc: SignalsService, timeout_s: float = 60.0) -> Iterator[str]:
    config = uvicorn.Config(
        svc.asgi(), host=svc.options.host, port=svc.options.port, log_level="warning",
        access_log=False, lifespan="on", timeout_graceful_shutdown=3,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name="signals-serve")
    thread.start()
    _wait(lambda: server.started or not thread.is_alive(), timeout_s, "the service to start")
    if not server.started:
        raise RuntimeError("signals demo: the service did not start (see the log above)")
    try:
        yield f"http://{svc.options.host}:{svc.options.port}"
    finally:
        server.should_exit = True
        thread.join(30)


class _Bot:
    """The users' side of the local Bot API server."""

    def __init__(self, tg: TelegramBotApiServer) -> None:
        self.tg = tg

    def last_from_bot(self, user: int) -> Any:
        mine = self.tg.messages(user)
        return mine[-1] if mine else None

    def say(self, user: int, text: str) -> Any:
        before = len(self.tg.messages(user))
        self.tg.user_sends(user, text)
        _wait(lambda: len(self.tg.messages(user)) > before, 30, f"the bot's answer to {text}")
        return self.tg.messages(user)[-1]

    def press(self, user: int, msg: Any, data: str) -> Any:
        before = len(self.tg.messages(user))
        self.tg.user_presses(user, user, msg.message_id, data)
        _wait(lambda: len(self.tg.messages(user)) > before, 30, f"the bot's answer to {data}")
        return self.tg.messages(user)[-1]


def _buttons(msg: Any) -> list[dict[str, Any]]:
    rows = (msg.reply_markup or {}).get("inline_keyboard", [])
    return [b for row in rows for b in row]


def _buy_on_telegram(w: World, user: int, plan_id: str) -> str:
    """/start, /subscribe, the plan's button, pay at the checkout link, join the channel."""
    bot = w.bot
    bot.say(user, "/start")
    offer = bot.say(user, "/subscribe")
    data = next(b["callback_data"] for b in _buttons(offer) if b.get("callback_data", "").
                endswith(f":{plan_id}"))  # fmt: skip
    checkout = bot.press(user, offer, data)
    url = next(b["url"] for b in _buttons(checkout) if b.get("url"))
    before = len(bot.tg.messages(user))
    w.pay(url)
    _wait(lambda: any("t.me/" in (m.text or "") for m in bot.tg.messages(user)[before:]), 30,
          f"{plan_id}'s invite link")  # fmt: skip
    text = next(m.text or "" for m in bot.tg.messages(user)[before:] if "t.me/" in (m.text or ""))
    link = next(w for w in text.split() if "t.me/" in w)
    outcome = bot.tg.user_joins(user, link)
    return outcome


@dataclasses.dataclass
class World:
    """The running demo world: the service, the platform fakes, the users' side."""

    svc: SignalsService
    url: str
    tg: TelegramBotApiServer
    dc: DiscordApiServer
    bot: _Bot
    interactions: InteractionSender
    guild: str
    plans: list[Any]

    def pay(self, url: str) -> None:
        """The subscriber confirms a local checkout page."""
        request = urllib.request.Request(url, data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass


@contextlib.contextmanager
def world(home: Path, timeout_s: float = 60.0) -> Iterator[World]:
    """Start the fakes (two Telegram tier channels, a Discord guild with a role and a channel per
    plan, the demo's users) and the signals service on ``home``; stop everything on exit."""
    home = home.resolve()
    token = f"{secrets.randbelow(9 * 10**9) + 10**9}:{secrets.token_urlsafe(26)[:35]}"
    tg = TelegramBotApiServer(token, limits_scale=LIMITS_SCALE)
    tg.start()
    app_id = "2002002002002002002"
    dc = DiscordApiServer(secrets.token_urlsafe(40), app_id, limits_scale=LIMITS_SCALE).start()
    try:
        tg.add_chat(RT_CHAT, "channel", "Signals - real time")
        tg.add_chat(EOD_CHAT, "channel", "Signals - end of day")
        tg.add_user(OPERATOR, "Olive", "operator")
        tg.add_user(ALICE, "Alice", "alice")
        tg.add_user(BOB, "Bob", "bob")
        guild = dc.add_guild()
        plans = default_plans()
        channels = {p.plan_id: dc.add_channel(guild_id=guild, name=p.plan_id) for p in plans}
        for p in plans:
            assert p.discord_role_id is not None
            dc.add_role(guild, p.discord_role_id, p.plan_id)
        for user in (CAROL, DISCORD_OPERATOR):
            dc.add_member(guild, user)
        plans = [dataclasses.replace(p, discord_channel_id=channels[p.plan_id]) for p in plans]
        plans_file = home / "signals" / "demo_plans.json"
        plans_file.parent.mkdir(parents=True, exist_ok=True)
        plans_file.write_text(json.dumps({"plans": [_plan_json(p) for p in plans]}, indent=2))

        port = _free_port()
        interactions = InteractionSender(dc, f"http://127.0.0.1:{port}/discord/interactions")
        env = {
            "ALPACA_IMPROVED_HOME": str(home),
            PLANS_ENV: str(plans_file),
            "TELEGRAM_BOT_TOKEN": token,
            "TELEGRAM_API_URL": tg.api_url,
            "TELEGRAM_MODE": "polling",
            "TELEGRAM_OPERATOR_IDS": str(OPERATOR),
            "DISCORD_APPLICATION_PUBLIC_KEY": interactions.public_key_hex,
            "DISCORD_APPLICATION_ID": app_id,
            "DISCORD_BOT_TOKEN": dc.bot_token,
            "DISCORD_API_URL": dc.api_url,
            "DISCORD_GUILD_ID": guild,
            "DISCORD_OPERATOR_IDS": DISCORD_OPERATOR,
        }
        opts = ServiceOptions(
            port=port, tail_s=0.5, reconcile_s=3600.0,
            telegram_limits_scale=LIMITS_SCALE, discord_limits_scale=LIMITS_SCALE,
        )  # fmt: skip
        svc = build_service(home, opts, env)
        with _serving(svc, timeout_s) as url:
            yield World(svc, url, tg, dc, _Bot(tg), interactions, guild, plans)
    finally:
        with contextlib.suppress(Exception):
            dc.stop()
        tg.stop()


def run_demo(
    home: Path, say: Callable[[str], None] = print, timeout_s: float = 240.0
) -> DemoResult:
    """Run the story of the module docstring against ``home``'s live journal."""
    started = time.monotonic()
    with world(home) as w:
        say(f"signals service on {w.url} (Telegram and Discord: local fakes; payments: local)")
        joined = {
            "alice": _buy_on_telegram(w, ALICE, "realtime"),
            "bob": _buy_on_telegram(w, BOB, "eod"),
        }
        say(f"  Alice bought realtime, Bob bought eod on Telegram; joined: {joined}")
        sub = w.interactions.command("subscribe", CAROL, {"plan": "realtime"}, w.guild)
        w.pay(_first_url(sub))
        role = w.plans[0].discord_role_id
        _wait(lambda: role in w.dc.member_roles(w.guild, CAROL), 30, "Carol's Discord role")
        say("  Carol bought realtime on Discord: role granted")
        console = [
            _first_line(w.bot.say(OPERATOR, "/pnl").text),
            _first_line(w.bot.say(ALICE, "/halt").text),
            _first_line(
                _answer(w.interactions.command("positions", DISCORD_OPERATOR, {}, w.guild))
            ),
        ]
        _wait(lambda: _drained(w.svc), timeout_s, "the outbox to drain")
        return _collect(w.svc, w.tg, w.dc, w.plans, console, started)


def _plan_json(p: Any) -> dict[str, Any]:
    d = dataclasses.asdict(p)
    return {k: v for k, v in d.items() if v is not None}


def _first_url(interaction: Any) -> str:
    body = json.dumps(interaction.response or {}) + json.dumps(interaction.original or {})
    start = body.index("http://")
    return body[start : body.index('"', start)]


def _answer(interaction: Any) -> str:
    for part in (interaction.original, interaction.response):
        data = (part or {}).get("data", part or {})
        if isinstance(data, dict) and data.get("content"):
            return str(data["content"])
    return ""


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:100] if text else ""


def _drained(svc: SignalsService) -> bool:
    """Nothing due or in flight (end-of-day rows still waiting for their close may remain)."""
    now = dt.datetime.now(dt.UTC)
    with svc.engine.connect() as conn:
        busy = conn.execute(
            sa.select(sa.func.count())
            .select_from(outbox)
            .where(
                (outbox.c.status == "inflight")
                | ((outbox.c.status == "pending") & (outbox.c.next_attempt_at <= now))
            )
        ).scalar_one()
        events = conn.execute(sa.select(sa.func.count()).select_from(signal_events)).scalar_one()
    return busy == 0 and events > 0 and svc.stats.get("events", 0) == events


def _collect(
    svc: SignalsService, tg: TelegramBotApiServer, dc: DiscordApiServer, plans: list[Any],
    console: list[str], started: float,
) -> DemoResult:  # fmt: skip
    by_plan: dict[str, dict[str, int]] = {}
    eod_examples: list[tuple[str, str]] = []
    with svc.engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox.c.plan_id, outbox.c.status, outbox.c.sent_at, outbox.c.not_before,
                      signal_events.c.ts)
            .join(signal_events, signal_events.c.event_id == outbox.c.event_id)
        ).all()  # fmt: skip
        n_events = conn.execute(sa.select(sa.func.count()).select_from(signal_events)).scalar_one()
    early = 0
    pending_eod = 0
    for plan_id, status, sent_at, nb, ts in rows:
        by_plan.setdefault(plan_id, {}).setdefault(status, 0)
        by_plan[plan_id][status] += 1
        if sent_at is not None and _utc(sent_at) < _utc(nb):
            early += 1
        if plan_id == "eod":
            pending_eod += status == "pending"
            if len(eod_examples) < 2:
                eod_examples.append((_utc(ts).isoformat(timespec="minutes"),
                                     _utc(nb).isoformat(timespec="minutes")))  # fmt: skip
    eod_tier = next(p.tier for p in plans if p.plan_id == "eod")
    for ts_text, nb_text in eod_examples:  # the rule, re-derived independently of the outbox
        assert not_before(dt.datetime.fromisoformat(ts_text), eod_tier).isoformat(
            timespec="minutes") == nb_text  # fmt: skip
    return DemoResult(
        events=n_events,
        by_plan=by_plan,
        channel_posts={"realtime": len(tg.messages(RT_CHAT)), "eod": len(tg.messages(EOD_CHAT))},
        dms={"alice": _dm_signals(svc, ALICE), "bob": _dm_signals(svc, BOB)},
        discord_posts={p.plan_id: len(dc.messages(p.discord_channel_id)) for p in plans},
        eod_examples=eod_examples,
        early=early,
        console=console,
        audit=_audit(svc),
        seconds=time.monotonic() - started,
        pending_eod=pending_eod,
    )


def _dm_signals(svc: SignalsService, chat: int) -> int:
    """Signals delivered to a subscriber's private chat (not the bot conversation)."""
    with svc.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(outbox)
                .where(
                    (outbox.c.target_kind == "dm")
                    & (outbox.c.target == str(chat))
                    & (outbox.c.status == "sent")
                )
            ).scalar_one()
        )


def _audit(svc: SignalsService) -> str:
    res = verify(svc.engine, svc.home)
    if res.ok:
        return f"audit chain OK: {res.n_entries} entries"
    return f"audit chain BROKEN at seq {res.first_bad_seq}: {res.reason}"


def _utc(ts: dt.datetime) -> dt.datetime:
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


def main(home: Path) -> DemoResult:
    """The CLI's ``signals demo``: run and print where to look."""
    result = run_demo(home, say=print)
    print(f"signals: {result.events} events from the live journal -> outbox {result.by_plan}")
    print(f"  Telegram tier channels: realtime {result.channel_posts['realtime']} posts, "
          f"eod {result.channel_posts['eod']} posts (once per signal, not per member)")  # fmt: skip
    print(f"  Discord tier channels: {result.discord_posts}; signal DMs: {result.dms}")
    for ts, nb in result.eod_examples:
        print(f"  eod tier: event at {ts} -> not before {nb} (the session's close)")
    print(f"  sent before not_before: {result.early}; console: {result.console}")
    print(f"  audit: {result.audit}; {result.seconds:.1f} s")
    print(f"  look: alpaca-improved signals serve --home {home}  ->  "
          "http://127.0.0.1:8082/dashboard/ ; alpaca-improved subscribers list ; "
          "alpaca-improved audit verify")  # fmt: skip
    return result
