"""Real-time market data: Alpaca stock and option streams (alpaca-py), Polygon as the second
source, one connection per (key, feed) fanned out in-process, gap detection against the exchange
calendar with REST backfill, and the minute book every consumer reads (see :mod:`.model`)."""
