"""Market data for decisions: snapshots from the lake."""
