"""The contracts leaf: what crosses a process boundary, typed once.

The Dagster code location writes these things and the live runner, research notebooks and the
signal service read them, so each is defined here exactly once: the data-root layout and its
paths, the lake table registry and its one reader rule, atomic partition writes, the NYSE
calendar with one horizon, Greek units, and the typed deployment manifest (strategy, params,
capital, risk limits, costs, code and data versions, MLflow run, approval).

Import rule (proven by ``tests/pipelines/test_import_rules.py``): ``contracts`` may import
``strategies``, pydantic, pyarrow/polars and exchange_calendars; never dagster, never the
pipelines, research or live.
"""
