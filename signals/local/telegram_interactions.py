"""The fake Bot API's smaller methods: answerCallbackQuery, sendChatAction, the bot commands
(set/get/deleteMyCommands, kept per scope and language), getChat and getChatMember.

Handlers register in :data:`signals.local.telegram_methods.METHODS` like the messaging ones.
"""

from __future__ import annotations

import json
import re
from typing import Any

from signals.local.telegram_methods import method
from signals.local.telegram_state import State
from signals.local.telegram_wire import Params, bad_request


@method("answerCallbackQuery")
def answer_callback_query(state: State, params: Params) -> bool:
    query_id = params.get_str("callback_query_id") or ""
    if state.callbacks.get(query_id, True) is not None:  # unknown, or answered already
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    text = params.get_str("text")
    if text is not None and len(text) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    state.callbacks[query_id] = {
        "text": text,
        "show_alert": params.get_bool("show_alert"),
        "url": params.get_str("url"),
    }
    return True


CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


@method("sendChatAction")
def send_chat_action(state: State, params: Params) -> bool:
    chat = state.chat(params.values.get("chat_id"))
    if params.get_str("action") not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    state.check_can_send(chat)
    return True


@method("getChat")
def get_chat(state: State, params: Params) -> dict[str, Any]:
    return state.chat_full_json(state.chat(params.values.get("chat_id")))


@method("getChatMember")
def get_chat_member(state: State, params: Params) -> dict[str, Any]:
    chat = state.chat(params.values.get("chat_id"))
    user_id = params.get_int("user_id", required=True)
    assert user_id is not None
    return state.member_json(chat, user_id)


_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")


def _commands_key(params: Params) -> tuple[str, str]:
    scope = params.get_json("scope") or {"type": "default"}
    if not isinstance(scope, dict) or "type" not in scope:
        raise bad_request("can't parse BotCommandScope JSON object")
    return json.dumps(scope, sort_keys=True), params.get_str("language_code") or ""


@method("setMyCommands")
def set_my_commands(state: State, params: Params) -> bool:
    commands = params.get_json("commands")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("can't parse commands JSON object")
    for command in commands:
        if not isinstance(command, dict):
            raise bad_request("can't parse BotCommand JSON object")
        if not _COMMAND_NAME.fullmatch(str(command.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(command.get("description", ""))) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    state.commands[_commands_key(params)] = [
        {"command": c["command"], "description": c["description"]} for c in commands
    ]
    return True


@method("getMyCommands")
def get_my_commands(state: State, params: Params) -> list[dict[str, str]]:
    return list(state.commands.get(_commands_key(params), []))


@method("deleteMyCommands")
def delete_my_commands(state: State, params: Params) -> bool:
    state.commands.pop(_commands_key(params), None)
    return True
