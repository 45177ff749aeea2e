"""The Telegram bot's conversations: subscriber commands, operator commands, button presses.

Subscribers (private chats): ``/start`` registers them through :class:`Subscriptions` and shows
the menu; ``/plans`` lists the plans with one button each; ``/subscribe`` (or a plan button)
answers with a button to the checkout URL; ``/status`` shows subscriptions, entitlement and
grace (operators also get the runner's status from the console); ``/unsubscribe`` offers one
button per subscription. Operators: ``/positions``, ``/pnl``, ``/halt``, ``/resume`` and
``/flatten`` go to the :class:`Console`, which authorizes by user id and role and audits every
call, allowed or refused; when it answers with a ``confirm_token`` the bot shows a Confirm
button (``confirm:<token>``) and only that press runs the command, by the same user.

Every button press is answered with ``answerCallbackQuery`` (Telegram shows a spinner until
then). The services are synchronous (database, files), so they run in a worker thread and the
bot's event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import CallbackContext

from signals.errors import SignalsError
from signals.interfaces import Console, ConsoleReply, Subscriptions, SubscriptionView
from signals.model import Channel, Plan
from signals.telegram.sender import MARKER_PREFIX

log = logging.getLogger(__name__)

SUBSCRIBER_COMMANDS = {
    "start": "Register and show the menu",
    "plans": "Plans and prices",
    "subscribe": "Subscribe to a plan",
    "status": "Your subscriptions",
    "unsubscribe": "Cancel a subscription",
}
OPERATOR_COMMANDS = {
    "positions": "Open positions (operators)",
    "pnl": "P&L against the backtest (operators)",
    "halt": "Halt trading (operators, confirmed)",
    "resume": "Resume trading (operators)",
    "flatten": "Close everything (operators, confirmed)",
}
MAX_CALLBACK = 64  # bytes of callback_data (telegram.constants.InlineKeyboardButtonLimit)
MAX_PENDING = 1000  # staged confirmations kept in memory

Ctx = CallbackContext[Any, Any, Any, Any]


def callback(prefix: str, value: str) -> str:
    """``<prefix>:<value>``, refused loudly when it breaks Telegram's 64-byte limit."""
    data = f"{prefix}:{value}"
    if len(data.encode()) > MAX_CALLBACK:
        raise ValueError(f"callback data {data!r} is over {MAX_CALLBACK} bytes; shorten the id")
    return data


def _money(plan: Plan) -> str:
    return f"{plan.price_cents / 100:.2f} {plan.currency.upper()}/{plan.interval}"


def _view_line(v: SubscriptionView) -> str:
    line = f"• {v.plan_id}: {v.status}, {'entitled' if v.entitled else 'not entitled'}"
    if v.current_period_end is not None:
        line += f", period ends {v.current_period_end:%Y-%m-%d %H:%M} UTC"
    if v.grace_until is not None:
        line += f", grace until {v.grace_until:%Y-%m-%d %H:%M} UTC"
    return line


def _rows(buttons: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[b] for b in buttons])


