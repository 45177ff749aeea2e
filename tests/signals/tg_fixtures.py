"""Fixtures for the Telegram tests: the local Bot API fake, the real PTB bot against it, and
small explicit implementations of the Subscriptions and Console protocols.

:class:`MemorySubscriptions` and :class:`RecordingConsole` are test implementations of
:class:`signals.interfaces.Subscriptions` / :class:`~signals.interfaces.Console` kept to the
protocols' contracts (a console refuses non-operators, stages destructive commands behind a
single-use token bound to the user, acts only with it), so the bot is tested alone; the real
services have their own tests. Imported explicitly (no conftest); each test module wraps
:func:`fake_telegram` in its own ``tg`` fixture.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette

from signals.interfaces import (
    CheckoutLink,
    Console,
    ConsoleReply,
    Subscriptions,
    SubscriptionView,
)
from signals.local.telegram_server import TelegramBotApiServer
from signals.local.telegram_state import Message
from signals.model import Channel, Plan, Tier
from signals.telegram.bot import TgApp, build_application, start_bot, stop_bot, webhook_route
from signals.telegram.config import TelegramConfig

TOKEN = "7000001:AAtest-token_0123456789abcdefXYZ"
OPERATOR = 9001
SUBSCRIBER = 4242
PLANS = [
    Plan("rt", "*", Tier("realtime"), 4900, telegram_chat_id=-1001000000001),
    Plan("eod", "*", Tier("eod", end_of_day=True), 900, telegram_chat_id=-1001000000002),
]


@dataclass
class MemorySubscriptions:
    """An in-memory :class:`signals.interfaces.Subscriptions` (a test implementation)."""

    catalogue: list[Plan] = field(default_factory=lambda: list(PLANS))
    registered: dict[tuple[str, str], str] = field(default_factory=dict)
    chats: dict[str, str | None] = field(default_factory=dict)
    views: dict[str, list[SubscriptionView]] = field(default_factory=dict)
    checkouts: list[tuple[str, str]] = field(default_factory=list)
    cancelled: list[tuple[str, str]] = field(default_factory=list)

    def register(self, platform: Channel, user_id: str, chat_id: str | None = None) -> str:
        sid = self.registered.setdefault((str(platform), user_id), f"sub-{user_id}")
        self.chats[sid] = chat_id
        return sid

    def plans(self) -> list[Plan]:
        return list(self.catalogue)

    def checkout(self, subscriber_id: str, plan_id: str) -> CheckoutLink:
        self.checkouts.append((subscriber_id, plan_id))
        session = f"cs_{len(self.checkouts)}"
        return CheckoutLink(f"https://pay.example.test/checkout/{session}", session)

    def status(self, subscriber_id: str) -> list[SubscriptionView]:
        return list(self.views.get(subscriber_id, []))

    def unsubscribe(self, subscriber_id: str, plan_id: str) -> str:
        self.cancelled.append((subscriber_id, plan_id))
        return f"{plan_id} cancelled at period end"


@dataclass
class RecordingConsole:
    """A :class:`signals.interfaces.Console` that records what it did (a test implementation)."""

    operators: frozenset[str] = frozenset({str(OPERATOR)})
    calls: list[tuple[str, str, str, str, bool]] = field(default_factory=list)
    acted: list[str] = field(default_factory=list)
    _pending: dict[str, tuple[str, str]] = field(default_factory=dict)

    def handle(
        self,
        platform: str,
        user_id: str,
        command: str,
        args: str = "",
        confirm_token: str | None = None,
    ) -> ConsoleReply:
        self.calls.append((str(platform), user_id, command, args, confirm_token is not None))
        if user_id not in self.operators:
            return ConsoleReply(f"refused: {user_id} is not an operator", allowed=False)
        if command in ("status", "positions", "pnl"):
            return ConsoleReply(f"runner ACTIVE; {command}: nothing open")
        if confirm_token is None:
            token = secrets.token_urlsafe(16)
            self._pending[token] = (user_id, command)
            return ConsoleReply(f"Confirm /{command}?", confirm_token=token)
        if self._pending.pop(confirm_token, None) != (user_id, command):
            return ConsoleReply(f"refused: /{command} not confirmed", allowed=False)
        self.acted.append(command)
        return ConsoleReply(f"/{command} done")


@contextmanager
def fake_telegram() -> Iterator[TelegramBotApiServer]:
    """The fake Bot API with an operator and a subscriber (neither has started the bot yet),
    limits off: command replies are not the dispatcher's traffic."""
    with TelegramBotApiServer(TOKEN, enforce_limits=False) as server:
        server.add_user(OPERATOR, "Olga", "olga_ops")
        server.add_user(SUBSCRIBER, "Sam", "sam_sub")
        yield server


def config_for(server: TelegramBotApiServer, **overrides: Any) -> TelegramConfig:
    return TelegramConfig(
        token=TOKEN,
        api_url=server.base_url,
        operator_ids=frozenset({OPERATOR}),
        **overrides,
    )


async def wait_until(pred: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``pred`` until it returns something truthy (then return it) or fail."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = pred()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def polling_bot(
    server: TelegramBotApiServer, subs: Subscriptions, console: Console
) -> AsyncIterator[TgApp]:
    """The real PTB application, long-polling the fake."""
    config = config_for(server)
    app = build_application(config, subs, console)
    await start_bot(app, config, poll_timeout=1.0)
    try:
        yield app
    finally:
        await stop_bot(app)


@asynccontextmanager
async def webhook_server(app: TgApp, secret: str) -> AsyncIterator[str]:
    """``POST /telegram/webhook`` served by uvicorn on this event loop; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    web = Starlette(routes=[webhook_route(app, secret)])
    server = uvicorn.Server(uvicorn.Config(web, lifespan="off", log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_until(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{port}/telegram/webhook"
    finally:
        server.should_exit = True
        await task


def buttons(message: Any) -> list[dict[str, Any]]:
    """Every inline button of a fake-server message, row by row."""
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return [b for row in rows for b in row]


async def reply(server: TelegramBotApiServer, user: int, text: str) -> Message:
    """The user writes ``text``; wait for the bot's next message in their chat."""
    before = len(server.messages(user))
    server.user_sends(user, text)
    return await wait_until(lambda: server.messages(user)[before:] and server.messages(user)[-1])


def text_of(message: Message) -> str:
    return message.text or ""


async def press(server: TelegramBotApiServer, user: int, message: Message, data: str) -> str:
    query = server.user_presses(user, user, message.message_id, data)
    await wait_until(lambda: server.callback_answer(query) is not None)
    return query
