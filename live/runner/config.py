"""The runner's frozen configuration (pydantic, ``extra="forbid"``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts import paths
from contracts.limits import AccountLimits
from live.brokers.sim_state import SimConfig


class RunnerConfig(BaseModel):
    """How one runner process runs.

    Attributes:
        home: ``ALPACA_IMPROVED_HOME`` (journal in ``live/``, manifests in ``live/deployments``).
        broker: ``sim`` (embedded default) or ``alpaca`` (paper unless ``live``).
        live: Ask for live trading (also needs ``ALPACA_IMPROVED_LIVE_TRADING=yes``).
        cycle_seconds: Cycle period; cycles align to multiples of it.
        reconcile_every: Full order/position reconciliation every N cycles.
        stale_limit_s: Limit orders open longer than this are re-priced (replace).
        account_limits: Account-wide risk limits.
        adopt_external: Book unexplained broker positions to ``_external`` instead of halting.
        health_port: Serve ``/health`` and ``/metrics`` (0 = ephemeral, None = off).
        health_host: The address they bind (``0.0.0.0`` in a container, for probes).
        webhook_url: Also send notifications to this webhook.
        sim: Simulated broker knobs.
        sim_start: Start of the simulated clock (default: 30 minutes after the first NYSE open after
            the lake's latest session).
        sim_speed: Simulated seconds per real second (None: jump instantly).
        lookback: Sessions of history in each snapshot.
        stream: With ``alpaca``: also follow Alpaca's trade-update stream (fills booked between
            cycles; polling and reconciliation stay the source of truth).
        market_data: ``lake`` (daily snapshots only) or ``stream`` (plus the session's minute
            bars: "1m" deployments decide on every bar close, marks and the daily-loss and
            drawdown checks follow each bar; the sim broker replays the lake's minute bars).
        intraday_poll_s: ``stream``: seconds between looks at the feed between cycles.
        bar_grace_s: ``stream``: seconds after a minute's close after which it is decided on the
            bars that arrived (a symbol without trades in a minute sends none).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path
    broker: Literal["sim", "alpaca"] = "sim"
    live: bool = False
    cycle_seconds: float = Field(default=60.0, ge=0)
    reconcile_every: int = Field(default=10, ge=1)
    stale_limit_s: float = Field(default=300.0, gt=0)
    account_limits: AccountLimits = AccountLimits()
    adopt_external: bool = False
    health_port: int | None = None
    health_host: str = "127.0.0.1"
    webhook_url: str | None = None
    sim: SimConfig = SimConfig()
    sim_start: datetime | None = None
    sim_speed: float | None = Field(default=None, gt=0)
    lookback: int = Field(default=260, ge=2)
    stream: bool = True
    market_data: Literal["lake", "stream"] = "lake"
    intraday_poll_s: float = Field(default=1.0, gt=0, le=60)
    bar_grace_s: float = Field(default=2.0, ge=0, le=60)

    @model_validator(mode="after")
    def _live_needs_a_real_broker(self) -> RunnerConfig:
        if self.live and self.broker == "sim":
            raise ValueError(
                "broker 'sim' with live=True contradict each other: the simulated broker never "
                "trades real money; use broker 'alpaca' for live trading, or live=False"
            )
        return self

    @property
    def journal_path(self) -> Path:
        """``<home>/live/journal.sqlite``."""
        return paths.journal_path(self.home)
