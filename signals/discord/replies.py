"""What the Discord bot says: interaction answers (ephemeral by default), buttons, plan lists.

Discord messages hold at most 2000 characters; :func:`message` cuts longer text at a line and
says so. Mentions are disabled in every answer (``allowed_mentions``), so console output that
happens to contain ``@everyone`` pings no one.
"""

from __future__ import annotations

from typing import Any

from signals.interfaces import SubscriptionView
from signals.model import Plan

MAX_CONTENT = 2000
EPHEMERAL = 64  # message flag: only the user who interacted sees the answer
# interaction callback types
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 1, 4, 5, 6, 7
# button styles
PRIMARY, SECONDARY, DANGER, LINK = 1, 2, 4, 5
CUT = "\n… (cut: Discord allows 2000 characters)"


def fit(text: str, limit: int = MAX_CONTENT) -> str:
    """``text`` within ``limit`` characters, cut at a line break with a note when too long."""
    if len(text) <= limit:
        return text
    head = text[: limit - len(CUT)]
    return (head.rsplit("\n", 1)[0] if "\n" in head else head) + CUT


def message(
    text: str, buttons: list[dict[str, Any]] | None = None, *, ephemeral: bool = True
) -> dict[str, Any]:
    """An interaction message body: content, an action row of ``buttons``, no mentions."""
    data: dict[str, Any] = {"content": fit(text), "allowed_mentions": {"parse": []}}
    data["components"] = [{"type": 1, "components": buttons}] if buttons else []
    if ephemeral:
        data["flags"] = EPHEMERAL
    return data


def link_button(label: str, url: str) -> dict[str, Any]:
    return {"type": 2, "style": LINK, "label": label[:80], "url": url}


def button(label: str, custom_id: str, style: int = PRIMARY) -> dict[str, Any]:
    if len(custom_id) > 100:
        raise ValueError(f"custom_id {custom_id[:20]!r}... is over Discord's 100 characters")
    return {"type": 2, "style": style, "label": label[:80], "custom_id": custom_id}


def confirm_buttons(command: str, token: str) -> list[dict[str, Any]]:
    """Confirm (carries the console's one-time token) and Cancel for a destructive command."""
    return [
        button(f"Confirm /{command}", f"confirm:{command}:{token}", DANGER),
        button("Cancel", f"cancel:{command}", SECONDARY),
    ]


def tier_text(plan: Plan) -> str:
    tier = plan.tier
    if tier.end_of_day:
        extra = f" + {tier.delay_minutes} min" if tier.delay_minutes else ""
        return f"end of day{extra}"
    return f"delayed {tier.delay_minutes} min" if tier.delay_minutes else "real time"


def plans_text(plans: list[Plan]) -> str:
    if not plans:
        return "No plans are on offer yet."
    lines = ["Plans (subscribe with /subscribe plan:<id>):"]
    for p in plans:
        what = "every strategy" if p.strategy == "*" else f"strategy {p.strategy}"
        price = f"{p.price_cents / 100:.2f} {p.currency.upper()}/{p.interval}"
        lines.append(f"• `{p.plan_id}`: {what}, {tier_text(p)}, {price}")
    return "\n".join(lines)


def status_text(views: list[SubscriptionView]) -> str:
    if not views:
        return "You have no subscriptions. See /plans."
    lines = ["Your subscriptions:"]
    for v in views:
        access = "access on" if v.entitled else "no access"
        until = f", renews/ends {v.current_period_end:%Y-%m-%d}" if v.current_period_end else ""
        grace = f", grace until {v.grace_until:%Y-%m-%d %H:%M} UTC" if v.grace_until else ""
        lines.append(f"• `{v.plan_id}`: {v.status} ({access}){until}{grace}")
    return "\n".join(lines)
