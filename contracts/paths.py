"""The data-root layout: every path the pipelines, research and the live runner share.

One root, ``ALPACA_IMPROVED_HOME`` (default ``./.alpaca_improved``)::

    <home>/lake/<table>/<key>=<value>/part.parquet   the Parquet lakehouse
    <home>/sweeps/<family>/<sweep key>/              resumable sweep checkpoints
    <home>/mlflow.db, <home>/mlartifacts/            MLflow tracking store and artifacts
    <home>/dagster_home/                             the Dagster instance
    <home>/data_docs/                                great-expectations Data Docs
    <home>/live/candidates.json                      promotion candidates (gates applied)
    <home>/live/manifests/<manifest id>.json         approved manifests (pipelines write)
    <home>/live/deployments/<deployment id>.json     deployments (the runner reads)
    <home>/live/journal.sqlite                       the live runner's journal (WAL)
    <home>/live/sim_broker.jsonl                     the simulated broker's state
    <home>/live/replays/<start>_<end>/               replays, each a home of its own

Functions take the root and return paths; none creates anything or resolves symlinks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

HOME_ENV = "ALPACA_IMPROVED_HOME"
DEFAULT_HOME = ".alpaca_improved"


def home_from_env(environ: Mapping[str, str] | None = None) -> Path:
    """``ALPACA_IMPROVED_HOME`` (an empty value counts as unset), else ``./.alpaca_improved``.

    Relative as given; callers that need an absolute root call ``.resolve()``.
    """
    env = os.environ if environ is None else environ
    return Path(env.get(HOME_ENV) or DEFAULT_HOME)


def lake_dir(home: Path) -> Path:
    """``<home>/lake``: the Parquet lakehouse."""
    return home / "lake"


def sweeps_dir(home: Path) -> Path:
    """``<home>/sweeps``: sweep checkpoints (per family and sweep key)."""
    return home / "sweeps"


def mlflow_db(home: Path) -> Path:
    """``<home>/mlflow.db``: the MLflow SQLite tracking and registry store."""
    return home / "mlflow.db"


def mlflow_uri(home: Path) -> str:
    """``sqlite:///<absolute home>/mlflow.db``."""
    return f"sqlite:///{mlflow_db(home).resolve()}"


def mlflow_artifacts(home: Path) -> Path:
    """``<home>/mlartifacts``: MLflow artifacts."""
    return home / "mlartifacts"


def dagster_home(home: Path) -> Path:
    """``<home>/dagster_home``: the persistent Dagster instance."""
    return home / "dagster_home"


def data_docs(home: Path) -> Path:
    """``<home>/data_docs``: great-expectations Data Docs."""
    return home / "data_docs"


def live_dir(home: Path) -> Path:
    """``<home>/live``: everything the promotion step and the live runner exchange."""
    return home / "live"


def candidates_path(home: Path) -> Path:
    """``<home>/live/candidates.json``: each family's best variant with its gate verdicts."""
    return live_dir(home) / "candidates.json"


def manifests_dir(home: Path) -> Path:
    """``<home>/live/manifests``: approved manifests, one file per manifest id."""
    return live_dir(home) / "manifests"


def deployments_dir(home: Path) -> Path:
    """``<home>/live/deployments``: what the runner trades, one file per deployment id."""
    return live_dir(home) / "deployments"


def journal_path(home: Path) -> Path:
    """``<home>/live/journal.sqlite``: the live runner's journal."""
    return live_dir(home) / "journal.sqlite"


def sim_broker_path(home: Path) -> Path:
    """``<home>/live/sim_broker.jsonl``: the simulated broker's persisted state."""
    return live_dir(home) / "sim_broker.jsonl"


def replays_dir(home: Path) -> Path:
    """``<home>/live/replays``: one home per replayed window."""
    return live_dir(home) / "replays"


def user_lake_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The default read cache of an S3 lake: outside any data root, in the user's cache
    directory (``$XDG_CACHE_HOME/alpaca-improved/lake``, else ``~/.cache/...``), shared by every
    process and data root of the user (entries are keyed by lake id, ETag and sha256)."""
    env = os.environ if environ is None else environ
    xdg = (env.get("XDG_CACHE_HOME") or "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "alpaca-improved" / "lake"
