"""Account-level exposure limits across deployments: per underlying, per bucket, per
correlation cluster. Each rule refuses the order that breaches it (numbers by hand), passes the
one that does not, never blocks a reduction, and the replayed runner journals the refusal."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.limits import AccountLimits, RiskLimits
from contracts.manifest import DeploymentManifest
from live.clock import SimClock
from live.replay import replay
from live.risk.engine import RiskDecision, RiskEngine
from live.risk.rules import RiskContext
from strategies.models import Book, GreekExposure, Side
from tests.live.helpers import (
    CALL_A,
    T0,
    crossing_closes,
    deploy,
    equity_ticket,
    manifest,
    quote,
    sessions,
    write_lake,
)

NOW = T0 + timedelta(hours=1)
QUOTES = {
    "SPY": quote(500.0, 499.0, 501.0),  # mid 500
    "QQQ": quote(400.0),
    "AAPL": quote(200.0),
    CALL_A: quote(2.0, 1.9, 2.1),  # mid 2.0: 200 $ a contract
}
LOOSE = RiskLimits(max_concentration=100.0)  # the deployment's own caps never bind here


def check(account: AccountLimits, ticket: Any, **over: Any) -> RiskDecision:
    base: dict[str, Any] = {
        "deployment_id": "dep-one", "limits": LOOSE, "account": account,
        "book": Book.build(1_000_000.0), "account_positions": {},
        "account_greeks": GreekExposure(), "account_equity": 100_000.0, "open_orders": 0,
        "account_open_orders": 0, "quotes": QUOTES, "now": NOW,
    }  # fmt: skip
    ctx = RiskContext(**{**base, **over})
    return RiskEngine(account, SimClock(NOW)).check(ticket, ctx)


def test_underlying_share_counts_options_on_it() -> None:
    """SPY: 100 shares (50,000) + 5 calls (1,000) held; +20 shares makes 61,000 of equity
    100,000 = 61.0% > 60%; +15 makes 58,500 (58.5%) and passes; selling always passes."""
    acct = AccountLimits(max_underlying_share=0.6)
    held = {"SPY": 100.0, CALL_A: 5.0}
    over = check(acct, equity_ticket("SPY", 20), account_positions=held)
    assert not over.ok and over.rule == "account_exposure"
    assert over.reason == "account underlying SPY would be 61,000 = 61.0% of 100,000 (max 60%)"
    assert check(acct, equity_ticket("SPY", 15), account_positions=held).ok
    big = {"SPY": 150.0}  # already 75%: a sale reduces it and passes
    assert check(acct, equity_ticket("SPY", 10, side=Side.SELL), account_positions=big).ok
    assert check(acct, equity_ticket("AAPL", 10), account_positions=big).ok  # not SPY's growth


def test_gross_exposure_is_the_denominator_when_above_equity() -> None:
    """Equity 10,000, SPY 50,000 + AAPL 20,000 held: buying 2 SPY gives 51,000 of gross 71,000
    = 71.8% (> 70%: refused; <= 75%: passes)."""
    held = {"SPY": 100.0, "AAPL": 100.0}
    kw: dict[str, Any] = {"account_positions": held, "account_equity": 10_000.0}
    refused = check(AccountLimits(max_underlying_share=0.7), equity_ticket("SPY", 2), **kw)
    assert "51,000 = 71.8% of 71,000" in refused.reason
    assert check(AccountLimits(max_underlying_share=0.75), equity_ticket("SPY", 2), **kw).ok


def test_bucket_share() -> None:
    """Index bucket SPY + QQQ: 30,000 + 16,000 held; 20 QQQ more is 54,000 = 54% > 50%."""
    acct = AccountLimits(buckets={"SPY": "index", "QQQ": "index", "AAPL": "tech"},
                         max_bucket_share=0.5)  # fmt: skip
    held = {"SPY": 60.0, "QQQ": 40.0}
    over = check(acct, equity_ticket("QQQ", 20), account_positions=held)
    assert over.rule == "account_exposure"
    assert over.reason == "account bucket index would be 54,000 = 54.0% of 100,000 (max 50%)"
    assert check(acct, equity_ticket("QQQ", 10), account_positions=held).ok  # 50,000: at cap
    assert check(acct, equity_ticket("AAPL", 200), account_positions=held).ok  # tech: 40%


CLUSTERS = {"dep-one": "trend", "dep-two": "trend", "dep-three": "carry"}


def test_correlation_cluster_share_sums_each_deployment_unnetted() -> None:
    """dep-two (same cluster as dep-one) holds 100 SPY (50,000). dep-one buying 30 AAPL
    (6,000) leaves the cluster at 56%; 60 AAPL makes 62% > 60%; dep-three (another cluster)
    may buy them. dep-one shorting 100 SPY nets the account flat, yet the cluster holds
    100,000 gross = 100% of equity: refused."""
    acct = AccountLimits(correlation_clusters=CLUSTERS, max_cluster_share=0.6)
    kw: dict[str, Any] = {"account_positions": {"SPY": 100.0},
                          "deployment_positions": {"dep-two": {"SPY": 100.0}}}  # fmt: skip
    assert check(acct, equity_ticket("AAPL", 30), **kw).ok
    over = check(acct, equity_ticket("AAPL", 60), **kw)
    assert over.rule == "account_exposure"
    assert over.reason == (
        "account correlation cluster trend would be 62,000 = 62.0% of 100,000 (max 60%)"
    )
    other = equity_ticket("AAPL", 60, dep="dep-three")
    assert check(acct, other, deployment_id="dep-three", **kw).ok
    short = check(acct, equity_ticket("SPY", 100, side=Side.SELL), **kw)
    assert "correlation cluster trend would be 100,000 = 100.0%" in short.reason


def test_unpriced_holding_refuses_only_when_a_limit_is_set() -> None:
    held = {"SPY": 10.0, "XYZ": 5.0}
    acct = AccountLimits(max_underlying_share=0.9)
    decision = check(acct, equity_ticket("SPY", 1), account_positions=held)
    assert decision.reason == "cannot value account exposure: no usable quote for XYZ"
    assert check(AccountLimits(), equity_ticket("SPY", 1), account_positions=held).ok


def test_limits_are_optional_and_need_their_maps() -> None:
    """Defaults check nothing; a bucket or cluster cap without its map is refused; manifests
    (RiskLimits) are unchanged, so an older manifest still validates."""
    acct = AccountLimits()
    assert (acct.max_underlying_share, acct.max_bucket_share, acct.max_cluster_share) == (
        None, None, None)  # fmt: skip
    with pytest.raises(ValidationError, match="max_bucket_share needs buckets"):
        AccountLimits(max_bucket_share=0.5)
    with pytest.raises(ValidationError, match="max_cluster_share needs correlation_clusters"):
        AccountLimits(max_cluster_share=0.5)
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        AccountLimits(max_underlying_share=1.5)
    assert "max_underlying_share" not in RiskLimits.model_fields
    DeploymentManifest.model_validate(manifest())
    text = AccountLimits(buckets={"SPY": "index"}, max_bucket_share=0.5).model_dump_json()
    assert AccountLimits.model_validate_json(text).buckets == {"SPY": "index"}


@pytest.mark.parametrize(("cap", "refused"), [(0.3, True), (0.9, False)])
def test_replayed_runner_journals_the_refusal(tmp_path: Path, cap: float, refused: bool) -> None:
    """ma-spy buys SPY with half its 100,000 on the crossing: about 50% of the account, so a
    30% underlying cap refuses it in the journal with its reason and a 90% cap lets it fill."""
    home = tmp_path / "home"
    days = sessions(30)
    write_lake(home, {"SPY": crossing_closes(30), "QQQ": [200.0] * 30}, days)
    deploy(home, "ma-spy")
    result = replay(
        home, days[-3], days[-1], account_limits=AccountLimits(max_underlying_share=cap)
    )
    assert result.orders, "the crossing decided nothing"
    con = sqlite3.connect(result.home / "live" / "journal.sqlite")
    rows = con.execute("SELECT status, note FROM orders").fetchall()
    con.close()
    status, note = rows[0]
    if refused:
        assert status == "risk_rejected"
        assert note.startswith("account_exposure: account underlying SPY would be")
        assert "(max 30%)" in note
    else:
        assert status == "filled" and not any(s == "risk_rejected" for s, _ in rows)
