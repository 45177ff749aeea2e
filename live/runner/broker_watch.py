"""Broker reachability: consecutive failures per broker call, and the halt they raise.

A 401 (:class:`~live.errors.AuthRejected`: our keys were revoked or rotated) halts new orders at
once (reason ``broker_auth``, not after three failures: every call will fail the same way) and
re-reads the keys (:meth:`Broker.refresh_credentials`, mounted files first). The next call that
succeeds clears the reason, so trading resumes by itself when valid keys appear, with no restart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from live.brokers.base import Broker
from live.errors import AuthRejected, BrokerError
from live.risk.engine import RiskEngine, TradingState

MAX_FAILURES = 3  # consecutive failures of one call that halt trading


class BrokerWatch:
    """Counts consecutive :class:`BrokerError` failures per call name.

    Args:
        risk: The engine whose ``broker_unreachable`` and ``broker_auth`` reasons the watch
            raises and clears.
        broker: The broker whose keys are re-read after a 401 (None: never re-read).
    """

    def __init__(self, risk: RiskEngine, broker: Broker | None = None) -> None:
        self.risk = risk
        self.broker = broker
        self.failures: dict[str, int] = {}  # consecutive broker failures per call
        self.auth_failures = 0  # 401s since the keys last worked

    def call(self, name: str, fn: Callable[[], Any]) -> Any:
        """Call the broker; three consecutive failures of any call halt trading until all of
        them succeed again.

        Raises:
            BrokerError: ``fn``'s failure, after it is counted.
        """
        try:
            out = fn()
        except AuthRejected:
            self.auth_rejected()
            raise
        except BrokerError:
            self.failures[name] = self.failures.get(name, 0) + 1
            if self.failures[name] >= MAX_FAILURES:
                self.risk.set("broker_unreachable", TradingState.HALTED)
            raise
        self.failures[name] = 0
        self.auth_failures = 0
        self.risk.clear("broker_auth")
        if not any(self.failures.values()):
            self.risk.clear("broker_unreachable")
        return out

    def auth_rejected(self) -> None:
        """Halt new orders on a 401 and re-read the keys (see the module docstring)."""
        self.auth_failures += 1
        self.risk.set("broker_auth", TradingState.HALTED)
        if self.broker is not None:
            self.broker.refresh_credentials()
