"""The signals database: outbox, subscribers, plans, subscriptions, access state, audit chain.

Embedded default: SQLite (WAL, ``synchronous=FULL``) at ``<home>/signals/signals.sqlite``. With
``ALPACA_IMPROVED_DATABASE_URL`` set, the same tables live in the Postgres schema ``signals``
(``ALPACA_IMPROVED_SIGNALS_SCHEMA`` names another). SQLAlchemy Core (already locked through
Dagster and MLflow) gives one table definition and one query per operation on both dialects,
including ``FOR UPDATE SKIP LOCKED`` for the outbox claim on Postgres, instead of a hand-written
dialect layer like the journal's.

Every table is defined here, once; the modules that own the logic (outbox, subscriptions,
access, audit, journal tailer) import their table objects from this module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from contracts.database import database_from_env
from signals.errors import ConfigError

SCHEMA_ENV = "ALPACA_IMPROVED_SIGNALS_SCHEMA"
DEFAULT_SCHEMA = "signals"

metadata = sa.MetaData()
TS = sa.DateTime(timezone=True)  # stored as UTC; SQLite keeps ISO text

# --- events and the outbox -------------------------------------------------------------------
signal_events = sa.Table(
    "signal_events", metadata,
    sa.Column("event_id", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("ts", TS, nullable=False),
    sa.Column("deployment_id", sa.String(200), nullable=False),
    sa.Column("strategy", sa.String(100), nullable=False, server_default=""),
    sa.Column("event_json", sa.Text, nullable=False),  # SignalEvent.as_dict()
    sa.Column("created_at", TS, nullable=False),
)  # fmt: skip

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idem_key", sa.String(64), nullable=False, unique=True),
    sa.Column("event_id", sa.String(200), nullable=False, index=True),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("target_kind", sa.String(20), nullable=False),
    sa.Column("target", sa.String(100), nullable=False),  # chat id / channel id
    sa.Column("plan_id", sa.String(100), nullable=False),
    sa.Column("subscriber_id", sa.String(100)),
    sa.Column("not_before", TS, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", TS, nullable=False),  # max(not_before, backoff / retry_after)
    sa.Column("created_at", TS, nullable=False),
    sa.Column("claimed_at", TS),
    sa.Column("claimed_by", sa.String(100)),
    sa.Column("sent_at", TS),
    sa.Column("message_id", sa.String(100)),
    sa.Column("payload_hash", sa.String(64)),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
)  # fmt: skip
sa.Index("outbox_due", outbox.c.status, outbox.c.next_attempt_at)

cursors = sa.Table(
    "cursors", metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)  # fmt: skip

# per (channel, target): the last message id we know we sent (Telegram's in-flight probe)
chat_state = sa.Table(
    "chat_state", metadata,
    sa.Column("channel", sa.String(20), primary_key=True),
    sa.Column("target", sa.String(100), primary_key=True),
    sa.Column("last_message_id", sa.String(100)),
    sa.Column("migrated_to", sa.String(100)),  # Telegram migrate_to_chat_id
    sa.Column("blocked_at", TS),  # 403 "bot was blocked by the user"
)  # fmt: skip

# --- plans, subscribers, subscriptions ------------------------------------------------------
plans = sa.Table(
    "plans", metadata,
    sa.Column("plan_id", sa.String(100), primary_key=True),
    sa.Column("plan_json", sa.Text, nullable=False),  # signals.model.Plan fields
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
)  # fmt: skip

subscribers = sa.Table(
    "subscribers", metadata,
    sa.Column("subscriber_id", sa.String(100), primary_key=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("role", sa.String(20), nullable=False, server_default="subscriber"),
    sa.Column("telegram_user_id", sa.BigInteger, unique=True),
    sa.Column("telegram_chat_id", sa.BigInteger),  # the private chat with the bot
    sa.Column("discord_user_id", sa.String(30), unique=True),
    sa.Column("email", sa.String(200)),
    sa.Column("provider_customer_id", sa.String(100)),  # e.g. Stripe's cus_...
)  # fmt: skip

subscriptions = sa.Table(
    "subscriptions", metadata,
    sa.Column("subscription_id", sa.String(100), primary_key=True),
    sa.Column("subscriber_id", sa.String(100), nullable=False, index=True),
    sa.Column("plan_id", sa.String(100), nullable=False),
    sa.Column("provider", sa.String(20), nullable=False),  # local | stripe
    sa.Column("provider_ref", sa.String(100), unique=True),  # Stripe's sub_...
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("current_period_end", TS),
    sa.Column("past_due_since", TS),  # start of the grace period
    sa.Column("cancel_at_period_end", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", TS, nullable=False),
)  # fmt: skip

payment_events = sa.Table(  # webhook dedupe: one row per provider event id
    "payment_events", metadata,
    sa.Column("event_id", sa.String(100), primary_key=True),
    sa.Column("provider", sa.String(20), nullable=False),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("received_at", TS, nullable=False),
    sa.Column("processed_at", TS),
)  # fmt: skip

# the local payment provider's own records (signals.payments.local): what Stripe would hold
local_checkouts = sa.Table(
    "local_checkouts", metadata,
    sa.Column("session_id", sa.String(100), primary_key=True),
    sa.Column("subscriber_id", sa.String(100), nullable=False),
    sa.Column("plan_id", sa.String(100), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # open | complete
    sa.Column("subscription_ref", sa.String(100)),
    sa.Column("created_at", TS, nullable=False),
)  # fmt: skip

local_subscriptions = sa.Table(
    "local_subscriptions", metadata,
    sa.Column("ref", sa.String(100), primary_key=True),
    sa.Column("customer", sa.String(100), nullable=False),
    sa.Column("subscriber_id", sa.String(100), nullable=False),
    sa.Column("plan_id", sa.String(100), nullable=False),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("current_period_end", TS, nullable=False),
    sa.Column("cancel_at_period_end", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", TS, nullable=False),
)  # fmt: skip

# the *actual* access state the reconciler converges to the desired one
access = sa.Table(
    "access", metadata,
    sa.Column("subscriber_id", sa.String(100), primary_key=True),
    sa.Column("plan_id", sa.String(100), primary_key=True),
    sa.Column("platform", sa.String(20), primary_key=True),  # telegram | discord
    sa.Column("state", sa.String(20), nullable=False),  # invited | member | removed | granted
    sa.Column("invite_link", sa.Text),  # Telegram single-use link (never logged)
    sa.Column("invite_expires_at", TS),
    sa.Column("updated_at", TS, nullable=False),
)  # fmt: skip

# --- operator console audit (append-only, hash-chained) ------------------------------------
audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ts", TS, nullable=False),
    sa.Column("platform", sa.String(20), nullable=False),
    sa.Column("user_id", sa.String(50), nullable=False),
    sa.Column("command", sa.String(50), nullable=False),
    sa.Column("args", sa.Text, nullable=False, server_default=""),
    sa.Column("allowed", sa.Boolean, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)  # fmt: skip


def signals_dir(home: Path) -> Path:
    """``<home>/signals``: the embedded database and the service's files."""
    return home / "signals"


