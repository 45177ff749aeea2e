"""Latest market data for a decision: the :class:`SnapshotProvider` interface and a lake reader.

:class:`LakeSnapshotProvider` reads the lake's Parquet partitions with polars directly (no
pipelines import): ``<home>/lake/stock_bars_1d/session=YYYY-MM-DD/part.parquet`` and, when
present, ``<home>/lake/option_chains/session=YYYY-MM-DD/part.parquet`` and
``<home>/lake/vol_surface/...``. A session's bar is only visible once that session closed (16:00
New York), so a decision never sees a future bar. ``vol_features`` are those of the snapshot's
session (``strategies.options.vol_features.vol_features_asof``: the definition sweeps use),
absent for an underlying whose surface that session is not in the lake. ``intraday_features``
are those of the snapshot's session from its ``stock_bars_1m`` partition (all its minutes are
closed once the daily bar is visible; ``strategies.indicators.session_features``: the
definition sweeps use), absent for a symbol without minute bars that session (an intraday gate
then stays closed).

With ``ALPACA_IMPROVED_LAKE_URI=s3://bucket/prefix`` it reads the bucket through
``contracts.lake_store`` (the same store the pipelines write): per table and cycle one HEAD of
its commit marker, and a LIST (the sessions and each object's ETag) only after a commit or once
the last LIST is ``RELIST_SECONDS`` old; a partition is fetched again only when its ETag changed
(the local reader's mtime cache). Each partition is one object written by one PUT, so a read is
always one whole version.
"""

from __future__ import annotations

import io
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import date, datetime, time
from pathlib import Path
from time import time_ns
from typing import Any

import polars as pl

from contracts import lake_store, paths
from contracts.calendar import session_open_close
from contracts.greeks import chain_to_position_units
from live.clock import NEW_YORK
from live.errors import ConfigError
from live.orders.reports import Quote
from strategies.indicators.session_features import IntradayFeatures, intraday_features_asof
from strategies.models import CHAIN_COLUMNS, MarketSnapshot
from strategies.options.vol_features import VolSurfaceFeatures, vol_features_asof

CLOSE = time(16, 0)
BAR_COLUMNS = ("session", "symbol", "open", "high", "low", "close", "volume")
NAN = float("nan")


class LakeDataError(ConfigError):
    """A lake partition the runner needs cannot be used; ``path`` names the file.

    The runner halts trading on it (a journaled reason naming the file) and clears that halt
    once the partition reads again.
    """

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


def _rematerialize(path: Path) -> str:
    table, session = path.parent.parent.name, path.parent.name.removeprefix("session=")
    return (
        f"move it out of the lake and re-materialize {table} for {session} "
        f"(alpaca-improved backfill --start {session} --end {session} --replace)"
    )


class SnapshotProvider(ABC):
    """Source of the latest :class:`MarketSnapshot` at a decision time."""

    @abstractmethod
    def latest(self, now: datetime) -> MarketSnapshot | None:
        """The snapshot a decision at ``now`` may see (None when there is no data yet).

        Raises:
            LakeDataError: A partition it needs cannot be read (naming the file).
        """

    def symbols(self) -> frozenset[str] | None:
        """Symbols the data has (deployments naming others are refused); None: unknown."""
        return None


class StaticSnapshotProvider(SnapshotProvider):
    """Always the same snapshot (tests, benchmarks, replays driven from outside)."""

    def __init__(self, snapshot: MarketSnapshot | None) -> None:
        self.snapshot = snapshot

    def latest(self, now: datetime) -> MarketSnapshot | None:
        return self.snapshot


