"""Capital allocation across strategies with skfolio: risk parity, minimum variance and
hierarchical risk parity, under per-strategy weight bounds and per-bucket caps.

A thin layer: it validates the constraints (one clear error when they cannot all hold), builds
the skfolio estimator, fits it on the strategies' daily returns, and returns the weights with a
report saying, for every constraint, whether the optimizer enforced it and whether the weights
satisfy it. Weights are long-only and sum to 1 (fully invested in the strategies).

- ``risk_parity``: :class:`skfolio.optimization.RiskBudgeting` on variance, equal budgets (every
  strategy contributes the same share of portfolio variance when the bounds allow it).
- ``min_variance``: :class:`skfolio.optimization.MeanRisk` with ``MINIMIZE_RISK`` on variance.
- ``hrp``: :class:`skfolio.optimization.HierarchicalRiskParity` (López de Prado's recursive
  bisection on the Pearson-distance dendrogram). skfolio's HRP takes weight bounds but no
  group constraints: a bucket cap is reported as not enforced, with whether it happens to hold.
- ``equal_weight``: 1/n, the benchmark every method is compared against.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd
import polars as pl

from research.portfolio.correlation import check_returns

TOLERANCE = 1e-6  # slack when checking a solver's weights against a bound
# On daily-return scales (variances ~1e-4) Clarabel's default gaps leave weights ~1e-5 from the
# optimum. Every method here is invariant to scaling all returns by one positive number, so the
# returns are fitted in units of their median volatility: with Clarabel's default tolerances the
# weights land within ~1e-6 of the closed forms (tests/research/test_portfolio.py). Tighter gaps
# (1e-10) make the constrained risk-budgeting problem stop short of OPTIMAL.


class Method(StrEnum):
    """The allocation methods."""

    RISK_PARITY = "risk_parity"
    MIN_VARIANCE = "min_variance"
    HRP = "hrp"
    EQUAL_WEIGHT = "equal_weight"


@dataclass(frozen=True, slots=True)
class Constraints:
    """Long-only bounds per strategy and caps per bucket (underlying, sector, factor...).

    Attributes:
        min_weight: Lowest weight of any strategy.
        max_weight: Highest weight of any strategy.
        buckets: Strategy -> bucket name; strategies not named are in no bucket.
        bucket_caps: Bucket -> highest summed weight of its strategies.
    """

    min_weight: float = 0.0
    max_weight: float = 1.0
    buckets: Mapping[str, str] = field(default_factory=dict)
    bucket_caps: Mapping[str, float] = field(default_factory=dict)

    def validate(self, assets: list[str]) -> None:
        """ValueError naming the constraint that cannot hold for ``assets`` and the fix."""
        n = len(assets)
        if not 0.0 <= self.min_weight <= self.max_weight <= 1.0:
            raise ValueError(
                f"weight bounds [{self.min_weight}, {self.max_weight}] must satisfy "
                "0 <= min_weight <= max_weight <= 1"
            )
        if self.min_weight * n > 1.0 + TOLERANCE or self.max_weight * n < 1.0 - TOLERANCE:
            raise ValueError(
                f"weights in [{self.min_weight}, {self.max_weight}] cannot sum to 1 over {n} "
                f"strategies; use min_weight <= {1 / n:.4f} <= max_weight"
            )
        unknown = sorted(set(self.buckets) - set(assets))
        if unknown:
            raise ValueError(f"buckets name unknown strategies {unknown}; known: {assets}")
        capped = sorted(set(self.bucket_caps) - set(self.buckets.values()))
        if capped:
            raise ValueError(f"bucket_caps name buckets {capped} that no strategy is in")
        unbucketed = sum(1 for a in assets if a not in self.buckets)
        for bucket, cap in self.bucket_caps.items():
            members = sum(1 for b in self.buckets.values() if b == bucket)
            if cap < self.min_weight * members - TOLERANCE:
                raise ValueError(
                    f"bucket {bucket!r} cap {cap} is below its {members} strategies' "
                    f"min_weight total {self.min_weight * members:.4f}"
                )
        room = sum(
            min(cap, self.max_weight * sum(1 for b in self.buckets.values() if b == bucket))
            for bucket, cap in self.bucket_caps.items()
        )
        uncapped = n - sum(1 for b in self.buckets.values() if b in self.bucket_caps)
        if room + self.max_weight * uncapped < 1.0 - TOLERANCE:
            raise ValueError(
                f"bucket caps {dict(self.bucket_caps)} and max_weight {self.max_weight} leave "
                f"at most {room + self.max_weight * uncapped:.4f} to invest ({unbucketed} "
                "strategies in no bucket); raise a cap"
            )


@dataclass(frozen=True, slots=True)
class ConstraintCheck:
    """One constraint: its bound, the weights' value, enforced by the optimizer, satisfied."""

    constraint: str
    bound: float
    value: float
    enforced: bool
    satisfied: bool


