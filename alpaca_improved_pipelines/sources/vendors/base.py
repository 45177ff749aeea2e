"""What every vendor source shares: retry and budget settings, injected time, empty records."""

from __future__ import annotations

import datetime as dt
import os
from typing import Self

import dagster as dg
import polars as pl
from pydantic import Field, PrivateAttr

from alpaca_improved_pipelines import calendar as cal
from alpaca_improved_pipelines.lake.tables import CHAIN_RAW_SCHEMA, empty_bars
from alpaca_improved_pipelines.resources.sources import MarketDataSource
from alpaca_improved_pipelines.sources.vendors.availability import (
    EmptyRecord,
    expected_empty_reason,
    in_recent_window,
    is_plan_window_error,
)
from alpaca_improved_pipelines.sources.vendors.errors import PermanentVendorError
from alpaca_improved_pipelines.sources.vendors.ratelimit import RateBudget, RetryPolicy, Runtime
from contracts.budget import BUDGET_VAR, budget_name, request_window

MAX_RECORDS = 1000


class VendorSource(MarketDataSource):
    """Base of the HTTP sources: every field here is safe to show in the UI (no secrets).

    Keys are never fields: subclasses name the environment variables that hold them and read
    the values only when a client is built.
    """

    timeout_s: float = Field(default=30.0, description="Connect/read timeout per request (s).")
    attempts: int = Field(default=4, description="Tries per request for transient failures.")
    backoff_s: float = Field(default=0.5, description="First backoff ceiling (s), doubled per try.")
    backoff_max_s: float = Field(default=30.0, description="Largest single backoff (s).")
    max_pages: int = Field(default=200, description="Page cap per call (a looping vendor fails).")
    requests_per_minute: int | None = Field(
        default=None,
        description="Client-side request budget per rolling minute "
        "(None: follow the vendor's X-Ratelimit headers only).",
    )

    _runtime: Runtime = PrivateAttr(default_factory=Runtime)
    _records: list[EmptyRecord] = PrivateAttr(default_factory=list)
    _stats: dict[str, float] = PrivateAttr(default_factory=dict)

    def with_runtime(self, runtime: Runtime) -> Self:
        """Use ``runtime``'s clock/sleep/rng (tests); drops any cached client."""
        self._runtime = runtime
        self._reset_clients()
        return self

    def _reset_clients(self) -> None:  # noqa: B027 - optional hook
        """Forget cached clients (subclasses override)."""

    @property
    def expected_empties(self) -> list[EmptyRecord]:
        """Expected-empty answers recorded by this instance (most recent last)."""
        return list(self._records)

    @property
    def stats(self) -> dict[str, float]:
        """Counters of this instance: requests, pages, retries, seconds waited, duplicates."""
        return dict(self._stats)

    def _count(self, key: str, n: float = 1) -> None:
        self._stats[key] = self._stats.get(key, 0) + n

    def _record_empty(self, dataset: str, session: dt.date, reason: str) -> None:
        rec = EmptyRecord(self.name, dataset, session, reason)
        self._records.append(rec)
        del self._records[:-MAX_RECORDS]
        dg.get_dagster_logger().warning(f"expected empty answer: {rec}")

    def _policy(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.attempts, base_s=self.backoff_s, max_s=self.backoff_max_s)

    def _budget(self, per_minute: int | None, key: str = "") -> RateBudget:
        """This source's request budget; shared by every process on ``key`` when
        ``ALPACA_IMPROVED_BUDGET_URL`` names a Redis (:mod:`contracts.budget`)."""
        limit = self.requests_per_minute or per_minute
        shared = None
        if limit and key and os.environ.get(BUDGET_VAR):
            shared = request_window(budget_name(f"{self.name}-data", key), limit)
        return RateBudget(limit, self._runtime, shared=shared)

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._runtime.clock(), tz=dt.UTC)

    def _expected_empty(self, dataset: str, session: dt.date) -> bool:
        """Record and return True when the calendar or coverage says there is nothing to fetch."""
        reason = expected_empty_reason(self.name, dataset, session)
        if reason is None:
            return False
        self._record_empty(dataset, session, reason)
        return True

    def _plan_window(self, err: PermanentVendorError, dataset: str, session: dt.date) -> bool:
        """Record and return True when ``err`` is a free plan refusing the most recent data."""
        if (
            err.status == 403
            and is_plan_window_error(str(err))
            and in_recent_window(session, self._now())
        ):
            self._record_empty(
                dataset,
                session,
                "the plan cannot query the most recent window yet; materialize again later",
            )
            return True
        return False

    def _complete_bars(
        self, frame: pl.DataFrame, symbols: tuple[str, ...], session: dt.date, timeframe: str
    ) -> pl.DataFrame:
        """``frame`` if every symbol is present; an expected empty; or an error naming symbols."""
        got = set(frame.get_column("symbol").unique().to_list())
        missing = sorted(set(symbols) - got)
        if not missing:
            return frame
        if not got and self._expected_empty("stock_bars", session):
            return empty_bars()
        raise PermanentVendorError(
            f"{self.name} returned no {timeframe} bars for {missing} on {session.isoformat()}, "
            "a trading session inside its history: unknown or delisted symbol, or a vendor data "
            "gap (a client that swallowed a malformed page looks the same); refusing to return "
            "less than asked"
        )


def empty_chain() -> pl.DataFrame:
    """A zero-row frame in CHAIN_RAW_SCHEMA."""
    return pl.DataFrame(schema=CHAIN_RAW_SCHEMA)


def require_snapshot_session(chain: pl.DataFrame, session: dt.date) -> None:
    """Raise unless the newest quote in ``chain`` is from ``session`` (snapshots are live)."""
    latest = chain.get_column("quote_ts").max()
    day = cal.new_york_date(latest) if isinstance(latest, dt.datetime) else None
    if day != session:
        raise PermanentVendorError(
            f"option snapshots are live and describe {day}, not {session.isoformat()}; only the "
            "most recent session's chain can be fetched from snapshots"
        )
