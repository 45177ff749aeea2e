"""Option strategies, contract selection, exit rules and order building."""

from strategies.options.butterfly import Butterfly, ButterflyConfig
from strategies.options.chain import ContractQuote, OptionChainView, occ_symbol
from strategies.options.covered_call import CoveredCall, CoveredCallConfig
from strategies.options.exits import ExitRules, exit_reason, structures
from strategies.options.iron_condor import IronCondor, IronCondorConfig
from strategies.options.long_options import MomentumOptions, MomentumOptionsConfig
from strategies.options.momentum_spreads import MomentumSpreads, MomentumSpreadsConfig
from strategies.options.selection import ContractTarget, select_by_delta, select_by_strike
from strategies.options.wheel import Wheel, WheelConfig

__all__ = [
    "Butterfly",
    "ButterflyConfig",
    "ContractQuote",
    "ContractTarget",
    "CoveredCall",
    "CoveredCallConfig",
    "ExitRules",
    "IronCondor",
    "IronCondorConfig",
    "MomentumOptions",
    "MomentumOptionsConfig",
    "MomentumSpreads",
    "MomentumSpreadsConfig",
    "OptionChainView",
    "Wheel",
    "WheelConfig",
    "exit_reason",
    "occ_symbol",
    "select_by_delta",
    "select_by_strike",
    "structures",
]
