"""The risk engine: limits (from contracts.limits), inputs and rules; ACTIVE / REDUCING / HALTED."""
