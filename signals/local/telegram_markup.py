"""The Bot API's ``parse_mode`` (HTML, MarkdownV2, legacy Markdown) as the fake server applies it.

Telegram turns marked-up text into plain text plus ``MessageEntity`` objects (offsets and lengths
in UTF-16 code units) and refuses bad markup with ``400 Bad Request: can't parse entities: ...``.
The fake does the same for the common cases, so a renderer that forgets to escape a ``.`` in
MarkdownV2 or leaves a tag open in HTML fails here as it would against Telegram.
"""

from __future__ import annotations

import html
import re
from typing import Any

from signals.local.telegram_wire import ApiError, bad_request, u16len

HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
}
MD2_RESERVED = set("_*[]()~`>#+-=|{}.!")
MD2_MARKERS = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler"}
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s[^<>]*)?)>")
_HREF = re.compile(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)'|(\S+))""")
_CHARREF = re.compile(r"&(#[0-9]+|#[xX][0-9a-fA-F]+|lt|gt|amp|quot);")


def parse_entities(
    text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None
) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities for ``text`` under ``parse_mode`` (explicit entities win)."""
    if entities is not None:
        _check_entities(text, entities)
        return text, entities
    mode = (parse_mode or "").lower()
    if not mode:
        return text, []
    parser = {"html": _Html, "markdownv2": _MarkdownV2, "markdown": _Markdown}.get(mode)
    if parser is None:
        raise bad_request(f"unsupported parse_mode {parse_mode!r}")
    return parser(text).run()


def _check_entities(text: str, entities: list[dict[str, Any]]) -> None:
    length = u16len(text)
    for e in entities:
        if not isinstance(e, dict) or not {"type", "offset", "length"} <= e.keys():
            raise bad_request("can't parse entities JSON object")
        if e["offset"] < 0 or e["length"] <= 0 or e["offset"] + e["length"] > length:
            raise bad_request("entity beginning/end is out of the text bounds")


def _parse_error(what: str) -> ApiError:
    return bad_request(f"can't parse entities: {what}")


class _Parser:
    """Accumulates plain text and entities while a subclass walks the marked-up source."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.out: list[str] = []
        self.offset = 0  # UTF-16 length of the plain text so far
        self.entities: list[dict[str, Any]] = []

    def emit(self, chunk: str) -> None:
        self.out.append(chunk)
        self.offset += u16len(chunk)

    def close(self, kind: str, start: int, **extra: Any) -> None:
        if self.offset > start:  # Telegram drops empty entities
            self.entities.append({"type": kind, "offset": start, "length": self.offset - start})
            self.entities[-1].update(extra)

    def byte_offset(self, i: int) -> int:
        return len(self.src[:i].encode("utf-8"))

    def result(self) -> tuple[str, list[dict[str, Any]]]:
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities

    def run(self) -> tuple[str, list[dict[str, Any]]]:
        raise NotImplementedError


class _Html(_Parser):
    def run(self) -> tuple[str, list[dict[str, Any]]]:
        stack: list[tuple[str, int, dict[str, Any]]] = []
        i, src = 0, self.src
        while i < len(src):
            if src[i] == "<":
                m = _TAG.match(src, i)
                name = m.group(2).lower() if m else ""
                if m is None or name not in HTML_TAGS:
                    raise _parse_error(
                        f'Unsupported start tag "{name}" at byte offset {self.byte_offset(i)}'
                    )
                if m.group(1):  # an end tag
                    if not stack or stack[-1][0] != name:
                        expected = f'"</{stack[-1][0]}>"' if stack else "nothing"
                        raise _parse_error(
                            f"Unmatched end tag at byte offset {self.byte_offset(i)}, "
                            f'expected {expected}, found "</{name}>"'
                        )
                    tag, start, extra = stack.pop()
                    if not extra.pop("merged", False):
                        self.close(extra.pop("type", HTML_TAGS[tag]), start, **extra)
                else:
                    stack.append((name, self.offset, self._attrs(name, m.group(3), i)))
                    if name == "code" and len(stack) > 1 and stack[-2][0] == "pre":
                        # <pre><code class="language-x">: one pre entity with a language
                        language = stack[-1][2].pop("language", None)
                        stack[-1][2]["merged"] = True
                        if language:
                            stack[-2][2]["language"] = language
                i = m.end()
            elif src[i] == "&":
                m = _CHARREF.match(src, i)
                self.emit(html.unescape(m.group()) if m else "&")
                i = m.end() if m else i + 1
            else:
                j = min((k for k in (src.find("<", i), src.find("&", i)) if k >= 0), default=-1)
                j = len(src) if j < 0 else j
                self.emit(src[i:j])
                i = j
        if stack:
            raise _parse_error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
        return self.result()

    def _attrs(self, name: str, attrs: str, at: int) -> dict[str, Any]:
        if name == "a":
            m = _HREF.search(attrs)
            url = html.unescape(next(g for g in m.groups() if g is not None)) if m else ""
            return {"url": url}
        if name == "span" and not re.search(r"""class\s*=\s*["']?tg-spoiler""", attrs):
            raise _parse_error(
                f'Tag "span" must have class "tg-spoiler" at byte offset {self.byte_offset(at)}'
            )
        if name == "code":
            m = re.search(r"""class\s*=\s*["']?language-([\w+#-]+)""", attrs)
            return {"language": m.group(1)} if m else {}
        if name == "blockquote" and re.search(r"\bexpandable\b", attrs):
            return {"type": "expandable_blockquote"}
        return {}


