"""The typed vocabulary every signals module shares: events, recipients, plans, tiers.

One definition each, so the journal tailer, the outbox, the dispatcher, the bots, the payment
providers and the dashboard never disagree on a field name or a status string.

Times are timezone-aware UTC ``datetime`` objects everywhere; an event's ``ts`` is the journal's
own timestamp of what happened (the decision, the fill), never the time the tailer read it, so a
delayed tier's ``not_before`` (:func:`signals.tiers.not_before`) cannot drift with the tailer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    """What happened in the live runner (one journal row kind each)."""

    DECISION = "decision"  # a deployment decided for a session/minute (its intents)
    ORDER = "order"  # an order reached a new status (submitted, filled, canceled, rejected)
    FILL = "fill"  # an execution
    RISK = "risk"  # the trading state changed (ACTIVE / REDUCING / HALTED) and why
    APPROVAL = "approval"  # a deployment was loaded from an approved manifest


class Channel(StrEnum):
    """A delivery platform."""

    TELEGRAM = "telegram"
    DISCORD = "discord"


class TargetKind(StrEnum):
    """What an outbox row is addressed to; decides the rate-limit lane."""

    DM = "dm"  # a private chat with one subscriber (Telegram: 1 msg/s per chat)
    GROUP = "group"  # a group or supergroup (Telegram: 20 msg/min per group)
    CHANNEL = "channel"  # a tier's broadcast channel: posted once, read by every member


class OutboxStatus(StrEnum):
    """An outbox row's life: pending -> inflight -> sent | dead (pending again on a retry)."""

    PENDING = "pending"
    INFLIGHT = "inflight"  # claimed and possibly on the wire: resolved by a probe after a crash
    SENT = "sent"
    DEAD = "dead"  # dead-lettered: permanent error or retries exhausted (reason in last_error)


class Role(StrEnum):
    """A platform user's role: operators may use the console."""

    SUBSCRIBER = "subscriber"
    OPERATOR = "operator"


class SubscriptionStatus(StrEnum):
    """Stripe's subscription statuses (the local provider uses the same ones)."""

    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"  # a payment failed: access continues until the grace period ends
    CANCELED = "canceled"
    UNPAID = "unpaid"
    PAUSED = "paused"


# statuses that grant access outright; PAST_DUE grants it only within the grace period
ENTITLED_STATUSES = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING})


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a signal came from: enough to trace a sent message to the order and the research
    run behind it (deployment -> manifest -> MLflow run; client order ids -> broker orders)."""

    deployment_id: str
    manifest_id: str = ""
    strategy: str = ""
    mlflow_run_id: str = ""
    client_order_ids: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment_id,
            "manifest_id": self.manifest_id,
            "strategy": self.strategy,
            "mlflow_run_id": self.mlflow_run_id,
            "client_order_ids": list(self.client_order_ids),
        }


@dataclass(frozen=True, slots=True)
class SignalEvent:
    """One thing worth telling subscribers, derived deterministically from a journal row.

    ``event_id`` is a pure function of the row (e.g. ``fill:<exec id>``, ``order:<cid>:filled``),
    so re-reading the journal after a crash yields the same ids and the outbox's unique
    idempotency keys make the re-insert a no-op.
    """

    event_id: str
    kind: EventKind
    ts: datetime  # the journal's timestamp of the fact (UTC, aware)
    lineage: Lineage
    title: str  # one line for humans, e.g. "BUY 10 SPY @ 512.30 (vwap_reversion)"
    facts: dict[str, Any] = field(default_factory=dict)  # JSON-serializable details

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None:
            raise ValueError(f"SignalEvent {self.event_id}: ts must be timezone-aware UTC")

    @property
    def strategy(self) -> str:
        return self.lineage.strategy

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "kind": self.kind.value,
            "ts": self.ts.astimezone(UTC).isoformat(),
            "lineage": self.lineage.as_dict(),
            "title": self.title,
            "facts": self.facts,
        }


@dataclass(frozen=True, slots=True)
class Tier:
    """How soon a plan's subscribers see a signal.

    ``delay_minutes`` after the event (0 = real time); ``end_of_day`` holds every signal until
    the close of the NYSE session it happened in (or the next session's close when it happened
    after that close), plus ``delay_minutes``.
    """

    name: str
    delay_minutes: int = 0
    end_of_day: bool = False

    def __post_init__(self) -> None:
        if self.delay_minutes < 0:
            raise ValueError(f"tier {self.name!r}: delay_minutes must be >= 0")


@dataclass(frozen=True, slots=True)
class Plan:
    """A purchasable plan: one strategy (or ``*`` for all), one tier, a price, where it posts.

    ``telegram_chat_id`` / ``discord_channel_id`` are the tier's paid channel (posted once per
    signal, joined through single-use invite links or a Discord role); with ``dm=True`` each
    entitled subscriber also gets a private message.
    """

    plan_id: str
    strategy: str
    tier: Tier
    price_cents: int
    currency: str = "usd"
    interval: str = "month"
    grace_days: int = 3
    telegram_chat_id: int | None = None
    discord_channel_id: str | None = None
    discord_role_id: str | None = None
    dm: bool = False
    stripe_price_id: str | None = None

    def covers(self, strategy: str) -> bool:
        return self.strategy in ("*", strategy)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One delivery target of an event: a tier's channel, or one subscriber's private chat."""

    channel: Channel
    target: str  # Telegram chat id (as text) or Discord channel id
    kind: TargetKind
    plan_id: str
    subscriber_id: str | None = None  # None for a tier channel

    @property
    def key(self) -> str:
        """Stable recipient key used in the idempotency key."""
        who = self.subscriber_id or f"plan:{self.plan_id}"
        return f"{self.channel.value}:{self.kind.value}:{self.target}:{who}"


def idempotency_key(event_id: str, recipient: Recipient) -> str:
    """The outbox's unique key for (event, recipient, channel): a short, stable hash."""
    raw = f"{event_id}|{recipient.key}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def payload_hash(payload: dict[str, Any], image: bytes | None = None) -> str:
    """sha256 of the canonical JSON payload (plus the chart bytes): recorded with the send."""
    h = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
    if image is not None:
        h.update(image)
    return h.hexdigest()


def price_text(value: float) -> str:
    """A price as subscribers read it: thousands separators, at least 2 and at most 4 decimals,
    never rounded to fewer digits than it has (``512.25`` stays ``512.25``, ``0.0525`` stays)."""
    text = f"{value:,.4f}".rstrip("0")
    decimals = len(text.split(".")[1])
    return text + "0" * (2 - decimals) if decimals < 2 else text
