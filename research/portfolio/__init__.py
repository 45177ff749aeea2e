"""Portfolio construction across strategies and deployments: correlation analysis, capital
allocation with skfolio (risk parity, minimum variance, hierarchical risk parity under weight
bounds and bucket caps), and its walk-forward backtest against equal weight."""

from research.portfolio.allocation import (
    Allocation,
    ConstraintCheck,
    Constraints,
    Method,
    allocate,
    constraint_report,
    parse_method,
)
from research.portfolio.backtest import AllocationBacktest, walk_forward_allocation
from research.portfolio.correlation import CorrelationReport, correlation_report, cov_to_corr

__all__ = [
    "Allocation",
    "AllocationBacktest",
    "ConstraintCheck",
    "Constraints",
    "CorrelationReport",
    "Method",
    "allocate",
    "constraint_report",
    "correlation_report",
    "cov_to_corr",
    "parse_method",
    "walk_forward_allocation",
]
