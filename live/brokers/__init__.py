"""Brokers behind one contract: :class:`~live.brokers.base.Broker` (sim and Alpaca)."""
