"""Real market-data vendors (Alpaca, Polygon) behind the ``MarketDataSource`` interface.

``parse`` turns vendor payloads into our frames, ``ratelimit`` owns request budgets and retries,
``alpaca``/``polygon`` are the sources, ``fallback`` chains a primary and a secondary source.
"""
