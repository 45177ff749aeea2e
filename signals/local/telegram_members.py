"""The fake Bot API's membership methods and the users' side of joining and leaving.

Methods: createChatInviteLink / editChatInviteLink / revokeChatInviteLink / exportChatInviteLink,
banChatMember / unbanChatMember, approveChatJoinRequest / declineChatJoinRequest,
getChatMemberCount, getChatAdministrators, leaveChat. Rules kept from the Bot API docs: the bot
must be an administrator; ``member_limit`` is 1-99999 and excludes ``creates_join_request``;
``name`` is at most 32 characters; a ban shorter than 30 s or longer than 366 days is forever
(``until_date`` 0); basic groups have no ban list (a ban removes, unban is refused);
``unbanChatMember`` without ``only_if_banned`` also removes a current member.

:func:`join` is what a user tapping an invite link does: it honours revocation, expiry, the
member limit and bans, files a join request for approval links, and emits ``chat_member``
updates (delivered only when the bot is an admin and ``allowed_updates`` lists them).
"""

from __future__ import annotations

import hashlib
from typing import Any

from signals.local.telegram_methods import method
from signals.local.telegram_state import Chat, InviteLink, Member, State
from signals.local.telegram_wire import Params, bad_request, forbidden

MAX_LINK_NAME = 32
MEMBER_LIMIT = (1, 99_999)
FOREVER_BELOW_S, FOREVER_ABOVE_S = 30, 366 * 86_400
NO_LINK_RIGHTS = "not enough rights to manage chat invite link"
NO_BAN_RIGHTS = "not enough rights to restrict/unrestrict chat member"
PRESENT = ("creator", "administrator", "member", "restricted")


def _admin_chat(state: State, params: Params, refusal: str) -> Chat:
    chat = state.chat(params.values.get("chat_id"))
    if chat.type == "private":
        raise bad_request("chat member status can't be changed in private chats")
    status = state.bot_member(chat).status
    if status == "kicked":
        raise forbidden(f"bot was kicked from the {chat.type} chat")
    if status == "left":
        raise forbidden(f"bot is not a member of the {chat.type} chat")
    if not state.bot_is_admin(chat):
        raise bad_request(refusal)
    return chat


def _user_id(state: State, params: Params) -> int:
    user_id = params.get_int("user_id", required=True)
    assert user_id is not None
    state.user(user_id)
    return user_id


def _link_options(state: State, params: Params, link: InviteLink) -> None:
    """Apply name / expire_date / member_limit / creates_join_request with Telegram's checks."""
    name = params.get_str("name")
    if name is not None and len(name) > MAX_LINK_NAME:
        raise bad_request("invite link name is too long")
    expire = params.get_int("expire_date") or None  # 0 means no expiry date
    if expire is not None and expire <= state.now():
        raise bad_request("EXPIRE_DATE_INVALID")
    limit = params.get_int("member_limit") or None  # 0 means no limit
    if limit is not None and not MEMBER_LIMIT[0] <= limit <= MEMBER_LIMIT[1]:
        raise bad_request("USAGE_LIMIT_INVALID")
    join_request = params.get_bool("creates_join_request")
    if "name" in params:  # a parameter given replaces the setting (0 / "" clear it)
        link.name = name
    if "expire_date" in params:
        link.expire_date = expire
    if "member_limit" in params:
        link.member_limit = limit
    if "creates_join_request" in params:
        link.creates_join_request = join_request
        if join_request:
            link.member_limit = None


def _link_chat(state: State, params: Params) -> Chat:
    """The chat of a link method, refusals in the order Telegram checks them."""
    chat = state.chat(params.values.get("chat_id"))
    if chat.type == "private":
        raise bad_request("can't invite members to a private chat")
    if params.get_bool("creates_join_request") and params.get_int("member_limit"):
        raise bad_request(
            "member limit can't be specified for links requiring administrator approval"
        )
    return _admin_chat(state, params, NO_LINK_RIGHTS)


