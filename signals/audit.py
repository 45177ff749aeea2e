"""The operator console's append-only audit log: every command, allowed or refused, hash-chained.

Each entry of the ``audit_log`` table (:mod:`signals.db`) is ``(seq, ts, platform, user_id,
command, args, allowed, outcome, prev_hash, hash)``: ``hash`` is the sha256 of the canonical JSON
of every other field, ``prev_hash`` included, and ``prev_hash`` is the previous entry's ``hash``
(64 zeros for ``seq`` 1). Editing a field breaks that entry's hash; deleting a row leaves a gap
in ``seq``; swapping rows or forging a hash breaks the next entry's ``prev_hash``.
:func:`verify` walks the chain and names the first bad ``seq`` and why.

Appends are serialized, so two writers cannot fork the chain: on SQLite the read of the last
entry and the insert run in one ``BEGIN IMMEDIATE`` transaction (the database's write lock);
on Postgres under ``pg_advisory_xact_lock``. ``seq`` is the primary key as well, so a writer
that somehow raced would fail on insert rather than fork (and is retried).

The anchor file ``<home>/signals/audit.chain``: after each commit, ``<seq> <hash>`` is appended
to it and fsync'ed. The chain alone cannot notice its own *tail* being cut (deleting the last
rows, or rewriting every entry from some seq on with fresh hashes leaves a consistent chain);
the anchor can: :func:`verify` checks that every anchored ``(seq, hash)`` is still in the
table, unchanged. A crash between the commit and the append leaves one entry unanchored,
which is harmless. The anchor lives on the host's disk even when the table is on Postgres
(runners on several hosts each anchor their own appends). Copy it off the machine for a
tamper-evidence that survives an attacker with write access to both.

Nothing secret goes in: ``command``, ``args`` and ``outcome`` pass :func:`redact` before they
are hashed and stored: the process's secret values (as :class:`contracts.logs.SecretRedactor`
finds them), ``token=...``-style values, and anything shaped like a Telegram bot token, a
Stripe key, a bearer token or a JWT; what the user typed (``command``, ``args``) also loses any
long random-looking string. The console never passes the confirmation token.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from contracts.logs import REDACTED, secret_values
from signals.db import audit_log, signals_dir

GENESIS = "0" * 64
ANCHOR_FILE = "audit.chain"
_ADVISORY_KEY = 0x5A_D1_7C_4A  # pg_advisory_xact_lock key of the audit chain
_RETRIES = 5
FIELDS = ("seq", "ts", "platform", "user_id", "command", "args", "allowed", "outcome")

# token-shaped strings: Telegram bot tokens, Stripe-style keys, bearer tokens, JWTs
_TOKENISH = (
    re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{30,}\b"),  # Telegram: <bot id>:<35 chars>
    re.compile(r"\b(?:sk|pk|rk|whsec)_[A-Za-z0-9_]{8,}\b"),  # sk_live_..., whsec_...
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWT
)
# what a user typed may hold any random secret: a run of 20+ word characters mixing upper case,
# lower case and digits (base64/urlsafe keys), or 32+ hex digits; our own outcomes are not
# scanned for these (paths and order ids would look random)
_RANDOMISH = (
    re.compile(r"(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[a-z])(?=[\w-]*[A-Z])[\w-]{20,}(?![\w-])"),
    re.compile(r"(?<![\w-])[0-9a-fA-F]{32,}(?![\w-])"),
)
_KEY_VALUE = re.compile(
    r"(?i)\b([a-z_]*(?:token|secret|password|passwd|api_?key)[a-z_]*)\s*[=:]\s*\S+"
)


def redact(text: str, environ: Mapping[str, str] | None = None, user_input: bool = True) -> str:
    """``text`` with every secret value of the process, every ``token=...``-style value and
    every token-shaped string replaced by ``***``; ``user_input`` also replaces anything that
    looks random (see the patterns above)."""
    for secret in sorted(secret_values(environ), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _KEY_VALUE.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    for pattern in _TOKENISH + (_RANDOMISH if user_input else ()):
        text = pattern.sub(REDACTED, text)
    return text


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit log entry (a row of ``audit_log``)."""

    seq: int
    ts: datetime
    platform: str
    user_id: str
    command: str
    args: str
    allowed: bool
    outcome: str
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        return entry_hash(self.fields(), self.prev_hash)

    def fields(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in FIELDS}


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What :func:`verify` found: ``ok``, how many entries, and the first bad one and why."""

    ok: bool
    n_entries: int
    first_bad_seq: int | None = None
    reason: str = ""


def _ts_text(ts: datetime) -> str:
    return _utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc(ts: datetime) -> datetime:
    # SQLite returns naive datetimes for DateTime(timezone=True) columns: they were stored UTC
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def canonical(fields: Mapping[str, Any], prev_hash: str) -> bytes:
    """The bytes an entry's hash covers: sorted-key compact JSON of every field + prev_hash."""
    body = {
        "seq": int(fields["seq"]),
        "ts": _ts_text(fields["ts"]),
        "platform": str(fields["platform"]),
        "user_id": str(fields["user_id"]),
        "command": str(fields["command"]),
        "args": str(fields["args"]),
        "allowed": bool(fields["allowed"]),
        "outcome": str(fields["outcome"]),
        "prev_hash": prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(fields: Mapping[str, Any], prev_hash: str) -> str:
    return hashlib.sha256(canonical(fields, prev_hash)).hexdigest()


def anchor_path(home: Path) -> Path:
    """``<home>/signals/audit.chain``."""
    return signals_dir(home) / ANCHOR_FILE


class AuditLog:
    """Appends to and reads the audit chain of one signals database.

    Args:
        engine: The signals engine (:func:`signals.db.make_engine`).
        home: The data root; with it, each append is anchored in ``<home>/signals/audit.chain``.
        clock: The time of an entry (tests inject one).
        environ: Where the secret values to redact come from (default: the process's).
    """

    def __init__(
        self,
        engine: Engine,
        home: Path | None = None,
        clock: Callable[[], datetime] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.engine = engine
        self.anchor = anchor_path(home) if home is not None else None
        self.clock = clock or (lambda: datetime.now(UTC))
        self.environ = environ
        self._file_guard = threading.Lock()

    def append(
        self, platform: str, user_id: str, command: str, args: str, allowed: bool, outcome: str
    ) -> AuditEntry:
        """Append one entry (``args`` and ``outcome`` redacted first); returns it."""
        fields: dict[str, Any] = {
            "platform": platform[:20],
            "user_id": str(user_id)[:50],
            "command": redact(command, self.environ)[:50],
            "args": redact(args, self.environ)[:2000],
            "allowed": bool(allowed),
            "outcome": redact(outcome, self.environ, user_input=False)[:4000],
        }
        for attempt in range(_RETRIES):
            try:
                entry = self._append_once(fields)
            except sa.exc.IntegrityError:  # a raced seq: never forks, try again on the new tip
                if attempt == _RETRIES - 1:
                    raise
                continue
            self._anchor(entry)
            return entry
        raise AssertionError("unreachable")

    def _append_once(self, fields: dict[str, Any]) -> AuditEntry:
        with self.engine.connect() as conn:
            _lock(conn)
            tip = conn.execute(
                sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc())
            ).first()
            seq, prev = (1, GENESIS) if tip is None else (int(tip.seq) + 1, str(tip.hash))
            row = {**fields, "seq": seq, "ts": _utc(self.clock()), "prev_hash": prev}
            row["hash"] = entry_hash(row, prev)
            conn.execute(sa.insert(audit_log).values(**row))
            conn.commit()
        return AuditEntry(**row)

    def _anchor(self, entry: AuditEntry) -> None:
        if self.anchor is None:
            return
        self.anchor.parent.mkdir(parents=True, exist_ok=True)
        line = f"{entry.seq} {entry.hash}\n".encode()
        with self._file_guard:
            fd = os.open(self.anchor, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def tail(self, n: int = 20) -> list[AuditEntry]:
        """The last ``n`` entries, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(max(n, 0))
            ).all()
        return [_entry(r) for r in reversed(rows)]


def _lock(conn: Connection) -> None:
    """Take the chain's write lock for this transaction (see the module docstring)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock before the read of the tip
    else:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})


