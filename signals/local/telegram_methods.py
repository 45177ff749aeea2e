"""The fake Bot API's messaging methods: getMe, sendMessage, sendPhoto, getFile, the edits and
deleteMessage (the smaller methods are in :mod:`signals.local.telegram_interactions`).

Each handler takes the server's :class:`State` and the request's :class:`Params`, returns the
method's ``result`` or raises :class:`ApiError` with the description Telegram gives for the same
mistake. :func:`call` runs one method: it resolves the target chat first (so a migrated group or
an unknown chat fails before anything else), applies the flood lanes to sending and editing
methods, runs the handler and counts the send.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import Any

from signals.local.telegram_limits import FloodControl
from signals.local.telegram_markup import parse_entities
from signals.local.telegram_state import Chat, Message, State, StoredFile
from signals.local.telegram_wire import (
    MAX_CAPTION,
    MAX_PHOTO_BYTES,
    MAX_TEXT,
    ApiError,
    Params,
    Upload,
    bad_request,
    inline_keyboard,
    too_many_requests,
    u16len,
)

Handler = Callable[[State, Params], Any]
METHODS: dict[str, Handler] = {}  # lower-case method name -> handler (names are case-insensitive)
COUNTED = frozenset(
    {
        "sendmessage",
        "sendphoto",
        "editmessagetext",
        "editmessagecaption",
        "editmessagereplymarkup",
    }
)
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)


def method(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        METHODS[name.lower()] = fn
        return fn

    return register


def call(state: State, flood: FloodControl, name: str, params: Params) -> Any:
    """Run method ``name`` (lower-case); flood lanes apply to the sending and editing methods."""
    handler = METHODS.get(name)
    if handler is None:
        raise ApiError(404, "Not Found")
    if name not in COUNTED:
        return handler(state, params)
    chat = state.chat(params.values.get("chat_id"))
    retry_after = flood.check(chat.id, chat.type)
    if retry_after is not None:
        raise too_many_requests(retry_after)
    result = handler(state, params)
    flood.record(chat.id, chat.type, name)
    return result


@method("getMe")
def get_me(state: State, params: Params) -> dict[str, Any]:
    return {
        **state.bot.json(),
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


def _text(params: Params, name: str, entities_name: str) -> tuple[str, list[dict[str, Any]]]:
    raw = params.get_str(name) or ""
    entities = params.get_json(entities_name)
    if entities is not None and not isinstance(entities, list):
        raise bad_request(f"can't parse {entities_name} JSON object")
    return parse_entities(raw, params.get_str("parse_mode"), entities)


def _reply_to(state: State, chat: Chat, params: Params) -> int | None:
    reply = params.get_json("reply_parameters")
    if isinstance(reply, dict):
        target, lenient = reply.get("message_id"), bool(reply.get("allow_sending_without_reply"))
    else:
        target = params.get_int("reply_to_message_id")
        lenient = params.get_bool("allow_sending_without_reply")
    if target is None:
        return None
    msg = chat.messages.get(int(target))
    if msg is None or msg.deleted:
        if lenient:
            return None
        raise bad_request("message to be replied not found")
    return msg.message_id


@method("sendMessage")
def send_message(state: State, params: Params) -> dict[str, Any]:
    chat = state.chat(params.values.get("chat_id"))
    text, entities = _text(params, "text", "entities")
    if not text.strip():
        raise bad_request("message text is empty")
    if u16len(text) > MAX_TEXT:
        raise bad_request("message is too long")
    markup = inline_keyboard(params.get_json("reply_markup"))
    reply_to = _reply_to(state, chat, params)
    state.check_can_send(chat)
    msg = state.new_message(
        chat,
        None if chat.type == "channel" else state.bot.id,
        text=text,
        entities=entities,
        reply_markup=markup,
        parse_mode=params.get_str("parse_mode"),
        reply_to=reply_to,
    )
    return state.message_json(msg)


@method("sendPhoto")
def send_photo(state: State, params: Params) -> dict[str, Any]:
    chat = state.chat(params.values.get("chat_id"))
    photo = params.get_file("photo")
    if photo is None:
        raise bad_request("there is no photo in the request")
    caption, caption_entities = _text(params, "caption", "caption_entities")
    if u16len(caption) > MAX_CAPTION:
        raise bad_request("message caption is too long")
    markup = inline_keyboard(params.get_json("reply_markup"))
    reply_to = _reply_to(state, chat, params)
    sizes, digest = _photo(state, photo)
    state.check_can_send(chat)
    msg = state.new_message(
        chat,
        None if chat.type == "channel" else state.bot.id,
        photo=sizes,
        photo_sha256=digest,
        caption=caption or None,
        caption_entities=caption_entities,
        reply_markup=markup,
        parse_mode=params.get_str("parse_mode"),
        reply_to=reply_to,
    )
    return state.message_json(msg)


def _photo(state: State, photo: Upload | str) -> tuple[list[dict[str, Any]], str]:
    """PhotoSize list (thumbnails first, like Telegram) and the sha256 of the original bytes."""
    if isinstance(photo, str):
        stored = state.files.get(photo)
        if stored is None:
            if photo.startswith(("http://", "https://")):
                raise bad_request("failed to get HTTP URL content")
            raise bad_request("wrong file identifier/HTTP URL specified")
        data = stored.data
    else:
        data = photo.data
    if len(data) > MAX_PHOTO_BYTES:
        raise ApiError(413, "Request Entity Too Large")
    size = image_size(data)
    if size is None:
        raise bad_request("IMAGE_PROCESS_FAILED")
    digest = hashlib.sha256(data).hexdigest()
    width, height = size
    sizes = []
    for bound in (90, 320, 800, 1280, 2560):
        factor = min(1.0, bound / max(width, height))
        w, h = max(1, round(width * factor)), max(1, round(height * factor))
        file_id = f"AgACAgIAAxkDAAI{digest[:24]}{bound:04d}"
        unique_id = f"AQAD{digest[:12]}{bound:04d}"
        path = f"photos/file_{digest[:8]}_{bound}.{_extension(data)}"
        state.files[file_id] = StoredFile(data, unique_id, path)
        sizes.append(
            {
                "file_id": file_id,
                "file_unique_id": unique_id,
                "file_size": max(1, round(len(data) * factor * factor)),
                "width": w,
                "height": h,
            }
        )
        if factor == 1.0:
            break
    return sizes, digest


def _extension(data: bytes) -> str:
    return "png" if data.startswith(b"\x89PNG") else "gif" if data.startswith(b"GIF") else "jpg"


@method("getFile")
def get_file(state: State, params: Params) -> dict[str, Any]:
    file_id = params.get_str("file_id") or ""
    stored = state.files.get(file_id)
    if stored is None:
        raise bad_request("invalid file_id")
    return {
        "file_id": file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": len(stored.data),
        "file_path": stored.file_path,
    }


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, GIF or JPEG, or None for anything Telegram could not process."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return (width, height) if width and height else None
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            i += 2 + length
    return None


def _editable(state: State, params: Params) -> tuple[Chat, Message]:
    if "inline_message_id" in params and "chat_id" not in params:
        raise bad_request("MESSAGE_ID_INVALID")  # the fake has no inline mode
    chat = state.chat(params.values.get("chat_id"))
    msg = state.message(chat, params.get_int("message_id"), "message to edit not found")
    if msg.from_id != state.bot.id and not (msg.from_id is None and chat.type == "channel"):
        raise bad_request("message can't be edited")
    return chat, msg


def _apply_edit(state: State, msg: Message, **new: Any) -> dict[str, Any]:
    if all(getattr(msg, key) == value for key, value in new.items()):
        raise bad_request(NOT_MODIFIED)
    msg.edits.append(
        {
            "text": msg.text,
            "entities": msg.entities,
            "caption": msg.caption,
            "caption_entities": msg.caption_entities,
            "reply_markup": msg.reply_markup,
            "edit_date": msg.edit_date,
        }
    )
    for key, value in new.items():
        setattr(msg, key, value)
    msg.edit_date = max(state.now(), msg.date)
    return state.message_json(msg)


@method("editMessageText")
def edit_message_text(state: State, params: Params) -> dict[str, Any]:
    _, msg = _editable(state, params)
    text, entities = _text(params, "text", "entities")
    if not text.strip():
        raise bad_request("message text is empty")
    if u16len(text) > MAX_TEXT:
        raise bad_request("message is too long")
    markup = inline_keyboard(params.get_json("reply_markup"))
    if msg.text is None:
        raise bad_request("there is no text in the message to edit")
    return _apply_edit(state, msg, text=text, entities=entities, reply_markup=markup)


@method("editMessageCaption")
def edit_message_caption(state: State, params: Params) -> dict[str, Any]:
    _, msg = _editable(state, params)
    caption, entities = _text(params, "caption", "caption_entities")
    if u16len(caption) > MAX_CAPTION:
        raise bad_request("message caption is too long")
    markup = inline_keyboard(params.get_json("reply_markup"))
    if msg.photo is None:
        raise bad_request("there is no caption in the message to edit")
    return _apply_edit(
        state, msg, caption=caption or None, caption_entities=entities, reply_markup=markup
    )


@method("editMessageReplyMarkup")
def edit_message_reply_markup(state: State, params: Params) -> dict[str, Any]:
    _, msg = _editable(state, params)
    markup = inline_keyboard(params.get_json("reply_markup"))
    return _apply_edit(state, msg, reply_markup=markup)


@method("deleteMessage")
def delete_message(state: State, params: Params) -> bool:
    chat = state.chat(params.values.get("chat_id"))
    msg = state.message(chat, params.get_int("message_id"), "message to delete not found")
    own = msg.from_id == state.bot.id or (msg.from_id is None and chat.type == "channel")
    if not own and chat.type != "private" and not state.bot_is_admin(chat):
        raise bad_request("message can't be deleted")
    msg.deleted = True
    return True
