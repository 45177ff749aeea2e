"""A signal event as a message: text per event kind, the lineage line, buttons and the chart.

Plain text (no parse mode, so nothing needs escaping), within the platforms' limits: Telegram
text 4,096 characters, a photo caption 1,024, Discord content 2,000. When a message is too long
the detail lines are cut, never the title or the lineage line (deployment, manifest, MLflow run,
client order ids) that traces it back to the order and the research behind it.

The first button's ``callback_data`` is ``sig:<idem_key[:16]>``: it marks the message as this
outbox row's, which the Telegram sender's in-flight probe looks for after a crash.

Bodies (text and chart) depend only on the event and the channel, so one render serves every
recipient of an event (10,000 DMs cost one chart); only the buttons carry the row's key.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from typing import Any

from signals.charts import OptionLeg, equity_chart, payoff_chart
from signals.interfaces import Button, OutboundMessage
from signals.model import Channel, EventKind, SignalEvent, TargetKind, price_text

TELEGRAM_TEXT, TELEGRAM_CAPTION, DISCORD_TEXT = 4096, 1024, 2000
_ICON = {
    EventKind.APPROVAL: "[approved]", EventKind.DECISION: "[decision]",
    EventKind.ORDER: "[order]", EventKind.FILL: "[fill]", EventKind.RISK: "[risk]",
}  # fmt: skip
_CACHE: OrderedDict[tuple[str, str, str], tuple[str, bytes | None]] = OrderedDict()
_CACHE_SIZE = 256


def lineage_line(event: SignalEvent) -> str:
    """``deployment d | manifest m | MLflow run r | orders a, b`` (the parts that are known)."""
    lin = event.lineage
    parts = [f"deployment {lin.deployment_id}"]
    if lin.manifest_id:
        parts.append(f"manifest {lin.manifest_id}")
    if lin.mlflow_run_id:
        parts.append(f"MLflow run {lin.mlflow_run_id}")
    if lin.client_order_ids:
        parts.append("orders " + ", ".join(lin.client_order_ids))
    return " | ".join(parts)


def detail_lines(event: SignalEvent) -> list[str]:
    """The human lines under the title, per event kind."""
    f = event.facts
    lines = [f"{event.ts.astimezone(dt.UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC"]
    if event.strategy:
        lines.append(f"strategy {event.strategy}")
    if event.kind is EventKind.DECISION:
        lines += [f"- {i}" for i in f.get("intents", [])]
    elif event.kind is EventKind.ORDER:
        lines.append(f"status {f.get('status')} (filled {f.get('filled_qty') or 0:g})")
    elif event.kind is EventKind.FILL:
        price = price_text(float(f.get("price", 0)))
        lines.append(f"{f.get('qty', 0):+g} {f.get('symbol')} @ {price}")
    elif event.kind is EventKind.RISK:
        lines.append(f"state {f.get('from', '?')} -> {f.get('to', '?')}")
        lines += [f"- {k}: {v}" for k, v in sorted(f.get("reasons", {}).items())]
    elif event.kind is EventKind.APPROVAL:
        for key in ("capital", "approver", "reason", "git_sha"):
            if f.get(key):
                lines.append(f"{key} {f[key]}")
    if f.get("note"):
        lines.append(str(f["note"]))
    return lines


def fit_text(title: str, details: list[str], lineage: str, limit: int) -> str:
    """Title, details, lineage joined within ``limit`` characters (details cut first)."""
    head, tail = title[: limit // 2], lineage[: limit // 2 - 2]
    room = limit - len(head) - len(tail) - 2
    body: list[str] = []
    for line in details:
        if len(line) + 1 > room:
            if room >= 4:
                body.append("...")
            break
        body.append(line)
        room -= len(line) + 1
    return "\n".join([head, *body, tail])


def chart(event: SignalEvent) -> bytes | None:
    """The event's chart from its ``facts['chart']`` (None when it carries none)."""
    spec: dict[str, Any] | None = event.facts.get("chart")
    if not spec:
        return None
    title = f"{event.lineage.deployment_id} ({event.strategy})"
    if spec.get("kind") == "payoff":
        legs = [OptionLeg(str(s), float(q), float(p)) for s, q, p in spec["legs"]]
        as_of = dt.date.fromisoformat(spec["as_of"])
        return payoff_chart(
            legs, float(spec["spot"]), as_of, title, vol=float(spec.get("vol", 0.25))
        )
    return equity_chart([(str(t), float(v)) for t, v in spec.get("points", [])], title)


def body(event: SignalEvent, channel: Channel) -> tuple[str, bytes | None]:
    """``(text, png)`` for ``event`` on ``channel`` (cached per event and channel)."""
    key = (event.event_id, channel.value, "")
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    image = chart(event)
    if channel is Channel.DISCORD:
        limit = DISCORD_TEXT
    else:
        limit = TELEGRAM_CAPTION if image is not None else TELEGRAM_TEXT
    text = fit_text(f"{_ICON[event.kind]} {event.title}", detail_lines(event),
                    lineage_line(event), limit)  # fmt: skip
    _CACHE[key] = (text, image)
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return text, image


def buttons(idem_key: str) -> tuple[Button, ...]:
    """The row's buttons; the first carries its key (the Telegram probe looks for it)."""
    return (Button("Details", callback_data=f"sig:{idem_key[:16]}"),
            Button("My plans", callback_data="plans"))  # fmt: skip


def outbound(event: SignalEvent, row: Any) -> OutboundMessage:
    """The message of one outbox row (``row`` has idem_key, channel, target_kind, target)."""
    text, image = body(event, Channel(row.channel))
    return OutboundMessage(
        idem_key=row.idem_key, channel=Channel(row.channel),
        target_kind=TargetKind(row.target_kind), target=str(row.target), text=text,
        image=image, buttons=buttons(row.idem_key),
    )  # fmt: skip
