"""Prometheus metrics of the live runner, served at ``GET /metrics`` beside ``/health``.

Each runner owns its :class:`~prometheus_client.CollectorRegistry` (several runners in one test
process never share counters). What is exported:

- ``alpaca_improved_cycle_seconds`` (histogram): wall time of one cycle.
- ``alpaca_improved_cycles_total``, ``alpaca_improved_cycle_errors_total``: cycles run, and
  cycle steps that failed.
- ``alpaca_improved_intents_total``, ``alpaca_improved_orders_submitted_total``: decisions'
  orders and the orders handed to the broker.
- ``alpaca_improved_events_total{kind,level}``: every notification (``order_rejected``,
  ``broker_error``, ``risk_state``, ...), so rejects and errors are rates.
- ``alpaca_improved_risk_state`` (0 active, 1 reduce-only, 2 halted) and
  ``alpaca_improved_risk_reason{scope,reason}`` (1 while a reason holds).
- ``alpaca_improved_deployments``: active deployments.
- ``alpaca_improved_stream_lag_seconds{feed}``: the market-data stream's lag, when one runs.
- ``alpaca_improved_decision_latency_seconds``: decision-to-submit seconds.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from live.notify import Event, Sink

RISK_LEVEL = {"active": 0, "reduce_only": 1, "halted": 2}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RunnerMetrics:
    """The runner's metrics (see the module docstring)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.cycle_seconds = Histogram(
            "alpaca_improved_cycle_seconds", "Wall time of one runner cycle.", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        )  # fmt: skip
        self.cycles = Counter("alpaca_improved_cycles", "Cycles run.", registry=r)
        self.cycle_errors = Counter(
            "alpaca_improved_cycle_errors", "Cycle steps that failed.", registry=r
        )
        self.intents = Counter("alpaca_improved_intents", "Orders decided.", registry=r)
        self.submitted = Counter(
            "alpaca_improved_orders_submitted", "Orders handed to the broker.", registry=r
        )
        self.events = Counter(
            "alpaca_improved_events", "Notifications by kind and level.", ["kind", "level"],
            registry=r,
        )  # fmt: skip
        self.risk_state = Gauge(
            "alpaca_improved_risk_state", "0 active, 1 reduce-only, 2 halted.", registry=r
        )
        self.risk_reason = Gauge(
            "alpaca_improved_risk_reason", "1 while a risk reason holds.", ["scope", "reason"],
            registry=r,
        )  # fmt: skip
        self.deployments = Gauge("alpaca_improved_deployments", "Active deployments.", registry=r)
        self.stream_lag = Gauge(
            "alpaca_improved_stream_lag_seconds", "Market-data stream lag.", ["feed"], registry=r
        )
        self.decision_latency = Histogram(
            "alpaca_improved_decision_latency_seconds", "Decision-to-submit seconds.",
            registry=r, buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0),
        )  # fmt: skip
        self._reasons: set[tuple[str, str]] = set()

    def cycle_done(
        self,
        seconds: float,
        counts: Mapping[str, int],
        errors: int,
        state: str,
        reasons: Mapping[str, Mapping[str, str]],
    ) -> None:
        """Record one finished cycle and the risk state after it."""
        self.cycle_seconds.observe(seconds)
        self.cycles.inc()
        self.cycle_errors.inc(errors)
        self.intents.inc(counts.get("intents", 0))
        self.submitted.inc(counts.get("submitted", 0))
        self.deployments.set(counts.get("deployments", 0))
        self.risk_state.set(RISK_LEVEL.get(state, 2))
        now = {(scope, reason) for scope, held in reasons.items() for reason in held}
        for scope, reason in self._reasons - now:
            self.risk_reason.labels(scope or "account", reason).set(0)
        for scope, reason in now:
            self.risk_reason.labels(scope or "account", reason).set(1)
        self._reasons = now

    def stream_lags(self, lags: Mapping[str, float]) -> None:
        """The lag of each market-data feed, seconds."""
        for feed, lag in lags.items():
            self.stream_lag.labels(feed).set(lag)

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


class MetricsSink(Sink):
    """Counts every notification by kind and level (a :class:`~live.notify.FanOut` sink)."""

    name = "metrics"

    def __init__(self, metrics: RunnerMetrics) -> None:
        self.metrics = metrics

    def send(self, event: Event) -> None:
        self.metrics.events.labels(event.kind, event.level).inc()
