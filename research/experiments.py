"""Compare MLflow experiments from a notebook or the CLI.

>>> from research import experiments
>>> experiments.compare("ma_crossover", metric="sharpe_ratio", top=10)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from research.lakehouse import default_home

EXPERIMENT_PREFIX = "alpaca-improved"


def tracking_uri(home: Path | str | None = None) -> str:
    """The MLflow SQLite store under the data root."""
    root = Path(home) if home is not None else default_home()
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def list_experiments(home: Path | str | None = None) -> list[str]:
    """Strategy families that have an experiment."""
    from mlflow.tracking import MlflowClient

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
        kind: only runs of this kind (``sweep``, ``variant``, ``backtest``).
        ascending: rank ascending (for drawdowns and losses).

    Raises:
        ValueError: the experiment does not exist (the message lists those that do).
    """
    from mlflow.tracking import MlflowClient

    root = Path(home) if home is not None else default_home()
    if not (root / "mlflow.db").exists():
        raise ValueError(f"no MLflow store at {root / 'mlflow.db'}; run `make demo` first")
    client = MlflowClient(tracking_uri=tracking_uri(root))
    name = experiment if "/" in experiment else f"{EXPERIMENT_PREFIX}/{experiment}"
    exp = client.get_experiment_by_name(name)
    if exp is None:
        known = ", ".join(list_experiments(root)) or "none"
        raise ValueError(f"experiment {experiment!r} does not exist; known: {known}")
    flt = f"tags.`alpaca_improved.kind` = '{kind}'" if kind else ""
    order = f"metrics.`{metric}` {'ASC' if ascending else 'DESC'}"
    runs = client.search_runs([exp.experiment_id], flt, order_by=[order], max_results=top)
    rows = []
    for r in runs:
        row: dict[str, object] = {
            "run_id": r.info.run_id,
            "run_name": r.info.run_name,
            "status": r.info.status,
            "kind": r.data.tags.get("alpaca_improved.kind", ""),
        }
        row.update({f"param.{k}": v for k, v in r.data.params.items()})
        row.update(r.data.metrics)
        rows.append(row)
    return pd.DataFrame(rows)