@dataclass(frozen=True, slots=True)
class Allocation:
    """Weights by strategy, the method that chose them, and the constraint report."""

    method: Method
    weights: dict[str, float]
    report: tuple[ConstraintCheck, ...]

    @property
    def ok(self) -> bool:
        """Every constraint holds."""
        return all(c.satisfied for c in self.report)

    def table(self) -> pl.DataFrame:
        """``strategy, weight`` rows."""
        return pl.DataFrame({"strategy": list(self.weights), "weight": list(self.weights.values())})

    def report_table(self) -> pl.DataFrame:
        """The constraint report as rows."""
        return pl.DataFrame([dataclasses.asdict(c) for c in self.report])


def _estimator(method: Method, c: Constraints, assets: list[str]) -> object:
    from skfolio import RiskMeasure
    from skfolio.optimization import (
        HierarchicalRiskParity,
        MeanRisk,
        ObjectiveFunction,
        RiskBudgeting,
    )

    bounds = {"min_weights": c.min_weight, "max_weights": c.max_weight}
    solver = {"solver": "CLARABEL"}
    groups: dict[str, object] = {}
    if c.bucket_caps:
        # skfolio parses constraint strings: name buckets g0, g1, ... (any user name is safe)
        label = {b: f"g{k}" for k, b in enumerate(sorted(set(c.buckets.values())))}
        groups = {
            "groups": {a: [label[c.buckets[a]] if a in c.buckets else "none"] for a in assets},
            "linear_constraints": [f"{label[b]} <= {cap!r}" for b, cap in c.bucket_caps.items()],
        }
    if method is Method.RISK_PARITY:
        return RiskBudgeting(risk_measure=RiskMeasure.VARIANCE, **bounds, **groups, **solver)
    if method is Method.MIN_VARIANCE:
        return MeanRisk(
            objective_function=ObjectiveFunction.MINIMIZE_RISK,
            risk_measure=RiskMeasure.VARIANCE,
            **bounds,
            **groups,
            **solver,
        )
    return HierarchicalRiskParity(risk_measure=RiskMeasure.VARIANCE, **bounds)


def constraint_report(
    weights: Mapping[str, float], c: Constraints, groups_enforced: bool
) -> tuple[ConstraintCheck, ...]:
    """Each constraint against ``weights`` (bounds are always enforced by the optimizers)."""
    w = np.array(list(weights.values()))
    checks = [
        ConstraintCheck("sum", 1.0, float(w.sum()), True, abs(w.sum() - 1.0) <= TOLERANCE),
        ConstraintCheck("min_weight", c.min_weight, float(w.min()), True,
                        w.min() >= c.min_weight - TOLERANCE),
        ConstraintCheck("max_weight", c.max_weight, float(w.max()), True,
                        w.max() <= c.max_weight + TOLERANCE),
    ]  # fmt: skip
    for bucket, cap in c.bucket_caps.items():
        total = sum(v for a, v in weights.items() if c.buckets.get(a) == bucket)
        checks.append(
            ConstraintCheck(
                f"bucket:{bucket}", cap, float(total), groups_enforced, total <= cap + TOLERANCE
            )
        )
    return tuple(checks)


def parse_method(method: Method | str) -> Method:
    """``method`` as a :class:`Method`, or ValueError naming it and the choices."""
    try:
        return Method(method)
    except ValueError:
        raise ValueError(
            f"unknown allocation method {method!r}; choose one of {[m.value for m in Method]}"
        ) from None


def allocate(
    returns: pd.DataFrame, method: Method | str, constraints: Constraints | None = None
) -> Allocation:
    """Weights of ``returns``' strategies (columns) by ``method`` under ``constraints``.

    Args:
        returns: Daily simple returns, sessions x strategies, no gaps.
        method: One of :class:`Method`.
        constraints: Bounds and bucket caps (default: long-only, no caps).

    Raises:
        ValueError: bad returns, an unknown method, or constraints that cannot all hold.
    """
    method = parse_method(method)
    c = constraints or Constraints()
    x = check_returns(returns)
    assets = [str(a) for a in x.columns]
    c.validate(assets)
    if method is Method.EQUAL_WEIGHT:
        w = np.full(len(assets), 1.0 / len(assets))
    else:
        est = _estimator(method, c, assets)
        unit = x / float(x.std(ddof=1).median())
        w = np.asarray(est.fit(unit).weights_, dtype=float)  # type: ignore[attr-defined]
    weights = dict(zip(assets, (float(v) for v in w), strict=True))
    enforced = method in (Method.RISK_PARITY, Method.MIN_VARIANCE)
    return Allocation(method, weights, constraint_report(weights, c, enforced))
