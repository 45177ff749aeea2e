"""The engine's holding: the accounting :class:`Holding` plus where its contract sits in the
archive and the underlying price and IV of its last mark (for the P&L attribution)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from strategies.accounting import Holding


@dataclass(slots=True)
class ChainHolding(Holding):
    """A :class:`Holding` the options engine marks from a :class:`ChainArchive`."""

    key: int = -1  # contract key in the archive (-1 for stock)
    iv: float = math.nan
    spot: float = math.nan  # underlying price at the last mark
