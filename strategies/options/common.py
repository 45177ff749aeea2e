"""Shared pieces of the option strategies: common config checks and exit management."""

from __future__ import annotations

from typing import Any

from strategies.base import Strategy
from strategies.models import Book, MarketSnapshot, OrderIntent
from strategies.options.chain import OptionChainView
from strategies.options.exits import ExitRules, exit_reason, structures
from strategies.options.orders import check_price_fraction, close_intent
from strategies.options.vol_filters import VolFilters


def check_common(config: Any) -> None:
    """Validate the fields every option config shares (underlying, contracts, pricing, exits)."""
    underlying = config.underlying
    if not underlying or not underlying.isalnum():
        raise ValueError(f"underlying must be an alphanumeric symbol, got {underlying!r}")
    contracts = config.contracts
    if isinstance(contracts, bool) or not isinstance(contracts, int) or contracts < 1:
        raise ValueError(f"contracts must be an int >= 1, got {contracts!r}")
    check_price_fraction(config.limit_fraction)
    if config.max_drawdown is not None and not 0.0 < config.max_drawdown < 1.0:
        raise ValueError(f"max_drawdown must be in (0, 1) or None, got {config.max_drawdown}")
    if config.max_abs_delta is not None and not config.max_abs_delta > 0:
        raise ValueError(f"max_abs_delta must be > 0 or None, got {config.max_abs_delta}")
    exit_rules(config)  # ExitRules validates profit_target / stop_loss / exit_dte
    if isinstance(config, VolFilters):
        config.check_vol_filters()


def check_no_sizing(config: Any, why: str) -> None:
    """Refuse ``premium_scale`` on a family whose size is fixed by ``why``."""
    if config.premium_scale is not None:
        raise ValueError(f"premium_scale is not supported here: {why}; leave it None")


def exit_rules(config: Any) -> ExitRules:
    """The :class:`ExitRules` described by a config's flat exit fields."""
    return ExitRules(config.profit_target, config.stop_loss, config.exit_dte)


class OptionStrategy(Strategy):
    """An option strategy on one underlying with profit-target / stop / DTE exits."""

    __slots__ = ()

    def chain_of(self, snapshot: MarketSnapshot) -> OptionChainView | None:
        """The underlying's chain, or None when the snapshot has none (no decision possible)."""
        underlying = self.config.underlying
        return snapshot.chain(underlying) if underlying in snapshot.chains else None

    def may_open(self, book: Book) -> bool:
        """False while a risk signal (drawdown, delta exposure) is beyond the config's limit."""
        cfg = self.config
        if cfg.max_drawdown is not None and book.drawdown > cfg.max_drawdown:
            return False
        return cfg.max_abs_delta is None or abs(book.greeks.delta) <= cfg.max_abs_delta

    def entry_size(self, snapshot: MarketSnapshot) -> int:
        """Contracts a new structure may open now: 0 while a vol filter forbids it, else
        ``contracts`` (scaled by the IV - RV premium when the config sizes on it)."""
        cfg = self.config
        underlying, contracts = cfg.underlying, int(cfg.contracts)
        if not isinstance(cfg, VolFilters):
            return contracts
        return cfg.entry_contracts(snapshot.vol_features.get(underlying), contracts)

    def manage_exits(
        self, snapshot: MarketSnapshot, book: Book, chain: OptionChainView
    ) -> tuple[list[OrderIntent], int]:
        """Close intents for structures that hit an exit rule, and how many structures stay open."""
        rules = exit_rules(self.config)
        intents: list[OrderIntent] = []
        open_count = 0
        for positions in structures(book, self.config.underlying).values():
            reason = exit_reason(positions, snapshot.session, rules)
            intent = None
            if reason is not None:
                intent = close_intent(
                    self.name, positions, chain, self.config.limit_fraction, "close", reason
                )
            if intent is None:
                open_count += 1
            else:
                intents.append(intent)
        return intents, open_count
