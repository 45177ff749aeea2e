"""Broker reachability: consecutive failures per broker call, and the halt they raise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from live.errors import BrokerError
from live.risk.engine import RiskEngine, TradingState

MAX_FAILURES = 3  # consecutive failures of one call that halt trading


class BrokerWatch:
    """Counts consecutive :class:`BrokerError` failures per call name.

    Args:
        risk: The engine whose ``broker_unreachable`` reason the watch raises and clears.
    """

    def __init__(self, risk: RiskEngine) -> None:
        self.risk = risk
        self.failures: dict[str, int] = {}  # consecutive broker failures per call

    def call(self, name: str, fn: Callable[[], Any]) -> Any:
        """Call the broker; three consecutive failures of any call halt trading until all of
        them succeed again.

        Raises:
            BrokerError: ``fn``'s failure, after it is counted.
        """
        try:
            out = fn()
        except BrokerError:
            self.failures[name] = self.failures.get(name, 0) + 1
            if self.failures[name] >= MAX_FAILURES:
                self.risk.set("broker_unreachable", TradingState.HALTED)
            raise
        self.failures[name] = 0
        if not any(self.failures.values()):
            self.risk.clear("broker_unreachable")
        return out
