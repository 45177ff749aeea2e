"""The Telegram Bot API wire format as the fake server reads and writes it.

Requests arrive as JSON, url-encoded forms or multipart forms (python-telegram-bot sends a form
whose non-string values are JSON-encoded, and multipart when a file is uploaded); :class:`Params`
reads all three the same way. Errors are :class:`ApiError`, which renders Telegram's error body
``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}``. Text lengths and
entity offsets are counted in UTF-16 code units, as the Bot API documents.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

MAX_TEXT = 4096  # MessageLimit.MAX_TEXT_LENGTH
MAX_CAPTION = 1024  # MessageLimit.CAPTION_LENGTH
MAX_CALLBACK_DATA = 64  # bytes, InlineKeyboardButtonLimit
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # photo upload limit
BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


class ApiError(Exception):
    """A Bot API error: HTTP status = ``error_code``; ``parameters`` as Telegram sends them."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.parameters:
            out["parameters"] = self.parameters
        return out


def bad_request(what: str, parameters: dict[str, Any] | None = None) -> ApiError:
    return ApiError(400, f"Bad Request: {what}", parameters)


def forbidden(what: str) -> ApiError:
    return ApiError(403, f"Forbidden: {what}")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


@dataclass(frozen=True, slots=True)
class Upload:
    """One file part of a multipart request."""

    filename: str | None
    data: bytes


class Params:
    """A method's parameters from any of the three encodings, with Bot API style coercion."""

    def __init__(self, values: dict[str, Any], files: dict[str, Upload] | None = None) -> None:
        self.values = values
        self.files = files or {}

    def __contains__(self, name: str) -> bool:
        return name in self.values or name in self.files

    def loggable(self) -> dict[str, Any]:
        """The parameters without file bytes (for the request log)."""
        out = dict(self.values)
        out.update({k: f"<{len(v.data)} bytes>" for k, v in self.files.items()})
        return out

    def get_str(self, name: str, *, empty: str | None = None) -> str | None:
        """A string parameter; ``empty`` is the Bad Request text when it is missing or empty."""
        value = self.values.get(name)
        if value is None or value == "":
            if empty is not None:
                raise bad_request(empty)
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def get_int(self, name: str, *, required: bool = False) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(f"{name} is empty")
            return None
        if isinstance(value, bool):
            raise bad_request(f"invalid {name} specified")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def get_bool(self, name: str) -> bool:
        value = self.values.get(name)
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1")
        return bool(value)

    def get_json(self, name: str) -> Any:
        """A structured parameter: JSON-encoded in a form, a plain value in a JSON body."""
        value = self.values.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {name} JSON object") from None
        return value

    def get_file(self, name: str) -> Upload | str | None:
        """An InputFile: the uploaded part (directly or via ``attach://``) or a file_id / URL."""
        if name in self.files:
            return self.files[name]
        value = self.values.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            part = self.files.get(value.removeprefix("attach://"))
            if part is None:
                raise bad_request(f"{name}: file not found in the request")
            return part
        return value if isinstance(value, str) and value else None


def parse_body(content_type: str, body: bytes, query: dict[str, str]) -> Params:
    """Decode a request body (JSON, url-encoded or multipart) plus the query string."""
    values: dict[str, Any] = dict(query)
    files: dict[str, Upload] = {}
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json" and body.strip():
        try:
            data = json.loads(body)
        except ValueError:
            raise bad_request("can't parse request JSON object") from None
        if not isinstance(data, dict):
            raise bad_request("can't parse request JSON object")
        values.update(data)
    elif kind == "application/x-www-form-urlencoded":
        values.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    elif kind == "multipart/form-data":
        fields, files = _parse_multipart(content_type, body)
        values.update(fields)
    return Params(values, files)


_DISPOSITION_PARAM = re.compile(r';\s*([\w*]+)="((?:[^"\\]|\\.)*)"')


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, Upload]]:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise bad_request("can't parse multipart request: no boundary")
    delimiter = b"--" + match.group(1).encode()
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        disposition = next(
            (
                line.split(":", 1)[1]
                for line in head.decode("utf-8", "replace").split("\r\n")
                if line.lower().startswith("content-disposition:")
            ),
            "",
        )
        params = dict(_DISPOSITION_PARAM.findall(disposition))
        name = params.get("name")
        if name is None:
            continue
        if "filename" in params:
            files[name] = Upload(params["filename"], data)
        else:
            fields[name] = data.decode("utf-8")
    return fields, files


def u16len(text: str) -> int:
    """Length in UTF-16 code units (how Telegram counts text and entity offsets)."""
    return len(text.encode("utf-16-le")) // 2


_COMMAND = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")


def command_entities(text: str) -> list[dict[str, Any]]:
    """``bot_command`` entities for every ``/command`` (or ``/command@bot``) in ``text``."""
    return [
        {"type": "bot_command", "offset": u16len(text[: m.start()]), "length": u16len(m.group())}
        for m in _COMMAND.finditer(text)
    ]


def inline_keyboard(markup: Any) -> dict[str, Any] | None:
    """Validate a ``reply_markup``; return it when it is an inline keyboard (what Message keeps)."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        if not {"keyboard", "remove_keyboard", "force_reply"} & markup.keys():
            raise bad_request("can't parse reply keyboard markup JSON object")
        return None  # reply keyboards are shown to the user, never returned in Message
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise bad_request("can't parse inline keyboard markup JSON object")
    for row in rows:
        for button in row:
            _check_button(button)
    return {"inline_keyboard": rows}


def _check_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request("can't parse inline keyboard button: Text is not specified")
    if not button["text"]:
        raise bad_request("BUTTON_TEXT_EMPTY")
    actions = [a for a in BUTTON_ACTIONS if a in button]
    if not actions:
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in button:
        url = button["url"]
        if not isinstance(url, str) or not re.match(r"(https?|tg)://\S+$", url):
            raise bad_request("BUTTON_URL_INVALID")
