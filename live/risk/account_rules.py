"""Account-level exposure rules across every deployment: concentration per underlying, per
sector or factor bucket, and per correlation cluster of deployments (``AccountLimits``).

Definitions (all at quote mids, so the book before and after an order is valued alike):

- A position's gross exposure is ``|qty| x mid x multiplier`` (100 for an option); its
  underlying is the OCC root for an option, the symbol itself for equity.
- The account's exposure per underlying is over the account's netted positions (what the
  broker holds, summed across deployments); the denominator ``D`` is the larger of the
  account's gross exposure after the order and the account's equity (so a first small position
  is measured against equity, a leveraged book against its gross).
- ``max_underlying_share``: no underlying above that share of ``D`` after the order.
- ``max_bucket_share``: no bucket (``buckets``: underlying -> sector or factor name) above that
  share of ``D``; underlyings outside ``buckets`` are not bucket-capped.
- ``max_cluster_share``: the deployments of one correlation cluster (``correlation_clusters``:
  deployment id -> cluster name, e.g. the ``portfolio_allocation`` asset's clusters of
  deployments whose daily returns correlate at 0.5 or more) together hold gross exposure (each
  deployment's own positions, unnetted) of at most that share of ``D``. A deployment outside
  the map is not cluster-capped.

An order is refused only when it raises the exposure that breaches (a reduction always passes).
A held symbol without a usable mid makes a configured rule refuse, naming the symbol.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from live.book import multiplier
from live.orders.reports import OrderTicket, Quote
from strategies import occ
from strategies.models import AssetClass

if TYPE_CHECKING:
    from live.risk.rules import RiskContext

EPS = 1e-6


class Unpriced(KeyError):
    """A held or traded symbol without a usable mid."""


def _underlying(symbol: str) -> tuple[str, str]:
    """(underlying, asset class) of ``symbol`` by its shape."""
    try:
        return occ.parse(symbol).root, AssetClass.US_OPTION.value
    except ValueError:
        return symbol, AssetClass.US_EQUITY.value


def _mark(symbol: str, quotes: Mapping[str, Quote]) -> float:
    q = quotes.get(symbol)
    px = q.mid if q is not None else math.nan
    if not (math.isfinite(px) and px > 0):
        raise Unpriced(symbol)
    return px


def gross(positions: Mapping[str, float], quotes: Mapping[str, Quote]) -> dict[str, float]:
    """Gross exposure ($) per underlying of signed ``positions`` (symbol -> qty).

    Raises:
        Unpriced: naming a held symbol without a usable mid.
    """
    out: dict[str, float] = {}
    for symbol, qty in positions.items():
        if abs(qty) <= 1e-9:
            continue
        und, ac = _underlying(symbol)
        out[und] = out.get(und, 0.0) + abs(qty) * _mark(symbol, quotes) * multiplier(ac)
    return out


def after(positions: Mapping[str, float], ticket: OrderTicket) -> dict[str, float]:
    """``positions`` with the order's legs applied."""
    out = dict(positions)
    for leg in ticket.intent.legs:
        out[leg.symbol] = out.get(leg.symbol, 0.0) + leg.sign * leg.ratio_qty * ticket.order_qty
    return out


def _share_breach(
    name: str, keys: Iterable[str], before: Mapping[str, float], now: Mapping[str, float],
    denominator: float, cap: float,
) -> str | None:  # fmt: skip
    for key in keys:
        value = now.get(key, 0.0)
        if value > before.get(key, 0.0) + EPS and value > cap * denominator + EPS:
            share = value / denominator if denominator > 0 else math.inf
            return (
                f"account {name} {key} would be {value:,.0f} = {share:.1%} of "
                f"{denominator:,.0f} (max {cap:.0%})"
            )
    return None


def _bucketed(by_und: Mapping[str, float], buckets: Mapping[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for und, value in by_und.items():
        if und in buckets:
            out[buckets[und]] = out.get(buckets[und], 0.0) + value
    return out


def _cluster_gross(ctx: RiskContext, ticket: OrderTicket, cluster: str) -> tuple[float, float]:
    """The cluster's gross exposure before and after the order (each deployment unnetted)."""
    members = [d for d, c in ctx.account.correlation_clusters.items() if c == cluster]
    before = now = 0.0
    for dep in members:
        held = ctx.deployment_positions.get(dep, {})
        value = sum(gross(held, ctx.quotes).values())
        before += value
        now += sum(gross(after(held, ticket), ctx.quotes).values()) if dep == ctx.deployment_id \
            else value  # fmt: skip
    return before, now


def account_exposure(ticket: OrderTicket, ctx: RiskContext) -> str | None:
    """Account exposure per underlying, per bucket and per correlation cluster within the
    account's share caps after the order (see the module docstring for the definitions)."""
    lim = ctx.account
    if (
        lim.max_underlying_share is None
        and lim.max_bucket_share is None
        and (lim.max_cluster_share is None)
    ):
        return None
    try:
        before = gross(ctx.account_positions, ctx.quotes)
        now = gross(after(ctx.account_positions, ticket), ctx.quotes)
        denominator = max(sum(now.values()), ctx.account_equity)
        if lim.max_underlying_share is not None:
            why = _share_breach("underlying", sorted(now), before, now, denominator,
                                lim.max_underlying_share)  # fmt: skip
            if why:
                return why
        if lim.max_bucket_share is not None:
            b_before, b_now = _bucketed(before, lim.buckets), _bucketed(now, lim.buckets)
            why = _share_breach("bucket", sorted(b_now), b_before, b_now, denominator,
                                lim.max_bucket_share)  # fmt: skip
            if why:
                return why
        cluster = lim.correlation_clusters.get(ctx.deployment_id)
        if lim.max_cluster_share is not None and cluster is not None:
            c_before, c_now = _cluster_gross(ctx, ticket, cluster)
            return _share_breach("correlation cluster", [cluster], {cluster: c_before},
                                 {cluster: c_now}, denominator, lim.max_cluster_share)  # fmt: skip
    except Unpriced as exc:
        return f"cannot value account exposure: no usable quote for {exc.args[0]}"
    return None