class _MarkdownV2(_Parser):
    reserved: set[str] = MD2_RESERVED
    quotes = True  # ">" at the start of a line quotes it

    def run(self) -> tuple[str, list[dict[str, Any]]]:
        stack: list[tuple[str, int, int]] = []  # (marker, plain offset, source index)
        quote: int | None = None  # plain offset where a ">" blockquote started
        i, src = 0, self.src
        while i < len(src):
            c = src[i]
            if c == ">" and self.quotes and (i == 0 or src[i - 1] == "\n"):
                quote = self.offset if quote is None else quote
                i += 1
            elif c == "\n" and quote is not None and not src.startswith(">", i + 1):
                self.close("blockquote", quote)  # the quote ends with its last line
                quote = None
                self.emit(c)
                i += 1
            elif c == "\\" and i + 1 < len(src):
                self.emit(src[i + 1])
                i += 2
            elif src.startswith("```", i) or c == "`":
                i = self._code(i, "```" if src.startswith("```", i) else "`")
            elif c == "[":
                stack.append(("[", self.offset, i))
                i += 1
            elif c == "]" and stack and stack[-1][0] == "[" and src.startswith("(", i + 1):
                end = src.find(")", i + 2)
                if end < 0:
                    raise _parse_error(
                        f"Can't find end of a url at byte offset {self.byte_offset(i)}"
                    )
                _, start, _ = stack.pop()
                self.close("text_link", start, url=src[i + 2 : end].replace("\\", ""))
                i = end + 1
            elif marker := self._marker(i):
                if stack and stack[-1][0] == marker:
                    _, start, _ = stack.pop()
                    self.close(MD2_MARKERS[marker], start)
                else:
                    stack.append((marker, self.offset, i))
                i += len(marker)
            elif c in self.reserved:
                raise _parse_error(
                    f"Character '{c}' is reserved and must be escaped with the preceding '\\'"
                )
            else:
                self.emit(c)
                i += 1
        if stack:
            marker, _, at = stack[-1]
            kind = "TextUrl" if marker == "[" else MD2_MARKERS[marker].title()
            raise _parse_error(
                f"Can't find end of {kind} entity at byte offset {self.byte_offset(at)}"
            )
        if quote is not None:
            self.close("blockquote", quote)
        return self.result()

    def _marker(self, i: int) -> str | None:
        for marker in ("__", "||", "*", "_", "~"):
            if self.src.startswith(marker, i):
                return marker
        return None

    def _code(self, i: int, fence: str) -> int:
        body_start = i + len(fence)
        language = None
        if fence == "```":
            newline = self.src.find("\n", body_start)
            head = self.src[body_start:newline] if newline >= 0 else ""
            if newline >= 0 and re.fullmatch(r"[\w+#-]+", head):
                language, body_start = head, newline + 1
        end = self.src.find(fence, body_start)
        if end < 0:
            kind = "Pre" if fence == "```" else "Code"
            raise _parse_error(
                f"Can't find end of {kind} entity at byte offset {self.byte_offset(i)}"
            )
        start = self.offset
        self.emit(re.sub(r"\\([`\\])", r"\1", self.src[body_start:end]))
        extra = {"language": language} if language else {}
        self.close("pre" if fence == "```" else "code", start, **extra)
        return end + len(fence)


class _Markdown(_MarkdownV2):
    """Legacy Markdown: *bold*, _italic_, `code`, ```pre```, [text](url); nothing reserved."""

    reserved: set[str] = set()
    quotes = False

    def _marker(self, i: int) -> str | None:
        return self.src[i] if self.src[i] in "*_" else None

    def run(self) -> tuple[str, list[dict[str, Any]]]:
        try:
            return super().run()
        except ApiError as exc:
            if "Can't find end of" not in exc.description:
                raise
            at = exc.description.rsplit(" ", 1)[-1]
            raise _parse_error(
                f"Can't find end of the entity starting at byte offset {at}"
            ) from None
