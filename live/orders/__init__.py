"""Orders: deterministic ids, the state machine, sending, fills, reconciliation, liquidation."""
