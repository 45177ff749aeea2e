"""The lake's one table registry and its one reader rule.

Every lake table is registered here once: its name, its partition key and the modules that write
it. The pipelines (and the live runner's stream writer, which writes the intraday stream tables)
refuse to write a table that is not registered, and research's DuckDB views are made from this
list, so every table written has a view and no view lacks a writer (proven by
``tests/pipelines/test_lake_storage.py``, which reads the write calls in both packages).

The reader rule, the same for the views, the pipelines and the live runner::

    <lake>/<table>/<key>=<value>/part.parquet

Only ``part.parquet`` is data. Anything else in a partition directory (a stray ``*.parquet``, a
copy, an editor's backup) is a stray and is never read; a hidden ``.part.parquet.tmp-*`` file is
a write in progress. A partition directory whose key does not parse (``session=2024-02-30``) is
rejected with its path: silently reading it would turn the view's ``session`` column into text,
and skipping it silently would hide a session.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from contracts.errors import ContractError

PART_FILE = "part.parquet"
TMP_PREFIX = ".part.parquet.tmp-"
PARQUET_MAGIC = b"PAR1"

PartitionKey = Literal["session", "family"]

_PIPELINES = "alpaca_improved_pipelines.defs"
# The live process writes the intraday stream tables itself (it never imports the pipelines).
STREAM_WRITER = "live.market.stream.lake_writer"


@dataclass(frozen=True, slots=True)
class LakeTable:
    """One lake table: its directory name, what it is partitioned by, and who writes it.

    Attributes:
        name: the directory under ``<lake>`` and the name of its DuckDB view.
        key: the partition key (``session=YYYY-MM-DD`` or ``family=<strategy family>``).
        writers: the modules whose code writes the table (checked against the code by a test).
        description: one line for the README and the demo report.
    """

    name: str
    key: PartitionKey
    writers: tuple[str, ...]
    description: str


def _session(name: str, writer: str, description: str) -> LakeTable:
    return LakeTable(name, "session", (f"{_PIPELINES}.{writer}",), description)


TABLES: tuple[LakeTable, ...] = (
    _session("stock_bars_1m", "market_data.assets", "minute bars, one row per symbol and minute"),
    _session("stock_bars_1d", "market_data.assets", "daily bars stamped at the New York session"),
    _session("stock_bars_5m", "market_data.assets", "5-minute bars resampled from 1-minute bars"),
    _session("stock_bars_1h", "market_data.assets", "hourly bars resampled from 1-minute bars"),
    _session(
        "cross_source_bars",
        "market_data.cross_source",
        "primary vs secondary source agreement (only with ALPACA_IMPROVED_FALLBACK_SOURCE)",
    ),
    LakeTable(
        "stream_bars_1m",
        "session",
        (STREAM_WRITER,),
        "intraday minute bars from the live stream (stock_bars_1m columns; source is stream, "
        "revision or backfill); the nightly stock_bars_1m stays the truth",
    ),
    LakeTable(
        "option_quotes_1m",
        "session",
        (STREAM_WRITER,),
        "last NBBO per option contract and minute from the live stream",
    ),
    _session(
        "stream_reconciliation",
        "market_data.stream_reconciliation",
        "every symbol-minute where stream_bars_1m and stock_bars_1m disagree",
    ),
    _session("indicators_1d", "features.assets", "daily indicators per symbol"),
    _session("option_chains", "options.work", "end-of-day option chains with our IV and Greeks"),
    _session("vol_surface", "options.work", "fitted implied-volatility surfaces"),
    _session("live_orders", "monitoring.assets", "live runner orders, from its journal"),
    _session("live_fills", "monitoring.assets", "live runner fills, from its journal"),
    _session("live_positions", "monitoring.assets", "live runner positions at the last session"),
    _session("live_pnl", "monitoring.assets", "live daily P&L marked to the lake's closes"),
    _session("live_replay", "monitoring.replay", "deployments replayed against the lake"),
    _session(
        "stress_scenarios", "risk.assets", "spot x vol scenario P&L grid per book (valuation day)"
    ),
    _session(
        "stress_history", "risk.assets", "historical stress windows replayed per book, by day"
    ),
    LakeTable(
        "backtest_runs",
        "family",
        (
            f"{_PIPELINES}.research.sweeps",
            f"{_PIPELINES}.research.options_backtest",
            f"{_PIPELINES}.research.options_sweep",
            f"{_PIPELINES}.ml.training",
        ),
        "each family's leaderboard of backtested variants",
    ),
    LakeTable(
        "sweep_results",
        "family",
        (f"{_PIPELINES}.research.sweeps",),
        "every variant of each family's parameter sweep",
    ),
    LakeTable(
        "factor_attribution",
        "family",
        (f"{_PIPELINES}.risk.attribution",),
        "market beta (alpha, R2, t-stats) beside the Greek P&L split per family",
    ),
    LakeTable(
        "walk_forward",
        "family",
        (
            f"{_PIPELINES}.research.leaderboard",
            f"{_PIPELINES}.research.options_sweep",
            f"{_PIPELINES}.ml.training",
        ),
        "walk-forward folds and out-of-sample Sharpe per family",
    ),
)
REGISTRY: dict[str, LakeTable] = {t.name: t for t in TABLES}


class LakeLayoutError(ContractError):
    """A lake path or table name breaks the layout; the message names it and the fix."""


class LakeWarning(UserWarning):
    """A lake path was skipped or repaired; the message names it and what was done."""


def table(name: str, key: PartitionKey | None = None) -> LakeTable:
    """The registered table ``name`` (optionally required to be partitioned by ``key``).

    Raises:
        LakeLayoutError: ``name`` is not registered, or is partitioned by another key.
    """
    found = REGISTRY.get(name)
    if found is None:
        raise LakeLayoutError(
            f"{name!r} is not a lake table; the registered tables are {', '.join(REGISTRY)}. "
            "Register a new table in contracts/lake.py (name, partition key, writer) so it "
            "gets a view"
        )
    if key is not None and found.key != key:
        raise LakeLayoutError(
            f"lake table {name} is partitioned by {found.key}, not by {key} (see contracts/lake.py)"
        )
    return found


def partition_dir(lake: Path, name: str, value: dt.date | str) -> Path:
    """``<lake>/<table>/<key>=<value>``: the directory of one partition of a registered table."""
    key = REGISTRY[name].key if name in REGISTRY else "session"
    text = value.isoformat() if isinstance(value, dt.date) else str(value)
    return lake / name / f"{key}={text}"


def partition_path(lake: Path, name: str, value: dt.date | str) -> Path:
    """``<lake>/<table>/<key>=<value>/part.parquet``: the one data file of a partition."""
    return partition_dir(lake, name, value) / PART_FILE


_FAMILY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def key_problem(key: PartitionKey, value: str) -> str | None:
    """Why ``value`` is not a valid partition value for ``key`` (None when it is)."""
    if key == "session":
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return f"{value!r} is not a YYYY-MM-DD date"
        try:
            dt.date.fromisoformat(value)
        except ValueError as exc:
            return f"{value!r} is not a date ({exc})"
        return None
    if not _FAMILY.fullmatch(value):
        return f"{value!r} is not a strategy family name"
    return None


def parquet_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a complete Parquet file (None when its frame looks whole).

    A cheap check of what every reader needs first: the leading and trailing ``PAR1`` magic and
    a footer length that fits the file. It catches truncated, emptied and foreign files; a file
    damaged inside its data pages passes and fails when its pages are read.
    """
    try:
        size = path.stat().st_size
        if size < 12:
            return f"it is {size} bytes long, too short for Parquet (truncated?)"
        with path.open("rb") as f:
            head = f.read(4)
            f.seek(-8, os.SEEK_END)
            tail = f.read(8)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if head != PARQUET_MAGIC or tail[4:] != PARQUET_MAGIC:
        return "it has no Parquet magic bytes at its start or end (truncated or not Parquet)"
    footer = int.from_bytes(tail[:4], "little")
    if footer + 12 > size:
        return f"its footer claims {footer} bytes of a {size}-byte file (truncated)"
    return None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A lake path a reader must not read, why, and what to do about it."""

    path: Path
    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}; {self.fix}"


@dataclass(frozen=True, slots=True)
class TableScan:
    """What one table's directory holds under the reader rule.

    Attributes:
        table: the registered table.
        files: partition value -> its ``part.parquet``, ascending by value.
        rejected: partition directories whose key does not parse (never read).
        strays: files that are not ``part.parquet`` (never read).
    """

    table: LakeTable
    files: dict[str, Path] = field(default_factory=dict)
    rejected: tuple[Rejected, ...] = ()
    strays: tuple[Rejected, ...] = ()


def _stray(path: Path, table: str) -> Rejected:
    return Rejected(
        path,
        f"a stray beside the {table} partitions (the lake reads only {PART_FILE})",
        "nothing reads it; move it out of the lake",
    )


def scan_table(lake: Path, name: str) -> TableScan:
    """List ``name``'s partitions under the reader rule: files to read, rejected dirs, strays.

    Reads directory entries only (no file is opened) and creates nothing.
    """
    spec = table(name)
    root = lake / name
    files: dict[str, Path] = {}
    rejected: list[Rejected] = []
    strays: list[Rejected] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return TableScan(spec)
    for entry in entries:
        if entry.name.startswith("."):
            continue  # hidden: a write in progress, or an OS's bookkeeping
        path = Path(entry.path)
        prefix = f"{spec.key}="
        if not entry.is_dir() or not entry.name.startswith(prefix):
            strays.append(_stray(path, name))
            continue
        value = entry.name.removeprefix(prefix)
        problem = key_problem(spec.key, value)
        if problem is not None:
            rejected.append(
                Rejected(
                    path,
                    f"invalid partition key {entry.name!r}: {problem}",
                    f"nothing reads it; move it out of the lake (a {name} partition is "
                    f"{prefix}{'YYYY-MM-DD' if spec.key == 'session' else '<family>'})",
                )
            )
            continue
        for inner in sorted(os.scandir(path), key=lambda e: e.name):
            if inner.name == PART_FILE:
                files[value] = Path(inner.path)
            elif not inner.name.startswith("."):
                strays.append(_stray(Path(inner.path), name))
    return TableScan(spec, files, tuple(rejected), tuple(strays))


def partition_values(lake: Path, name: str) -> list[str]:
    """Partition values of ``name`` that have a ``part.parquet``, ascending.

    Raises:
        LakeLayoutError: a partition directory's key does not parse (the message names it).
    """
    scan = scan_table(lake, name)
    if scan.rejected:
        raise LakeLayoutError("lake directory " + "; ".join(str(r) for r in scan.rejected))
    return list(scan.files)


def sessions(lake: Path, name: str = "stock_bars_1d") -> list[dt.date]:
    """Sessions of a session-partitioned table that have a ``part.parquet``, ascending.

    The listing every reader shares (the pipelines, the live runner, the replay).

    Raises:
        LakeLayoutError: a ``session=`` directory is not a real date (the message names its path
            and the fix), or ``name`` is not a session-partitioned lake table.
    """
    table(name, "session")
    return [dt.date.fromisoformat(v) for v in partition_values(lake, name)]


def strays_in(directory: Path) -> list[Path]:
    """Files in a partition directory that are not its ``part.parquet`` (hidden files aside)."""
    try:
        return sorted(
            Path(e.path)
            for e in os.scandir(directory)
            if e.name != PART_FILE and not e.name.startswith(".") and e.is_file()
        )
    except (FileNotFoundError, NotADirectoryError):
        return []
