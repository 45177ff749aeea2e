"""The seams between the signals modules, typed once so each side can be built and tested alone.

- :class:`Sender` — a platform's delivery adapter the dispatcher calls (Telegram through
  python-telegram-bot, Discord through its REST API). It raises :class:`DeliveryError` with the
  platform's own facts (``retry_after``, blocked, migrated) and never retries by itself: the
  dispatcher owns retries, backoff and rate-limit lanes, so a 429 storm cannot multiply sends.
- :class:`AccessPlatform` — what the access reconciler drives: Telegram invite links and
  ban/unban, Discord roles. Every method is idempotent (granting twice, removing twice are fine).
- :class:`Subscriptions` — what the bots' subscriber commands call (``/plans``, ``/subscribe``,
  ``/status``, ``/unsubscribe``), whatever payment provider sits behind it.
- :class:`Console` — the operator console both bots call (``/status`` ... ``/flatten``), which
  authorizes, asks for confirmation, acts through ``live.runner.control`` and audits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from signals.model import Channel, Plan, TargetKind


@dataclass(frozen=True, slots=True)
class Button:
    """An inline keyboard button (Telegram) or a message component (Discord)."""

    label: str
    callback_data: str | None = None  # <= 64 bytes on Telegram
    url: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One rendered outbox row, ready for a :class:`Sender`."""

    idem_key: str  # the outbox row's unique key (Discord uses it as the message nonce)
    channel: Channel
    target_kind: TargetKind
    target: str  # Telegram chat id / Discord channel id
    text: str  # <= 4096 chars (Telegram), 2000 (Discord); a caption <= 1024 with an image
    image: bytes | None = None  # PNG, byte-identical for the same inputs
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True, slots=True)
class Delivered:
    """The platform accepted the message: its id is recorded on the outbox row."""

    message_id: str


class DeliveryError(Exception):
    """A failed delivery, classified by the adapter from the platform's answer.

    - ``retry_after`` (seconds): the platform's rate limit said when to come back (429).
    - ``blocked``: the recipient blocked the bot / left / the channel is gone (403): dead-letter,
      never retry.
    - ``migrated_to``: Telegram moved the group to a supergroup: re-address and retry at once.
    - ``permanent``: a 400-class error retrying cannot fix: dead-letter with ``str(self)``.
    - otherwise transient (network, 5xx): retried with exponential backoff.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        blocked: bool = False,
        migrated_to: str | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.blocked = blocked
        self.migrated_to = migrated_to
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Lane:
    """A rate-limit lane: at most ``rate`` sends per ``per`` seconds for one key."""

    key: str
    rate: int
    per: float


class Sender(Protocol):
    """A platform's delivery adapter (async: the dispatcher runs one event loop)."""

    channel: Channel

    def lanes(self, msg: OutboundMessage) -> tuple[Lane, ...]:
        """The rate-limit lanes one send of ``msg`` consumes (e.g. Telegram: the bot's 30/s
        overall lane plus the chat's 1/s or the group's 20/min)."""
        ...

    async def send(self, msg: OutboundMessage) -> Delivered:
        """Deliver once; raise :class:`DeliveryError` on failure. Never retries."""
        ...

    async def probe(self, msg: OutboundMessage, last_message_id: str | None) -> Delivered | None:
        """After a crash left ``msg`` in flight: did the platform get it? ``Delivered`` if it
        did (its id), ``None`` if it certainly did not; raise :class:`DeliveryError` if the
        platform cannot say right now (the dispatcher retries the probe, never a blind send)."""
        ...


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """What a grant produced: a Telegram invite link to hand the subscriber, or nothing."""

    invite_link: str | None = None
    expires_at: datetime | None = None


class AccessPlatform(Protocol):
    """One platform's access actions for a plan's paid space (all idempotent)."""

    platform: Channel

    async def grant(self, plan: Plan, subscriber_id: str, platform_user_id: str) -> AccessGrant:
        """Telegram: a single-use invite link (``member_limit=1``, short ``expire_date``) to the
        plan's chat; Discord: ``PUT`` the plan's role on the member."""
        ...

    async def revoke(self, plan: Plan, subscriber_id: str, platform_user_id: str) -> None:
        """Telegram: ``banChatMember`` then ``unbanChatMember(only_if_banned=True)`` (removed,
        may rejoin with a new link later) and revoke an unused link; Discord: ``DELETE`` the
        role."""
        ...

    async def is_member(self, plan: Plan, platform_user_id: str) -> bool:
        """Telegram ``getChatMember`` status / Discord member roles: the actual state."""
        ...


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """A subscriber's subscription as the bots show it."""

    plan_id: str
    status: str
    entitled: bool
    current_period_end: datetime | None = None
    grace_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class CheckoutLink:
    """Where the subscriber pays (Stripe Checkout URL, or the local provider's confirm URL)."""

    url: str
    session_id: str


class Subscriptions(Protocol):
    """The subscriber-facing service behind ``/start``, ``/plans``, ``/subscribe``, ``/status``
    and ``/unsubscribe`` on both platforms."""

    def register(self, platform: Channel, user_id: str, chat_id: str | None = None) -> str:
        """The subscriber id for this platform user (created on first contact)."""
        ...

    def plans(self) -> list[Plan]: ...

    def checkout(self, subscriber_id: str, plan_id: str) -> CheckoutLink: ...

    def status(self, subscriber_id: str) -> list[SubscriptionView]: ...

    def unsubscribe(self, subscriber_id: str, plan_id: str) -> str:
        """Cancel at period end (access kept until then); returns a one-line answer."""
        ...


@dataclass(frozen=True, slots=True)
class ConsoleReply:
    """The console's answer. With ``confirm_token`` set, the command is *not* done yet: the bot
    shows a confirm button carrying the token, and only a second call with it acts."""

    text: str
    confirm_token: str | None = None
    allowed: bool = True
    data: dict[str, object] = field(default_factory=dict)


class Console(Protocol):
    """The operator console (platform-independent)."""

    def handle(
        self,
        platform: Channel,
        user_id: str,
        command: str,
        args: str = "",
        confirm_token: str | None = None,
    ) -> ConsoleReply:
        """Authorize ``user_id`` on ``platform`` by role, run or stage the command, append an
        audit entry whether allowed or refused, and answer."""
        ...