def _new_link(state: State, chat: Chat) -> InviteLink:
    seed = f"{chat.id}:{state.next_link}".encode()
    state.next_link += 1
    code = hashlib.sha256(seed).hexdigest()[:16]
    link = InviteLink(f"https://t.me/+{code}", chat.id, state.bot.id)
    chat.invite_links[link.invite_link] = link
    return link


@method("createChatInviteLink")
def create_chat_invite_link(state: State, params: Params) -> dict[str, Any]:
    chat = _link_chat(state, params)
    link = _new_link(state, chat)
    try:
        _link_options(state, params, link)
    except Exception:
        del chat.invite_links[link.invite_link]
        raise
    return state.link_json(link)


def _existing_link(state: State, params: Params) -> tuple[Chat, InviteLink]:
    chat = _link_chat(state, params)
    link = chat.invite_links.get(params.get_str("invite_link") or "")
    if link is None:
        raise bad_request("INVITE_HASH_INVALID")
    return chat, link


@method("editChatInviteLink")
def edit_chat_invite_link(state: State, params: Params) -> dict[str, Any]:
    _, link = _existing_link(state, params)
    if link.is_revoked:
        raise bad_request("INVITE_HASH_EXPIRED")
    _link_options(state, params, link)
    return state.link_json(link)


@method("revokeChatInviteLink")
def revoke_chat_invite_link(state: State, params: Params) -> dict[str, Any]:
    _, link = _existing_link(state, params)
    link.is_revoked = True
    return state.link_json(link)


@method("exportChatInviteLink")
def export_chat_invite_link(state: State, params: Params) -> str:
    chat = _link_chat(state, params)
    for old in chat.invite_links.values():
        if old.is_primary:
            old.is_revoked = True
    link = _new_link(state, chat)
    link.is_primary = True
    return link.invite_link


def _change(
    state: State,
    chat: Chat,
    user_id: int,
    member: Member | None,
    actor: int,
    **extra: Any,
) -> None:
    """Set ``user_id``'s membership (None removes it) and emit the chat_member update."""
    old = state.member_json(chat, user_id)
    if member is None:
        chat.members.pop(user_id, None)
    else:
        chat.members[user_id] = member
    if state.bot_is_admin(chat):  # Telegram sends chat_member only to admin bots
        state.emit(
            "chat_member",
            {
                "chat": state.chat_json(chat),
                "from": state.users[actor].json(),
                "date": state.now(),
                "old_chat_member": old,
                "new_chat_member": state.member_json(chat, user_id),
                **extra,
            },
        )


@method("banChatMember")
def ban_chat_member(state: State, params: Params) -> bool:
    chat = _admin_chat(state, params, NO_BAN_RIGHTS)
    user_id = _user_id(state, params)
    _refuse_admins(state, chat, user_id)
    until = params.get_int("until_date") or 0
    ahead = until - state.now()
    if ahead < FOREVER_BELOW_S or ahead > FOREVER_ABOVE_S:
        until = 0
    if chat.type == "group":  # basic groups have no ban list: the user is removed
        _change(state, chat, user_id, None, state.bot.id)
    else:
        _change(state, chat, user_id, Member("kicked", until), state.bot.id)
    return True


@method("unbanChatMember")
def unban_chat_member(state: State, params: Params) -> bool:
    chat = _admin_chat(state, params, NO_BAN_RIGHTS)
    if chat.type == "group":
        raise bad_request("method is available for supergroup and channel chats only")
    user_id = _user_id(state, params)
    status = state.status(chat, user_id).status
    if status == "kicked" or (status in PRESENT and not params.get_bool("only_if_banned")):
        _refuse_admins(state, chat, user_id)
        _change(state, chat, user_id, None, state.bot.id)
    return True


def _refuse_admins(state: State, chat: Chat, user_id: int) -> None:
    status = state.status(chat, user_id).status
    if status == "creator":
        raise bad_request("can't remove chat owner")
    if status == "administrator":
        raise bad_request("user is an administrator of the chat")