def _entry(row: Any) -> AuditEntry:
    m = row._mapping
    return AuditEntry(
        seq=int(m["seq"]), ts=_utc(m["ts"]), platform=m["platform"], user_id=m["user_id"],
        command=m["command"], args=m["args"], allowed=bool(m["allowed"]), outcome=m["outcome"],
        prev_hash=m["prev_hash"], hash=m["hash"],
    )  # fmt: skip


def verify(engine: Engine, home: Path | None = None) -> VerifyResult:
    """Walk the chain from ``seq`` 1: every seq present once, in order, each ``prev_hash`` the
    previous entry's ``hash`` and each ``hash`` its fields' sha256; then, with ``home``, every
    anchored ``(seq, hash)`` of ``<home>/signals/audit.chain`` still in the table."""
    prev, expected, n = GENESIS, 1, 0
    hashes: dict[int, str] = {}
    with engine.connect() as conn:
        for row in conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)):
            e = _entry(row)
            if e.seq != expected:
                return VerifyResult(
                    False, n, expected,
                    f"seq {expected} is missing (the next entry is seq {e.seq}): a row was "
                    "deleted or renumbered",
                )  # fmt: skip
            if e.prev_hash != prev:
                return VerifyResult(
                    False, n, e.seq,
                    f"prev_hash does not match the hash of seq {e.seq - 1}: an entry was "
                    "reordered, replaced or re-hashed",
                )  # fmt: skip
            if e.computed_hash() != e.hash:
                return VerifyResult(
                    False, n, e.seq, "hash does not match the entry's fields: a field was edited"
                )
            prev, expected, n = e.hash, expected + 1, n + 1
            hashes[e.seq] = e.hash
    if home is not None:
        bad = _check_anchor(anchor_path(home), hashes)
        if bad is not None:
            return VerifyResult(False, n, bad[0], bad[1])
    return VerifyResult(True, n)


def _check_anchor(path: Path, hashes: Mapping[int, str]) -> tuple[int, str] | None:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or len(parts[1]) != 64:
            continue  # a torn last line after a crash mid-append
        seq, digest = int(parts[0]), parts[1]
        if seq not in hashes:
            return seq, (
                f"seq {seq} is anchored in {path} (line {number}) but missing from the table: "
                "the log was truncated"
            )
        if hashes[seq] != digest:
            return seq, (
                f"seq {seq}'s hash differs from its anchor in {path} (line {number}): the chain "
                "was rewritten from there on"
            )
    return None
