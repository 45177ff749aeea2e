"""Fixtures for the Discord tests: the local Discord fake, the bot's interactions endpoint under
uvicorn, and small explicit implementations of the Console and Subscriptions protocols.

The protocol implementations are deliberately tiny and record every call, so a test can prove
what the endpoint asked for (and, as important, what it did *not* ask for: no console call
before the confirm button is pressed). They follow :class:`signals.interfaces.Console`'s
contract: destructive commands return a one-time ``confirm_token`` and act only when it comes
back from the same user; non-operators are refused.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette

from signals.discord.config import DiscordConfig, load_config
from signals.discord.interactions import PATH, InteractionsEndpoint
from signals.interfaces import (
    CheckoutLink,
    Console,
    ConsoleReply,
    Subscriptions,
    SubscriptionView,
)
from signals.local.discord_interactions import InteractionSender
from signals.local.discord_server import DiscordApiServer
from signals.local.uvicorn_thread import UvicornThread
from signals.model import Channel, Plan, Tier
from tests.signals import tg_fixtures

TOKEN = "MTA0NjA5MDAwMDAwMDAwMDAx.GfAkE1.not-a-real-token-0123456789abcdef"  # token-shaped
APP_ID = "1046090000000000001"
OPERATOR, MEMBER = "4004", "5005"
PLANS = [
    Plan("rt", "*", Tier("realtime"), 4900, discord_channel_id="900", discord_role_id="700"),
    Plan("eod", "ma_crossover", Tier("eod", end_of_day=True), 900, discord_role_id="701"),
]


@dataclass
class RecordingConsole(tg_fixtures.RecordingConsole):
    """The Telegram tests' recording console with Discord's operator; ``slow_s`` delays
    /positions (to make the endpoint defer its answer)."""

    operators: frozenset[str] = frozenset({OPERATOR})
    slow_s: float = 0.0

    def handle(
        self,
        platform: str,
        user_id: str,
        command: str,
        args: str = "",
        confirm_token: str | None = None,
    ) -> ConsoleReply:
        if command == "positions":
            time.sleep(self.slow_s)
        return super().handle(platform, user_id, command, args, confirm_token)


@dataclass
class MemorySubscriptions:
    """A :class:`signals.interfaces.Subscriptions` over a dict."""

    checkouts: list[tuple[str, str]] = field(default_factory=list)
    cancelled: list[tuple[str, str]] = field(default_factory=list)

    def register(self, platform: Channel, user_id: str, chat_id: str | None = None) -> str:
        return f"sub-{platform}-{user_id}"

    def plans(self) -> list[Plan]:
        return list(PLANS)

    def checkout(self, subscriber_id: str, plan_id: str) -> CheckoutLink:
        if plan_id not in {p.plan_id for p in PLANS}:
            raise ValueError(f"unknown plan {plan_id!r}; see /plans")
        self.checkouts.append((subscriber_id, plan_id))
        return CheckoutLink(f"http://pay.local/checkout/{subscriber_id}/{plan_id}", "cs_1")

    def status(self, subscriber_id: str) -> list[SubscriptionView]:
        return [
            SubscriptionView(p, "active", True) for s, p in self.checkouts if s == subscriber_id
        ]

    def unsubscribe(self, subscriber_id: str, plan_id: str) -> str:
        self.cancelled.append((subscriber_id, plan_id))
        return f"{plan_id}: cancelled at the end of the period"


def config_for(fake: DiscordApiServer, public_key_hex: str, **extra: str) -> DiscordConfig:
    env = {
        "DISCORD_APPLICATION_PUBLIC_KEY": public_key_hex,
        "DISCORD_APPLICATION_ID": APP_ID,
        "DISCORD_BOT_TOKEN": TOKEN,
        "DISCORD_API_URL": fake.api_url,
        "DISCORD_OPERATOR_IDS": OPERATOR,
        **extra,
    }
    return load_config(env)


@dataclass
class Bot:
    """The fake, the signed-interaction sender, and the bot's endpoint serving it."""

    fake: DiscordApiServer
    sender: InteractionSender
    endpoint: InteractionsEndpoint
    console: RecordingConsole
    subs: MemorySubscriptions
    config: DiscordConfig


@pytest.fixture
def fake() -> Iterator[DiscordApiServer]:
    with DiscordApiServer(TOKEN, APP_ID, limits_scale=10.0) as server:
        yield server


@contextlib.contextmanager
def serving(
    fake: DiscordApiServer, console: Console, subs: Subscriptions, **options: Any
) -> Iterator[tuple[InteractionSender, InteractionsEndpoint, DiscordConfig]]:
    """The bot's endpoint for ``console``/``subs`` under uvicorn, and a sender signing for it."""
    sender = InteractionSender(fake, endpoint_url="")
    config = config_for(fake, sender.public_key_hex)
    endpoint = InteractionsEndpoint(config, subs, console, **options)
    server = UvicornThread(Starlette(routes=endpoint.routes()), name="discord-bot").start()
    sender.endpoint_url = f"{server.url}{PATH}"
    try:
        yield sender, endpoint, config
    finally:
        sender.close()
        server.stop()


@pytest.fixture
def bot(fake: DiscordApiServer) -> Iterator[Bot]:
    console, subs = RecordingConsole(slow_s=2.0), MemorySubscriptions()
    with serving(fake, console, subs, defer_after_s=1.0) as (sender, endpoint, config):
        yield Bot(fake, sender, endpoint, console, subs, config)
