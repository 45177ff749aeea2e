"""Exit rules for option structures: profit target, stop loss, days to expiry.

Expiry itself is an exit the engine (or broker) performs: held contracts are exercised,
assigned or expire worthless at the session close of their expiry date.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from strategies.models import AssetClass, Book, Position


@dataclass(frozen=True, slots=True)
class ExitRules:
    """When to close a structure early.

    Attributes:
        profit_target: Close when profit >= this fraction of the entry value (0.5 = half the
            credit kept, or +50% on a debit); None disables.
        stop_loss: Close when loss >= this multiple of the entry value (2.0 = lost twice the
            credit); None disables.
        exit_dte: Close when days to expiry <= this; None holds to expiry.
    """

    profit_target: float | None = 0.5
    stop_loss: float | None = 2.0
    exit_dte: int | None = None

    def __post_init__(self) -> None:
        if self.profit_target is not None and self.profit_target <= 0:
            raise ValueError(f"profit_target must be > 0 or None, got {self.profit_target}")
        if self.stop_loss is not None and self.stop_loss <= 0:
            raise ValueError(f"stop_loss must be > 0 or None, got {self.stop_loss}")
        if self.exit_dte is not None and self.exit_dte < 0:
            raise ValueError(f"exit_dte must be >= 0 or None, got {self.exit_dte}")


def structures(book: Book, underlying: str) -> dict[date, tuple[Position, ...]]:
    """Option positions on ``underlying`` grouped by expiry (one structure per expiry)."""
    groups: dict[date, list[Position]] = defaultdict(list)
    for pos in book.positions:
        if pos.asset_class is AssetClass.US_OPTION and pos.underlying == underlying:
            groups[pos.expiry].append(pos)  # type: ignore[index]
    return {
        expiry: tuple(sorted(g, key=lambda p: p.symbol)) for expiry, g in sorted(groups.items())
    }


def exit_reason(positions: tuple[Position, ...], session: date, rules: ExitRules) -> str | None:
    """Why the structure should be closed now, or None to keep it."""
    entry = sum(p.cost_basis for p in positions)
    pnl = sum(p.unrealized_pnl for p in positions)
    basis = abs(entry)
    if basis > 0 and rules.profit_target is not None and pnl >= rules.profit_target * basis:
        return f"profit target {rules.profit_target:.0%} reached (pnl {pnl:.2f})"
    if basis > 0 and rules.stop_loss is not None and -pnl >= rules.stop_loss * basis:
        return f"stop loss {rules.stop_loss:g}x reached (pnl {pnl:.2f})"
    dtes = [d for d in (p.dte(session) for p in positions) if d is not None]
    dte = min(dtes, default=None)
    if rules.exit_dte is not None and dte is not None and dte <= rules.exit_dte:
        return f"{dte} days to expiry <= {rules.exit_dte}"
    return None
