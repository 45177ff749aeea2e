"""Partition lineage: the universe, source and history a partition was computed with.

Every partition the pipelines write carries its lineage in the Parquet footer (written atomically
with the data, see ``storage.write_table_atomic``). Before a run rewrites a partition it compares
the lineage it would write with the stored one; a difference (a narrowed universe, another
source or seed, a shorter indicator history after raising ``ALPACA_IMPROVED_START``) refuses the
run with the partition and the difference named, unless the run was asked to replace them
(``alpaca-improved backfill --replace``, or the run tag ``alpaca_improved/replace=true``).

Partitions written before lineage existed are compared on what their data shows (the symbols).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alpaca_improved_pipelines.lake import storage

REPLACE_TAG = "alpaca_improved/replace"
# The column each table's universe is read from, for partitions without stored lineage.
UNIVERSE_COLUMN = {
    "stock_bars_1m": "symbol",
    "stock_bars_1d": "symbol",
    "stock_bars_5m": "symbol",
    "stock_bars_1h": "symbol",
    "indicators_1d": "symbol",
    "option_chains": "underlying",
    "vol_surface": "underlying",
}


def source_id(source: Any) -> str:
    """The source a partition came from: its name, plus the seed of the synthetic market."""
    name = str(source.name)
    seed = getattr(source, "seed", None)
    return f"{name}/seed={seed}" if name == "synthetic" and seed is not None else name


def bars(symbols: tuple[str, ...] | list[str], source: str) -> dict[str, Any]:
    """Lineage of a bar partition: the symbols it holds and the source they came from."""
    return {"symbols": sorted(symbols), "source": source}


def indicators(symbols: tuple[str, ...] | list[str], history: list[dt.date]) -> dict[str, Any]:
    """Lineage of an indicators partition: its symbols and the daily history it was computed on."""
    return {
        "symbols": sorted(symbols),
        "history_start": history[0].isoformat() if history else None,
        "history_sessions": len(history),
    }


def chains(underlyings: tuple[str, ...] | list[str], source: str) -> dict[str, Any]:
    """Lineage of an option_chains partition: the underlyings and the source."""
    return {"underlyings": sorted(underlyings), "source": source}


def surface(underlyings: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Lineage of a vol_surface partition: the underlyings of the chain it was fitted on."""
    return {"underlyings": sorted(underlyings)}


def stored(lake: storage.Lake, table: str, session: dt.date | str) -> dict[str, Any] | None:
    """The lineage of an existing partition (from its footer, else from its data), or None.

    On S3 the read also records the object's ETag: the rewrite that follows expects it, so a
    partition another writer replaced in between is a ``PartitionConflict``, not an overwrite.
    """
    s = storage.store(lake)
    path = s.partition(table, session)
    if not s.remote:
        if not path.exists():
            return None
        found = storage.read_lineage(path)
    else:
        try:
            blob = s.open(path)
        except FileNotFoundError:
            return None
        found = storage.read_lineage(blob)
    if found is not None:
        return found
    column = UNIVERSE_COLUMN.get(table)
    if column is None:
        return None
    try:  # written before lineage existed: what the data shows
        values = storage.read_file(s, path, [column]).get_column(column).unique().to_list()
    except Exception:  # noqa: BLE001 - unreadable: nothing to protect, a rewrite repairs it
        return None
    key = "underlyings" if column == "underlying" else "symbols"
    return {key: sorted(str(v) for v in values)}


def _names(values: list[str]) -> str:
    return ", ".join(values) if values else "none"


def describe(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What a rewrite would lose or alter, one phrase per key (empty: nothing).

    Adding symbols to a partition alters none of its rows and is not a conflict; dropping
    symbols, another source, or another indicator history is.
    """
    out: list[str] = []
    for key in ("symbols", "underlyings"):
        if key in old and key in new:
            dropped = sorted(set(old[key]) - set(new[key]))
            if dropped:
                out.append(
                    f"{key} {_names(sorted(old[key]))} -> {_names(sorted(new[key]))} "
                    f"(drops {_names(dropped)})"
                )
    if "source" in old and "source" in new and old["source"] != new["source"]:
        out.append(f"source {old['source']} -> {new['source']}")
    hist = ("history_start", "history_sessions")
    if all(k in old and k in new for k in hist) and any(old[k] != new[k] for k in hist):
        out.append(
            f"indicator history {old['history_sessions']} sessions from {old['history_start']} "
            f"-> {new['history_sessions']} sessions from {new['history_start']}"
        )
    return out


@dataclass(frozen=True, slots=True)
class Conflict:
    """One existing partition the run would change."""

    table: str
    session: str
    changes: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.table}/session={self.session}: {'; '.join(self.changes)}"


def conflicts(
    lake: storage.Lake, table: str, planned: Mapping[dt.date, Mapping[str, Any]]
) -> list[Conflict]:
    """Existing partitions of ``table`` whose stored lineage differs from ``planned``."""
    out: list[Conflict] = []
    for session, new in sorted(planned.items()):
        old = stored(lake, table, session)
        if old is None:
            continue
        changes = describe(old, new)
        if changes:
            out.append(Conflict(table, session.isoformat(), tuple(changes)))
    return out


def refusal(found: list[Conflict], how: str) -> str:
    """The one-line refusal for ``found`` (non-empty): the first partition, the count, the fix."""
    more = f" (and {len(found) - 1} more partition(s))" if len(found) > 1 else ""
    return (
        f"this run would change existing partition {found[0]}{more}. Restore the settings the "
        f"lake was built with, or {how} to replace them and every partition computed from them"
    )