class LakeSnapshotProvider(SnapshotProvider):
    """Reads the lake; caches partition listings (by directory mtime), partitions (by file
    mtime) and the assembled history (by the visible sessions and their files), so a cycle
    that sees no new data rebuilds nothing.

    Args:
        home: ``ALPACA_IMPROVED_HOME``.
        lookback: Sessions of daily history in a snapshot.
    """

    def __init__(self, home: Path, lookback: int = 260) -> None:
        self.lake = paths.lake_dir(Path(home))
        # ALPACA_IMPROVED_LAKE_URI: checked here, at start-up (one line naming the variable)
        self.store = lake_store.from_env(self.lake)
        self.lookback = lookback
        self._cache: dict[Path, tuple[float | str, pl.DataFrame]] = {}
        self._etags: dict[tuple[str, date], str] = {}
        self._paths: dict[tuple[str, date], Path] = {}
        self._listing: dict[str, tuple[int, list[date]]] = {}
        # S3: per table, the last LIST (with the commit marker read before it) and its sessions
        self._remote: dict[str, tuple[lake_store.Listed, list[date]]] = {}
        self._history: tuple[tuple[Any, ...], pl.DataFrame, dict[str, float]] | None = None
        self._features: dict[str, tuple[tuple[Any, ...], Any]] = {}  # by kind: (key, features)

    def _remote_sessions(self, table: str) -> list[date]:
        """Sessions and ETags of ``table`` in the bucket: a HEAD of its commit marker and, only
        when a commit happened since the last cycle's LIST (or that LIST is
        ``lake_store.RELIST_SECONDS`` old), one LIST; no object is opened."""
        store = self.store
        assert isinstance(store, lake_store.S3Store)
        hit = self._remote.get(table)
        fresh = store.relist(table, hit[0] if hit else None)
        if fresh is None and hit is not None:  # nothing committed since the last LIST
            return hit[1]
        assert fresh is not None  # relist() answers None only to a previous LIST
        out = []
        for key, info in fresh.listing.items():
            parts = key.split("/")
            if len(parts) != 3 or parts[2] != "part.parquet" or "=" not in parts[1]:
                continue
            try:
                session = date.fromisoformat(parts[1].removeprefix("session="))
            except ValueError:
                continue
            self._etags[(table, session)] = info.etag
            out.append(session)
        self._remote[table] = (fresh, sorted(out))
        return self._remote[table][1]

    def _sessions(self, table: str) -> list[date]:
        if self.store.remote:
            return self._remote_sessions(table)
        root = self.lake / table
        try:
            mtime = root.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        hit = self._listing.get(table)
        # mtimes are coarse (a few ms): a directory changed in the last seconds is re-listed,
        # so a partition added in the same tick as the cached listing is never missed
        if hit is not None and hit[0] == mtime and time_ns() - mtime > 2_000_000_000:
            return hit[1]
        out = []
        for part in root.glob("session=*/part.parquet"):
            try:
                out.append(date.fromisoformat(part.parent.name.split("=", 1)[1]))
            except ValueError:
                continue
        self._listing[table] = (mtime, sorted(out))
        return self._listing[table][1]

    def _path(self, table: str, session: date) -> Path:
        key = (table, session)
        path = self._paths.get(key)
        if path is None:
            path = self._paths[key] = (
                self.store.partition(table, session)
                if self.store.remote
                else self.lake / table / f"session={session}" / "part.parquet"
            )
        return path

    def _version(self, table: str, session: date, path: Path) -> float | str:
        """The file's mtime, or (S3) the ETag the last listing gave (HEAD when not listed)."""
        if not self.store.remote:
            return os.stat(path).st_mtime
        etag = self._etags.get((table, session))
        if etag is None:
            info = self.store.head(path)
            if info is None:
                raise FileNotFoundError(self.store.url(path))
            etag = self._etags[(table, session)] = info.etag
        return etag

    def _load(self, path: Path) -> pl.DataFrame:
        if not self.store.remote:
            return pl.read_parquet(path)
        return pl.read_parquet(io.BytesIO(self.store.read(path)))

    def _read(
        self, table: str, session: date, columns: tuple[str, ...] | None = None
    ) -> pl.DataFrame:
        path = self._path(table, session)
        try:
            version = self._version(table, session, path)
            hit = self._cache.get(path)
            if hit is None or hit[0] != version:
                frame = self._load(path)
                hit = (version, frame.select(columns) if columns else frame)
                self._cache[path] = hit
        except (pl.exceptions.PolarsError, OSError, ValueError) as exc:  # corrupt, cut, gone
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise LakeDataError(
                path,
                f"lake partition {self.store.url(path)} cannot be read "
                f"({type(exc).__name__}: {detail}); " + _rematerialize(path),
            ) from None
        return hit[1]

    def symbols(self) -> frozenset[str] | None:
        """Symbols of the lake's latest ``stock_bars_1d`` session (None: no readable data)."""
        sessions = self._sessions("stock_bars_1d")
        if not sessions:
            return None
        try:
            frame = self._read("stock_bars_1d", sessions[-1], BAR_COLUMNS)
        except LakeDataError:
            return None  # the market-data step halts on it and names the file
        return frozenset(frame.get_column("symbol").to_list())

    def latest(self, now: datetime) -> MarketSnapshot | None:
        ny = now.astimezone(NEW_YORK)
        visible = [
            s
            for s in self._sessions("stock_bars_1d")
            if s < ny.date() or (s == ny.date() and ny.time() >= CLOSE)
        ]
        if not visible:
            return None
        sessions = visible[-self.lookback :]
        frames = [self._read("stock_bars_1d", s, BAR_COLUMNS) for s in sessions]
        key = (sessions[0], sessions[-1], len(sessions), tuple(map(id, frames)))
        # a re-read partition is a new frame, allocated while the old one is still cached, so
        # its id differs from the one this position had in the last key
        if self._history is None or self._history[0] != key:
            try:
                history = pl.concat(frames).sort("session", "symbol")
            except pl.exceptions.PolarsError as exc:  # a partition with another layout
                schemas = [f.schema for f in frames]
                odd = next(
                    (d for d, sch in zip(sessions, schemas, strict=True) if sch != schemas[-1]),
                    sessions[-1],
                )
                path = self._path("stock_bars_1d", odd)
                raise LakeDataError(
                    path,
                    f"lake partition {path} does not have the layout of the other sessions "
                    f"({type(exc).__name__}); " + _rematerialize(path),
                ) from None
            prices = dict(
                history.filter(pl.col("session") == sessions[-1])
                .select("symbol", "close")
                .iter_rows()
            )
            self._history = (key, history, prices)
        _, history, prices = self._history
        last = sessions[-1]
        chains = self._chains(last)
        vol = self._vol_features(last, history)
        intraday = self._intraday_features(last)
        return MarketSnapshot(
            now, last, prices, history, chains, vol_features=vol, intraday_features=intraday
        )

    def _intraday_features(self, session: date) -> dict[str, IntradayFeatures]:
        """The intraday features of ``session`` (empty without its stock_bars_1m partition)."""
        if session not in self._sessions("stock_bars_1m"):
            return {}
        minute = self._read("stock_bars_1m", session)

        def compute() -> dict[str, IntradayFeatures]:  # the calendar only on a cache miss
            opn, cls = (t.to_pydatetime() for t in session_open_close(session))
            return intraday_features_asof(session, minute, opn, cls)

        return self._derived(
            "intraday", (session, id(minute)), compute, self._path("stock_bars_1m", session)
        )

    def _vol_features(self, session: date, history: pl.DataFrame) -> dict[str, VolSurfaceFeatures]:
        """The vol-surface features of ``session`` (empty without its vol_surface partition)."""
        if session not in self._sessions("vol_surface"):
            return {}
        surface = self._read("vol_surface", session)
        chain = None
        if session in self._sessions("option_chains"):
            chain = self._read("option_chains", session)  # the cached frame _chains read
        return self._derived(
            "vol",
            (session, id(surface), id(chain), id(history)),
            lambda: vol_features_asof(session, surface, history, chain),
            self._path("vol_surface", session),
        )

    def _derived(self, kind: str, key: tuple[Any, ...], compute: Any, path: Path) -> Any:
        """Features computed from partitions, kept while ``key`` (the session and the cached
        frames' identities) holds; a partition that cannot give them is a LakeDataError."""
        hit = self._features.get(kind)
        if hit is None or hit[0] != key:
            try:
                hit = self._features[kind] = (key, compute())
            except (ValueError, pl.exceptions.PolarsError) as exc:
                raise LakeDataError(
                    path, f"{path} cannot give {kind} features ({exc}); " + _rematerialize(path)
                ) from None
        return hit[1]

    def _chains(self, session: date) -> dict[str, pl.DataFrame]:
        if session not in self._sessions("option_chains"):
            return {}
        frame = self._read("option_chains", session)
        if "dte_days" in frame.columns and "dte" not in frame.columns:
            # the lake's layout (dte_days, lake Greek units) -> what strategies and the risk
            # engine's Greek caps use (position units; see contracts.greeks)
            frame = chain_to_position_units(frame.rename({"dte_days": "dte"}))
        missing = [c for c in CHAIN_COLUMNS if c not in frame.columns]
        if missing:
            path = self._path("option_chains", session)
            raise LakeDataError(
                path,
                f"{path} lacks columns {missing}; re-materialize option_chains for that session",
            )
        frame = frame.select(CHAIN_COLUMNS)
        parts = frame.partition_by("underlying", as_dict=True)
        return {str(key[0]): part for key, part in parts.items()}


def session_close(session: date) -> datetime:
    """16:00 New York on ``session`` (the time of its closing quotes)."""
    return datetime.combine(session, CLOSE, NEW_YORK)


def snapshot_quotes(snapshot: MarketSnapshot) -> dict[str, Quote]:
    """Reference quotes from a snapshot: last prices for equities, bid/ask/Greeks for options."""
    ts = session_close(snapshot.session)
    quotes = {
        s: Quote(NAN, NAN, float(p), ts, (1.0, 0.0, 0.0, 0.0)) for s, p in snapshot.prices.items()
    }
    for chain in snapshot.chains.values():
        cols = chain.select("contract", "bid", "ask", "mid", "delta", "gamma", "vega", "theta")
        for c, bid, ask, mid, *greeks in cols.iter_rows():
            quotes[c] = Quote(_f(bid), _f(ask), _f(mid), ts, tuple(_f(g) for g in greeks))  # type: ignore[arg-type]
    return quotes


def _f(x: object) -> float:
    return NAN if x is None else float(x)  # type: ignore[arg-type]


def merge_quotes(*maps: Mapping[str, Quote]) -> dict[str, Quote]:
    """Later maps win."""
    out: dict[str, Quote] = {}
    for m in maps:
        out.update(m)
    return out
