"""Performance and significance metrics for strategy research.

Names and argument conventions follow empyrical (``returns`` are simple periodic returns;
``period='daily'|'weekly'|'monthly'`` means 252/52/12 periods a year; ``annualization``
overrides it; NaN-aware reductions with ``ddof=1``), so empyrical users feel at home, and the
results match empyrical-reloaded (see ``tests/strategies/test_analytics_empyrical.py``).
Significance tests (PSR, DSR, MinTRL) follow Bailey & López de Prado and take per-period Sharpe
ratios and RAW kurtosis.
"""

from strategies.analytics._utils import ANNUALIZATION_FACTORS, annualization_factor
from strategies.analytics.benchmark import alpha_beta
from strategies.analytics.bootstrap import ConfidenceInterval, block_bootstrap_indices, bootstrap_ci
from strategies.analytics.drawdown import (
    calmar_ratio,
    drawdown_series,
    max_drawdown,
    max_drawdown_duration,
)
from strategies.analytics.returns import (
    annual_return,
    annual_volatility,
    cum_returns,
    cum_returns_final,
    downside_risk,
    omega_ratio,
    sharpe_ratio,
    sortino_ratio,
)
from strategies.analytics.risk import (
    conditional_value_at_risk,
    stability_of_timeseries,
    tail_ratio,
    value_at_risk,
)
from strategies.analytics.significance import (
    EULER_GAMMA,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    min_track_record_length,
    probabilistic_sharpe_ratio,
)
from strategies.analytics.summary import summary
from strategies.analytics.trades import exposure, profit_factor, trade_pnl, turnover, win_rate
from strategies.analytics.walk_forward import (
    FoldResult,
    Split,
    WalkForwardResult,
    anchored_splits,
    default_metrics,
    rolling_splits,
    walk_forward_evaluate,
)

__all__ = [
    "ANNUALIZATION_FACTORS",
    "EULER_GAMMA",
    "ConfidenceInterval",
    "FoldResult",
    "Split",
    "WalkForwardResult",
    "alpha_beta",
    "anchored_splits",
    "annual_return",
    "annual_volatility",
    "annualization_factor",
    "block_bootstrap_indices",
    "bootstrap_ci",
    "calmar_ratio",
    "conditional_value_at_risk",
    "cum_returns",
    "cum_returns_final",
    "default_metrics",
    "deflated_sharpe_ratio",
    "downside_risk",
    "drawdown_series",
    "expected_max_sharpe",
    "exposure",
    "max_drawdown",
    "max_drawdown_duration",
    "min_track_record_length",
    "omega_ratio",
    "probabilistic_sharpe_ratio",
    "profit_factor",
    "rolling_splits",
    "sharpe_ratio",
    "sortino_ratio",
    "stability_of_timeseries",
    "summary",
    "tail_ratio",
    "trade_pnl",
    "turnover",
    "value_at_risk",
    "walk_forward_evaluate",
    "win_rate",
]
