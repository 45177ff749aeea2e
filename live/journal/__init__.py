"""The SQLite (WAL, synchronous=FULL) write-ahead journal: intents, orders, fills, meta."""