def _join_request(state: State, params: Params) -> tuple[Chat, int, InviteLink | None]:
    chat = _admin_chat(state, params, "CHAT_ADMIN_REQUIRED")
    user_id = _user_id(state, params)
    if user_id not in chat.join_requests:
        raise bad_request("HIDE_REQUESTER_MISSING")
    link = chat.invite_links.get(chat.join_requests.pop(user_id))
    if link is not None:
        link.pending.discard(user_id)
    return chat, user_id, link


@method("approveChatJoinRequest")
def approve_chat_join_request(state: State, params: Params) -> bool:
    chat, user_id, link = _join_request(state, params)
    extra: dict[str, Any] = {"via_join_request": True}
    if link is not None:
        link.joined += 1
        extra["invite_link"] = state.link_json(link)
    _change(state, chat, user_id, Member("member"), state.bot.id, **extra)
    _joined_message(state, chat, user_id)
    return True


@method("declineChatJoinRequest")
def decline_chat_join_request(state: State, params: Params) -> bool:
    _join_request(state, params)
    return True


@method("getChatMemberCount")
def get_chat_member_count(state: State, params: Params) -> int:
    chat = state.chat(params.values.get("chat_id"))
    return sum(1 for uid in list(chat.members) if state.status(chat, uid).status in PRESENT)


@method("getChatAdministrators")
def get_chat_administrators(state: State, params: Params) -> list[dict[str, Any]]:
    chat = state.chat(params.values.get("chat_id"))
    return [
        state.member_json(chat, uid)
        for uid, member in chat.members.items()
        if member.status in ("creator", "administrator")
    ]


@method("leaveChat")
def leave_chat(state: State, params: Params) -> bool:
    chat = state.chat(params.values.get("chat_id"))
    if chat.type == "private":
        raise bad_request("chat member status can't be changed in private chats")
    chat.members[state.bot.id] = Member("left")
    return True


def _joined_message(state: State, chat: Chat, user_id: int) -> None:
    if chat.type in ("group", "supergroup"):  # the service message groups show
        user = state.users[user_id].json()
        msg = state.new_message(chat, user_id, service={"new_chat_members": [user]})
        state.emit("message", state.message_json(msg))


def join(state: State, user_id: int, invite_link: str) -> str:
    """A user opens ``invite_link``: joined / requested / already_member / already_requested,
    or refused: unknown_link / revoked / expired / limit_reached / banned."""
    state.user(user_id)
    link = next(
        (
            c.invite_links[invite_link]
            for c in state.chats.values()
            if invite_link in c.invite_links
        ),
        None,
    )
    if link is None:
        return "unknown_link"
    chat = state.chats[link.chat_id]
    while chat.migrated_to is not None:
        chat = state.chats[chat.migrated_to]
    status = state.status(chat, user_id).status
    if link.is_revoked:
        return "revoked"
    if link.expire_date is not None and link.expire_date <= state.now():
        return "expired"
    if status == "kicked":
        return "banned"
    if status in PRESENT:
        return "already_member"
    if link.creates_join_request:
        if user_id in chat.join_requests:
            return "already_requested"
        chat.join_requests[user_id] = link.invite_link
        link.pending.add(user_id)
        state.emit(
            "chat_join_request",
            {
                "chat": state.chat_json(chat),
                "from": state.users[user_id].json(),
                "user_chat_id": user_id,
                "date": state.now(),
                "invite_link": state.link_json(link),
            },
        )
        return "requested"
    if link.member_limit is not None and link.joined >= link.member_limit:
        return "limit_reached"
    link.joined += 1
    _change(state, chat, user_id, Member("member"), user_id, invite_link=state.link_json(link))
    _joined_message(state, chat, user_id)
    return "joined"


def leave(state: State, chat: Chat, user_id: int) -> None:
    """A user leaves ``chat`` on their own."""
    if state.status(chat, user_id).status in PRESENT:
        _change(state, chat, user_id, None, user_id)
