"""Access to a plan's paid Telegram chat: single-use invite links in, ban-then-unban out.

- :meth:`TelegramAccess.grant`: ``createChatInviteLink(member_limit=1, expire_date=now+24h)``
  on the plan's ``telegram_chat_id``, DM'd to the subscriber with a Join button. A link can be
  used once, so a forwarded link admits nobody else; an unused one dies after a day. Granting
  again first revokes the link granted before, so a subscriber holds at most one live link, and
  granting to a member already in the chat creates nothing.
- :meth:`TelegramAccess.revoke`: ``banChatMember`` then ``unbanChatMember(only_if_banned=True)``
  removes the member without leaving a ban behind (a renewed subscription's new link works),
  and ``revokeChatInviteLink`` kills a link that was never used.
- :meth:`TelegramAccess.is_member`: ``getChatMember``'s status (member, administrator, creator,
  or restricted but still in the chat) is the actual state the reconciler compares against.

The bot must be an administrator of the chat with the "invite users" and "ban users" rights.
Invite links are credentials: they are DM'd, never logged. This object remembers the links it
made; given the signals engine it also finds the link the reconciler stored in the ``access``
table (state ``invited``), so a restarted service still revokes an unused link.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, TelegramError

from signals.db import access
from signals.errors import ConfigError
from signals.interfaces import AccessGrant
from signals.model import Channel, Plan
from signals.telegram.config import shield_token
from signals.telegram.sender import delivery_error

log = logging.getLogger(__name__)

LINK_TTL = timedelta(hours=24)
NAME_LIMIT = 32  # ChatInviteLinkLimit.NAME_LENGTH
IN_CHAT = {"member", "administrator", "creator"}


def _chat(plan: Plan) -> int:
    if plan.telegram_chat_id is None:
        raise ConfigError(
            f"plan {plan.plan_id!r} has no telegram_chat_id; set it to the paid chat's id "
            "(the bot must be an admin there) or drop Telegram access for the plan"
        )
    return plan.telegram_chat_id


class TelegramAccess:
    """:class:`signals.interfaces.AccessPlatform` for Telegram chats and channels."""

    platform = Channel.TELEGRAM

    def __init__(
        self,
        bot: Bot,
        engine: Engine | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.bot = bot
        shield_token(bot.token)
        self.engine = engine
        self.now = now
        self._links: dict[tuple[str, str], str] = {}  # (plan, subscriber) -> live link

    async def grant(self, plan: Plan, subscriber_id: str, platform_user_id: str) -> AccessGrant:
        """A fresh single-use link to the plan's chat, DM'd to the subscriber (see module)."""
        chat, user = _chat(plan), int(platform_user_id)
        if await self.is_member(plan, platform_user_id):
            return AccessGrant()
        await self._revoke_link(chat, plan.plan_id, subscriber_id)
        expires = self.now() + LINK_TTL
        try:
            link = await self.bot.create_chat_invite_link(
                chat,
                expire_date=expires,
                member_limit=1,
                name=f"{plan.plan_id}:{subscriber_id}"[:NAME_LIMIT],
            )
        except TelegramError as exc:
            raise delivery_error(exc, f"invite link for chat {chat}") from None
        self._links[(plan.plan_id, subscriber_id)] = link.invite_link
        join = InlineKeyboardMarkup([[InlineKeyboardButton("Join", url=link.invite_link)]])
        try:
            await self.bot.send_message(
                user,
                f"Your access to {plan.plan_id}: a single-use invite link, valid until "
                f"{expires:%Y-%m-%d %H:%M} UTC.\n{link.invite_link}",
                reply_markup=join,
            )
        except Forbidden:  # blocked the bot: /status still shows the link on return
            log.warning("telegram user %s blocked the bot; invite link not DM'd", user)
        except TelegramError as exc:
            raise delivery_error(exc, f"DM of the invite link to {user}") from None
        return AccessGrant(invite_link=link.invite_link, expires_at=expires)

    async def revoke(self, plan: Plan, subscriber_id: str, platform_user_id: str) -> None:
        """Remove the member (ban, then lift the ban) and revoke an unused link."""
        chat, user = _chat(plan), int(platform_user_id)
        try:
            await self.bot.ban_chat_member(chat, user)
            await self.bot.unban_chat_member(chat, user, only_if_banned=True)
        except TelegramError as exc:
            raise delivery_error(exc, f"removing {user} from chat {chat}") from None
        await self._revoke_link(chat, plan.plan_id, subscriber_id)

    async def is_member(self, plan: Plan, platform_user_id: str) -> bool:
        """Whether the user is in the plan's chat right now."""
        chat = _chat(plan)
        try:
            member = await self.bot.get_chat_member(chat, int(platform_user_id))
        except BadRequest as exc:
            if "not found" in exc.message.lower() or "invalid" in exc.message.lower():
                return False  # never met this chat
            raise delivery_error(exc, f"getChatMember in chat {chat}") from None
        except TelegramError as exc:
            raise delivery_error(exc, f"getChatMember in chat {chat}") from None
        if member.status in IN_CHAT:
            return True
        return member.status == "restricted" and bool(getattr(member, "is_member", False))

    def _stored_link(self, plan_id: str, subscriber_id: str) -> str | None:
        if self.engine is None:
            return None
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(access.c.invite_link).where(
                    (access.c.subscriber_id == subscriber_id)
                    & (access.c.plan_id == plan_id)
                    & (access.c.platform == Channel.TELEGRAM.value)
                    & (access.c.state == "invited")
                )
            ).scalar()

    async def _revoke_link(self, chat: int, plan_id: str, subscriber_id: str) -> None:
        link = self._links.pop((plan_id, subscriber_id), None)
        link = link or await asyncio.to_thread(self._stored_link, plan_id, subscriber_id)
        if link is None:
            return
        try:
            await self.bot.revoke_chat_invite_link(chat, link)
        except BadRequest:
            return  # already expired or revoked: nothing to do
        except TelegramError as exc:
            self._links[(plan_id, subscriber_id)] = link  # try again on the next call
            raise delivery_error(exc, f"revoking an invite link of chat {chat}") from None
