"""Signals to subscribers: the outbox, the Telegram and Discord bots, subscriptions and payments,
the operator console, the audit chain and the live dashboard.

The package sits beside ``live``, never inside it: trading never waits on a bot. The runner
journals its decisions, orders, fills and risk states as it always has; the signals service
tails that journal read-only (:mod:`signals.journal_source`), turns each row into a
:class:`signals.model.SignalEvent` with its lineage, and fans every event out into a durable
outbox (:mod:`signals.outbox`), one row per (event, recipient, channel), which the dispatcher
(:mod:`signals.dispatcher`) delivers exactly once within the platforms' rate limits.

Import rules (DESIGN.md): ``signals`` imports the contracts leaf, the pure ``strategies``
library (pricing for payoff charts) and only the read-only journal API and the control
functions of ``live`` (:data:`LIVE_MODULES_ALLOWED`); never dagster, never the pipelines.
"""

# the only live modules signals may import (proven by tests/pipelines/test_import_rules.py)
LIVE_MODULES_ALLOWED = (
    "live.errors",
    "live.journal",  # read-only: Journal(path, readonly=True), the pg dialect, the codecs
    "live.runner.control",  # halt / flatten / resume: the same functions `live halt` calls
    "live.runner.status",  # journal_status, enforced_limits
    "live.runner.lock",  # whether a runner holds the data root
)
