"""The risk engine between strategy and broker (Nautilus' RiskEngine, TradingState).

Trading state is the most restrictive of its *reasons*: account-wide ones (``scope=""``: a kill
switch, a failed reconciliation, the account's drawdown) and per-deployment ones (a deployment's
daily loss or drawdown). ``ACTIVE`` allows everything the rules allow, ``REDUCING`` only orders
that shrink existing positions, ``HALTED`` nothing but explicit liquidation. Reasons persist in
the journal, so a halt survives a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from contracts.limits import AccountLimits, RiskLimits
from live.brokers.ratelimit import TokenBucket
from live.clock import Clock
from live.orders.reports import OrderTicket
from live.risk.rules import RULES, RiskContext, is_reducing, options_rules


class TradingState(StrEnum):
    """Nautilus' trading states."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The engine's answer: ``ok``, or the rule that refused and why (``throttled``: try later)."""

    ok: bool
    rule: str = ""
    reason: str = ""
    throttled: bool = False


OK = RiskDecision(True)


class RiskEngine:
    """Checks every ticket against the state, the rules and the shared submit budget.

    Args:
        account: Account-wide limits (also the submit budget and option TIFs).
        clock: The runner's clock (token bucket timing).
        reasons: Persisted reasons ``{scope: {key: state}}`` to start from.
        on_change: Called with the reasons after every change (the runner journals them).
    """

    def __init__(
        self, account: AccountLimits, clock: Clock,
        reasons: dict[str, dict[str, str]] | None = None,
        on_change: Callable[[dict[str, dict[str, str]]], None] | None = None,
    ) -> None:  # fmt: skip
        self.account = account
        self.bucket = TokenBucket(account.max_submits_per_minute, clock)
        self._reasons = {
            s: {k: TradingState(v) for k, v in r.items()} for s, r in (reasons or {}).items()
        }
        self._on_change = on_change

    # -- state -------------------------------------------------------------------------------
    def state(self, deployment_id: str | None = None) -> TradingState:
        """The effective state of the account, or of one deployment within it."""
        states = list(self._reasons.get("", {}).values())
        if deployment_id:
            states += list(self._reasons.get(deployment_id, {}).values())
        return max(states, key=_SEVERITY.__getitem__, default=TradingState.ACTIVE)

    def reasons(self) -> dict[str, dict[str, str]]:
        """Current reasons as plain strings."""
        return {s: {k: v.value for k, v in r.items()} for s, r in self._reasons.items() if r}

    def set(self, key: str, state: TradingState, scope: str = "") -> None:
        """Raise (or change) reason ``key`` in ``scope``."""
        if self._reasons.get(scope, {}).get(key) is state:
            return
        self._reasons.setdefault(scope, {})[key] = state
        self._changed()

    def clear(self, key: str, scope: str = "") -> None:
        """Drop reason ``key`` in ``scope`` (no-op when absent)."""
        if self._reasons.get(scope, {}).pop(key, None) is not None:
            self._changed()

    def clear_all(self) -> None:
        """Drop every reason (the ``resume`` command)."""
        if any(self._reasons.values()):
            self._reasons = {}
            self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.reasons())

    def on_pnl(
        self, limits: RiskLimits, equity: float, day_start: float, peak: float, scope: str = ""
    ) -> None:
        """Daily loss beyond ``max_daily_loss`` -> REDUCING; drawdown beyond ``max_drawdown``
        -> HALTED (sticky until ``resume``)."""
        loss = day_start - equity
        if limits.max_daily_loss is not None and loss > limits.max_daily_loss:
            self.set("daily_loss", TradingState.REDUCING, scope)
        else:
            self.clear("daily_loss", scope)
        drawdown = 0.0 if peak <= 0 else 1.0 - equity / peak
        if limits.max_drawdown is not None and drawdown > limits.max_drawdown:
            self.set("drawdown", TradingState.HALTED, scope)

    # -- checks ------------------------------------------------------------------------------
    def check(
        self, ticket: OrderTicket, ctx: RiskContext, liquidation: bool = False
    ) -> RiskDecision:
        """Whether ``ticket`` may be sent now.

        ``liquidation`` (the ``flatten`` command) skips state, price and size rules but keeps the
        options rules and the submit budget.
        """
        if liquidation:
            reason = options_rules(ticket, ctx)
            if reason:
                return RiskDecision(False, "options_rules", reason)
            return self._throttle()
        state = self.state(ctx.deployment_id)
        if state is TradingState.HALTED:
            return RiskDecision(False, "trading_state", f"trading is halted: {self.reasons()}")
        if state is TradingState.REDUCING:
            held = {p.symbol: p.qty for p in ctx.book.positions}
            if not is_reducing(ticket, held):
                return RiskDecision(False, "trading_state", "reducing: only closing orders allowed")
        for name, rule in RULES:
            reason = rule(ticket, ctx)
            if reason:
                return RiskDecision(False, name, reason)
        return self._throttle()

    def _throttle(self) -> RiskDecision:
        if self.bucket.try_acquire():
            return OK
        per_min = self.account.max_submits_per_minute
        return RiskDecision(False, "submit_rate", f"over {per_min} submits/minute", throttled=True)