def signals_schema(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    name = env.get(SCHEMA_ENV) or DEFAULT_SCHEMA
    if not name.replace("_", "").isalnum() or not name[0].isalpha() or name != name.lower():
        raise ConfigError(f"{SCHEMA_ENV}={name!r} is not a valid schema name (lowercase, a-z0-9_)")
    return name


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(home: Path, environ: Mapping[str, str] | None = None) -> Engine:
    """The signals engine (SQLite under ``home``, or Postgres when the database URL is set),
    with every table created. Bad configuration fails here, at start-up, in one line."""
    db = database_from_env(environ)
    if db is None:
        path = signals_dir(home) / "signals.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(f"sqlite:///{path}", future=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        md = metadata
    else:
        schema = signals_schema(environ)
        engine = sa.create_engine(
            db.sqlalchemy_url(schema), future=True, pool_pre_ping=True, hide_parameters=True
        )
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        except sa.exc.OperationalError as exc:
            detail = " ".join(str(exc.orig).split())[:200]
            if db.password:
                detail = detail.replace(db.password, "***")
            raise ConfigError(
                f"the signals database {db.redacted()} cannot be reached ({detail}); "
                "check ALPACA_IMPROVED_DATABASE_URL"
            ) from None
        md = metadata
    md.create_all(engine)
    return engine
