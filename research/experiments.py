"""Compare MLflow experiments from a notebook or the CLI.

>>> from research import experiments
>>> experiments.compare("ma_crossover", metric="sharpe_ratio", top=10)
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from contracts import database, paths
from research.lakehouse import default_home

EXPERIMENT_PREFIX = "alpaca-improved"
KIND_TAG = "alpaca_improved.kind"
KINDS = ("sweep", "variant", "walk_forward", "backtest")  # what the research assets tag runs
_METRIC = re.compile(r"^[\w .\-/]+$")  # MLflow's own rule for metric names


def _store(home: Path | str | None) -> Path:
    """The MLflow database of the data root; never creates the root or the database.

    Raises:
        ValueError: the data root does not exist (an empty store is the caller's business).
    """
    root = Path(home) if home is not None else default_home()
    if not root.is_dir():
        raise ValueError(
            f"data root {root.resolve()} does not exist; run `make demo` first, or set "
            "ALPACA_IMPROVED_HOME to an existing data root"
        )
    return paths.mlflow_db(root)


def tracking_uri(home: Path | str | None = None) -> str:
    """MLflow's store: Postgres with ``ALPACA_IMPROVED_DATABASE_URL``, else SQLite in the root."""
    root = Path(home) if home is not None else default_home()
    return database.mlflow_tracking_uri(root)


def _has_store(home: Path | str | None) -> bool:
    """A store to read: the SQLite file under the root, or the configured Postgres database."""
    return database.database_from_env() is not None or _store(home).exists()


def list_experiments(home: Path | str | None = None) -> list[str]:
    """Strategy families that have an experiment (none before the first research run).

    Raises:
        ValueError: the data root does not exist (nothing is created).
    """
    from mlflow.tracking import MlflowClient

    if not _has_store(home):
        return []  # opening the store would create it
    client = MlflowClient(tracking_uri=tracking_uri(home))
    return sorted(
        e.name.removeprefix(f"{EXPERIMENT_PREFIX}/")
        for e in client.search_experiments()
        if e.name.startswith(f"{EXPERIMENT_PREFIX}/")
    )


def compare(
    experiment: str,
    metric: str = "sharpe_ratio",
    top: int = 10,
    home: Path | str | None = None,
    kind: str | None = None,
    ascending: bool = False,
) -> pd.DataFrame:
    """Runs of an experiment with their params and metrics, best ``metric`` first.

    Args:
        experiment: a strategy family (``ma_crossover``) or a full experiment name.
        metric: the metric to rank by.
        top: how many runs to return.
        home: the data root (default ``ALPACA_IMPROVED_HOME``).
        kind: only runs of this kind (one of ``KINDS``).
        ascending: rank ascending (for drawdowns and losses).

    Raises:
        ValueError: the experiment does not exist (the message lists those that do), ``top``
            is not positive, ``kind`` is unknown, or no run records ``metric`` (the message
            lists the metrics that are recorded). Nothing is created.
    """
    from mlflow.tracking import MlflowClient

    if top < 1:
        raise ValueError(f"--top {top} must be a positive number of runs, e.g. --top 10")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"--kind {kind!r} is not one of {', '.join(KINDS)}")
    if not _METRIC.fullmatch(metric):
        raise ValueError(f"--metric {metric!r} is not a metric name, e.g. --metric sharpe_ratio")
    root = Path(home) if home is not None else default_home()
    if not _has_store(root):
        raise ValueError(f"no MLflow store at {paths.mlflow_db(root)}; run `make demo` first")
    client = MlflowClient(tracking_uri=tracking_uri(root))
    name = experiment if "/" in experiment else f"{EXPERIMENT_PREFIX}/{experiment}"
    exp = client.get_experiment_by_name(name)
    if exp is None:
        known = ", ".join(list_experiments(root)) or "none"
        raise ValueError(f"experiment {experiment!r} does not exist; known: {known}")
    flt = f"tags.`{KIND_TAG}` = '{kind}'" if kind else ""
    order = f"metrics.`{metric}` {'ASC' if ascending else 'DESC'}"
    runs = client.search_runs([exp.experiment_id], flt, order_by=[order], max_results=top)
    if runs and metric not in runs[0].data.metrics:  # ranked first when any run records it
        recorded = sorted(
            {m for r in client.search_runs([exp.experiment_id], flt) for m in r.data.metrics}
        )
        of = f"{kind} runs of {experiment}" if kind else f"runs of {experiment}"
        raise ValueError(
            f"--metric {metric!r} is not recorded by the {of}; known: "
            f"{', '.join(recorded) or 'none'}"
        )
    rows = []
    for r in runs:
        row: dict[str, object] = {
            "run_id": r.info.run_id,
            "run_name": r.info.run_name,
            "status": r.info.status,
            "kind": r.data.tags.get(KIND_TAG, ""),
        }
        row.update({f"param.{k}": v for k, v in r.data.params.items()})
        row.update(r.data.metrics)
        rows.append(row)
    return pd.DataFrame(rows)
