"""The trading universe as a resource, so every asset and check agrees on the symbol list."""

from __future__ import annotations

import dagster as dg

from alpaca_improved_pipelines.settings import parse_symbols


class UniverseResource(dg.ConfigurableResource):
    """The configured symbols (``ALPACA_IMPROVED_SYMBOLS``)."""

    symbols: list[str]

    def resolve(self, subset: list[str] | None) -> tuple[str, ...]:
        """The universe, or a validated subset of it (a run restricted with ``--symbols``)."""
        universe = parse_symbols(self.symbols, "ALPACA_IMPROVED_SYMBOLS")
        if not subset:
            return universe
        chosen = parse_symbols(subset, "symbols")
        outside = [s for s in chosen if s not in universe]
        if outside:
            from alpaca_improved_pipelines.errors import ConfigError

            raise ConfigError(
                f"symbols {outside} are not in the universe {list(universe)}; add them to "
                "ALPACA_IMPROVED_SYMBOLS first"
            )
        return chosen
