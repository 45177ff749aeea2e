"""Platform settings: one data root, the universe, the date range, the source. Read from the
environment once, validated, frozen. Secrets are never stored here (see ``secrets``)."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from alpaca_improved_pipelines.backtesting.engines import engine_config
from alpaca_improved_pipelines.calendar import NEW_YORK, parse_date
from alpaca_improved_pipelines.errors import ConfigError
from contracts import database, lake_store, paths
from contracts.errors import ContractError

DEFAULT_SYMBOLS = ("SPY", "QQQ", "IWM", "AAPL", "MSFT", "NVDA", "AMZN", "JPM", "XOM", "TSLA")
DEFAULT_START = dt.date(2024, 1, 2)
SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")
SourceName = Literal["synthetic", "alpaca", "polygon"]


def utc_now() -> dt.datetime:
    """The wall clock (tests pin ``today`` by replacing this function)."""
    return dt.datetime.now(dt.UTC)


def today() -> dt.date:
    """Today's date in New York: the latest session any run may load (nothing after it exists)."""
    return utc_now().astimezone(NEW_YORK).date()


def require_not_future(day: dt.date, what: str) -> dt.date:
    """``day`` if it is not after today (New York), else a ConfigError naming ``what``."""
    now = today()
    if day > now:
        raise ConfigError(
            f"{what} {day.isoformat()} is in the future (today is {now.isoformat()} in New "
            "York); no market data exists for it yet: choose a session up to today"
        )
    return day


def parse_symbols(
    value: str | list[str] | tuple[str, ...], what: str = "symbols"
) -> tuple[str, ...]:
    """Split, upper-case, de-duplicate and validate a symbol list."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for raw in items:
        sym = raw.strip().upper()
        if not sym:
            continue
        if not SYMBOL_RE.match(sym):
            raise ConfigError(
                f"{what}: {raw!r} is not a ticker symbol; use letters like SPY or BRK.B"
            )
        if sym not in out:
            out.append(sym)
    if not out:
        raise ConfigError(f"{what} is empty; name at least one symbol, e.g. SPY,AAPL")
    return tuple(out)


class Settings(BaseModel):
    """Validated platform settings (frozen)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path
    source: SourceName = "synthetic"
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    start: dt.date = DEFAULT_START
    seed: int = 7
    fsync: bool = True

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, v: object) -> tuple[str, ...]:
        return parse_symbols(v)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.seed < 0:
            raise ConfigError(f"seed {self.seed} must be a non-negative integer")
        return self

    @property
    def lake(self) -> Path:
        return paths.lake_dir(self.home)

    @property
    def dagster_home(self) -> Path:
        return paths.dagster_home(self.home)

    @property
    def mlflow_uri(self) -> str:
        """MLflow's store: Postgres with ``ALPACA_IMPROVED_DATABASE_URL``, else SQLite."""
        return database.mlflow_tracking_uri(self.home)

    @property
    def data_docs(self) -> Path:
        return paths.data_docs(self.home)


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from ``ALPACA_IMPROVED_*`` environment variables (or a given mapping)."""
    env = dict(os.environ if environ is None else environ)
    get = lambda k: env.get(k) or None  # noqa: E731
    kwargs: dict[str, object] = {"home": paths.home_from_env(env)}
    if src := get("ALPACA_IMPROVED_SOURCE"):
        if src not in ("synthetic", "alpaca", "polygon"):
            raise ConfigError(
                f"ALPACA_IMPROVED_SOURCE={src!r} is not a source; use synthetic, alpaca or polygon"
            )
        kwargs["source"] = src
    if syms := get("ALPACA_IMPROVED_SYMBOLS"):
        kwargs["symbols"] = parse_symbols(syms, "ALPACA_IMPROVED_SYMBOLS")
    if start := get("ALPACA_IMPROVED_START"):
        kwargs["start"] = parse_date(start, "ALPACA_IMPROVED_START")
    if seed := get("ALPACA_IMPROVED_SEED"):
        try:
            kwargs["seed"] = int(seed)
        except ValueError:
            raise ConfigError(f"ALPACA_IMPROVED_SEED={seed!r} is not an integer") from None
        if int(seed) < 0:
            raise ConfigError(
                f"ALPACA_IMPROVED_SEED={seed!r} is negative; use a whole number 0 or above"
            )
    if (fs := get("ALPACA_IMPROVED_FSYNC")) is not None:
        kwargs["fsync"] = fs.lower() not in ("0", "false", "no")
    try:  # a malformed ALPACA_IMPROVED_DATABASE_URL fails here, before any command starts
        database.database_from_env(env)
        # the lake's bucket, endpoint and credentials (ALPACA_IMPROVED_LAKE_URI), checked now
        lake_store.check(env)
        # the sweep engine (ALPACA_IMPROVED_SWEEP_ENGINE, ALPACA_IMPROVED_DASK_SCHEDULER), parsed
        # now; a sweep connects to its scheduler when it starts
        engine_config(env)
    except ContractError as exc:
        raise ConfigError(str(exc)) from None
    try:
        return Settings(**kwargs)  # type: ignore[arg-type]
    except ValidationError as err:  # one line naming the field, never a pydantic dump
        first = err.errors()[0]
        field = ".".join(map(str, first["loc"])) or "settings"
        raise ConfigError(f"{field}: {first['msg']}") from None


def check_home(settings: Settings, write: bool) -> Path:
    """The data root, checked: a directory (or absent), and writable when ``write``.

    Raises ConfigError naming ``ALPACA_IMPROVED_HOME`` and the fix; probes writability with a
    real file (permission bits do not stop root; a read-only mount does).
    """
    home = settings.home
    var = f"ALPACA_IMPROVED_HOME={str(home)!r}"
    for part in (home, *home.parents):
        if part.exists() and not part.is_dir():
            where = "" if part == home else f" ({part} is a file)"
            raise ConfigError(
                f"{var} is not a directory{where}; point ALPACA_IMPROVED_HOME at a directory"
            )
    if not write:
        return home
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"{var} is not writable ({exc.strerror or exc}); this command writes partitions and "
            "run records there: make it writable, or point ALPACA_IMPROVED_HOME at a writable "
            "copy"
        ) from None
    return home
