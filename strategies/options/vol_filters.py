"""Entry filters and sizing on the vol surface, shared by the option families' configs.

:class:`VolFilters` is a keyword-only dataclass base of an option config: its fields come after
the family's own (positional construction is unchanged) and default to off, so a config that
names none of them decides exactly as before. They read ``snapshot.vol_features[underlying]``
(:class:`~strategies.options.vol_features.VolSurfaceFeatures`, the session's own); with a filter
on and the feature unknown (no surface that session, a short IV history), nothing is opened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from strategies.models import MarketSnapshot
from strategies.options.vol_features import VolSurfaceFeatures

MAX_SIZE_MULTIPLE = 2.0  # premium sizing never opens more than twice ``contracts``


@dataclass(frozen=True, slots=True, kw_only=True)
class VolFilters:
    """Vol-surface entry filters and sizing (all off by default).

    Attributes:
        min_iv_rank: Open only while the IV rank is >= this (in [0, 1]); None off.
        max_iv_rank: Open only while the IV rank is <= this (in [0, 1]); None off.
        require_contango: Open only while the ATM term structure is in contango (90-day ATM
            vol above 30-day).
        premium_scale: Size by the IV - realized-vol premium: ``contracts * premium /
            premium_scale`` rounded down, capped at twice ``contracts`` (0.04: a 4-point
            premium opens ``contracts``); no trade at a premium that rounds to zero. None off.
    """

    min_iv_rank: float | None = None
    max_iv_rank: float | None = None
    require_contango: bool = False
    premium_scale: float | None = None

    def check_vol_filters(self) -> None:
        """Validate the filter fields (ValueError naming the field)."""
        for name in ("min_iv_rank", "max_iv_rank"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] or None, got {value}")
        lo, hi = self.min_iv_rank, self.max_iv_rank
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_iv_rank {lo} must be <= max_iv_rank {hi}")
        if self.premium_scale is not None and not self.premium_scale > 0:
            raise ValueError(f"premium_scale must be > 0 or None, got {self.premium_scale}")

    @property
    def filters_on(self) -> bool:
        """Whether any filter or sizing reads the vol features."""
        return (
            self.min_iv_rank is not None
            or self.max_iv_rank is not None
            or self.require_contango
            or self.premium_scale is not None
        )

    def vol_block(self, snapshot: MarketSnapshot, underlying: str) -> str | None:
        """Why the vol filters forbid opening now, or None when they allow it."""
        feats = snapshot.vol_features.get(underlying)
        return self.block_reason(feats, f"{underlying} on {snapshot.session}")

    def vol_size(self, snapshot: MarketSnapshot, underlying: str, contracts: int) -> int:
        """Contracts to open: ``contracts``, or scaled by the IV - RV premium (0: skip)."""
        return self.size_for(snapshot.vol_features.get(underlying), contracts)

    def block_reason(self, feats: VolSurfaceFeatures | None, where: str = "") -> str | None:
        """:meth:`vol_block` on given features (None: none that session)."""
        if not self.filters_on:
            return None
        if feats is None:
            return f"no vol features for {where}"
        rank = feats.iv_rank
        if self.min_iv_rank is not None and not rank >= self.min_iv_rank:  # NaN blocks
            return f"iv rank {rank:.2f} below {self.min_iv_rank:.2f}"
        if self.max_iv_rank is not None and not rank <= self.max_iv_rank:
            return f"iv rank {rank:.2f} above {self.max_iv_rank:.2f}"
        if self.require_contango and not feats.contango:
            return f"term structure not in contango (slope {feats.term_slope:+.4f})"
        return None

    def size_for(self, feats: VolSurfaceFeatures | None, contracts: int) -> int:
        """:meth:`vol_size` on given features (None: none that session)."""
        if self.premium_scale is None:
            return contracts
        premium = math.nan if feats is None else feats.iv_rv_premium
        if not math.isfinite(premium):
            return 0
        multiple = min(max(premium / self.premium_scale, 0.0), MAX_SIZE_MULTIPLE)
        return math.floor(contracts * multiple + 1e-9)

    def entry_contracts(self, feats: VolSurfaceFeatures | None, contracts: int) -> int:
        """Contracts a new structure may open on these features (0: filtered out)."""
        if self.block_reason(feats) is not None:
            return 0
        return self.size_for(feats, contracts)