class BotHandlers:
    """The handlers' state: the services and the confirmations staged by this process."""

    def __init__(
        self, subscriptions: Subscriptions, console: Console, operator_ids: frozenset[int]
    ) -> None:
        self.subs = subscriptions
        self.console = console
        self.operator_ids = operator_ids
        self._pending: dict[str, tuple[str, str]] = {}  # confirm token -> (command, args)

    # --- subscriber commands ------------------------------------------------------------------
    async def _subscriber(self, update: Update) -> str:
        user, chat = update.effective_user, update.effective_chat
        assert user is not None and chat is not None
        return await asyncio.to_thread(
            self.subs.register, Channel.TELEGRAM, str(user.id), str(chat.id)
        )

    async def start(self, update: Update, context: Ctx) -> None:
        await self._subscriber(update)
        assert update.effective_user is not None and update.effective_message is not None
        lines = ["Trading signals bot.", *(f"/{c} — {d}" for c, d in SUBSCRIBER_COMMANDS.items())]
        if update.effective_user.id in self.operator_ids:
            lines += [f"/{c} — {d}" for c, d in OPERATOR_COMMANDS.items()]
        menu = _rows(
            [
                InlineKeyboardButton("📋 Plans", callback_data="menu:plans"),
                InlineKeyboardButton("🧾 My status", callback_data="menu:status"),
            ]
        )
        await update.effective_message.reply_text("\n".join(lines), reply_markup=menu)

    async def plans(self, update: Update, context: Ctx) -> None:
        await self._send_plans(update, "Plans:")

    async def _send_plans(self, update: Update, title: str) -> None:
        plans = await asyncio.to_thread(self.subs.plans)
        assert update.effective_message is not None
        if not plans:
            await update.effective_message.reply_text("No plans are on offer right now.")
            return
        lines = [title] + [
            f"• {p.plan_id}: {p.strategy} ({p.tier.name}), {_money(p)}" for p in plans
        ]
        buttons = [
            InlineKeyboardButton(
                f"Subscribe: {p.plan_id} — {_money(p)}", callback_data=callback("sub", p.plan_id)
            )
            for p in plans
        ]
        await update.effective_message.reply_text("\n".join(lines), reply_markup=_rows(buttons))

    async def subscribe(self, update: Update, context: Ctx) -> None:
        if context.args:
            await self._checkout(update, context.args[0])
        else:
            await self._send_plans(update, "Choose a plan:")

    async def _checkout(self, update: Update, plan_id: str) -> None:
        subscriber_id = await self._subscriber(update)
        known = {p.plan_id for p in await asyncio.to_thread(self.subs.plans)}
        assert update.effective_message is not None
        if plan_id not in known:
            await update.effective_message.reply_text(f"No plan {plan_id!r}; see /plans.")
            return
        try:
            link = await asyncio.to_thread(self.subs.checkout, subscriber_id, plan_id)
        except SignalsError as exc:  # already subscribed, the provider unreachable ...
            await update.effective_message.reply_text(str(exc))
            return
        pay = _rows([InlineKeyboardButton(f"Pay for {plan_id}", url=link.url)])
        await update.effective_message.reply_text(
            f"Checkout for {plan_id}: press the button to pay. Access follows the payment.",
            reply_markup=pay,
        )

    async def status(self, update: Update, context: Ctx) -> None:
        subscriber_id = await self._subscriber(update)
        views = await asyncio.to_thread(self.subs.status, subscriber_id)
        lines = (
            ["Your subscriptions:", *map(_view_line, views)]
            if views
            else ["No subscriptions yet; see /plans."]
        )
        user = update.effective_user
        assert user is not None and update.effective_message is not None
        if user.id in self.operator_ids:
            reply = await self._console(user.id, "status", "")
            lines += ["", "Runner:", reply.text]
        await update.effective_message.reply_text("\n".join(lines))

    async def unsubscribe(self, update: Update, context: Ctx) -> None:
        subscriber_id = await self._subscriber(update)
        assert update.effective_message is not None
        if context.args:
            answer = await self._unsubscribe(subscriber_id, context.args[0])
            await update.effective_message.reply_text(answer)
            return
        views = await asyncio.to_thread(self.subs.status, subscriber_id)
        live = [v for v in views if v.entitled or v.status in ("active", "trialing", "past_due")]
        if not live:
            await update.effective_message.reply_text("You have no subscription to cancel.")
            return
        buttons = [
            InlineKeyboardButton(f"Cancel {v.plan_id}", callback_data=callback("unsub", v.plan_id))
            for v in live
        ]
        await update.effective_message.reply_text(
            "Which subscription? Access lasts until the period ends.", reply_markup=_rows(buttons)
        )

    async def _unsubscribe(self, subscriber_id: str, plan_id: str) -> str:
        try:
            return await asyncio.to_thread(self.subs.unsubscribe, subscriber_id, plan_id)
        except SignalsError as exc:  # an unknown plan, the provider unreachable ...
            return str(exc)

    # --- operator commands --------------------------------------------------------------------
    async def _console(
        self, user_id: int, command: str, args: str, token: str | None = None
    ) -> ConsoleReply:
        return await asyncio.to_thread(
            self.console.handle, Channel.TELEGRAM, str(user_id), command, args, token
        )

    async def operator(self, update: Update, context: Ctx) -> None:
        """Any operator command: the console authorizes, stages or runs it, and audits."""
        message, user = update.effective_message, update.effective_user
        assert message is not None and user is not None and message.text is not None
        command = message.text.split()[0].lstrip("/").split("@")[0].lower()
        args = " ".join(context.args or [])
        reply = await self._console(user.id, command, args)
        if reply.confirm_token is None:
            await message.reply_text(reply.text)
            return
        if len(self._pending) >= MAX_PENDING:
            self._pending.pop(next(iter(self._pending)))
        self._pending[reply.confirm_token] = (command, args)
        confirm = [
            InlineKeyboardButton(
                "✅ Confirm", callback_data=callback("confirm", reply.confirm_token)
            ),
            InlineKeyboardButton("✖️ Cancel", callback_data=callback("cancel", reply.confirm_token)),
        ]
        await message.reply_text(reply.text, reply_markup=InlineKeyboardMarkup([confirm]))

    # --- button presses -----------------------------------------------------------------------
    async def button(self, update: Update, context: Ctx) -> None:
        query = update.callback_query
        assert query is not None and query.data is not None
        kind, _, value = query.data.partition(":")
        note: str | None = None
        if kind == "menu" and value == "plans":
            await self._send_plans(update, "Plans:")
        elif kind == "menu" and value == "status":
            await self.status(update, context)
        elif kind == "sub":
            await self._checkout(update, value)
        elif kind == "unsub":
            answer = await self._unsubscribe(await self._subscriber(update), value)
            await query.edit_message_text(answer)
        elif kind in ("confirm", "cancel"):
            note = await self._confirm(update, kind, value)
        elif query.data.startswith(MARKER_PREFIX):
            note = f"Signal reference {query.data}: quote it when you ask about this signal."
        else:
            note = "This button is no longer active."
        await query.answer(note)

    async def _confirm(self, update: Update, kind: str, token: str) -> str | None:
        query = update.callback_query
        assert query is not None
        staged = self._pending.pop(token, None)
        if staged is None:
            await query.edit_message_text("This confirmation expired; send the command again.")
            return "Expired"
        if kind == "cancel":
            await query.edit_message_text(f"/{staged[0]} cancelled; nothing was done.")
            return "Cancelled"
        reply = await self._console(query.from_user.id, staged[0], staged[1], token)
        await query.edit_message_text(reply.text)  # the Confirm button goes with the edit
        return None

    async def error(self, update: object, context: Ctx) -> None:
        log.error("telegram handler failed: %s", context.error, exc_info=context.error)
