"""The one accounting model: positions, cash, collateral, buying power, marks and P&L.

The options backtest engine, the live runner's books, the simulated broker and the lake's live
P&L all keep positions through :class:`Account`; :mod:`strategies.accounting.collateral` holds
the collateral rule (cash-secured puts, covered calls, spreads, condors and butterflies by
maximum loss, naked calls refused) and :func:`multiplier` the contract multiplier.
"""

from strategies.accounting.account import Account, Settlement, Statement, Trade
from strategies.accounting.collateral import option_requirement, requirement
from strategies.accounting.holding import EXERCISE_THRESHOLD, Holding, multiplier
from strategies.models import OPTION_MULTIPLIER

__all__ = [
    "EXERCISE_THRESHOLD",
    "OPTION_MULTIPLIER",
    "Account",
    "Holding",
    "Settlement",
    "Statement",
    "Trade",
    "multiplier",
    "option_requirement",
    "requirement",
]
